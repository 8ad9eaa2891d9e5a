// protocol_test.cc - utcpd's request validation: every malformed or hostile request is
// refused with the errno a client can act on, and random bytes never pass or crash it.
#include "registry/protocol.h"

#include "registry/client.h"

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
  ConnectRequest reuse = good_connect();
  reuse.flags = kConnectReuse;
  reuse.reuse_id = 12;
  EXPECT_EQ(check(bytes_of(reuse)), 0);
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
      {"version 2 (no ring sizes)", [](ConnectRequest& r) { r.hdr.version = 2; }, -EPROTONOSUPPORT},
      {"version 3 (no kListenReuseAddr)", [](ConnectRequest& r) { r.hdr.version = 3; }, -EPROTONOSUPPORT},
      {"version 4 (no kConnectReuse)", [](ConnectRequest& r) { r.hdr.version = 4; }, -EPROTONOSUPPORT},
      {"rx entries not a power of two", [](ConnectRequest& r) { r.rings.rx_entries = 3; }, -EINVAL},
      {"tx entries over the module's maximum", [](ConnectRequest& r) { r.rings.tx_entries = 8192; }, -EINVAL},
      {"tx entries all ones", [](ConnectRequest& r) { r.rings.tx_entries = 0xffff; }, -EINVAL},
      {"slot smaller than a frame", [](ConnectRequest& r) { r.rings.slot_size = 1024; }, -EINVAL},
      {"slot not cache-line aligned", [](ConnectRequest& r) { r.rings.slot_size = 2000; }, -EINVAL},
      {"slot over the module's maximum", [](ConnectRequest& r) { r.rings.slot_size = 65536 + 320; }, -EINVAL},
      {"slot size huge", [](ConnectRequest& r) { r.rings.slot_size = 0xffffffc0u; }, -EINVAL},
      {"length lies (short)", [](ConnectRequest& r) { r.hdr.length = 16; }, -EBADMSG},
      {"length lies (long)", [](ConnectRequest& r) { r.hdr.length = 4096; }, -EBADMSG},
      {"unknown type", [](ConnectRequest& r) { r.hdr.type = 99; }, -EOPNOTSUPP},
      {"reply type sent as request", [](ConnectRequest& r) { r.hdr.type = 0x8002; }, -EOPNOTSUPP},
      {"wrong size for type", [](ConnectRequest& r) { r.hdr.type = uint16_t(MsgType::kHello); }, -EBADMSG},
      {"unknown flags", [](ConnectRequest& r) { r.flags = 8; }, -EINVAL},
      {"UDP with a handshake", [](ConnectRequest& r) { r.flags = kConnectUdp | kConnectHandshake; }, -EINVAL},
      {"reuse_id without kConnectReuse", [](ConnectRequest& r) { r.reuse_id = 7; }, -EINVAL},
      {"kConnectReuse without an endpoint", [](ConnectRequest& r) { r.flags = kConnectReuse; }, -EINVAL},
      {"kConnectReuse with the registry's handshake",
       [](ConnectRequest& r) { r.flags = kConnectReuse | kConnectHandshake, r.reuse_id = 2; }, -EINVAL},
      {"kConnectReuse for UDP", [](ConnectRequest& r) { r.flags = kConnectReuse | kConnectUdp, r.reuse_id = 2; },
       -EINVAL},
      {"kConnectReuse asking for other rings",
       [](ConnectRequest& r) { r.flags = kConnectReuse, r.reuse_id = 2, r.rings.rx_entries = 64; }, -EINVAL},
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

TEST(RegistryProtocol, RingSizesWithinTheModulesLimitsPass) {
  ConnectRequest c = good_connect();
  c.rings = RingSize{64, 64, 2048};
  EXPECT_EQ(check(bytes_of(c)), 0);
  c.rings = RingSize{4096, 1, 65536 + 256};  // the module's extremes
  EXPECT_EQ(check(bytes_of(c)), 0);
  c.rings = RingSize{0, 512, 0};  // each field on its own: 0 = utcpd's default
  EXPECT_EQ(check(bytes_of(c)), 0);
  ListenRequest l = good_listen();
  l.rings = RingSize{256, 256, 1536};
  EXPECT_EQ(check(bytes_of(l)), 0);
  AcceptRequest a = good_accept();
  a.rings = RingSize{1024, 64, 65536 + 256};
  EXPECT_EQ(check(bytes_of(a)), 0);
}

TEST(RegistryProtocol, ReleaseFlags) {
  ReleaseRequest r{};
  r.hdr.type = uint16_t(MsgType::kRelease);
  r.hdr.length = sizeof r;
  r.endpoint_id = 4;
  EXPECT_EQ(check(bytes_of(r)), 0);
  r.flags = kReleaseNoReply;
  EXPECT_EQ(check(bytes_of(r)), 0);
  r.flags = 2;
  EXPECT_EQ(check(bytes_of(r)), -EINVAL);
  r.flags = 0x80000001u;
  EXPECT_EQ(check(bytes_of(r)), -EINVAL);
}

TEST(RegistryProtocol, RingsForAWindow) {
  RingSize none = rings_for(0, 0, 0);
  EXPECT_EQ(none.rx_entries, 0);
  EXPECT_EQ(none.tx_entries, 0);
  EXPECT_EQ(none.slot_size, 0u);
  // 256 KiB each way in MTU-sized frames: 180 segments -> 256 slots; 1514 -> 1536.
  RingSize mtu = rings_for(256 * 1024, 256 * 1024, 1514);
  EXPECT_EQ(mtu.slot_size, 1536u);
  EXPECT_EQ(mtu.rx_entries, 256);
  EXPECT_EQ(mtu.tx_entries, 256);
  // 4 MiB each way in 64 KiB slots: RX counts GRO frames as a quarter slot, TX full slots.
  RingSize bulk = rings_for(4 << 20, 4 << 20, kMaxRingSlot);
  EXPECT_EQ(bulk.slot_size, kMaxRingSlot);
  EXPECT_EQ(bulk.rx_entries, 256);
  EXPECT_EQ(bulk.tx_entries, 64);
  // Never beyond the module's limits, whatever is asked.
  RingSize huge = rings_for(0xffffffffu, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(huge.slot_size, kMaxRingSlot);
  EXPECT_EQ(huge.rx_entries, kMaxRingEntries);
  EXPECT_EQ(huge.tx_entries, kMaxRingEntries);
  RingSize tiny = rings_for(1, 1, 1);
  EXPECT_EQ(tiny.slot_size, kMinRingSlot);
  EXPECT_EQ(tiny.rx_entries, 1);
  EXPECT_EQ(tiny.tx_entries, 1);
  // Whatever rings_for returns is a valid request.
  for (uint32_t buf : {1u, 1000u, 65536u, 1u << 20, 1u << 30})
    for (uint32_t frame : {0u, 1514u, 9000u, 65536u}) {
      ConnectRequest c = good_connect();
      c.rings = rings_for(buf, buf, frame);
      EXPECT_EQ(check(bytes_of(c)), 0) << buf << " " << frame;
    }
}

TEST(RegistryProtocol, RingsForProfiles) {
  // Buffers up to 1 MiB keep utcpd's small default; bulk asks for GSO/GRO slots.
  for (const char* small : {"default", "latency", "rpc", "no such profile"}) {
    RingSize r = rings_for_profile(small);
    EXPECT_EQ(r.rx_entries, 0) << small;
    EXPECT_EQ(r.tx_entries, 0) << small;
    EXPECT_EQ(r.slot_size, 0u) << small;
  }
  RingSize bulk = rings_for_profile("bulk");
  EXPECT_EQ(bulk.slot_size, kMaxRingSlot);
  EXPECT_EQ(bulk.rx_entries, 256);
  EXPECT_EQ(bulk.tx_entries, 64);
}

TEST(RegistryProtocol, ListenRefusals) {
  struct Case {
    const char* name;
    void (*mutate)(ListenRequest&);
    int want;
  };
  const Case cases[] = {
      {"unknown flag", [](ListenRequest& r) { r.flags |= 4; }, -EINVAL},
      {"kListenReuseAddr without kListenAccept", [](ListenRequest& r) { r.flags = kListenReuseAddr; }, -EINVAL},
      {"high flag", [](ListenRequest& r) { r.flags = 0x80000000u; }, -EINVAL},
      {"reserved nonzero", [](ListenRequest& r) { r.reserved = 1; }, -EINVAL},
      {"local loopback", [](ListenRequest& r) { r.local_ip = 0x7f000001; }, -EADDRNOTAVAIL},
      {"local multicast", [](ListenRequest& r) { r.local_ip = 0xe0000001; }, -EADDRNOTAVAIL},
      {"local broadcast", [](ListenRequest& r) { r.local_ip = 0xffffffff; }, -EADDRNOTAVAIL},
      {"old version", [](ListenRequest& r) { r.hdr.version = 1; }, -EPROTONOSUPPORT},
      {"version 3: a utcpd of protocol 3 may not know kListenReuseAddr",
       [](ListenRequest& r) { r.hdr.version = 3; }, -EPROTONOSUPPORT},
      {"length lies", [](ListenRequest& r) { r.hdr.length = 28; }, -EBADMSG},
      {"bad magic", [](ListenRequest& r) { r.hdr.magic = 0; }, -EBADMSG},
      {"rx entries not a power of two", [](ListenRequest& r) { r.rings.rx_entries = 100; }, -EINVAL},
      {"slot not aligned", [](ListenRequest& r) { r.rings.slot_size = 1537; }, -EINVAL},
  };
  for (const auto& c : cases) {
    ListenRequest r = good_listen();
    c.mutate(r);
    EXPECT_EQ(check(bytes_of(r)), c.want) << c.name;
  }
  ListenRequest reuse = good_listen();
  reuse.flags |= kListenReuseAddr;  // SO_REUSEADDR on a listen utcpd accepts on
  EXPECT_EQ(check(bytes_of(reuse)), 0);
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
      {"tx entries not a power of two", [](AcceptRequest& r) { r.rings.tx_entries = 6; }, -EINVAL},
      {"slot too small", [](AcceptRequest& r) { r.rings.slot_size = 64; }, -EINVAL},
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
