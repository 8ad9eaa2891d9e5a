// options_test.cc - TCP options negotiated on the SYNs: RFC 7323 window scaling,
// timestamps and PAWS, RFC 2018 SACK; between two connections and over the simulated link.
#include <gtest/gtest.h>

#include <algorithm>

#include "stack_harness.h"
#include "tcp/connection.h"
#include "tcp/scoreboard.h"
#include "tcp/state_export.h"
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

// ---------------------------------------------------------------- RFC 7323 §3-§5 timestamps

TEST_F(OptionsTest, TimestampsOnlyWhenBothOfferAndInEverySegment) {  // RFC 7323 §3.2
  for (bool on_a : {false, true}) {
    for (bool on_b : {false, true}) {
      SCOPED_TRACE(testing::Message() << "A " << on_a << " B " << on_b);
      TcpConfig ca, cb;
      ca.timestamps = on_a;
      cb.timestamps = on_b;
      Duo d(ca, cb);
      d.open();
      std::vector<Sent> bs;
      d.pump(&bs);
      auto data = pattern(10000);
      ASSERT_EQ(d.a->send(data), int64_t(data.size()));
      auto as = d.pump(&bs);
      const bool both = on_a && on_b;
      EXPECT_EQ(d.a->ts_enabled(), both);
      EXPECT_EQ(d.b->ts_enabled(), both);
      EXPECT_EQ(bs[0].repr.options.timestamps.has_value(), both);  // the SYN,ACK
      size_t largest = 0;
      for (auto* v : {&as, &bs})
        for (const Sent& s : *v) {
          EXPECT_EQ(s.repr.options.timestamps.has_value(), both);
          largest = std::max(largest, s.data.size());
        }
      // RFC 6691 §2: the 12 TSopt bytes come out of the MSS.
      EXPECT_EQ(largest, both ? kMss - 12u : kMss);
      EXPECT_EQ(d.b->recv_queued(), data.size());
      std::vector<uint8_t> got(data.size());
      d.b->recv(got);
      EXPECT_EQ(got, data);
    }
  }
}

// A peer that has negotiated timestamps, driven by hand at explicit times.
class TsTest : public OptionsTest {
 protected:
  void establish(Instant t0, uint32_t peer_ts0) {
    now = t0;
    c = std::make_unique<Connection>(cfg, FourTuple{kIpA, 5000, kIpB, 80}, kMss);
    c->open_active(now, iss);
    auto s = take();
    ASSERT_EQ(s.size(), 1u);
    ASSERT_TRUE(s[0].repr.options.timestamps);
    EXPECT_EQ(s[0].repr.options.timestamps->tsecr, 0u);  // RFC 7323 §3.2: no ACK, TSecr 0
    syn_tsval = s[0].repr.options.timestamps->tsval;
    now += rtt;
    peer_ts = peer_ts0;
    TcpRepr sa = seg(kSyn | kAck, irs, iss + 1);
    sa.options.mss = kMss;
    sa.options.timestamps = TcpTimestamps{peer_ts, syn_tsval};
    c->process(now, sa, out);
    ASSERT_EQ(c->state(), TcpState::kEstablished);
    ASSERT_TRUE(c->ts_enabled());
    take();
  }
  TcpRepr seg(uint8_t flags, SeqNum seq, SeqNum ack, std::span<const uint8_t> payload = {}) {
    TcpRepr r;
    r.src_port = 80;
    r.dst_port = 5000;
    r.seq = seq;
    r.ack = ack;
    r.flags = flags;
    r.window = 65535;
    r.payload = payload;
    return r;
  }
  // A segment from the peer with its timestamp clock at `tsval`, echoing `tsecr`.
  TcpRepr peer_seg(uint8_t flags, SeqNum seq, SeqNum ack, uint32_t tsval, uint32_t tsecr,
                   std::span<const uint8_t> payload = {}) {
    TcpRepr r = seg(flags, seq, ack, payload);
    r.options.timestamps = TcpTimestamps{tsval, tsecr};
    return r;
  }
  std::vector<Sent> take() {
    c->dispatch(now, out);
    return out.take();
  }
  void TearDown() override {
    c.reset();
    OptionsTest::TearDown();
  }
  TcpConfig cfg;
  std::unique_ptr<Connection> c;
  Capture out;
  Instant now;
  SeqNum iss{1000}, irs{70000};
  uint32_t syn_tsval = 0, peer_ts = 0;
  Duration rtt{37'000};
};

TEST_F(TsTest, PawsRejectsAnOldDuplicateWithAnAck) {  // RFC 7323 §5.3 R1
  establish(Instant(Duration(1'000'000)), 5000);
  auto d1 = pattern(100, 1), d2 = pattern(100, 2);
  const uint32_t ours = c->ts_now(now);
  c->process(now, peer_seg(kAck, irs + 1, iss + 1, 5010, ours, d1), out);
  EXPECT_EQ(c->recv_queued(), 100u);
  EXPECT_EQ(c->ts_recent(), 5010u);  // §4.3: SEG.SEQ <= Last.ACK.sent, TSval >= TS.Recent
  take();
  // An old duplicate from an earlier incarnation: in-window sequence, older TSval.
  c->process(now, peer_seg(kAck, irs + 101, iss + 1, 5009, ours, d2), out);
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);  // "Send an acknowledgment in reply ... and drop the segment"
  EXPECT_EQ(s[0].repr.flags, kAck);
  EXPECT_EQ(s[0].ack(), irs + 101);
  ASSERT_TRUE(s[0].repr.options.timestamps);
  EXPECT_EQ(s[0].repr.options.timestamps->tsecr, 5010u);
  EXPECT_EQ(c->recv_queued(), 100u);
  EXPECT_EQ(c->stats().paws_rejected, 1u);
  EXPECT_EQ(c->ts_recent(), 5010u);
  // The same bytes with a current TSval are taken.
  c->process(now, peer_seg(kAck, irs + 101, iss + 1, 5011, ours, d2), out);
  EXPECT_EQ(c->recv_queued(), 200u);
  EXPECT_EQ(c->ts_recent(), 5011u);
  // RFC 7323 §3.2: once negotiated, a segment without TSopt is dropped silently.
  out.take();
  c->process(now, seg(kAck, irs + 201, iss + 1, d1), out);
  EXPECT_EQ(c->recv_queued(), 200u);
  EXPECT_TRUE(out.take().empty());
  EXPECT_EQ(c->stats().ts_missing, 1u);
  // §5.3 R1 exempts a RST: an old-TSval RST at RCV.NXT still resets.
  TcpRepr rst = peer_seg(kRst, irs + 201, SeqNum(0), 1, 0);
  c->process(now, rst, out);
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), ECONNRESET);
}

TEST_F(TsTest, TimestampClocksWrapAcross2To32) {  // RFC 7323 §5.2: modular comparison
  // Our TSval = ms + ISS: start 300 ms before it wraps; the peer's 200 ticks before.
  iss = SeqNum(1000);
  const int64_t wrap_ms = (int64_t(1) << 32) - 1000;
  establish(Instant(Duration((wrap_ms - 300) * 1000)), 0xffffffffu - 200);
  EXPECT_GT(c->ts_now(now), 0xfffff000u);
  SeqNum pseq = irs + 1;
  SeqNum acked = iss + 1;
  uint64_t got = 0;
  std::vector<uint8_t> buf(1 << 16);
  auto data = pattern(50 * 1000);
  ASSERT_EQ(c->send(data), int64_t(data.size()));
  // 40 rounds of 20 ms: both clocks pass 2^32 halfway.
  for (int round = 0; round < 40; ++round) {
    auto sent = take();
    now += Duration(20'000);
    peer_ts += 20;
    uint32_t echo = 0;
    for (const Sent& s : sent) {
      ASSERT_TRUE(s.repr.options.timestamps);
      if (s.data.empty()) continue;
      echo = s.repr.options.timestamps->tsval;
      acked = s.seq() + uint32_t(s.data.size());
    }
    auto chunk = pattern(500, round);
    c->process(now, peer_seg(kAck, pseq, acked, peer_ts, echo ? echo : c->ts_now(now), chunk), out);
    pseq += 500;
    int64_t n;
    while ((n = c->recv(buf)) > 0) got += uint64_t(n);
  }
  EXPECT_EQ(c->stats().paws_rejected, 0u);
  EXPECT_EQ(got, 40u * 500);
  EXPECT_LT(c->ts_recent(), 1000u);  // TS.Recent followed the peer's clock past 2^32
  EXPECT_LT(c->ts_now(now), 1000u);
  EXPECT_EQ(c->snd_una(), iss + 1 + uint32_t(data.size()));
  // RTT samples straddling the wrap read 20 ms, not ~2^32 ms.
  EXPECT_LE(c->srtt(), Duration(40'000));
  EXPECT_GE(c->srtt(), Duration(19'000));
  // An old segment (TSval from before the wrap) is now rejected.
  c->process(now, peer_seg(kAck, pseq, acked, 0xffffff00u, c->ts_now(now)), out);
  EXPECT_EQ(c->stats().paws_rejected, 1u);
}

TEST_F(TsTest, RttSampleFromTsecrEvenAfterRetransmission) {  // RFC 7323 §4.1
  establish(Instant(Duration(1'000'000)), 100);
  EXPECT_EQ(c->srtt(), rtt);  // the handshake (classic timing)
  auto data = pattern(1000);
  ASSERT_EQ(c->send(data), 1000);
  auto s = take();
  ASSERT_EQ(s.size(), 1u);
  const uint32_t first_tsval = s[0].repr.options.timestamps->tsval;
  // Lost: the retransmission timer fires and the segment goes again with a new TSval.
  now = c->rto_deadline();
  s = take();
  ASSERT_EQ(s.size(), 1u);
  ASSERT_EQ(c->stats().timeouts, 1u);
  const uint32_t rexmit_tsval = s[0].repr.options.timestamps->tsval;
  EXPECT_GT(rexmit_tsval, first_tsval);
  const Duration backed_off = c->rto();
  // The ACK echoes the retransmission's TSval, 80 ms later: the sample is 80 ms, which
  // Karn's rule would have had to discard without timestamps.
  now += Duration(80'000);
  c->process(now, peer_seg(kAck, irs + 1, iss + 1001, 200, rexmit_tsval), out);
  const Duration srtt = (7 * rtt + Duration(80'000)) / 8;
  EXPECT_EQ(c->srtt(), srtt);
  EXPECT_LT(c->rto(), backed_off);  // the backed-off RTO is recomputed from the sample
  // An echo from the future (forged) gives no sample.
  ASSERT_EQ(c->send(data), 1000);
  s = take();
  now += Duration(10'000);
  c->process(now, peer_seg(kAck, irs + 1, iss + 2001, 201, c->ts_now(now) + 1000), out);
  EXPECT_EQ(c->snd_una(), iss + 2001);
  EXPECT_EQ(c->srtt(), srtt);
}

TEST_F(OptionsTest, ExportImportKeepsNegotiatedOptions) {
  TcpConfig cfg;
  Duo d(cfg, cfg);
  d.open();
  d.pump();
  ASSERT_TRUE(d.a->ts_enabled() && d.a->ws_enabled());
  auto st = d.a->export_state(d.now);
  auto bytes = st.serialize();
  const char* err = nullptr;
  auto parsed = ConnectionState::parse(bytes, &err);
  ASSERT_TRUE(parsed) << err;
  auto moved = Connection::import_state(cfg, *parsed, d.now, &err);
  ASSERT_TRUE(moved) << err;
  EXPECT_TRUE(moved->ts_enabled());
  EXPECT_EQ(moved->ts_now(d.now), d.a->ts_now(d.now));
  EXPECT_EQ(moved->ts_recent(), d.a->ts_recent());
  EXPECT_EQ(moved->rcv_wnd_shift(), d.a->rcv_wnd_shift());
  d.a = std::move(moved);
  auto data = pattern(300000);
  ASSERT_EQ(d.a->send(data), int64_t(data.size()));
  d.pump();
  EXPECT_EQ(d.b->recv_queued(), data.size());
  EXPECT_EQ(d.b->stats().paws_rejected, 0u);
  // A shift without negotiated scaling is refused.
  parsed->ws_ok = false;
  EXPECT_EQ(Connection::import_state(cfg, *parsed, d.now, &err), nullptr);
}

// ---------------------------------------------------------------- RFC 2018 SACK, RFC 6675


struct RunStats {
  TransferResult r;
  Connection::Stats st;
};

RunStats run_transfer(const LinkConfig& lc, bool sack, uint64_t total) {
  TcpConfig tcp;
  tcp.msl = Duration(1'000'000);
  tcp.sack = sack;
  StackPair p(lc, tcp);
  Connected c = connect_pair(p);
  RunStats out;
  EXPECT_GE(c.server, 0);
  if (c.server < 0) return out;
  EXPECT_EQ(p.a->connection(c.client)->sack_enabled(), sack);
  out.r = transfer(p, *p.a, c.client, *p.b, c.server, total);
  if (auto* k = p.a->connection(c.client)) out.st = k->stats();
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  EXPECT_TRUE(p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; }));
  return out;
}

struct SackCase {
  double loss;
  uint64_t bytes;
  uint64_t seed;
};

class SackTransferTest : public LeakChecked, public ::testing::WithParamInterface<SackCase> {};

// Every byte checked, with SACK and without (NewReno) on the same seeded link.
TEST_P(SackTransferTest, EveryByteArrivesFasterThanNewReno) {
  const SackCase sc = GetParam();
  const LinkConfig lc = lossy_link(sc.loss, sc.seed);
  RunStats with = run_transfer(lc, true, sc.bytes);
  RunStats without = run_transfer(lc, false, sc.bytes);
  EXPECT_TRUE(with.r.ok) << "SACK: got " << with.r.bytes;
  EXPECT_TRUE(without.r.ok) << "NewReno: got " << without.r.bytes;
  EXPECT_GT(with.st.sack_recoveries, 0u);
  EXPECT_EQ(without.st.sack_recoveries, 0u);
  EXPECT_LT(with.r.virtual_time, without.r.virtual_time);
  std::printf("%.0f%% loss, %llu MiB: SACK %.2f s (%llu rexmits, %llu timeouts), "
              "NewReno %.2f s (%llu rexmits, %llu timeouts)\n",
              sc.loss * 100, (unsigned long long)(sc.bytes >> 20),
              double(with.r.virtual_time.count()) / 1e6, (unsigned long long)with.st.retransmits,
              (unsigned long long)with.st.timeouts, double(without.r.virtual_time.count()) / 1e6,
              (unsigned long long)without.st.retransmits, (unsigned long long)without.st.timeouts);
  RecordProperty("sack_ms", int(with.r.virtual_time.count() / 1000));
  RecordProperty("newreno_ms", int(without.r.virtual_time.count() / 1000));
}

INSTANTIATE_TEST_SUITE_P(Loss, SackTransferTest,
                         ::testing::Values(SackCase{0.01, 100 << 20, 22}, SackCase{0.05, 100 << 20, 23},
                                           SackCase{0.02, 8 << 20, 25}),
                         [](const auto& info) {
                           return "loss" + std::to_string(int(info.param.loss * 100)) + "_" +
                                  std::to_string(info.param.bytes >> 20) + "MB";
                         });

TEST(ScoreboardTest, MergesAdvancesAndJudgesLoss) {  // RFC 6675 §3, §4
  Scoreboard sb;
  const SeqNum b(1000);
  EXPECT_EQ(sb.add(b + 3000, b + 4000), 1000u);
  EXPECT_EQ(sb.add(b + 1000, b + 2000), 1000u);
  EXPECT_EQ(sb.add(b + 1500, b + 3000), 1000u);  // joins both: [1000, 4000)
  EXPECT_EQ(sb.ranges(), 1u);
  EXPECT_EQ(sb.add(b + 1000, b + 4000), 0u);  // nothing new
  EXPECT_EQ(sb.add(b + 6000, b + 7000), 1000u);
  EXPECT_TRUE(sb.is_sacked(b + 1000));
  EXPECT_FALSE(sb.is_sacked(b + 4000));
  EXPECT_EQ(sb.high(), b + 7000);
  // IsLost: > (3-1)*SMSS bytes SACKed above, or 3 discontiguous ranges.
  EXPECT_TRUE(sb.is_lost(b, 1000));         // 4000 bytes above
  EXPECT_FALSE(sb.is_lost(b + 4000, 1000));  // 1000 bytes, one range above
  EXPECT_FALSE(sb.is_lost(b, 2000));         // 4000 = 2 * 2000, not more
  std::vector<Scoreboard::Hole> holes;
  sb.for_each_hole(b, b + 8000, 1000, [&](const Scoreboard::Hole& h) {
    holes.push_back(h);
    return true;
  });
  ASSERT_EQ(holes.size(), 3u);
  EXPECT_EQ(holes[0].left, b);
  EXPECT_EQ(holes[0].right, b + 1000);
  EXPECT_TRUE(holes[0].lost);
  EXPECT_EQ(holes[1].left, b + 4000);
  EXPECT_EQ(holes[1].right, b + 6000);
  EXPECT_FALSE(holes[1].lost);
  EXPECT_EQ(holes[2].left, b + 7000);
  EXPECT_EQ(holes[2].right, b + 8000);
  sb.advance(b + 3500);
  EXPECT_EQ(sb.range(0).left, b + 3500);
  sb.advance(b + 7000);
  EXPECT_TRUE(sb.empty());
  // Bounded: past kMaxRanges the highest range is forgotten, never the lowest.
  for (uint32_t i = 0; i < Scoreboard::kMaxRanges + 10; ++i) sb.add(b + 2000 * i, b + 2000 * i + 1000);
  EXPECT_EQ(sb.ranges(), Scoreboard::kMaxRanges);
  EXPECT_EQ(sb.range(0).left, b);
  // Across the 2^32 wrap.
  Scoreboard w;
  w.add(SeqNum(0xfffffc00u), SeqNum(0x400));
  EXPECT_TRUE(w.is_sacked(SeqNum(0)));
  w.advance(SeqNum(0x100));
  EXPECT_EQ(w.range(0).left, SeqNum(0x100));
}

// The receiver's SACK blocks: the newest arrival's block first (RFC 2018 §4).
TEST_F(OptionsTest, SackBlocksNewestFirst) {
  TcpConfig cfg;
  Duo d(cfg, cfg);
  d.open();
  d.pump();
  ASSERT_TRUE(d.a->sack_enabled() && d.b->sack_enabled());
  const SeqNum base = d.b->rcv_nxt();
  auto piece = pattern(100);
  // Segments past RCV.NXT at offsets 1000, 3000, 5000, then 3100 (extends the second).
  std::vector<Sent> acks;
  for (uint32_t off : {1000u, 3000u, 5000u, 3100u}) {
    TcpRepr r;
    r.src_port = 5000;
    r.dst_port = 80;
    r.seq = base + off;
    r.ack = d.a->rcv_nxt();
    r.flags = kAck;
    r.window = 0xffff;
    r.options.timestamps = TcpTimestamps{d.a->ts_now(d.now), d.b->ts_now(d.now)};
    r.payload = piece;
    d.b->process(d.now, r, d.out_b);
    d.b->dispatch(d.now, d.out_b);
    for (auto& s : d.out_b.take()) acks.push_back(std::move(s));
  }
  ASSERT_EQ(acks.size(), 4u);  // RFC 5681 §4.2: each out-of-order segment ACKed at once
  const TcpOptions& last = acks.back().repr.options;
  ASSERT_EQ(last.sack_count, 3u);  // three ranges; all fit beside the timestamps
  EXPECT_EQ(last.sack[0], (SackBlock{base + 3000, base + 3200}));  // newest arrival's block
  EXPECT_EQ(last.sack[1], (SackBlock{base + 5000, base + 5100}));
  EXPECT_EQ(last.sack[2], (SackBlock{base + 1000, base + 1100}));
  EXPECT_EQ(acks[0].repr.options.sack_count, 1u);
  EXPECT_EQ(acks[0].repr.options.sack[0], (SackBlock{base + 1000, base + 1100}));
  for (const Sent& a : acks) EXPECT_EQ(a.ack(), base);
}

// Several losses in one window (RFC 6675's purpose): SACK resends exactly the lost
// segments within about one RTT; NewReno needs one RTT per loss (RFC 6582 partial ACKs).
struct WindowLossResult {
  int rounds = 0;  // RTTs from the burst until everything is acknowledged
  uint64_t retransmits = 0;
  Duration time{0};
};

WindowLossResult lose_in_one_window(bool sack, const std::vector<int>& drop_segments) {
  TcpConfig cfg;
  cfg.sack = sack;
  Duo d(cfg, cfg);
  d.open();
  d.pump();
  const Duration one_way(10'000);
  // Grow cwnd without loss first.
  auto warm = pattern(1000 * 1000);
  EXPECT_EQ(d.a->send(warm), int64_t(warm.size()));
  d.pump();
  std::vector<uint8_t> sink(1 << 20);
  while (d.b->recv(sink) > 0) {
  }
  EXPECT_GE(d.a->cwnd(), 30u * d.a->seg_size());  // the burst below fits in one window
  const uint64_t rexmit0 = d.a->stats().retransmits;
  const uint32_t seg = d.a->seg_size();
  auto burst = pattern(30 * seg, 9);
  const SeqNum start = d.a->snd_nxt();
  EXPECT_EQ(d.a->send(burst), int64_t(burst.size()));
  std::vector<SeqNum> drops;
  for (int i : drop_segments) drops.push_back(start + uint32_t(i) * seg);
  const SeqNum end = start + uint32_t(burst.size());
  const Instant t0 = d.now;
  WindowLossResult res;
  while (d.a->snd_una() != end && res.rounds < 100) {
    ++res.rounds;
    d.a->dispatch(d.now, d.out_a);
    auto sa = d.out_a.take();
    d.now += one_way;
    for (auto& s : sa) {
      auto it = std::find(drops.begin(), drops.end(), s.seq());
      if (it != drops.end() && !s.data.empty()) {
        drops.erase(it);  // lost once; its retransmission goes through
        continue;
      }
      s.repr.payload = s.data;
      d.b->process(d.now, s.repr, d.out_b);
    }
    d.b->dispatch(d.now, d.out_b);
    auto sb = d.out_b.take();
    d.now += one_way;
    for (auto& s : sb) {
      s.repr.payload = s.data;
      d.a->process(d.now, s.repr, d.out_a);
    }
    if (sa.empty() && sb.empty()) {  // a timer (delayed ACK, RTO) is next
      d.now = std::max(d.now, std::min(d.a->poll_at(), d.b->poll_at()));
    }
  }
  res.retransmits = d.a->stats().retransmits - rexmit0;
  res.time = d.now - t0;
  EXPECT_EQ(d.a->snd_una(), end);
  EXPECT_EQ(d.b->recv_queued(), burst.size());
  std::vector<uint8_t> got(burst.size());
  d.b->recv(got);
  EXPECT_EQ(got, burst);
  return res;
}

TEST_F(OptionsTest, SeveralLossesInOneWindowRecoveredInAboutOneRtt) {
  const std::vector<int> drops{3, 7, 11, 15, 19};
  const WindowLossResult s = lose_in_one_window(true, drops);
  const WindowLossResult n = lose_in_one_window(false, drops);
  std::printf("5 losses in a 30-segment window: SACK %d RTTs, %llu retransmits, %.0f ms; "
              "NewReno %d RTTs, %llu retransmits, %.0f ms\n",
              s.rounds, (unsigned long long)s.retransmits, double(s.time.count()) / 1e3, n.rounds,
              (unsigned long long)n.retransmits, double(n.time.count()) / 1e3);
  // Round 1 sends the burst, round 2 the retransmissions (and round 3 their ACK's echo).
  EXPECT_LE(s.rounds, 3);
  EXPECT_EQ(s.retransmits, drops.size());  // exactly the holes, nothing SACKed twice
  EXPECT_GE(n.rounds, int(drops.size()) + 1);  // one partial ACK per loss
  EXPECT_LT(s.time, n.time);
}

}  // namespace
}  // namespace utcp::test
