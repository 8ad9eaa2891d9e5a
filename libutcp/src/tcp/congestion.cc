// congestion.cc - NewReno (RFC 5681 §3, RFC 6582 §3.2), CUBIC (RFC 9438) and HyStart++ (RFC 9406).
#include "tcp/congestion.h"

#include <algorithm>
#include <cmath>

namespace utcp {

const char* to_string(HyStartPhase p) {
  switch (p) {
    case HyStartPhase::kOff: return "off";
    case HyStartPhase::kSlowStart: return "slow-start";
    case HyStartPhase::kCss: return "css";
    case HyStartPhase::kDone: return "done";
  }
  return "?";
}

// ---------------------------------------------------------------- HyStart++ (RFC 9406)

void HyStartPlusPlus::start_round(SeqNum snd_nxt) {
  // RFC 9406 §4.2: "lastRoundMinRTT = currentRoundMinRTT; currentRoundMinRTT = infinity;
  // rttSampleCount = 0", and the round lasts until windowEnd = SND.NXT is acknowledged.
  last_min_ = cur_min_;
  cur_min_ = kInfinity;
  samples_ = 0;
  window_end_ = snd_nxt;
  window_set_ = true;
}

uint32_t HyStartPlusPlus::on_ack(const AckSample& s, uint32_t smss, bool* to_ca) {
  *to_ca = false;
  // RFC 5681 §3.1 eq. (2) without HyStart++ (and for slow start after a loss).
  if (!active()) return std::min(s.acked, smss);
  if (!window_set_ || s.ack >= window_end_) {
    if (phase_ == HyStartPhase::kCss && window_set_ && ++css_rounds_ >= kCssRounds) {
      // RFC 9406 §4.2: "If CSS_ROUNDS rounds are complete, enter congestion avoidance by
      // setting the ssthresh to the current cwnd."
      phase_ = HyStartPhase::kDone;
      css_rounds_ = 0;
      css_baseline_ = kInfinity;
      *to_ca = true;
      return 0;
    }
    start_round(s.snd_nxt);
  }
  if (s.rtt >= Duration(0)) {
    cur_min_ = std::min(cur_min_, s.rtt);
    ++samples_;
  }
  if (samples_ >= kNRttSample && cur_min_ != kInfinity) {
    if (phase_ == HyStartPhase::kSlowStart && last_min_ != kInfinity) {
      // "RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT / MIN_RTT_DIVISOR,
      // MAX_RTT_THRESH)); if (currentRoundMinRTT >= (lastRoundMinRTT + RttThresh))
      // cssBaselineMinRtt = currentRoundMinRTT; exit slow start and enter CSS".
      const Duration thresh = std::clamp(last_min_ / kMinRttDivisor, kMinRttThresh, kMaxRttThresh);
      if (cur_min_ >= last_min_ + thresh) {
        css_baseline_ = cur_min_;
        css_rounds_ = 0;
        phase_ = HyStartPhase::kCss;
      }
    } else if (phase_ == HyStartPhase::kCss && cur_min_ < css_baseline_) {
      // "If currentRoundMinRTT < cssBaselineMinRtt: cssBaselineMinRtt = infinity; resume
      // slow start": the RTT increase was a spurious one (jitter).
      css_baseline_ = kInfinity;
      css_rounds_ = 0;
      phase_ = HyStartPhase::kSlowStart;
    }
  }
  // "cwnd = cwnd + min(N, L * SMSS)" in slow start, divided by CSS_GROWTH_DIVISOR in CSS.
  const uint32_t n = std::min(s.acked, kL * smss);
  return phase_ == HyStartPhase::kCss ? n / kCssGrowthDivisor : n;
}

HyStartPlusPlus::State HyStartPlusPlus::state() const {
  State s;
  s.phase = phase_;
  s.last_round_min_rtt = last_min_;
  s.current_round_min_rtt = cur_min_;
  s.css_baseline_min_rtt = css_baseline_;
  s.rtt_samples = samples_;
  s.css_rounds = css_rounds_;
  s.window_end = window_end_;
  s.window_set = window_set_;
  return s;
}

const char* HyStartPlusPlus::restore(const State& s) {
  if (s.phase > HyStartPhase::kDone) return "unknown HyStart++ phase";
  for (Duration d : {s.last_round_min_rtt, s.current_round_min_rtt, s.css_baseline_min_rtt})
    if (d < Duration(0)) return "negative HyStart++ RTT";
  if (s.css_rounds >= kCssRounds) return "HyStart++ CSS round count out of range";
  if (s.phase != HyStartPhase::kCss && (s.css_baseline_min_rtt != kInfinity || s.css_rounds != 0))
    return "HyStart++ CSS state outside CSS";
  if (s.phase == HyStartPhase::kCss && s.css_baseline_min_rtt == kInfinity)
    return "HyStart++ CSS without a baseline RTT";
  if (!s.window_set && s.window_end != SeqNum(0)) return "HyStart++ round end without a round";
  phase_ = s.phase;
  last_min_ = s.last_round_min_rtt;
  cur_min_ = s.current_round_min_rtt;
  css_baseline_ = s.css_baseline_min_rtt;
  samples_ = s.rtt_samples;
  css_rounds_ = s.css_rounds;
  window_end_ = s.window_end;
  window_set_ = s.window_set;
  return nullptr;
}

// ---------------------------------------------------------------- common parts

CongestionControl::CongestionControl(uint32_t smss, bool hystart)
    : smss_(smss),
      // RFC 5681 §3.1 eq. (1): initial window.
      cwnd_(std::min(4 * smss, std::max(2 * smss, 4380u))),
      hystart_(hystart) {}

bool CongestionControl::slow_start(const AckSample& s) {
  if (cwnd_ >= ssthresh_) return false;
  bool to_ca = false;
  const uint32_t inc = hystart_.on_ack(s, smss_, &to_ca);
  if (to_ca) ssthresh_ = cwnd_;  // RFC 9406 §4.2: CSS is over
  cwnd_ = std::min(cwnd_ + inc, kMaxCwnd);
  return true;
}

void CongestionControl::on_partial_ack(uint32_t acked) {
  // RFC 6582 §3.2 step 5: deflate by the amount acked, add back SMSS if >= SMSS acked.
  cwnd_ = cwnd_ > acked ? cwnd_ - acked : 0;
  if (acked >= smss_) cwnd_ += smss_;
  cwnd_ = std::max(cwnd_, smss_);
}

void CongestionControl::on_recovery_exit(uint32_t flight) {
  // RFC 6582 §3.2 step 6 option (1): min(ssthresh, max(FlightSize, SMSS) + SMSS).
  cwnd_ = std::min(ssthresh_, std::max(flight, smss_) + smss_);
}

void CongestionControl::save_prior() {
  have_prior_ = true;
  prior_cwnd_ = cwnd_;
  prior_ssthresh_ = ssthresh_;
}

bool CongestionControl::undo_common() {
  // As Linux's tcp_undo_cwnd_reduction: the window before the reduction, never less than now.
  if (!have_prior_) return false;
  have_prior_ = false;
  cwnd_ = std::max(cwnd_, prior_cwnd_);
  ssthresh_ = std::max(ssthresh_, prior_ssthresh_);
  return true;
}

const char* CongestionControl::import_common(const CongestionState& s) {
  if (s.name != name()) return "congestion state of another algorithm";
  if (s.cwnd == 0 || s.ssthresh == 0) return "congestion window is zero";
  if (s.cwnd > kMaxCwnd) return "congestion window too large";
  if (s.ssthresh < 2 * smss_) return "ssthresh below 2*SMSS";
  if (const char* why = hystart_.restore(s.hystart)) return why;
  cwnd_ = s.cwnd;
  ssthresh_ = s.ssthresh;
  have_prior_ = false;
  return nullptr;
}

// ---------------------------------------------------------------- NewReno

void NewReno::on_ack(const AckSample& s) {
  // RFC 7661 §4.1 (cwnd validation): grow cwnd only while the sender uses it; an
  // application-limited sender would otherwise grow it without bound.
  if (s.flight < cwnd_ / 2) return;
  if (cwnd_ >= kMaxCwnd) return;
  if (slow_start(s)) return;
  // RFC 5681 §3.1 eq. (3) with appropriate byte counting (RFC 3465): one SMSS per cwnd acked.
  bytes_acked_ += s.acked;
  if (bytes_acked_ >= cwnd_) {
    bytes_acked_ -= cwnd_;
    cwnd_ += smss_;
  }
}

void NewReno::on_loss(Instant, LossEvent ev, uint32_t flight) {
  save_prior();
  hystart_.on_loss();
  // RFC 5681 §3.1 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS).
  ssthresh_ = std::max(flight / 2, 2 * smss_);
  bytes_acked_ = 0;
  if (ev == LossEvent::kTimeout) {
    cwnd_ = smss_;  // RFC 5681 §3.1: loss window LW = 1 full-sized segment
  } else {
    cwnd_ = ssthresh_ + 3 * smss_;  // RFC 6582 §3.2 step 3 (RFC 5681 §3.2 step 3)
  }
}

bool NewReno::undo() { return undo_common(); }

CongestionState NewReno::state() const {
  CongestionState s;
  s.name = name();
  s.cwnd = cwnd_;
  s.ssthresh = ssthresh_;
  s.hystart = hystart_.state();
  return s;
}

const char* NewReno::import(const CongestionState& s) {
  if (s.w_max || s.cwnd_epoch || s.w_est || s.cwnd_prior || s.k != Duration(0) ||
      s.epoch_start != kInstantNever || s.after_timeout)
    return "CUBIC variables in a NewReno state";
  bytes_acked_ = 0;
  return import_common(s);
}

// ---------------------------------------------------------------- CUBIC (RFC 9438)

double Cubic::w_cubic(Duration t) const {
  const double d = double(t.count()) / 1e6 - k_s_;
  return kC * d * d * d * double(smss_) + w_max_;
}

void Cubic::begin_epoch(Instant now) {
  // RFC 9438 §4.2: t counts from the beginning of the congestion-avoidance stage;
  // K = cubic_root((W_max - cwnd_epoch) / C) (eq. 2), in segments.
  epoch_start_ = now;
  cwnd_epoch_ = double(cwnd_);
  w_est_ = cwnd_epoch_;  // §4.3: "W_est is set equal to cwnd_epoch at the start of the epoch"
  carry_ = 0;
  if (after_timeout_ || w_max_ <= cwnd_epoch_) {
    // §4.8: the first stage after a timeout has K = 0 and W_max = cwnd at its start;
    // the same when no reduction left a W_max above cwnd (slow start ended by ssthresh
    // or by HyStart++): the curve starts in its convex part from here.
    after_timeout_ = false;
    w_max_ = cwnd_epoch_;
    k_s_ = 0;
  } else {
    k_s_ = std::cbrt((w_max_ - cwnd_epoch_) / double(smss_) / kC);
  }
}

void Cubic::on_ack(const AckSample& s) {
  // RFC 9438 §5.8 / RFC 7661: no growth while the application leaves cwnd unused.
  if (s.flight < cwnd_ / 2) return;
  if (cwnd_ >= kMaxCwnd) return;
  if (slow_start(s)) return;
  if (epoch_start_ == kInstantNever) begin_epoch(s.now);
  const Duration t = s.now - epoch_start_;
  const Duration rtt = s.srtt > Duration(0) ? s.srtt : std::max(s.rtt, Duration(0));
  const double cw = double(cwnd_) + carry_;
  // §4.2: target = W_cubic(t + RTT), kept within [cwnd, 1.5 * cwnd].
  const double target = std::clamp(w_cubic(t + rtt), cw, 1.5 * cw);
  // §4.3 Reno-friendly estimate: W_est += α_cubic * segments_acked / cwnd; α_cubic
  // becomes 1 once W_est reaches cwnd_prior.
  const double alpha = w_est_ >= cwnd_prior_ ? 1.0 : kAlpha;
  w_est_ += alpha * double(s.acked) / cw * double(smss_);
  double next;
  if (w_cubic(t) < w_est_) {
    next = w_est_;  // §4.3: the Reno-friendly region: "cwnd SHOULD be set to W_est"
  } else {
    // §4.4 concave / §4.5 convex region: "cwnd MUST be incremented by (target - cwnd) /
    // cwnd" (segments) for each segment acknowledged.
    next = cw + (target - cw) / cw * double(s.acked);
  }
  next = std::clamp(next, cw, double(kMaxCwnd));
  cwnd_ = uint32_t(next);
  carry_ = next - double(cwnd_);
}

void Cubic::on_loss(Instant, LossEvent ev, uint32_t flight) {
  save_prior();
  prior_w_max_ = w_max_;
  prior_k_s_ = k_s_;
  prior_cwnd_epoch_ = cwnd_epoch_;
  prior_w_est_ = w_est_;
  prior_cwnd_prior_ = cwnd_prior_;
  prior_epoch_start_ = epoch_start_;
  hystart_.on_loss();
  const double cw = double(cwnd_);
  // §4.7 fast convergence: a reduction below the last W_max releases bandwidth for new
  // flows: W_max = cwnd * (1 + β_cubic) / 2.
  w_max_ = cw < w_max_ ? cw * (1 + kBeta) / 2 : cw;
  cwnd_prior_ = cw;
  // §4.6: ssthresh = flight_size * β_cubic, at least 2 segments (RFC 5681 eq. 4's floor).
  ssthresh_ = std::max(uint32_t(double(flight) * kBeta), 2 * smss_);
  epoch_start_ = kInstantNever;
  carry_ = 0;
  if (ev == LossEvent::kTimeout) {
    cwnd_ = smss_;  // §4.8: "CUBIC follows Reno to reduce cwnd" (RFC 5681 loss window)
    after_timeout_ = true;
  } else {
    cwnd_ = ssthresh_ + 3 * smss_;  // RFC 6582 §3.2 step 3 without SACK; RFC 6675 sets cwnd = ssthresh
  }
}

bool Cubic::undo() {
  // RFC 9438 §4.9: "restore ... cwnd, ssthresh, W_max, K, cwnd_epoch, W_est and epoch
  // start to the values before the spurious congestion event".
  if (!undo_common()) return false;
  w_max_ = prior_w_max_;
  k_s_ = prior_k_s_;
  cwnd_epoch_ = prior_cwnd_epoch_;
  w_est_ = prior_w_est_;
  cwnd_prior_ = prior_cwnd_prior_;
  epoch_start_ = prior_epoch_start_;
  after_timeout_ = false;
  return true;
}

CongestionState Cubic::state() const {
  CongestionState s;
  s.name = name();
  s.cwnd = cwnd_;
  s.ssthresh = ssthresh_;
  s.w_max = uint32_t(w_max_);
  s.cwnd_epoch = uint32_t(cwnd_epoch_);
  s.w_est = uint32_t(w_est_);
  s.cwnd_prior = uint32_t(cwnd_prior_);
  s.k = Duration(int64_t(k_s_ * 1e6));
  s.epoch_start = epoch_start_;
  s.after_timeout = after_timeout_;
  s.hystart = hystart_.state();
  return s;
}

const char* Cubic::import(const CongestionState& s) {
  for (uint32_t v : {s.w_max, s.cwnd_epoch, s.w_est, s.cwnd_prior})
    if (v > kMaxCwnd) return "CUBIC window variable too large";
  // K = cbrt((W_max - cwnd_epoch) / C): with W_max <= 2^30 bytes and SMSS >= 64, at most
  // cbrt(2^24 / 0.4) ~ 350 s.
  if (s.k < Duration(0) || s.k > Duration(400'000'000)) return "CUBIC K out of range";
  if (s.epoch_start != kInstantNever && s.cwnd_epoch == 0) return "CUBIC epoch without cwnd_epoch";
  if (const char* why = import_common(s)) return why;
  w_max_ = s.w_max;
  cwnd_epoch_ = s.cwnd_epoch;
  w_est_ = s.w_est;
  cwnd_prior_ = s.cwnd_prior;
  k_s_ = double(s.k.count()) / 1e6;
  epoch_start_ = s.epoch_start;
  after_timeout_ = s.after_timeout;
  carry_ = 0;
  return nullptr;
}

// ---------------------------------------------------------------- by name

bool congestion_control_known(std::string_view name) { return name == "newreno" || name == "cubic"; }

std::unique_ptr<CongestionControl> make_congestion_control(std::string_view name, uint32_t smss,
                                                           bool hystart) {
  if (name == "newreno") return std::make_unique<NewReno>(smss, hystart);
  if (name == "cubic") return std::make_unique<Cubic>(smss, hystart);
  return nullptr;
}

}  // namespace utcp
