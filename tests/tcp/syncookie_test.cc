// syncookie_test.cc - SYN cookies (RFC 4987 §3.6) and learning the peer's MAC, with
// crafted segments against one Stack on a virtual clock, and between two stacks.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "api/stack.h"
#include "device/link.h"
#include "stack_harness.h"
#include "tcp_test_util.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace utcp::test {
namespace {

using namespace tcp_flags;

// A peer that is not in the stack's neighbour table: only learning can reach it.
const Ipv4Addr kIpPeer = Ipv4Addr::of(10, 0, 0, 9);
const MacAddr kMacPeer{{0x02, 0, 0, 0, 0, 0x0c}};
const MacAddr kMacRouter{{0x02, 0, 0, 0, 0, 0x0d}};
constexpr uint16_t kPort = 80;

// The stack under test on b(); the test speaks raw frames on a().
struct Raw {
  explicit Raw(int backlog, bool cookies = true, bool learn = true) : link(LinkConfig{}) {
    StackConfig c;
    c.ip = kIpB;
    c.mac = kMacB;
    c.syn_cookies = cookies;
    c.learn_peer_mac = learn;
    c.isn_key = std::array<uint8_t, 16>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
    stack = std::make_unique<Stack>(&link.b(), c);
    listener = stack->socket();
    EXPECT_EQ(stack->bind(listener, kPort), 0);
    EXPECT_EQ(stack->listen(listener, backlog), 0);
  }
  ~Raw() {
    if (stack) stack->close(listener);
  }

  // Sends one segment from kIpPeer:port (Ethernet source `src_mac`) and lets the stack run.
  void inject(const TcpRepr& seg, const MacAddr& src_mac = kMacPeer) {
    std::vector<uint8_t> f(14 + 20 + 60 + seg.payload.size());
    size_t n = emit_tcp(seg, kIpPeer, kIpB, std::span(f).subspan(34));
    ASSERT_GT(n, 0u);
    Ipv4Repr ip;
    ip.src = kIpPeer;
    ip.dst = kIpB;
    ip.protocol = uint8_t(IpProto::kTcp);
    ip.payload_len = uint16_t(n);
    emit_ipv4(ip, std::span(f).subspan(14, 20));
    emit_ethernet(EthernetRepr{kMacB, src_mac, uint16_t(EtherType::kIpv4)}, f);
    f.resize(34 + n);
    ASSERT_TRUE(link.a().transmit(f));
    link.a().flush(now);
    stack->poll(now);
  }
  // Frames the stack sent since the last call, parsed.
  struct Out {
    MacAddr dst_mac;
    TcpRepr tcp;
    std::vector<uint8_t> payload;
  };
  std::vector<Out> take() {
    stack->poll(now);
    std::vector<Out> v;
    link.a().receive(now, [&](std::span<const uint8_t> f) {
      auto p = parse_frame(f, true);
      ASSERT_TRUE(p && p->tcp);
      Out o{p->eth.dst, *p->tcp, {p->tcp->payload.begin(), p->tcp->payload.end()}};
      o.tcp.payload = {};
      v.push_back(std::move(o));
    }, 1024);
    return v;
  }
  static TcpRepr syn(uint16_t sport, SeqNum isn, std::optional<uint16_t> mss = 1460, bool all_options = true) {
    TcpRepr s;
    s.src_port = sport;
    s.dst_port = kPort;
    s.seq = isn;
    s.flags = kSyn;
    s.window = 64240;
    s.options.mss = mss;
    if (all_options) {
      s.options.window_scale = 7;
      s.options.sack_permitted = true;
      s.options.timestamps = TcpTimestamps{12345, 0};
    }
    return s;
  }
  static TcpRepr ack(uint16_t sport, SeqNum seq, SeqNum ackno, std::span<const uint8_t> data = {}) {
    TcpRepr a;
    a.src_port = sport;
    a.dst_port = kPort;
    a.seq = seq;
    a.ack = ackno;
    a.flags = kAck | (data.empty() ? 0 : kPsh);
    a.window = 60000;
    a.payload = data;
    return a;
  }

  LinkPair link;
  std::unique_ptr<Stack> stack;
  int listener = -1;
  Instant now = Instant(Duration(1'000'000'000));
};

bool is_cookie_synack(const Raw::Out& o) {
  // A cookie SYN-ACK offers only the MSS (stack.cc); a stateful one answers the SYN's
  // window scale, SACK-permitted and timestamps.
  return o.tcp.has(kSyn) && o.tcp.has(kAck) && !o.tcp.options.window_scale && !o.tcp.options.timestamps &&
         !o.tcp.options.sack_permitted;
}

class SynCookieTest : public LeakChecked {};

TEST_F(SynCookieTest, FloodBeyondTheSynQueueIsAnsweredWithCookies) {
  Raw r(4);
  for (uint16_t i = 0; i < 10; ++i) r.inject(Raw::syn(uint16_t(40000 + i), SeqNum(1000u * i)));
  auto out = r.take();
  ASSERT_EQ(out.size(), 10u);
  int cookies = 0;
  for (auto& o : out) {
    EXPECT_TRUE(o.tcp.has(kSyn) && o.tcp.has(kAck));
    EXPECT_EQ(o.dst_mac, kMacPeer) << "answered through the hop the SYN came from";
    EXPECT_EQ(o.tcp.ack, SeqNum(1000u * (o.tcp.dst_port - 40000)) + 1);
    if (is_cookie_synack(o)) {
      ++cookies;
      EXPECT_TRUE(o.tcp.options.mss.has_value());
    }
  }
  EXPECT_EQ(cookies, 6);
  EXPECT_EQ(r.stack->stats().syn_cookies_sent, 6u);
  EXPECT_EQ(r.stack->connection_count(), 4u) << "cookies keep no state";
  EXPECT_EQ(r.stack->stats().no_neighbor, 0u);
}

TEST_F(SynCookieTest, ValidCookieAckCreatesTheConnection) {
  Raw r(1);
  r.inject(Raw::syn(40000, SeqNum(5000)));
  r.inject(Raw::syn(40001, SeqNum(7000), 1400));
  auto out = r.take();
  ASSERT_EQ(out.size(), 2u);
  ASSERT_TRUE(is_cookie_synack(out[1]));
  const SeqNum cookie = out[1].tcp.seq;
  // The third segment carries data, as a client's first request would.
  auto data = pattern(100);
  r.inject(Raw::ack(40001, SeqNum(7001), cookie + 1, data), kMacRouter);
  EXPECT_EQ(r.stack->stats().syn_cookies_ok, 1u);
  EXPECT_EQ(r.stack->stats().syn_cookies_failed, 0u);
  FourTuple peer;
  int h = r.stack->accept(r.listener, &peer);
  ASSERT_GE(h, 0);
  EXPECT_EQ(peer.remote_port, 40001);
  const Connection* c = r.stack->connection(h);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->state(), TcpState::kEstablished);
  EXPECT_EQ(c->snd_mss(), 1400) << "the MSS came back in the cookie";
  EXPECT_FALSE(c->ws_enabled());
  EXPECT_FALSE(c->sack_enabled());
  EXPECT_FALSE(c->ts_enabled());
  EXPECT_EQ(c->iss(), cookie);
  std::vector<uint8_t> got(200);
  ASSERT_EQ(r.stack->read(h, got), 100);
  got.resize(100);
  EXPECT_EQ(got, data);
  // Learnt from the ACK that made the connection (here, "a router"): replies go there.
  ASSERT_TRUE(r.stack->peer_mac(h).has_value());
  EXPECT_EQ(*r.stack->peer_mac(h), kMacRouter);
  auto reply = pattern(10, 3);
  ASSERT_EQ(r.stack->write(h, reply), 10);
  r.stack->poll(r.now);
  r.now += Duration(100'000);  // past the delayed ACK
  bool saw = false;
  for (auto& o : r.take()) {
    if (o.tcp.dst_port != 40001) continue;
    EXPECT_EQ(o.dst_mac, kMacRouter);
    EXPECT_EQ(o.tcp.ack, SeqNum(7101));
    if (o.payload == reply) saw = true;
  }
  EXPECT_TRUE(saw);
  r.stack->close(h);
  r.stack->close(r.listener);
  r.stack.reset();
}

TEST_F(SynCookieTest, ForgedAckIsRefusedWithReset) {
  Raw r(1);
  r.inject(Raw::syn(40000, SeqNum(5000)));
  r.inject(Raw::syn(40001, SeqNum(7000)));
  auto out = r.take();
  ASSERT_EQ(out.size(), 2u);
  const SeqNum cookie = out[1].tcp.seq;
  // Wrong acknowledgment (a guessed cookie), and the right cookie with another ISN or
  // from another port: each is refused with a RST and leaves nothing behind.
  r.inject(Raw::ack(40001, SeqNum(7001), cookie + 2));
  r.inject(Raw::ack(40001, SeqNum(7002), cookie + 1));
  r.inject(Raw::ack(40002, SeqNum(7001), cookie + 1));
  r.inject(Raw::ack(40001, SeqNum(7001), SeqNum(cookie.raw() ^ 0x01000000u) + 1));  // other MSS index
  EXPECT_EQ(r.stack->stats().syn_cookies_failed, 4u);
  EXPECT_EQ(r.stack->stats().syn_cookies_ok, 0u);
  int rsts = 0;
  for (auto& o : r.take()) rsts += o.tcp.has(kRst);
  EXPECT_EQ(rsts, 4);
  EXPECT_EQ(r.stack->accept(r.listener), -EAGAIN);
  EXPECT_EQ(r.stack->connection_count(), 1u);
}

TEST_F(SynCookieTest, StaleCookieIsRefused) {
  Raw r(1);
  r.inject(Raw::syn(40000, SeqNum(5000)));
  r.inject(Raw::syn(40001, SeqNum(7000)));
  auto out = r.take();
  const SeqNum old_cookie = out[1].tcp.seq;
  // Three 64-second periods later, under a new flood (so cookies are in use again).
  r.now += Duration(200'000'000);
  r.inject(Raw::syn(40002, SeqNum(9000)));
  r.take();
  EXPECT_EQ(r.stack->stats().syn_cookies_sent, 2u);
  r.inject(Raw::ack(40001, SeqNum(7001), old_cookie + 1));
  EXPECT_EQ(r.stack->stats().syn_cookies_failed, 1u);
  auto rst = r.take();
  ASSERT_EQ(rst.size(), 1u);
  EXPECT_TRUE(rst[0].tcp.has(kRst));
  EXPECT_EQ(r.stack->accept(r.listener), -EAGAIN);
}

TEST_F(SynCookieTest, CookieFromTheLastPeriodIsStillGood) {
  Raw r(1);
  r.inject(Raw::syn(40000, SeqNum(5000)));
  r.inject(Raw::syn(40001, SeqNum(7000), std::nullopt, false));  // no MSS option: 536
  auto out = r.take();
  const SeqNum cookie = out[1].tcp.seq;
  r.now += Duration(70'000'000);  // into the next period
  r.inject(Raw::ack(40001, SeqNum(7001), cookie + 1));
  EXPECT_EQ(r.stack->stats().syn_cookies_ok, 1u);
  int h = r.stack->accept(r.listener);
  ASSERT_GE(h, 0);
  EXPECT_EQ(r.stack->connection(h)->snd_mss(), 536);
  r.stack->close(h);
}

TEST_F(SynCookieTest, AckWithoutRecentCookiesGetsResetAsBefore) {
  Raw r(4);
  r.inject(Raw::ack(40001, SeqNum(7001), SeqNum(12345)));
  auto out = r.take();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].tcp.has(kRst));
  EXPECT_EQ(out[0].dst_mac, kMacPeer);
  EXPECT_EQ(r.stack->stats().syn_cookies_failed, 0u) << "not even looked at";
}

TEST_F(SynCookieTest, WithoutCookiesTheFloodIsDropped) {
  Raw r(4, /*cookies=*/false);
  for (uint16_t i = 0; i < 10; ++i) r.inject(Raw::syn(uint16_t(40000 + i), SeqNum(1000u * i)));
  EXPECT_EQ(r.take().size(), 4u);
  EXPECT_EQ(r.stack->stats().syn_dropped_backlog, 6u);
  EXPECT_EQ(r.stack->stats().syn_cookies_sent, 0u);
}

TEST_F(SynCookieTest, FullAcceptQueueDropsSynsAndCookieAcks) {
  Raw r(1);
  r.inject(Raw::syn(40000, SeqNum(5000)));
  r.inject(Raw::syn(40001, SeqNum(7000)));
  auto out = r.take();
  ASSERT_EQ(out.size(), 2u);
  // The stateful one completes and fills the accept queue (backlog 1); it negotiated
  // timestamps, so its ACK carries one (RFC 7323 §3.2).
  ASSERT_FALSE(is_cookie_synack(out[0]));
  ASSERT_TRUE(out[0].tcp.options.timestamps.has_value());
  TcpRepr a = Raw::ack(40000, SeqNum(5001), out[0].tcp.seq + 1);
  a.options.timestamps = TcpTimestamps{12346, out[0].tcp.options.timestamps->tsval};
  r.inject(a);
  EXPECT_EQ(r.take().size(), 0u);
  const uint64_t dropped = r.stack->stats().syn_dropped_backlog;
  r.inject(Raw::ack(40001, SeqNum(7001), out[1].tcp.seq + 1));
  EXPECT_EQ(r.stack->stats().syn_dropped_backlog, dropped + 1);
  EXPECT_EQ(r.take().size(), 0u) << "dropped, not reset: the cookie is good";
  r.inject(Raw::syn(40003, SeqNum(1)));
  EXPECT_EQ(r.stack->stats().syn_dropped_backlog, dropped + 2);
  // Room again: the peer's next segment with the cookie gets in.
  int h = r.stack->accept(r.listener);
  ASSERT_GE(h, 0);
  r.inject(Raw::ack(40001, SeqNum(7001), out[1].tcp.seq + 1));
  EXPECT_EQ(r.stack->stats().syn_cookies_ok, 1u);
  int h2 = r.stack->accept(r.listener);
  EXPECT_GE(h2, 0);
  r.stack->close(h);
  r.stack->close(h2);
}

TEST_F(SynCookieTest, WithoutLearningRepliesUseTheNeighbourTable) {
  Raw r(1, true, /*learn=*/false);
  r.stack->add_neighbor(kIpPeer, kMacRouter);
  r.inject(Raw::syn(40000, SeqNum(5000)), kMacPeer);
  auto out = r.take();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].dst_mac, kMacRouter);
}

// Two stacks: a listener with a SYN queue of one, several clients at once; the ones
// answered by cookies complete and carry data both ways (without window scaling).
TEST_F(SynCookieTest, ConnectionsThroughCookiesTransferData) {
  StackPair p(LinkConfig{});
  StackConfig c;
  c.ip = kIpB;
  c.mac = kMacB;
  c.syn_cookies = true;
  c.learn_peer_mac = true;  // B has no neighbour for A
  c.isn_key = std::array<uint8_t, 16>{2};
  p.b = std::make_unique<Stack>(&p.link.b(), c);
  int l = p.b->socket();
  ASSERT_EQ(p.b->bind(l, kPort), 0);
  ASSERT_EQ(p.b->listen(l, 1), 0);
  constexpr int kN = 3;
  int cl[kN], sv[kN];
  for (int i = 0; i < kN; ++i) {
    cl[i] = p.a->socket();
    ASSERT_EQ(p.a->connect(cl[i], kIpB, kPort, p.now), -EINPROGRESS);
    sv[i] = -1;
  }
  // Clients speak first (a cookie connection's first ACK may be dropped while the
  // accept queue is full; the client's data brings the cookie again).
  auto hello = pattern(5, 7);
  bool sent[kN] = {};
  int accepted = 0;
  ASSERT_TRUE(p.run_until([&] {
    for (int i = 0; i < kN; ++i)
      if (!sent[i] && (p.a->events(cl[i]) & kEventOut)) sent[i] = p.a->write(cl[i], hello) == 5;
    int h = p.b->accept(l);
    if (h >= 0) sv[accepted++] = h;
    return accepted == kN;
  }, Duration(60'000'000)));
  EXPECT_GE(p.b->stats().syn_cookies_sent, 1u);
  EXPECT_GE(p.b->stats().syn_cookies_ok, 1u);
  EXPECT_EQ(p.b->stats().no_neighbor, 0u);
  int cookie_conns = 0;
  for (int i = 0; i < kN; ++i) {
    cookie_conns += !p.b->connection(sv[i])->ws_enabled();
    std::vector<uint8_t> got(16);
    ASSERT_TRUE(p.run_until([&] { return p.b->events(sv[i]) & kEventIn; }));
    ASSERT_EQ(p.b->read(sv[i], got), 5);
    got.resize(5);
    EXPECT_EQ(got, hello);
    auto res = transfer(p, *p.b, sv[i], *p.a, [&] {
      FourTuple t = p.b->connection(sv[i])->tuple();
      for (int j = 0; j < kN; ++j)
        if (p.a->local_port(cl[j]) == t.remote_port) return cl[j];
      return -1;
    }(), 300'000);
    EXPECT_TRUE(res.ok) << i;
  }
  EXPECT_GE(cookie_conns, 1);
  for (int i = 0; i < kN; ++i) {
    p.a->close(cl[i]);
    p.b->close(sv[i]);
  }
  p.b->close(l);
}

}  // namespace
}  // namespace utcp::test
