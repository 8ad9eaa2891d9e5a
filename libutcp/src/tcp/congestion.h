// congestion.h - the congestion-control interface (RFC 5681) and NewReno (RFC 5681 + RFC 6582).
//
// The connection owns loss detection and recovery bookkeeping (dupacks, "recover",
// retransmission); the controller only decides cwnd and ssthresh from the events below,
// so CUBIC (RFC 9438) can be added as another implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "base/time.h"

namespace utcp {

enum class LossEvent : uint8_t {
  kFastRetransmit,  // third duplicate ACK: entering fast recovery
  kTimeout,         // retransmission timer expired
};

class CongestionControl {
 public:
  virtual ~CongestionControl() = default;
  virtual std::string_view name() const = 0;

  // New data acknowledged outside fast recovery. `flight` is the data outstanding
  // before this ACK (cwnd does not grow while the sender leaves it unused).
  virtual void on_ack(Instant now, uint32_t acked, uint32_t flight) = 0;
  virtual void on_loss(Instant now, LossEvent ev, uint32_t flight) = 0;
  // During fast recovery: another duplicate ACK (one more segment has left the network).
  virtual void on_dupack_in_recovery() = 0;
  // During fast recovery: a partial ACK for `acked` bytes (RFC 6582 §3.2 step 5).
  virtual void on_partial_ack(uint32_t acked) = 0;
  // Fast recovery ends with a full ACK; `flight` is the data still outstanding.
  virtual void on_recovery_exit(uint32_t flight) = 0;

  virtual uint32_t cwnd() const = 0;
  virtual uint32_t ssthresh() const = 0;
  // For connection import: continue with the exported values.
  virtual void restore(uint32_t cwnd, uint32_t ssthresh) = 0;
};

class NewReno final : public CongestionControl {
 public:
  // RFC 5681 §3.1: IW = min(4*SMSS, max(2*SMSS, 4380)); ssthresh starts arbitrarily high.
  explicit NewReno(uint32_t smss);
  std::string_view name() const override { return "newreno"; }
  void on_ack(Instant now, uint32_t acked, uint32_t flight) override;
  void on_loss(Instant now, LossEvent ev, uint32_t flight) override;
  void on_dupack_in_recovery() override;
  void on_partial_ack(uint32_t acked) override;
  void on_recovery_exit(uint32_t flight) override;
  uint32_t cwnd() const override { return cwnd_; }
  uint32_t ssthresh() const override { return ssthresh_; }
  void restore(uint32_t cwnd, uint32_t ssthresh) override {
    cwnd_ = cwnd;
    ssthresh_ = ssthresh;
  }

 private:
  static constexpr uint32_t kMaxCwnd = 1u << 30;
  uint32_t smss_;
  uint32_t cwnd_;
  uint32_t ssthresh_ = UINT32_MAX;
  uint32_t bytes_acked_ = 0;  // RFC 5681 §3.1 eq. (3) byte counting in congestion avoidance
};

std::unique_ptr<CongestionControl> make_congestion_control(uint32_t smss);

}  // namespace utcp
