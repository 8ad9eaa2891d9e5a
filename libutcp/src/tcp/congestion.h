// congestion.h - pluggable congestion control: the interface, NewReno (RFC 5681 + RFC 6582),
// CUBIC (RFC 9438) and HyStart++ slow start (RFC 9406); chosen per connection by name.
//
// The connection owns loss detection and recovery bookkeeping (dupacks, RACK, "recover",
// retransmission); a controller only decides cwnd and ssthresh from the events below.
// Windows are in bytes; CUBIC's formulas (RFC 9438 §4) are in segments and seconds and
// are converted at the edges.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "base/time.h"
#include "wire/seq.h"

namespace utcp {

enum class LossEvent : uint8_t {
  kFastRetransmit,  // third duplicate ACK or RACK/SACK loss: entering fast recovery
  kTimeout,         // retransmission timer expired
};

// One ACK of new data outside recovery, as a controller sees it.
struct AckSample {
  Instant now;
  uint32_t acked = 0;   // bytes newly acknowledged
  uint32_t flight = 0;  // data outstanding before this ACK (RFC 7661: growth only when used)
  SeqNum ack;           // SEG.ACK
  SeqNum snd_nxt;       // highest sequence sent + 1 (RFC 9406 §4.2 windowEnd)
  Duration rtt{-1};     // RTT sample this ACK gave, negative when none
  Duration srtt{0};     // smoothed RTT, 0 before the first sample
};

// RFC 9406 §4.2 phases; kOff when the connection does not use HyStart++.
enum class HyStartPhase : uint8_t { kOff = 0, kSlowStart, kCss, kDone };
const char* to_string(HyStartPhase p);

// HyStart++ (RFC 9406): leaves slow start for Conservative Slow Start (CSS) when the
// round's minimum RTT rises by RttThresh, and CSS for congestion avoidance after
// CSS_ROUNDS rounds (or back to slow start when the RTT falls again).
class HyStartPlusPlus {
 public:
  // RFC 9406 §4.3 constants (the RECOMMENDED values).
  static constexpr Duration kMinRttThresh{4000}, kMaxRttThresh{16000};
  static constexpr int64_t kMinRttDivisor = 8;
  static constexpr uint32_t kNRttSample = 8, kCssGrowthDivisor = 4, kCssRounds = 5;
  static constexpr uint32_t kL = 8;  // non-paced: at most L*SMSS of growth per ACK
  static constexpr Duration kInfinity = Duration::max();

  explicit HyStartPlusPlus(bool on) : phase_(on ? HyStartPhase::kSlowStart : HyStartPhase::kOff) {}
  // Slow-start growth for this ACK (RFC 9406 §4.2); `*to_ca` set when CSS is over and the
  // caller must enter congestion avoidance (ssthresh = cwnd).
  uint32_t on_ack(const AckSample& s, uint32_t smss, bool* to_ca);
  // A loss in slow start or CSS ends HyStart++ for good (RFC 9406 §4.2: only the initial
  // slow start uses it).
  void on_loss() {
    if (phase_ != HyStartPhase::kOff) phase_ = HyStartPhase::kDone;
    css_rounds_ = 0;
    css_baseline_ = kInfinity;
  }
  bool active() const { return phase_ == HyStartPhase::kSlowStart || phase_ == HyStartPhase::kCss; }

  struct State {
    HyStartPhase phase = HyStartPhase::kOff;
    Duration last_round_min_rtt = kInfinity, current_round_min_rtt = kInfinity;
    Duration css_baseline_min_rtt = kInfinity;
    uint32_t rtt_samples = 0, css_rounds = 0;
    SeqNum window_end;
    bool window_set = false;  // window_end is set once the first ACK starts a round
  };
  State state() const;
  // For import: nullptr when consistent, else why not.
  const char* restore(const State& s);

 private:
  void start_round(SeqNum snd_nxt);
  HyStartPhase phase_;
  Duration last_min_ = kInfinity, cur_min_ = kInfinity, css_baseline_ = kInfinity;
  uint32_t samples_ = 0, css_rounds_ = 0;
  SeqNum window_end_;
  bool window_set_ = false;
};

// Everything a controller holds, for statistics and connection export. Fields an
// algorithm does not use stay zero (and must be zero on import).
struct CongestionState {
  std::string_view name;
  uint32_t cwnd = 0, ssthresh = 0;
  // CUBIC (RFC 9438 §4.1 variables), in bytes and time.
  uint32_t w_max = 0;       // window before the last reduction (after fast convergence)
  uint32_t cwnd_epoch = 0;  // cwnd when the current congestion-avoidance epoch began
  uint32_t w_est = 0;       // Reno-friendly estimate (§4.3)
  uint32_t cwnd_prior = 0;  // cwnd before the last reduction (§4.6, α_cubic switch)
  Duration k{0};            // time to reach W_max again (§4.2 eq. 2)
  Instant epoch_start = kInstantNever;  // start of the congestion-avoidance epoch
  bool after_timeout = false;           // §4.8: the next epoch starts with K = 0
  HyStartPlusPlus::State hystart;
};

class CongestionControl {
 public:
  virtual ~CongestionControl() = default;
  virtual std::string_view name() const = 0;

  // New data acknowledged outside fast recovery.
  virtual void on_ack(const AckSample& s) = 0;
  virtual void on_loss(Instant now, LossEvent ev, uint32_t flight) = 0;
  // During fast recovery without SACK: another duplicate ACK (RFC 6582 §3.2 step 4).
  void on_dupack_in_recovery() { cwnd_ += smss_; }
  // During fast recovery: a partial ACK for `acked` bytes (RFC 6582 §3.2 step 5).
  void on_partial_ack(uint32_t acked);
  // Fast recovery ends with a full ACK; `flight` is the data still outstanding.
  void on_recovery_exit(uint32_t flight);
  // The last reduction was spurious (D-SACK showed every retransmission of the episode
  // arrived twice): go back to the window before it (RFC 9438 §4.9; RFC 3708 / Linux
  // undo). Returns false when there is nothing to undo.
  virtual bool undo() = 0;

  uint32_t cwnd() const { return cwnd_; }
  uint32_t ssthresh() const { return ssthresh_; }
  // Sets the windows directly (RFC 6675 recovery entry, repeated timeouts).
  void restore(uint32_t cwnd, uint32_t ssthresh) {
    cwnd_ = cwnd;
    ssthresh_ = ssthresh;
  }
  virtual CongestionState state() const = 0;
  // For import: continues from an exported state; nullptr, or why it was refused.
  virtual const char* import(const CongestionState& s) = 0;

 protected:
  static constexpr uint32_t kMaxCwnd = 1u << 30;
  CongestionControl(uint32_t smss, bool hystart);
  // Slow start (RFC 5681 §3.1 eq. 2, or HyStart++); returns true when it applied.
  bool slow_start(const AckSample& s);
  const char* import_common(const CongestionState& s);
  void save_prior();
  bool undo_common();

  uint32_t smss_;
  uint32_t cwnd_;
  uint32_t ssthresh_ = UINT32_MAX;
  HyStartPlusPlus hystart_;
  // Before the last reduction, for undo().
  bool have_prior_ = false;
  uint32_t prior_cwnd_ = 0, prior_ssthresh_ = 0;
};

class NewReno final : public CongestionControl {
 public:
  // RFC 5681 §3.1: IW = min(4*SMSS, max(2*SMSS, 4380)); ssthresh starts arbitrarily high.
  explicit NewReno(uint32_t smss, bool hystart = false) : CongestionControl(smss, hystart) {}
  std::string_view name() const override { return "newreno"; }
  void on_ack(const AckSample& s) override;
  void on_loss(Instant now, LossEvent ev, uint32_t flight) override;
  bool undo() override;
  CongestionState state() const override;
  const char* import(const CongestionState& s) override;

 private:
  uint32_t bytes_acked_ = 0;  // RFC 5681 §3.1 eq. (3) byte counting in congestion avoidance
};

class Cubic final : public CongestionControl {
 public:
  static constexpr double kC = 0.4;     // RFC 9438 §5.1 (segments / s^3)
  static constexpr double kBeta = 0.7;  // RFC 9438 §4.6 β_cubic
  // RFC 9438 §4.3: α_cubic = 3 (1 - β) / (1 + β), so Reno-friendly growth matches Reno's
  // average rate with its 0.5 reduction.
  static constexpr double kAlpha = 3 * (1 - kBeta) / (1 + kBeta);

  explicit Cubic(uint32_t smss, bool hystart = true) : CongestionControl(smss, hystart) {}
  std::string_view name() const override { return "cubic"; }
  void on_ack(const AckSample& s) override;
  void on_loss(Instant now, LossEvent ev, uint32_t flight) override;
  bool undo() override;
  CongestionState state() const override;
  const char* import(const CongestionState& s) override;

  // RFC 9438 §4.2 eq. (1): W_cubic(t) = C * (t - K)^3 + W_max, in bytes for time `t`
  // since the epoch began.
  double w_cubic(Duration t) const;

 private:
  void begin_epoch(Instant now);
  double w_max_ = 0, cwnd_epoch_ = 0, w_est_ = 0, cwnd_prior_ = 0;  // bytes
  double k_s_ = 0;                                                   // seconds
  Instant epoch_start_ = kInstantNever;
  bool after_timeout_ = false;
  double carry_ = 0;  // fractional bytes of growth not yet in cwnd_
  // For undo() (RFC 9438 §4.9): the CUBIC variables before the last reduction.
  double prior_w_max_ = 0, prior_k_s_ = 0, prior_cwnd_epoch_ = 0, prior_w_est_ = 0,
         prior_cwnd_prior_ = 0;
  Instant prior_epoch_start_ = kInstantNever;
};

// The algorithms by name ("newreno", "cubic"); nullptr for an unknown name.
std::unique_ptr<CongestionControl> make_congestion_control(std::string_view name, uint32_t smss,
                                                           bool hystart);
bool congestion_control_known(std::string_view name);

}  // namespace utcp
