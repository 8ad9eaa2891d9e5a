// protocol_test.cc - utcpd's request validation: every malformed or hostile request is
// refused with the errno a client can act on, and random bytes never pass or crash it.
#include "registry/protocol.h"

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

using namespace utcp::registry;

namespace {

template <typename T>
std::vector<uint8_t> bytes_of(const T& v) {
  std::vector<uint8_t> b(sizeof v);
  std::memcpy(b.data(), &v, sizeof v);
  return b;
}

ConnectRequest good_connect() {
  ConnectRequest r{};
  r.hdr.type = uint16_t(MsgType::kConnect);
  r.hdr.length = sizeof r;
  r.remote_ip = 0x0a4d0002;  // 10.77.0.2
  r.remote_port = 5001;
  return r;
}

int check(const std::vector<uint8_t>& b) {
  std::string why;
  int rc = validate_request(b, &why);
  if (rc != 0) EXPECT_FALSE(why.empty()) << "a refusal must say why";
  return rc;
}

}  // namespace

TEST(RegistryProtocol, AcceptsWellFormedRequests) {
  EXPECT_EQ(check(bytes_of(good_connect())), 0);
  ConnectRequest udp = good_connect();
  udp.flags = kConnectUdp;
  EXPECT_EQ(check(bytes_of(udp)), 0);
  ListenRequest l{};
  l.hdr.type = uint16_t(MsgType::kListen);
  l.hdr.length = sizeof l;
  l.local_port = 8080;
  EXPECT_EQ(check(bytes_of(l)), 0);
  HelloRequest h{};
  h.hdr.type = uint16_t(MsgType::kHello);
  h.hdr.length = sizeof h;
  EXPECT_EQ(check(bytes_of(h)), 0);
  ReleaseRequest rel{};
  rel.hdr.type = uint16_t(MsgType::kRelease);
  rel.hdr.length = sizeof rel;
  EXPECT_EQ(check(bytes_of(rel)), 0);
}

TEST(RegistryProtocol, RefusalTable) {
  struct Case {
    const char* name;
    void (*mutate)(ConnectRequest&);
    int want;
  };
  const Case cases[] = {
      {"bad magic", [](ConnectRequest& r) { r.hdr.magic = 0xdeadbeef; }, -EBADMSG},
      {"future version", [](ConnectRequest& r) { r.hdr.version = 2; }, -EPROTONOSUPPORT},
      {"length lies (short)", [](ConnectRequest& r) { r.hdr.length = 16; }, -EBADMSG},
      {"length lies (long)", [](ConnectRequest& r) { r.hdr.length = 4096; }, -EBADMSG},
      {"unknown type", [](ConnectRequest& r) { r.hdr.type = 99; }, -EOPNOTSUPP},
      {"reply type sent as request", [](ConnectRequest& r) { r.hdr.type = 0x8002; }, -EOPNOTSUPP},
      {"wrong size for type", [](ConnectRequest& r) { r.hdr.type = uint16_t(MsgType::kHello); }, -EBADMSG},
      {"unknown flags", [](ConnectRequest& r) { r.flags = 4; }, -EINVAL},
      {"UDP with a handshake", [](ConnectRequest& r) { r.flags = kConnectUdp | kConnectHandshake; }, -EINVAL},
      {"reserved nonzero", [](ConnectRequest& r) { r.reserved = 7; }, -EINVAL},
      {"remote port 0", [](ConnectRequest& r) { r.remote_port = 0; }, -EINVAL},
      {"remote 0.0.0.0", [](ConnectRequest& r) { r.remote_ip = 0; }, -ENETUNREACH},
      {"remote loopback", [](ConnectRequest& r) { r.remote_ip = 0x7f000001; }, -ENETUNREACH},
      {"remote multicast", [](ConnectRequest& r) { r.remote_ip = 0xe0000001; }, -ENETUNREACH},
      {"remote broadcast", [](ConnectRequest& r) { r.remote_ip = 0xffffffff; }, -ENETUNREACH},
  };
  for (const auto& c : cases) {
    ConnectRequest r = good_connect();
    c.mutate(r);
    EXPECT_EQ(check(bytes_of(r)), c.want) << c.name;
  }
}

TEST(RegistryProtocol, TruncatedAndOversizedRequestsRefused) {
  auto full = bytes_of(good_connect());
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + n);
    EXPECT_LT(check(prefix), 0) << "prefix of " << n << " bytes";
  }
  auto longer = full;
  longer.resize(full.size() + 8);
  EXPECT_LT(check(longer), 0);
}

TEST(RegistryProtocol, RandomBytesNeverPass) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> b(rng() % 80);
    for (auto& x : b) x = uint8_t(rng());
    // Half the time give it a valid header so the body checks are exercised too.
    if (i % 2 && b.size() >= sizeof(RegHeader)) {
      RegHeader h{};
      h.type = uint16_t(1 + rng() % 5);
      h.length = uint32_t(b.size());
      std::memcpy(b.data(), &h, sizeof h);
    }
    std::string why;
    int rc = validate_request(b, &why);
    if (rc == 0) {
      // Only exact-size, zero-reserved requests of a known type may pass.
      RegHeader h;
      std::memcpy(&h, b.data(), sizeof h);
      EXPECT_EQ(h.magic, kMagic);
      EXPECT_EQ(h.length, b.size());
    }
  }
}
