// api_test.cc - the public C API (utcp.h), the raw-packet API (raw.h) and the C++ layer (utcp.hpp).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "device/link.h"
#include "tcp_test_util.h"
#include "utcp/raw.h"
#include "utcp/utcp.h"
#include "utcp/utcp.hpp"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace utcp::test {
namespace {

using namespace tcp_flags;

constexpr uint32_t kStackIp = 0x0a000001, kPeerIp = 0x0a000063;

// ---------------------------------------------------------------- raw API

class RawApiTest : public LeakChecked {
 protected:
  void SetUp() override {
    s = utcp_raw_create(kStackIp, 1500, 5'000'000, 42);
    ASSERT_NE(s, nullptr);
  }
  void TearDown() override {
    utcp_raw_destroy(s);
    LeakChecked::TearDown();
  }
  // Builds an IPv4+TCP packet from `src` to the stack and injects it.
  void inject_repr(const TcpRepr& t, uint32_t src = kPeerIp) {
    std::vector<uint8_t> pkt(20 + tcp_header_len(t) + t.payload.size());
    size_t n = emit_tcp(t, Ipv4Addr{src}, Ipv4Addr{kStackIp}, std::span(pkt).subspan(20));
    ASSERT_GT(n, 0u);
    Ipv4Repr ip;
    ip.src = Ipv4Addr{src};
    ip.dst = Ipv4Addr{kStackIp};
    ip.protocol = uint8_t(IpProto::kTcp);
    ip.payload_len = uint16_t(n);
    ASSERT_EQ(emit_ipv4(ip, pkt), 20u);
    ASSERT_EQ(utcp_raw_inject(s, pkt.data(), pkt.size()), 0);
  }
  void inject(uint8_t flags, uint32_t seq, uint32_t ack, std::span<const uint8_t> data = {},
              uint16_t dport = 80, std::optional<uint16_t> mss = std::nullopt) {
    TcpRepr t;
    t.src_port = 40000;
    t.dst_port = dport;
    t.seq = SeqNum(seq);
    t.ack = SeqNum(ack);
    t.flags = flags;
    t.window = 65535;
    t.options.mss = mss;
    t.payload = data;
    inject_repr(t);
  }
  // The next emitted packet, parsed (checksums verified).
  std::optional<TcpRepr> collect() {
    last.assign(2000, 0);
    ssize_t n = utcp_raw_collect(s, last.data(), last.size());
    if (n <= 0) return std::nullopt;
    last.resize(size_t(n));
    std::span<const uint8_t> payload;
    ParseError err;
    auto ip = parse_ipv4(last, &payload, true, &err);
    EXPECT_TRUE(ip);
    if (!ip) return std::nullopt;
    EXPECT_EQ(ip->src, Ipv4Addr{kStackIp});
    EXPECT_EQ(ip->dst, Ipv4Addr{kPeerIp});
    auto t = parse_tcp(payload, ip->src, ip->dst, true, &err);
    EXPECT_TRUE(t);
    return t;
  }
  utcp_stack* s = nullptr;
  std::vector<uint8_t> last;
};

TEST_F(RawApiTest, PassiveHandshakeDataAndRetransmit) {  // RFC 9293 §3.5, §3.10.7.2; RFC 6298
  int l = utcp_socket(s);
  ASSERT_EQ(utcp_bind(s, l, 80), 0);
  ASSERT_EQ(utcp_listen(s, l, 8), 0);
  inject(kSyn, 1000, 0, {}, 80, 1400);
  auto synack = collect();
  ASSERT_TRUE(synack);
  EXPECT_EQ(synack->flags, kSyn | kAck);
  EXPECT_EQ(synack->ack, SeqNum(1001));
  ASSERT_TRUE(synack->options.mss);
  EXPECT_EQ(*synack->options.mss, 1460);  // MTU 1500 - 40
  const uint32_t iss = synack->seq.raw();
  EXPECT_EQ(utcp_accept(s, l, nullptr, nullptr), -EAGAIN);
  inject(kAck, 1001, iss + 1);
  uint32_t pip = 0;
  uint16_t pport = 0;
  int c = utcp_accept(s, l, &pip, &pport);
  ASSERT_GE(c, 0);
  EXPECT_EQ(pip, kPeerIp);
  EXPECT_EQ(pport, 40000);
  auto d = pattern(300);
  inject(kAck | kPsh, 1001, iss + 1, d);
  std::vector<uint8_t> buf(1000);
  ASSERT_EQ(utcp_read(s, c, buf.data(), buf.size()), 300);
  EXPECT_TRUE(std::equal(d.begin(), d.end(), buf.begin()));
  ASSERT_EQ(utcp_write(s, c, "hello", 5), 5);
  ASSERT_EQ(utcp_raw_advance(s, 0), 0);
  auto seg = collect();
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->seq, SeqNum(iss + 1));
  EXPECT_EQ(seg->ack, SeqNum(1301));  // the data ACK rides on the reply
  ASSERT_EQ(seg->payload.size(), 5u);
  EXPECT_EQ(std::memcmp(seg->payload.data(), "hello", 5), 0);
  // Unacknowledged: retransmitted after the RTO (200 ms minimum: the handshake RTT was 0).
  ASSERT_EQ(utcp_raw_advance(s, 199'000), 0);
  EXPECT_FALSE(collect());
  ASSERT_EQ(utcp_raw_advance(s, 2'000), 0);
  seg = collect();
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->seq, SeqNum(iss + 1));
  EXPECT_EQ(seg->payload.size(), 5u);
  // Peer resets (exact sequence, RFC 5961 §3.2): the socket reports ECONNRESET.
  inject(kRst, 1301, 0);
  EXPECT_EQ(utcp_read(s, c, buf.data(), buf.size()), -ECONNRESET);
  EXPECT_NE(utcp_poll(s, c) & UTCP_POLLERR, 0);
  EXPECT_EQ(utcp_close(s, c), 0);
  EXPECT_EQ(utcp_close(s, l), 0);
}

TEST_F(RawApiTest, ClosedPortAnswersReset) {  // RFC 9293 §3.10.7.1
  inject(kSyn, 5000, 0, {}, 81);
  auto r = collect();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->flags, kRst | kAck);
  EXPECT_EQ(r->seq, SeqNum(0));
  EXPECT_EQ(r->ack, SeqNum(5001));
  inject(kRst, 5000, 0, {}, 81);
  EXPECT_FALSE(collect());  // never a RST for a RST
}

TEST_F(RawApiTest, DropsSegmentsFromBroadcastOrMulticast) {  // RFC 1122 §3.2.1.3, §4.2.3.10
  int l = utcp_socket(s);
  utcp_bind(s, l, 80);
  utcp_listen(s, l, 8);
  for (uint32_t src : {0xffffffffu, 0xe0000001u, 0u}) {
    inject_repr(TcpRepr{40000, 80, SeqNum(1), {}, kSyn, 1000}, src);
    EXPECT_FALSE(collect()) << std::hex << src;
  }
  EXPECT_EQ(utcp_accept(s, l, nullptr, nullptr), -EAGAIN);
  utcp_close(s, l);
}

TEST_F(RawApiTest, ActiveOpenFromRaw) {
  int c = utcp_socket(s);
  ASSERT_EQ(utcp_connect(s, c, kPeerIp, 40000), -EINPROGRESS);
  EXPECT_EQ(utcp_write(s, c, "x", 1), -EAGAIN);
  ASSERT_EQ(utcp_raw_advance(s, 0), 0);
  auto syn = collect();
  ASSERT_TRUE(syn);
  EXPECT_EQ(syn->flags, kSyn);
  EXPECT_EQ(utcp_poll(s, c) & UTCP_POLLOUT, 0);
  // Our SYN is answered from port 40000 to the ephemeral port it came from.
  inject_repr(TcpRepr{40000, syn->src_port, SeqNum(7000), syn->seq + 1, kSyn | kAck, 1000});
  EXPECT_NE(utcp_poll(s, c) & UTCP_POLLOUT, 0);
  auto ack = collect();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->flags, kAck);
  EXPECT_EQ(ack->ack, SeqNum(7001));
  int err = -1;
  size_t len = sizeof err;
  EXPECT_EQ(utcp_getsockopt(s, c, UTCP_SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, 0);
  utcp_close(s, c);
}

TEST_F(RawApiTest, RefusesBadArguments) {
  EXPECT_EQ(utcp_raw_inject(s, "x", 0), -EINVAL);
  std::vector<uint8_t> big(1501);
  EXPECT_EQ(utcp_raw_inject(s, big.data(), big.size()), -EINVAL);
  // Garbage is accepted by inject and dropped by the parser: nothing comes out.
  std::vector<uint8_t> junk = pattern(60);
  EXPECT_EQ(utcp_raw_inject(s, junk.data(), junk.size()), 0);
  EXPECT_FALSE(collect());
  EXPECT_EQ(utcp_raw_advance(s, -1), -EINVAL);
  EXPECT_EQ(utcp_raw_create(0, 1500, 0, 0), nullptr);
}

// ---------------------------------------------------------------- C API over a link

class CApiTest : public LeakChecked {
 protected:
  void SetUp() override {
    link = std::make_unique<LinkPair>(LinkConfig{});
    utcp_stack_config ca{};
    ca.ip = kStackIp;
    std::memcpy(ca.mac, "\x02\0\0\0\0\x0a", 6);
    ca.clock = UTCP_CLOCK_MANUAL;
    ca.start_us = 1'000'000;
    ca.isn_seed = 1;
    utcp_stack_config cb = ca;
    cb.ip = kPeerIp;
    std::memcpy(cb.mac, "\x02\0\0\0\0\x0b", 6);
    cb.isn_seed = 2;
    a = utcp_stack_create(&ca, api::c_device(link->a()));
    b = utcp_stack_create(&cb, api::c_device(link->b()));
    ASSERT_TRUE(a && b);
    utcp_stack_add_neighbor(a, kPeerIp, cb.mac);
    utcp_stack_add_neighbor(b, kStackIp, ca.mac);
  }
  void TearDown() override {
    utcp_stack_destroy(a);
    utcp_stack_destroy(b);
    link.reset();
    LeakChecked::TearDown();
  }
  // Polls both stacks, then advances both clocks to the next deadline.
  void step() {
    utcp_stack_poll(a);
    utcp_stack_poll(b);
    int64_t ta = utcp_stack_next_timeout_us(a), tb = utcp_stack_next_timeout_us(b);
    int64_t t = ta < 0 ? tb : tb < 0 ? ta : std::min(ta, tb);
    if (t < 0) t = 1000;
    now += t;
    utcp_stack_set_time(a, now);
    utcp_stack_set_time(b, now);
  }
  template <class F>
  bool run_until(F&& f, int max_steps = 100000) {
    for (int i = 0; i < max_steps; ++i) {
      if (f()) return true;
      step();
    }
    return f();
  }
  std::unique_ptr<LinkPair> link;
  utcp_stack *a = nullptr, *b = nullptr;
  int64_t now = 1'000'000;
};

TEST_F(CApiTest, EchoWithOptionsAndErrors) {
  int l = utcp_socket(b);
  ASSERT_EQ(utcp_bind(b, l, 7), 0);
  ASSERT_EQ(utcp_listen(b, l, 4), 0);
  int l2 = utcp_socket(b);
  EXPECT_EQ(utcp_bind(b, l2, 7), -EADDRINUSE);
  utcp_close(b, l2);

  int c = utcp_socket(a);
  int one = 1;
  ASSERT_EQ(utcp_setsockopt(a, c, UTCP_TCP_NODELAY, &one, sizeof one), 0);
  int bufsz = 32768;
  ASSERT_EQ(utcp_setsockopt(a, c, UTCP_SO_SNDBUF, &bufsz, sizeof bufsz), 0);
  EXPECT_EQ(utcp_setsockopt(a, c, UTCP_SO_SNDBUF, &bufsz, 2), -EINVAL);
  EXPECT_EQ(utcp_setsockopt(a, c, 77, &one, sizeof one), -ENOPROTOOPT);
  // TCP_CONGESTION: the default is CUBIC; a per-socket choice carries into the connection.
  char cc[16] = {};
  size_t cclen = sizeof cc;
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_TCP_CONGESTION, cc, &cclen), 0);
  EXPECT_STREQ(cc, "cubic");
  EXPECT_EQ(utcp_setsockopt(a, c, UTCP_TCP_CONGESTION, "bbr9", 4), -ENOENT);
  EXPECT_EQ(utcp_setsockopt(a, c, UTCP_TCP_CONGESTION, "newreno", 7), 0);  // no NUL: length counts
  EXPECT_EQ(utcp_read(a, c, nullptr, 0), -ENOTCONN);
  ASSERT_EQ(utcp_connect(a, c, kPeerIp, 7), -EINPROGRESS);
  int srv = -1;
  ASSERT_TRUE(run_until([&] {
    if (srv < 0) srv = utcp_accept(b, l, nullptr, nullptr);
    return srv >= 0 && (utcp_poll(a, c) & UTCP_POLLOUT);
  }));
  int v = 0;
  size_t len = sizeof v;
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_TCP_NODELAY, &v, &len), 0);
  EXPECT_EQ(v, 1);
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_SO_SNDBUF, &v, &len), 0);
  EXPECT_EQ(v, 32768);
  // SO_SNDBUF is fixed once the connection is up.
  EXPECT_EQ(utcp_setsockopt(a, c, UTCP_SO_SNDBUF, &bufsz, sizeof bufsz), -EINVAL);
  cclen = sizeof cc;
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_TCP_CONGESTION, cc, &cclen), 0);
  EXPECT_STREQ(cc, "newreno");
  EXPECT_EQ(cclen, 8u);
  EXPECT_EQ(utcp_setsockopt(a, c, UTCP_TCP_CONGESTION, "cubic", 6), -EISCONN);
  cclen = sizeof cc;
  ASSERT_EQ(utcp_getsockopt(b, srv, UTCP_TCP_CONGESTION, cc, &cclen), 0);
  EXPECT_STREQ(cc, "cubic");

  // Echo 200 KB through the server.
  auto msg = pattern(200'000);
  size_t sent = 0, echoed = 0, back = 0;
  std::vector<uint8_t> buf(65536), got;
  ASSERT_TRUE(run_until([&] {
    if (sent < msg.size()) {
      ssize_t w = utcp_write(a, c, msg.data() + sent, msg.size() - sent);
      if (w > 0) sent += size_t(w);
      else EXPECT_EQ(w, -EAGAIN);
    }
    ssize_t r = utcp_read(b, srv, buf.data(), buf.size());
    if (r > 0) {
      EXPECT_EQ(utcp_write(b, srv, buf.data(), size_t(r)), r);  // 256 KB default buffer
      echoed += size_t(r);
    }
    r = utcp_read(a, c, buf.data(), buf.size());
    if (r > 0) {
      got.insert(got.end(), buf.begin(), buf.begin() + r);
      back += size_t(r);
    }
    return back == msg.size();
  }));
  EXPECT_EQ(got, msg);

  // Client shuts down writing: the server reads end of stream, closes; client sees EOF.
  ASSERT_EQ(utcp_shutdown(a, c, UTCP_SHUT_WR), 0);
  EXPECT_EQ(utcp_write(a, c, "x", 1), -EPIPE);
  ASSERT_TRUE(run_until([&] { return utcp_read(b, srv, buf.data(), buf.size()) == 0; }));
  EXPECT_EQ(utcp_close(b, srv), 0);
  ASSERT_TRUE(run_until([&] { return utcp_read(a, c, buf.data(), buf.size()) == 0; }));
  EXPECT_NE(utcp_poll(a, c) & UTCP_POLLIN, 0);
  EXPECT_EQ(utcp_close(a, c), 0);
  EXPECT_EQ(utcp_close(a, c), -EBADF);
  EXPECT_EQ(utcp_poll(a, c), -EBADF);
  EXPECT_EQ(utcp_close(b, l), 0);
  EXPECT_STRNE(utcp_strerror(-ECONNREFUSED), "");
}

// Issue 5 item 6: a profile is one option setting a group of them, before the handshake.
TEST_F(CApiTest, ProfilesSetTheirOptions) {
  int c = utcp_socket(a);
  char name[16] = {};
  size_t len = sizeof name;
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_SO_PROFILE, name, &len), 0);
  EXPECT_STREQ(name, "default");
  EXPECT_EQ(utcp_setsockopt(a, c, UTCP_SO_PROFILE, "turbo", 5), -ENOENT);
  ASSERT_EQ(utcp_setsockopt(a, c, UTCP_SO_PROFILE, "latency", 8), 0);
  int v = 0;
  size_t vl = sizeof v;
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_TCP_NODELAY, &v, &vl), 0);
  EXPECT_EQ(v, 1);
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_SO_RCVBUF, &v, &vl), 0);
  EXPECT_EQ(v, 256 * 1024);
  len = sizeof name;
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_SO_PROFILE, name, &len), 0);
  EXPECT_STREQ(name, "latency");

  EXPECT_EQ(utcp_close(a, c), 0);
}

TEST_F(CApiTest, ConnectionRefusedAndTimeouts) {
  int c = utcp_socket(a);
  ASSERT_EQ(utcp_connect(a, c, kPeerIp, 1234), -EINPROGRESS);
  ASSERT_TRUE(run_until([&] { return (utcp_poll(a, c) & UTCP_POLLERR) != 0; }));
  int err = 0;
  size_t len = sizeof err;
  ASSERT_EQ(utcp_getsockopt(a, c, UTCP_SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, ECONNREFUSED);
  EXPECT_EQ(utcp_connect(a, c, kPeerIp, 1234), -ECONNREFUSED);
  utcp_close(a, c);
  // No route: the neighbour is unknown, SYNs vanish; connect times out (6 retries).
  int d = utcp_socket(a);
  ASSERT_EQ(utcp_connect(a, d, 0x0a0000fe, 80), -EINPROGRESS);
  ASSERT_TRUE(run_until([&] { return (utcp_poll(a, d) & UTCP_POLLERR) != 0; }));
  len = sizeof err;
  utcp_getsockopt(a, d, UTCP_SO_ERROR, &err, &len);
  EXPECT_EQ(err, ETIMEDOUT);
  utcp_close(a, d);
}

TEST_F(CApiTest, ExportImportThroughCApi) {
  int l = utcp_socket(b);
  utcp_bind(b, l, 9);
  utcp_listen(b, l, 1);
  int c = utcp_socket(a);
  utcp_connect(a, c, kPeerIp, 9);
  int srv = -1;
  ASSERT_TRUE(run_until([&] {
    if (srv < 0) srv = utcp_accept(b, l, nullptr, nullptr);
    return srv >= 0 && (utcp_poll(a, c) & UTCP_POLLOUT);
  }));
  ASSERT_EQ(utcp_write(a, c, "moving", 6), 6);
  size_t need = 0;
  EXPECT_EQ(utcp_export(a, c, nullptr, 0, &need), -ENOSPC);
  ASSERT_GT(need, 0u);
  std::vector<uint8_t> st(need);
  ASSERT_EQ(utcp_export(a, c, st.data(), st.size(), &need), ssize_t(need));
  EXPECT_EQ(utcp_poll(a, c), -EBADF);  // gone from `a`
  // A second stack on the same link, same address, continues the connection.
  utcp_stack_config ca{};
  ca.ip = kStackIp;
  std::memcpy(ca.mac, "\x02\0\0\0\0\x0a", 6);
  ca.clock = UTCP_CLOCK_MANUAL;
  ca.start_us = now;
  utcp_stack_destroy(a);
  a = utcp_stack_create(&ca, api::c_device(link->a()));
  uint8_t mac_b[6] = {2, 0, 0, 0, 0, 0x0b};
  utcp_stack_add_neighbor(a, kPeerIp, mac_b);
  auto bad = st;
  bad[0] ^= 1;
  EXPECT_EQ(utcp_import(a, bad.data(), bad.size()), -EINVAL);
  int c2 = utcp_import(a, st.data(), st.size());
  ASSERT_GE(c2, 0);
  std::vector<uint8_t> buf(100);
  ssize_t n = 0;
  ASSERT_TRUE(run_until([&] { n = utcp_read(b, srv, buf.data(), buf.size()); return n > 0; }));
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + n), "moving");
  ASSERT_EQ(utcp_write(a, c2, "!", 1), 1);
  ASSERT_TRUE(run_until([&] { n = utcp_read(b, srv, buf.data(), buf.size()); return n > 0; }));
  EXPECT_EQ(buf[0], '!');
  utcp_close(a, c2);
  utcp_close(b, srv);
  utcp_close(b, l);
}

TEST_F(LeakChecked, RealClockStacks) {
  LinkPair link(LinkConfig{});
  utcp_stack_config ca{}, cb{};
  ca.ip = kStackIp;
  cb.ip = kPeerIp;
  std::memcpy(ca.mac, "\x02\0\0\0\0\x0a", 6);
  std::memcpy(cb.mac, "\x02\0\0\0\0\x0b", 6);
  ca.clock = cb.clock = UTCP_CLOCK_REAL;
  ca.reserved[0] = 1;
  EXPECT_EQ(utcp_stack_create(&ca, api::c_device(link.a())), nullptr);  // reserved must be 0
  EXPECT_EQ(errno, EINVAL);
  ca.reserved[0] = 0;
  api::StackHandle a(ca, api::c_device(link.a())), b(cb, api::c_device(link.b()));
  utcp_stack_add_neighbor(a.get(), kPeerIp, cb.mac);
  utcp_stack_add_neighbor(b.get(), kStackIp, ca.mac);
  EXPECT_EQ(utcp_stack_set_time(a.get(), 5), -EINVAL);  // only manual clocks are set
  const int64_t t0 = utcp_stack_now_us(a.get());
  EXPECT_GT(t0, 0);
  api::Socket l(b.get());
  ASSERT_EQ(l.bind(9000), 0);
  ASSERT_EQ(l.listen(), 0);
  api::Socket c(a.get());
  ASSERT_EQ(c.connect(kPeerIp, 9000), -EINPROGRESS);
  api::Socket srv;
  for (int i = 0; i < 1000 && !(srv.valid() && (c.events() & UTCP_POLLOUT)); ++i) {
    a.poll();
    b.poll();
    if (!srv.valid()) srv = l.accept();
  }
  ASSERT_TRUE(srv.valid());
  EXPECT_NE(c.events() & UTCP_POLLOUT, 0);
  EXPECT_GE(utcp_stack_next_timeout_us(a.get()), -1);
}

TEST_F(CApiTest, CppSocketLayer) {
  api::Socket l(b);
  ASSERT_EQ(l.bind(80), 0);
  ASSERT_EQ(l.listen(), 0);
  api::Socket c(a);
  EXPECT_EQ(c.set_option(UTCP_TCP_NODELAY, 1), 0);
  EXPECT_EQ(c.option(UTCP_TCP_NODELAY), 1);
  ASSERT_EQ(c.connect(kPeerIp, 80), -EINPROGRESS);
  api::Socket srv;
  ASSERT_TRUE(run_until([&] {
    if (!srv.valid()) srv = l.accept();
    return srv.valid() && (c.events() & UTCP_POLLOUT);
  }));
  const uint8_t hi[] = {'h', 'i'};
  EXPECT_EQ(c.write(hi), 2);
  uint8_t buf[8];
  ssize_t n = 0;
  ASSERT_TRUE(run_until([&] { n = srv.read(buf); return n > 0; }));
  EXPECT_EQ(n, 2);
  api::Socket moved = std::move(c);
  EXPECT_FALSE(c.valid());
  EXPECT_TRUE(moved.valid());
  EXPECT_EQ(moved.close(), 0);
  EXPECT_EQ(api::error_string(-EAGAIN).empty(), false);
}

}  // namespace
}  // namespace utcp::test
