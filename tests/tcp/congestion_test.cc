// congestion_test.cc - CUBIC (RFC 9438), HyStart++ (RFC 9406), RACK-TLP (RFC 8985) and
// D-SACK (RFC 2883): controllers on a virtual clock, connection pairs over a scripted
// wire, and verified transfers over the seeded lossy link for both algorithms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "stack_harness.h"
#include "tcp/congestion.h"
#include "tcp/connection.h"
#include "tcp/state_export.h"
#include "tcp_test_util.h"

namespace utcp::test {
namespace {

using namespace tcp_flags;

constexpr uint32_t kSeg = 1000;  // SMSS of the controller tests

class CcTest : public LeakChecked {};

// Acknowledges one window per RTT in ACKs of one segment, spread evenly over the RTT.
struct AckClock {
  Instant now = Instant(Duration(100'000'000));
  SeqNum una{1};
  Duration rtt{100'000};
  void round(CongestionControl& cc, Duration rtt_sample = Duration(-1)) {
    const uint32_t n = std::max<uint32_t>(1, cc.cwnd() / kSeg);
    const Duration step = rtt / int64_t(n);
    for (uint32_t i = 0; i < n; ++i) {
      now += step;
      AckSample a;
      a.now = now;
      a.acked = kSeg;
      a.flight = cc.cwnd();
      una += kSeg;
      a.ack = una;
      a.snd_nxt = una + cc.cwnd();
      a.rtt = rtt_sample;
      a.srtt = rtt;
      cc.on_ack(a);
    }
  }
};

// Into congestion avoidance after one loss at W_max = 100 segments, as RFC 6675 recovery
// leaves it (cwnd = ssthresh).
void loss_at_100(Cubic& cc, Instant now) {
  cc.restore(100 * kSeg, UINT32_MAX);
  cc.on_loss(now, LossEvent::kFastRetransmit, 100 * kSeg);
  cc.restore(cc.ssthresh(), cc.ssthresh());
}

// ------------------------------------------------------------------ CUBIC (RFC 9438)

TEST_F(CcTest, CubicWindowFollowsTheCubicFunction) {  // RFC 9438 §4.2 eq. (1), (2)
  Cubic cc(kSeg, false);
  AckClock clk;
  loss_at_100(cc, clk.now);
  ASSERT_EQ(cc.cwnd(), 70 * kSeg);
  // K = cubic_root((W_max - cwnd_epoch) / C) = cbrt(30 / 0.4) s.
  const double k = std::cbrt(30.0 / 0.4);
  const Instant epoch = clk.now;
  auto w = [&](double t) { return (0.4 * std::pow(t - k, 3) + 100.0) * kSeg; };  // bytes
  // Until ~55 RTTs the cubic curve is above the Reno-friendly estimate (W_est grows by
  // α_cubic ≈ 0.53 segments per RTT from 70), so cwnd follows the curve.
  int checked = 0;
  for (int r = 1; r <= 55; ++r) {
    clk.round(cc);
    if (r == 1) {
      const CongestionState st = cc.state();
      EXPECT_NEAR(double(st.k.count()) / 1e6, k, 1e-3);
      EXPECT_EQ(st.w_max, 100 * kSeg);
      EXPECT_EQ(st.cwnd_epoch, 70 * kSeg);
    }
    const double t = double((clk.now - epoch).count()) / 1e6;
    // cwnd chases W_cubic(t + RTT) by (target - cwnd)/cwnd per segment, so at the end of
    // each round it lies between W_cubic(t) (less the first ACK's step) and W_cubic(t + RTT).
    const double lo = w(t) - 1.0 * kSeg, hi = w(t + 0.1) + 0.5 * kSeg;
    EXPECT_GE(double(cc.cwnd()), lo) << "t=" << t;
    EXPECT_LE(double(cc.cwnd()), hi) << "t=" << t;
    ++checked;
  }
  EXPECT_EQ(checked, 55);
  // Concave up to W_max at t = K (plateau), then convex beyond it.
  const double t_end = double((clk.now - epoch).count()) / 1e6;
  ASSERT_GT(t_end, k + 1);
  EXPECT_GT(double(cc.cwnd()), 100.0 * kSeg);
  // Later W_est (1 segment per RTT once past cwnd_prior) overtakes the slow start of the
  // convex part: §4.3's Reno-friendly region sets cwnd.
  for (int r = 0; r < 20; ++r) clk.round(cc);
  const double t2 = double((clk.now - epoch).count()) / 1e6;
  EXPECT_GT(double(cc.state().w_est), w(t2));
  EXPECT_NEAR(double(cc.cwnd()), double(cc.state().w_est), kSeg);
}

TEST_F(CcTest, CubicPlateausAtWmaxAroundK) {  // RFC 9438 §4.4: concave region ends at W_max
  Cubic cc(kSeg, false);
  AckClock clk;
  loss_at_100(cc, clk.now);
  const Instant epoch = clk.now;
  const Duration k(int64_t(std::cbrt(30.0 / 0.4) * 1e6));
  while (clk.now - epoch < k) clk.round(cc);
  // Within a segment or two of W_max when t reaches K (target W_cubic(K + RTT) ~ W_max).
  EXPECT_NEAR(double(cc.cwnd()) / kSeg, 100.0, 1.5);
}

TEST_F(CcTest, CubicBetaReductionAndFastConvergence) {  // RFC 9438 §4.6, §4.7, §4.8
  Cubic cc(kSeg, false);
  const Instant t0(Duration(1'000'000));
  cc.restore(100 * kSeg, UINT32_MAX);
  cc.on_loss(t0, LossEvent::kFastRetransmit, 100 * kSeg);
  EXPECT_EQ(cc.ssthresh(), 70 * kSeg);            // β_cubic = 0.7, not NewReno's 0.5
  EXPECT_EQ(cc.state().w_max, 100 * kSeg);        // no fast convergence: cwnd >= W_max (none yet)
  EXPECT_EQ(cc.state().cwnd_prior, 100 * kSeg);
  // A second loss below the last W_max: fast convergence releases bandwidth,
  // W_max = cwnd * (1 + β) / 2.
  cc.restore(80 * kSeg, 70 * kSeg);
  cc.on_loss(t0, LossEvent::kFastRetransmit, 80 * kSeg);
  EXPECT_EQ(cc.state().w_max, 68 * kSeg);  // 80 * 0.85
  EXPECT_EQ(cc.ssthresh(), 56 * kSeg);
  // Timeout: Reno's loss window, ssthresh still by β (§4.8), and the next epoch K = 0.
  cc.restore(60 * kSeg, 56 * kSeg);
  cc.on_loss(t0, LossEvent::kTimeout, 60 * kSeg);
  EXPECT_EQ(cc.cwnd(), kSeg);
  EXPECT_EQ(cc.ssthresh(), 42 * kSeg);
  EXPECT_TRUE(cc.state().after_timeout);
  // NewReno for contrast: half.
  NewReno nr(kSeg);
  nr.restore(100 * kSeg, UINT32_MAX);
  nr.on_loss(t0, LossEvent::kFastRetransmit, 100 * kSeg);
  EXPECT_EQ(nr.ssthresh(), 50 * kSeg);
}

TEST_F(CcTest, CubicRenoFriendlyRegionOnShortRtt) {  // RFC 9438 §4.3
  // A 1 ms RTT: CUBIC's curve (in seconds) barely moves while Reno would add a segment
  // every RTT, so the Reno-friendly estimate W_est sets cwnd.
  Cubic cc(kSeg, false);
  AckClock clk;
  clk.rtt = Duration(1'000);
  cc.restore(20 * kSeg, UINT32_MAX);
  cc.on_loss(clk.now, LossEvent::kFastRetransmit, 20 * kSeg);
  cc.restore(cc.ssthresh(), cc.ssthresh());
  ASSERT_EQ(cc.cwnd(), 14 * kSeg);
  const Instant epoch = clk.now;
  for (int r = 0; r < 10; ++r) clk.round(cc);
  // α_cubic = 3 (1 - β) / (1 + β) ≈ 0.53 segments per RTT while W_est < cwnd_prior.
  const double seg10 = double(cc.cwnd()) / kSeg;
  EXPECT_NEAR(seg10, 14 + 10 * Cubic::kAlpha, 0.6);
  EXPECT_NEAR(double(cc.cwnd()), double(cc.state().w_est), kSeg);  // cwnd = W_est
  EXPECT_GT(seg10, cc.w_cubic(clk.now - epoch) / kSeg + 4);        // far above W_cubic(t)
  // Past cwnd_prior (20 segments) α_cubic is 1: one segment per RTT, as Reno.
  while (cc.cwnd() < 21 * kSeg) clk.round(cc);
  const uint32_t before = cc.cwnd();
  for (int r = 0; r < 10; ++r) clk.round(cc);
  EXPECT_NEAR(double(cc.cwnd() - before) / kSeg, 10.0, 1.0);
}

TEST_F(CcTest, CubicUndoRestoresTheStateBeforeASpuriousLoss) {  // RFC 9438 §4.9
  Cubic cc(kSeg, false);
  AckClock clk;
  loss_at_100(cc, clk.now);
  for (int r = 0; r < 10; ++r) clk.round(cc);
  const CongestionState before = cc.state();
  cc.on_loss(clk.now, LossEvent::kFastRetransmit, cc.cwnd());
  cc.restore(cc.ssthresh(), cc.ssthresh());
  EXPECT_LT(cc.cwnd(), before.cwnd);
  ASSERT_TRUE(cc.undo());
  const CongestionState after = cc.state();
  EXPECT_EQ(after.cwnd, before.cwnd);
  EXPECT_EQ(after.ssthresh, before.ssthresh);
  EXPECT_EQ(after.w_max, before.w_max);
  EXPECT_EQ(after.k, before.k);
  EXPECT_EQ(after.epoch_start, before.epoch_start);
  EXPECT_FALSE(cc.undo());  // once
}

// ------------------------------------------------------------------ HyStart++ (RFC 9406)

TEST_F(CcTest, HyStartLeavesSlowStartOnRttIncrease) {  // RFC 9406 §4.2
  for (bool rise : {false, true}) {
    SCOPED_TRACE(rise);
    Cubic cc(kSeg, true);
    AckClock clk;
    clk.rtt = Duration(20'000);
    int css_round = -1, ca_round = -1;
    for (int r = 0; r < 12; ++r) {
      // The path's RTT rises by 10 ms (queueing) from round 4: above RttThresh
      // (max(4 ms, min(20 ms / 8, 16 ms)) = 4 ms).
      const Duration sample = rise && r >= 4 ? Duration(30'000) : Duration(20'000);
      const uint32_t cwnd_before = cc.cwnd();
      clk.round(cc, sample);
      const HyStartPhase ph = cc.state().hystart.phase;
      if (ph == HyStartPhase::kCss && css_round < 0) {
        css_round = r;
        EXPECT_EQ(cc.state().hystart.css_baseline_min_rtt, Duration(30'000));
      }
      if (ph == HyStartPhase::kDone && ca_round < 0) {
        ca_round = r;
        // "setting the ssthresh to the current cwnd" (the rest of that round's ACKs
        // already grow it in congestion avoidance: by less than a segment).
        EXPECT_LE(cc.ssthresh(), cc.cwnd());
        EXPECT_LT(cc.cwnd() - cc.ssthresh(), kSeg);
      }
      if (css_round >= 0 && ca_round < 0 && r > css_round) {
        // CSS: growth divided by CSS_GROWTH_DIVISOR (4): at most 1.25x per round.
        EXPECT_LE(cc.cwnd(), cwnd_before + cwnd_before / 4 + kSeg) << r;
      }
    }
    if (!rise) {
      EXPECT_EQ(css_round, -1);
      EXPECT_EQ(cc.state().hystart.phase, HyStartPhase::kSlowStart);
      EXPECT_EQ(cc.ssthresh(), UINT32_MAX);
    } else {
      EXPECT_EQ(css_round, 4);              // the round the RTT rose
      EXPECT_EQ(ca_round, css_round + 5);   // CSS_ROUNDS = 5, then congestion avoidance
      EXPECT_LT(cc.ssthresh(), UINT32_MAX);
    }
  }
}

TEST_F(CcTest, HyStartResumesSlowStartWhenTheRttFallsBack) {  // RFC 9406 §4.2 (CSS)
  Cubic cc(kSeg, true);
  AckClock clk;
  clk.rtt = Duration(20'000);
  for (int r = 0; r < 4; ++r) clk.round(cc, Duration(20'000));
  clk.round(cc, Duration(30'000));
  ASSERT_EQ(cc.state().hystart.phase, HyStartPhase::kCss);
  clk.round(cc, Duration(20'000));  // below cssBaselineMinRtt: a spurious exit
  EXPECT_EQ(cc.state().hystart.phase, HyStartPhase::kSlowStart);
  EXPECT_EQ(cc.ssthresh(), UINT32_MAX);
}

TEST_F(CcTest, FactoryByName) {
  EXPECT_EQ(make_congestion_control("cubic", 1460, true)->name(), "cubic");
  EXPECT_EQ(make_congestion_control("newreno", 1460, false)->name(), "newreno");
  EXPECT_EQ(make_congestion_control("bbr", 1460, true), nullptr);
  EXPECT_EQ(make_congestion_control("", 1460, true), nullptr);
  TcpConfig cfg;
  EXPECT_EQ(cfg.congestion, "cubic");  // the default, as Linux
  EXPECT_EQ(Connection::check_config(cfg), 0);
  cfg.congestion = "vegas";
  EXPECT_EQ(Connection::check_config(cfg), -EINVAL);
}

// ------------------------------------------------------------------ a scripted wire

// Two connections and a wire with a fixed one-way delay; A's segments may be dropped
// or held back by predicates (each decides once per transmission).
struct Wire {
  Wire(const TcpConfig& ca, const TcpConfig& cb, Duration one_way)
      : a(std::make_unique<Connection>(ca, FourTuple{kIpA, 5000, kIpB, 80}, 1460)),
        b(std::make_unique<Connection>(cb, FourTuple{kIpB, 80, kIpA, 5000}, 1460)),
        delay(one_way) {}

  struct Pending {
    Instant at;
    bool to_b;
    Sent s;
  };
  void collect() {
    for (auto& s : out_a.take()) {
      sent_a.push_back(s);
      if (drop && drop(s)) continue;
      const Duration extra = hold ? hold(s) : Duration(0);
      q.push_back({now + delay + extra, true, std::move(s)});
    }
    for (auto& s : out_b.take()) {
      sent_b.push_back(s);
      q.push_back({now + delay, false, std::move(s)});
    }
  }
  void step() {
    a->dispatch(now, out_a);
    b->dispatch(now, out_b);
    collect();
    Instant next = std::min(a->poll_at(), b->poll_at());
    for (auto& p : q) next = std::min(next, p.at);
    if (next == kInstantNever) return;
    if (next > now) now = next;
    std::stable_sort(q.begin(), q.end(), [](const Pending& x, const Pending& y) { return x.at < y.at; });
    size_t n = 0;
    while (n < q.size() && q[n].at <= now) ++n;
    std::vector<Pending> due(std::make_move_iterator(q.begin()), std::make_move_iterator(q.begin() + ptrdiff_t(n)));
    q.erase(q.begin(), q.begin() + ptrdiff_t(n));
    for (auto& p : due) {
      p.s.repr.payload = p.s.data;
      (p.to_b ? *b : *a).process(now, p.s.repr, p.to_b ? out_b : out_a);
    }
    collect();
  }
  template <class F>
  bool run_until(F&& done, Duration limit = Duration(60'000'000)) {
    const Instant end = now + limit;
    while (!done()) {
      if (now > end) return false;
      step();
    }
    return true;
  }
  void open() {
    b->open_passive(SeqNum(90000));
    a->open_active(now, SeqNum(1000));
    ASSERT_TRUE(run_until([&] { return a->state() == TcpState::kEstablished && b->state() == TcpState::kEstablished; }));
  }
  // Sends `n` bytes and waits until all are acknowledged and read; returns them.
  std::vector<uint8_t> send_all(const std::vector<uint8_t>& d) {
    size_t off = 0;
    std::vector<uint8_t> got, buf(1 << 16);
    run_until([&] {
      if (off < d.size()) {
        int64_t w = a->send(std::span(d).subspan(off));
        if (w > 0) off += size_t(w);
      }
      for (int64_t r; (r = b->recv(buf)) > 0;) got.insert(got.end(), buf.begin(), buf.begin() + r);
      return off == d.size() && a->snd_una() == a->snd_max() && got.size() == d.size();
    });
    return got;
  }

  std::unique_ptr<Connection> a, b;
  Capture out_a, out_b;
  Duration delay;
  Instant now = Instant(Duration(5'000'000));
  std::vector<Pending> q;
  std::vector<Sent> sent_a, sent_b;
  std::function<bool(const Sent&)> drop;
  std::function<Duration(const Sent&)> hold;
};

TcpConfig with(bool rack, const char* cc = "cubic") {
  TcpConfig c;
  c.rack = rack;
  c.congestion = cc;
  c.nodelay = true;
  return c;
}

// Warms a wire up (RTT samples, a window of 30+ segments) and returns the burst's start.
SeqNum warm_up(Wire& w) {
  w.open();
  auto warm = pattern(400 * 1000);
  EXPECT_EQ(w.send_all(warm), warm);
  EXPECT_GE(w.a->cwnd(), 30u * w.a->seg_size());
  return w.a->snd_nxt();
}

// ------------------------------------------------------------------ RACK-TLP (RFC 8985)

struct TailResult {
  Duration time{0};
  Duration rto{0};
  Connection::Stats st;
};

TailResult lose_tail(bool rack, int lost_at_end) {
  Wire w(with(rack), with(rack), Duration(10'000));
  const SeqNum start = warm_up(w);
  const uint32_t seg = w.a->seg_size();
  const int n = 10;
  std::vector<SeqNum> drops;
  for (int i = n - lost_at_end; i < n; ++i) drops.push_back(start + uint32_t(i) * seg);
  w.drop = [&](const Sent& s) {
    auto it = std::find(drops.begin(), drops.end(), s.seq());
    if (it == drops.end() || s.data.empty()) return false;
    drops.erase(it);  // lost once
    return true;
  };
  const Connection::Stats before = w.a->stats();
  TailResult r;
  r.rto = w.a->rto();
  auto burst = pattern(n * seg, 3);
  const Instant t0 = w.now;
  auto got = w.send_all(burst);
  EXPECT_EQ(got, burst);
  EXPECT_TRUE(drops.empty());
  r.time = w.now - t0;
  r.st = w.a->stats();
  r.st.tlp_probes -= before.tlp_probes;
  r.st.timeouts -= before.timeouts;
  r.st.tlp_loss_detected -= before.tlp_loss_detected;
  r.st.rack_marked_lost -= before.rack_marked_lost;
  return r;
}

TEST_F(CcTest, TailLossRecoveredByProbeBeforeRto) {  // RFC 8985 §7 (TLP), §7.4 (detection)
  // (A single lost last segment is left to the RTO: with one segment in flight PTO adds
  // WCDelAckT = 200 ms (§7.2) and is capped by the RTO, so TLP starts at two.)
  for (int lost : {2, 3}) {
    SCOPED_TRACE(lost);
    const TailResult t = lose_tail(true, lost);
    const TailResult r = lose_tail(false, lost);
    std::printf("tail loss of %d: RACK-TLP %.0f ms (%llu probe), RFC 6675 alone %.0f ms (RTO %.0f ms)\n",
                lost, double(t.time.count()) / 1e3, (unsigned long long)t.st.tlp_probes,
                double(r.time.count()) / 1e3, double(r.rto.count()) / 1e3);
    EXPECT_LT(t.time, t.rto);  // recovered before the retransmission timer would fire
    EXPECT_EQ(t.st.timeouts, 0u);
    EXPECT_EQ(t.st.tlp_probes, 1u);
    EXPECT_EQ(t.st.rack_marked_lost, uint64_t(lost - 1));  // the probe's SACK let RACK find the rest
    // Without RACK-TLP nothing is left to trigger recovery: the RTO does.
    EXPECT_GE(r.st.timeouts, 1u);
    EXPECT_GE(r.time, r.rto);
  }
}

TEST_F(CcTest, RackRecoversSeveralLossesInOneWindow) {  // RFC 8985 §6.2, with RFC 6675 §5 (C)
  Wire w(with(true), with(true), Duration(10'000));
  const SeqNum start = warm_up(w);
  const uint32_t seg = w.a->seg_size();
  std::vector<SeqNum> drops;
  for (int i : {2, 6, 10, 14, 18, 22}) drops.push_back(start + uint32_t(i) * seg);
  const size_t n_drops = drops.size();
  w.drop = [&](const Sent& s) {
    auto it = std::find(drops.begin(), drops.end(), s.seq());
    if (it == drops.end() || s.data.empty()) return false;
    drops.erase(it);
    return true;
  };
  const Connection::Stats before = w.a->stats();
  auto burst = pattern(30 * seg, 5);
  const Instant t0 = w.now;
  EXPECT_EQ(w.send_all(burst), burst);
  const Connection::Stats st = w.a->stats();
  EXPECT_EQ(st.rack_marked_lost - before.rack_marked_lost, n_drops);
  EXPECT_EQ(st.retransmits - before.retransmits, n_drops);  // exactly the lost ones
  EXPECT_EQ(st.timeouts, before.timeouts);
  EXPECT_EQ(st.sack_recoveries - before.sack_recoveries, 1u);  // one episode, one reduction
  // Burst out, SACKs back (1 RTT), the retransmissions and their ACK (1 RTT), plus the
  // delayed ACK of the last: about two RTTs of 20 ms.
  EXPECT_LT(w.now - t0, Duration(100'000));
}

// ------------------------------------------------------------------ D-SACK (RFC 2883)

TEST_F(CcTest, DsackReportsADuplicateBelowTheAck) {  // RFC 2883 §4 (example: §4.1.1)
  Wire w(with(true), with(true), Duration(1'000));
  warm_up(w);
  const SeqNum s0 = w.a->snd_nxt();
  const uint32_t seg = w.a->seg_size();
  w.send_all(pattern(3 * seg, 1));
  // Segment 2 again (a spurious retransmission): the ACK's first block reports it.
  const Sent* dup = nullptr;
  for (const Sent& s : w.sent_a)
    if (s.seq() == s0 + seg && !s.data.empty()) dup = &s;
  ASSERT_NE(dup, nullptr);
  Sent copy = *dup;
  copy.repr.payload = copy.data;
  const uint64_t sent_before = w.b->stats().dsacks_sent;
  w.b->process(w.now, copy.repr, w.out_b);
  w.b->dispatch(w.now, w.out_b);
  auto acks = w.out_b.take();
  ASSERT_EQ(acks.size(), 1u);  // at once
  const TcpOptions& o = acks[0].repr.options;
  ASSERT_GE(o.sack_count, 1u);
  EXPECT_EQ(o.sack[0], (SackBlock{s0 + seg, s0 + 2 * seg}));
  EXPECT_LE(o.sack[0].right, acks[0].ack());  // below the cumulative ACK: a D-SACK
  EXPECT_EQ(w.b->stats().dsacks_sent, sent_before + 1);
  // Reported once: the next ACK has no SACK option.
  w.b->process(w.now, copy.repr, w.out_b);
  w.b->dispatch(w.now, w.out_b);
  w.b->send(pattern(10));
  w.b->dispatch(w.now, w.out_b);
  auto more = w.out_b.take();
  ASSERT_GE(more.size(), 2u);
  EXPECT_EQ(more.back().repr.options.sack_count, 0u);
  w.run_until([&] { return w.a->recv_queued() == 10; });
}

TEST_F(CcTest, DsackReportsADuplicateAboveAHole) {  // RFC 2883 §4.2.1: block, then its container
  Wire w(with(true), with(true), Duration(1'000));
  warm_up(w);
  const SeqNum s0 = w.a->snd_nxt();
  const uint32_t seg = w.a->seg_size();
  w.drop = [&](const Sent& s) { return s.seq() == s0 && !s.data.empty(); };  // the first, always
  w.a->send(pattern(3 * seg, 2));
  w.step();
  w.step();
  const Sent* second = nullptr;
  for (const Sent& s : w.sent_a)
    if (s.seq() == s0 + seg && !s.data.empty()) second = &s;
  ASSERT_NE(second, nullptr);
  Sent copy = *second;
  copy.repr.payload = copy.data;
  w.out_b.take();
  w.b->process(w.now, copy.repr, w.out_b);
  auto acks = w.out_b.take();
  ASSERT_EQ(acks.size(), 1u);
  const TcpOptions& o = acks[0].repr.options;
  EXPECT_EQ(acks[0].ack(), s0);  // the hole
  ASSERT_GE(o.sack_count, 2u);
  EXPECT_EQ(o.sack[0], (SackBlock{s0 + seg, s0 + 2 * seg}));      // the duplicate
  EXPECT_EQ(o.sack[1], (SackBlock{s0 + seg, s0 + 3 * seg}));      // the block holding it
  w.drop = nullptr;
  w.run_until([&] { return w.a->snd_una() == w.a->snd_max(); });
  std::vector<uint8_t> buf(1 << 20);
  w.b->recv(buf);
}

TEST_F(CcTest, SpuriousRetransmissionDetectedByDsackAndUndone) {  // RFC 2883 §5, RFC 8985 §6.2 step 4, RFC 9438 §4.9
  for (const char* cc : {"cubic", "newreno"}) {
    SCOPED_TRACE(cc);
    Wire w(with(true, cc), with(true, cc), Duration(10'000));
    const SeqNum start = warm_up(w);
    const uint32_t seg = w.a->seg_size();
    // Segment 5 of a 20-segment burst is held back 15 ms: the three after it are SACKed
    // first, so RACK (no reordering seen yet) declares it lost and resends it; then the
    // original arrives, and the retransmission is a duplicate the receiver D-SACKs.
    bool held = false;
    w.hold = [&](const Sent& s) {
      if (held || s.seq() != start + 5 * seg || s.data.empty()) return Duration(0);
      held = true;
      return Duration(15'000);
    };
    const Connection::Stats before = w.a->stats();
    const uint32_t cwnd_before = w.a->cwnd();
    auto burst = pattern(20 * seg, 7);
    EXPECT_EQ(w.send_all(burst), burst);
    w.run_until([&] { return w.a->stats().dsacks_received > before.dsacks_received; }, Duration(1'000'000));
    const Connection::Stats st = w.a->stats();
    EXPECT_EQ(st.retransmits - before.retransmits, 1u);
    EXPECT_EQ(st.sack_recoveries - before.sack_recoveries, 1u);
    EXPECT_EQ(w.b->stats().dsacks_sent, 1u);
    EXPECT_EQ(st.dsacks_received - before.dsacks_received, 1u);
    EXPECT_EQ(st.spurious_undos - before.spurious_undos, 1u);  // the reduction was undone
    EXPECT_GE(w.a->cwnd(), cwnd_before);
    EXPECT_EQ(st.rack_reo_wnd_mult, 2u);  // D-SACK widened the reordering window
  }
}

// ------------------------------------------------------------------ per-socket choice, stats, export

TEST_F(CcTest, SetCongestionBeforeConnecting) {
  TcpConfig cfg;
  Connection c(cfg, FourTuple{kIpA, 5000, kIpB, 80}, 1460);
  EXPECT_EQ(c.congestion(), "cubic");
  EXPECT_EQ(c.set_congestion("bogus"), -EINVAL);
  EXPECT_EQ(c.set_congestion("newreno"), 0);
  EXPECT_EQ(c.congestion(), "newreno");
  EXPECT_EQ(c.stats().cc.name, "newreno");
  Wire w(cfg, cfg, Duration(1'000));
  ASSERT_EQ(w.a->set_congestion("newreno"), 0);
  w.open();
  EXPECT_EQ(w.a->set_congestion("cubic"), -EISCONN);
  EXPECT_EQ(w.a->stats().cc.name, "newreno");
  EXPECT_EQ(w.b->stats().cc.name, "cubic");
}

TEST_F(CcTest, ExportCarriesCubicAndHyStartState) {  // state export version 3
  Wire w(with(true), with(true), Duration(10'000));
  const SeqNum start = warm_up(w);
  // One loss puts CUBIC into an epoch with W_max and K.
  bool dropped = false;
  w.drop = [&](const Sent& s) {
    if (dropped || s.seq() != start + 3 * w.a->seg_size() || s.data.empty()) return false;
    return dropped = true;
  };
  // Recovery leaves cwnd below ssthresh; the epoch begins once slow start reaches it.
  for (int i = 0; i < 10 && (i < 1 || w.a->stats().cc.epoch_start == kInstantNever); ++i)
    w.send_all(pattern(40 * w.a->seg_size()));
  const Connection::Stats st = w.a->stats();
  ASSERT_EQ(st.cc.name, "cubic");
  ASSERT_GT(st.cc.w_max, 0u);
  ASSERT_NE(st.cc.epoch_start, kInstantNever);
  EXPECT_EQ(st.cc.hystart.phase, HyStartPhase::kDone);  // a loss ends HyStart++
  const ConnectionState cs = w.a->export_state(w.now);
  ASSERT_EQ(cs.validate(), nullptr);
  const auto bytes = cs.serialize();
  const char* err = nullptr;
  auto back = ConnectionState::parse(bytes, &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->serialize(), bytes);
  auto moved = Connection::import_state(TcpConfig{}, *back, w.now, &err);
  ASSERT_TRUE(moved) << err;
  const CongestionState m = moved->stats().cc;
  EXPECT_EQ(m.name, "cubic");
  EXPECT_EQ(m.cwnd, st.cc.cwnd);
  EXPECT_EQ(m.ssthresh, st.cc.ssthresh);
  EXPECT_EQ(m.w_max, st.cc.w_max);
  EXPECT_EQ(m.k, st.cc.k);
  EXPECT_EQ(m.epoch_start, st.cc.epoch_start);
  EXPECT_EQ(m.hystart.phase, HyStartPhase::kDone);
  // Every truncation is refused; every field of the new part is checked.
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(ConnectionState::parse(std::span(bytes).first(n), &err));
  auto refused = [&](auto mutate, const char* what) {
    ConnectionState s = cs;
    mutate(s);
    auto p = ConnectionState::parse(s.serialize(), &err);
    const bool bad = !p || p->validate() != nullptr || !Connection::import_state(TcpConfig{}, *p, w.now, &err);
    EXPECT_TRUE(bad) << what;
  };
  refused([](ConnectionState& s) { s.congestion = "bbr"; }, "unknown algorithm");
  refused([](ConnectionState& s) { s.congestion = ""; }, "empty name");
  refused([](ConnectionState& s) { s.congestion = "Cubic!"; }, "bad characters");
  refused([](ConnectionState& s) { s.congestion = "newreno"; }, "CUBIC variables under NewReno");
  refused([](ConnectionState& s) { s.cubic_k_us = -1; }, "negative K");
  refused([](ConnectionState& s) { s.cubic_epoch_age_us = -2; }, "epoch age");
  refused([](ConnectionState& s) { s.cubic_w_max = 0xffffffffu; }, "W_max");
  refused([](ConnectionState& s) { s.hystart_phase = 7; }, "HyStart++ phase");
  refused([](ConnectionState& s) { s.hystart_css_rounds = 9; }, "CSS rounds");
  refused([](ConnectionState& s) { s.hystart_last_min_rtt_us = -7; }, "HyStart++ RTT");
  refused([](ConnectionState& s) { s.ssthresh = 10; }, "ssthresh below 2 SMSS");
  auto flag = bytes;
  // The after_timeout flag must be 0 or 1: find it by flipping the serialized value.
  ConnectionState t = cs;
  t.cubic_after_timeout = true;
  const auto with_flag = t.serialize();
  size_t at = 0;
  while (at < bytes.size() && bytes[at] == with_flag[at]) ++at;
  ASSERT_LT(at, bytes.size());
  flag[at] = 2;
  EXPECT_FALSE(ConnectionState::parse(flag, &err));
}

// ------------------------------------------------------------------ over the seeded lossy link

struct E2E {
  bool ok = false;
  Duration time{0};
  Connection::Stats st;
};

E2E lossy_transfer(const char* cc, bool sack, uint64_t seed) {
  LinkConfig lc;
  lc.seed = seed;
  lc.loss = 0.01;
  lc.reorder = 0.005;
  lc.duplicate = 0.002;
  lc.delay = Duration(5'000);
  lc.bandwidth_bps = 100'000'000;
  lc.queue_limit = 1000;
  TcpConfig tcp;
  tcp.congestion = cc;
  tcp.sack = sack;
  tcp.msl = Duration(1'000'000);
  E2E e;
  StackPair p(lc, tcp);
  Connected c = connect_pair(p);
  EXPECT_GE(c.server, 0);
  if (c.server < 0) return e;
  auto r = transfer(p, *p.a, c.client, *p.b, c.server, 4 << 20);
  e.ok = r.ok;
  e.time = r.virtual_time;
  if (auto* k = p.a->connection(c.client)) e.st = k->stats();
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  EXPECT_TRUE(p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; }));
  return e;
}

TEST_F(CcTest, VerifiedTransfersOverLossyLinkBothAlgorithms) {  // every byte checked
  for (const char* cc : {"cubic", "newreno"}) {
    for (bool sack : {true, false}) {
      for (uint64_t seed : {11u, 12u}) {
        SCOPED_TRACE(testing::Message() << cc << " sack " << sack << " seed " << seed);
        const E2E e = lossy_transfer(cc, sack, seed);
        EXPECT_TRUE(e.ok);
        EXPECT_EQ(e.st.cc.name, cc);
        EXPECT_GT(e.st.retransmits, 0u);  // the link did lose segments
        if (sack) EXPECT_GT(e.st.rack_marked_lost + e.st.tlp_probes, 0u);
        else EXPECT_EQ(e.st.rack_marked_lost, 0u);  // no SACK: NewReno dupack recovery
        std::printf("%s sack=%d seed=%llu: 4 MiB in %.0f ms, %llu retransmits, %llu timeouts, "
                    "%llu TLP, %llu RACK-lost, %llu undone\n",
                    cc, sack, (unsigned long long)seed, double(e.time.count()) / 1e3,
                    (unsigned long long)e.st.retransmits, (unsigned long long)e.st.timeouts,
                    (unsigned long long)e.st.tlp_probes, (unsigned long long)e.st.rack_marked_lost,
                    (unsigned long long)e.st.spurious_undos);
      }
    }
  }
}

}  // namespace
}  // namespace utcp::test
