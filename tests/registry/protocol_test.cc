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
      {"future version", [](ConnectRequest& r) { r.hdr.version = kProtocolVersion + 1; }, -EPROTONOSUPPORT},
      {"version 1 (no passive open through the registry)", [](ConnectRequest& r) { r.hdr.version = 1; },
       -EPROTONOSUPPORT},
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

ListenRequest good_listen() {
  ListenRequest r{};
  r.hdr.type = uint16_t(MsgType::kListen);
  r.hdr.length = sizeof r;
  r.local_port = 8080;
  r.backlog = 16;
  r.flags = kListenAccept;
  return r;
}

AcceptRequest good_accept() {
  AcceptRequest r{};
  r.hdr.type = uint16_t(MsgType::kAccept);
  r.hdr.length = sizeof r;
  r.listen_id = 3;
  r.flags = kAcceptWait;
  return r;
}

TEST(RegistryProtocol, ListenAndAcceptMessages) {
  EXPECT_EQ(check(bytes_of(good_listen())), 0);
  EXPECT_EQ(check(bytes_of(good_accept())), 0);
  AcceptRequest now = good_accept();
  now.flags = 0;  // -EAGAIN at once rather than waiting: also well formed
  EXPECT_EQ(check(bytes_of(now)), 0);
  ListenRequest any = good_listen();
  any.local_port = 0;   // ephemeral
  any.backlog = 65535;  // capped by utcpd, not refused
  any.local_ip = 0x0a4d0001;
  EXPECT_EQ(check(bytes_of(any)), 0);
}

TEST(RegistryProtocol, ListenRefusals) {
  struct Case {
    const char* name;
    void (*mutate)(ListenRequest&);
    int want;
  };
  const Case cases[] = {
      {"unknown flag", [](ListenRequest& r) { r.flags |= 2; }, -EINVAL},
      {"high flag", [](ListenRequest& r) { r.flags = 0x80000000u; }, -EINVAL},
      {"reserved nonzero", [](ListenRequest& r) { r.reserved = 1; }, -EINVAL},
      {"local loopback", [](ListenRequest& r) { r.local_ip = 0x7f000001; }, -EADDRNOTAVAIL},
      {"local multicast", [](ListenRequest& r) { r.local_ip = 0xe0000001; }, -EADDRNOTAVAIL},
      {"local broadcast", [](ListenRequest& r) { r.local_ip = 0xffffffff; }, -EADDRNOTAVAIL},
      {"old version", [](ListenRequest& r) { r.hdr.version = 1; }, -EPROTONOSUPPORT},
      {"length lies", [](ListenRequest& r) { r.hdr.length = 28; }, -EBADMSG},
      {"bad magic", [](ListenRequest& r) { r.hdr.magic = 0; }, -EBADMSG},
  };
  for (const auto& c : cases) {
    ListenRequest r = good_listen();
    c.mutate(r);
    EXPECT_EQ(check(bytes_of(r)), c.want) << c.name;
  }
}

TEST(RegistryProtocol, AcceptRefusals) {
  struct Case {
    const char* name;
    void (*mutate)(AcceptRequest&);
    int want;
  };
  const Case cases[] = {
      {"unknown flag", [](AcceptRequest& r) { r.flags |= 2; }, -EINVAL},
      {"high flag", [](AcceptRequest& r) { r.flags = 0x80000001u; }, -EINVAL},
      {"reserved nonzero", [](AcceptRequest& r) { r.reserved = 9; }, -EINVAL},
      {"listen id 0", [](AcceptRequest& r) { r.listen_id = 0; }, -EINVAL},
      {"old version", [](AcceptRequest& r) { r.hdr.version = 1; }, -EPROTONOSUPPORT},
      {"length lies (short)", [](AcceptRequest& r) { r.hdr.length = 24; }, -EBADMSG},
      {"length lies (long)", [](AcceptRequest& r) { r.hdr.length = 32; }, -EBADMSG},
      {"bad magic", [](AcceptRequest& r) { r.hdr.magic = 1; }, -EBADMSG},
      {"typed as a reply", [](AcceptRequest& r) { r.hdr.type |= 0x8000; }, -EOPNOTSUPP},
      {"typed as a release", [](AcceptRequest& r) { r.hdr.type = uint16_t(MsgType::kRelease); }, -EBADMSG},
  };
  for (const auto& c : cases) {
    AcceptRequest r = good_accept();
    c.mutate(r);
    EXPECT_EQ(check(bytes_of(r)), c.want) << c.name;
  }
  // Every prefix and a longer copy are refused as well.
  auto full = bytes_of(good_accept());
  for (size_t n = 0; n < full.size(); ++n)
    EXPECT_LT(check(std::vector<uint8_t>(full.begin(), full.begin() + n)), 0) << n;
  full.push_back(0);
  EXPECT_LT(check(full), 0);
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
      h.type = uint16_t(1 + rng() % 6);
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

TEST(RegistryProtocol, ListRequests) {
  ListRequest r{};
  r.hdr.type = uint16_t(MsgType::kList);
  r.hdr.length = sizeof r;
  EXPECT_EQ(check(bytes_of(r)), 0);
  r.start = 12345;  // any start: past the end is an empty last page, not an error
  EXPECT_EQ(check(bytes_of(r)), 0);
  ListRequest bad = r;
  bad.reserved = 1;
  EXPECT_EQ(check(bytes_of(bad)), -EINVAL);
  // An Accept's bytes typed as a list: the size gives it away.
  AcceptRequest acc{};
  acc.hdr.type = uint16_t(MsgType::kList);
  acc.hdr.length = sizeof acc;
  EXPECT_EQ(check(bytes_of(acc)), -EBADMSG);
  // A page holds whole entries and fits one message.
  EXPECT_GT(kListMax, 100u);
  EXPECT_LE(sizeof(ListReply) + kListMax * sizeof(ListEntry), kMaxMessage);
}
