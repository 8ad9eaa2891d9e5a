// options_test.cc - TCP options negotiated on the SYNs: RFC 7323 window scaling,
// timestamps and PAWS, RFC 2018 SACK; between two connections and over the simulated link.
#include <gtest/gtest.h>

#include "stack_harness.h"
#include "tcp/connection.h"
#include "tcp_test_util.h"

namespace utcp::test {
namespace {

using namespace tcp_flags;

constexpr uint16_t kMss = 1460;

// Two connections wired back to back with no loss: A opens actively, B passively.
struct Duo {
  Duo(const TcpConfig& ca, const TcpConfig& cb)
      : a(std::make_unique<Connection>(ca, FourTuple{kIpA, 5000, kIpB, 80}, kMss)),
        b(std::make_unique<Connection>(cb, FourTuple{kIpB, 80, kIpA, 5000}, kMss)) {}
  // Dispatches both sides and delivers what they sent, until nothing moves. Returns every
  // segment sent, A's and B's in order (for inspecting the wire).
  std::vector<Sent> pump(std::vector<Sent>* from_b = nullptr) {
    std::vector<Sent> from_a;
    for (int round = 0; round < 1000; ++round) {
      a->dispatch(now, out_a);
      b->dispatch(now, out_b);
      auto sa = out_a.take();
      auto sb = out_b.take();
      if (sa.empty() && sb.empty()) break;
      for (auto& s : sa) b->process(now, s.repr, out_b);
      for (auto& s : sb) a->process(now, s.repr, out_a);
      for (auto& s : sa) from_a.push_back(std::move(s));
      if (from_b)
        for (auto& s : sb) from_b->push_back(std::move(s));
    }
    for (auto& s : from_a) s.repr.payload = s.data;
    if (from_b)
      for (auto& s : *from_b) s.repr.payload = s.data;
    return from_a;
  }
  void open() {
    b->open_passive(SeqNum(90000));
    a->open_active(now, SeqNum(1000));
  }
  std::unique_ptr<Connection> a, b;
  Capture out_a, out_b;
  Instant now = Instant(Duration(5'000'000));
};

class OptionsTest : public LeakChecked {};

// ---------------------------------------------------------------- RFC 7323 §2 window scale

TEST(WindowScaleFor, SmallestShiftCoveringTheBuffer) {  // RFC 7323 §2.3
  EXPECT_EQ(window_scale_for(1), 0);
  EXPECT_EQ(window_scale_for(65535), 0);
  EXPECT_EQ(window_scale_for(65536), 1);
  EXPECT_EQ(window_scale_for(1u << 20), 5);  // 0xffff << 4 is 16 bytes short of 1 MiB
  EXPECT_EQ(window_scale_for(0xffffu << 10), 10);
  EXPECT_EQ(window_scale_for(UINT32_MAX), 14);  // never above 14
}

// Negotiation matrix: each side with scaling on or off, buffers giving shifts 0..9.
TEST_F(OptionsTest, WindowScaleNegotiationMatrix) {
  for (bool on_a : {false, true}) {
    for (bool on_b : {false, true}) {
      for (uint32_t buf : {32u << 10, 64u << 10, 200u << 10, 1u << 20, 30u << 20}) {
        SCOPED_TRACE(testing::Message() << "A " << on_a << " B " << on_b << " buf " << buf);
        TcpConfig ca, cb;
        ca.window_scaling = on_a;
        cb.window_scaling = on_b;
        ca.rcvbuf = cb.rcvbuf = buf;
        ca.sndbuf = cb.sndbuf = 64 << 10;
        Duo d(ca, cb);
        d.open();
        std::vector<Sent> bs;
        auto as = d.pump(&bs);
        ASSERT_FALSE(as.empty());
        ASSERT_FALSE(bs.empty());
        ASSERT_EQ(d.a->state(), TcpState::kEstablished);
        ASSERT_EQ(d.b->state(), TcpState::kEstablished);
        const Sent& syn = as[0];
        const Sent& synack = bs[0];
        ASSERT_EQ(syn.repr.flags, kSyn);
        ASSERT_EQ(synack.repr.flags, kSyn | kAck);
        const uint8_t shift = window_scale_for(buf);
        // RFC 7323 §2.2: WS on a SYN when enabled; on a SYN,ACK only in answer to one.
        EXPECT_EQ(syn.repr.options.window_scale.has_value(), on_a);
        if (on_a) EXPECT_EQ(*syn.repr.options.window_scale, shift);
        EXPECT_EQ(synack.repr.options.window_scale.has_value(), on_a && on_b);
        // RFC 7323 §2.2: the SYN's window is never scaled.
        EXPECT_EQ(syn.repr.window, std::min<uint32_t>(buf, 0xffff));
        EXPECT_EQ(synack.repr.window, std::min<uint32_t>(buf, 0xffff));
        const bool both = on_a && on_b;
        EXPECT_EQ(d.a->ws_enabled(), both);
        EXPECT_EQ(d.b->ws_enabled(), both);
        EXPECT_EQ(d.a->rcv_wnd_shift(), both ? shift : 0);
        EXPECT_EQ(d.a->snd_wnd_shift(), both ? shift : 0);
        EXPECT_EQ(d.b->snd_wnd_shift(), d.a->rcv_wnd_shift());
        EXPECT_EQ(d.a->snd_wnd_shift(), d.b->rcv_wnd_shift());
        // The peer's view of the window is the whole buffer (to the shift's granularity),
        // or at most 64 KiB without scaling.
        const uint32_t expect_wnd = both ? (buf >> shift) << shift : std::min<uint32_t>(buf, 0xffff);
        EXPECT_EQ(d.b->snd_wnd(), expect_wnd);  // from A's first ACK, scaled
        // Window fields on the wire after the SYNs: the window >> shift.
        const Sent& ack = as[1];
        EXPECT_FALSE(ack.has(kSyn));
        EXPECT_EQ(uint32_t(ack.repr.window), expect_wnd >> (both ? shift : 0));
      }
    }
  }
}

// The peer's shift, 0..15, from a crafted SYN,ACK: applied as sent, 15 taken as 14.
TEST_F(OptionsTest, PeerShiftAppliedAndClampedTo14) {
  for (uint8_t peer_shift = 0; peer_shift <= 15; ++peer_shift) {
    SCOPED_TRACE(int(peer_shift));
    TcpConfig cfg;
    Connection c(cfg, FourTuple{kIpA, 5000, kIpB, 80}, kMss);
    Capture out;
    Instant now(Duration(1'000'000));
    c.open_active(now, SeqNum(1000));
    c.dispatch(now, out);
    out.take();
    TcpRepr sa;
    sa.src_port = 80;
    sa.dst_port = 5000;
    sa.seq = SeqNum(7000);
    sa.ack = SeqNum(1001);
    sa.flags = kSyn | kAck;
    sa.window = 1000;
    sa.options.mss = kMss;
    sa.options.window_scale = peer_shift;
    c.process(now, sa, out);
    ASSERT_EQ(c.state(), TcpState::kEstablished);
    EXPECT_EQ(c.snd_wnd(), 1000u);  // the SYN,ACK's own window: unscaled
    const uint8_t eff = std::min<uint8_t>(peer_shift, 14);
    EXPECT_EQ(c.snd_wnd_shift(), eff);
    TcpRepr ack = sa;
    ack.flags = kAck;
    ack.seq = SeqNum(7001);
    ack.options = {};
    ack.window = 3;
    c.process(now, ack, out);
    EXPECT_EQ(c.snd_wnd(), 3u << eff);
  }
}

// Goodput over a 20 ms, 1 Gb/s link: a 64 KiB window allows 64 KiB per 40 ms RTT;
// scaling lets the 1 MiB buffer fill the pipe.
TEST_F(OptionsTest, ScaledWindowBeats64KiBPerRtt) {
  LinkConfig lc;
  lc.seed = 5;
  lc.delay = Duration(20'000);
  lc.bandwidth_bps = 1'000'000'000;
  lc.queue_limit = 4096;
  const uint64_t total = 16 << 20;
  double goodput[2];
  for (bool ws : {false, true}) {
    TcpConfig tcp;
    tcp.msl = Duration(1'000'000);
    tcp.window_scaling = ws;
    StackPair p(lc, tcp);
    Connected c = connect_pair(p);
    ASSERT_GE(c.server, 0);
    auto r = transfer(p, *p.a, c.client, *p.b, c.server, total);
    EXPECT_TRUE(r.ok);
    goodput[ws] = double(total) / (double(r.virtual_time.count()) / 1e6);
    RecordProperty(ws ? "ws_on_ms" : "ws_off_ms", int(r.virtual_time.count() / 1000));
    p.a->close(c.client);
    p.b->close(c.server);
    p.b->close(c.listener);
    ASSERT_TRUE(p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; }));
  }
  const double cap = 65535.0 / 0.040;  // bytes per second at one 64 KiB window per RTT
  EXPECT_LE(goodput[0], cap * 1.01);
  EXPECT_GT(goodput[1], cap * 8);  // 1 MiB window: ~16x, less slow start
  std::printf("20 ms link, 16 MiB: goodput %.1f MB/s without scaling, %.1f MB/s with\n",
              goodput[0] / 1e6, goodput[1] / 1e6);
}

}  // namespace
}  // namespace utcp::test
