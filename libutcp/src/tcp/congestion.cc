// congestion.cc - NewReno congestion control (RFC 5681 §3, RFC 6582 §3.2).
#include "tcp/congestion.h"

#include <algorithm>

namespace utcp {

NewReno::NewReno(uint32_t smss) : smss_(smss) {
  // RFC 5681 §3.1 eq. (1): initial window.
  cwnd_ = std::min(4 * smss, std::max(2 * smss, 4380u));
}

void NewReno::on_ack(Instant, uint32_t acked, uint32_t flight) {
  // RFC 7661 §4.1 (cwnd validation): grow cwnd only while the sender uses it; an
  // application-limited sender would otherwise grow it without bound.
  if (flight < cwnd_ / 2) return;
  if (cwnd_ >= kMaxCwnd) return;
  if (cwnd_ < ssthresh_) {
    // RFC 5681 §3.1 eq. (2): slow start, cwnd += min(N, SMSS) per ACK.
    cwnd_ += std::min(acked, smss_);
  } else {
    // RFC 5681 §3.1 eq. (3) with appropriate byte counting (RFC 3465): one SMSS per cwnd acked.
    bytes_acked_ += acked;
    if (bytes_acked_ >= cwnd_) {
      bytes_acked_ -= cwnd_;
      cwnd_ += smss_;
    }
  }
}

void NewReno::on_loss(Instant, LossEvent ev, uint32_t flight) {
  // RFC 5681 §3.1 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS).
  ssthresh_ = std::max(flight / 2, 2 * smss_);
  bytes_acked_ = 0;
  if (ev == LossEvent::kTimeout) {
    cwnd_ = smss_;  // RFC 5681 §3.1: loss window LW = 1 full-sized segment
  } else {
    cwnd_ = ssthresh_ + 3 * smss_;  // RFC 6582 §3.2 step 3 (RFC 5681 §3.2 step 3)
  }
}

void NewReno::on_dupack_in_recovery() {
  cwnd_ += smss_;  // RFC 6582 §3.2 step 4: artificially inflate
}

void NewReno::on_partial_ack(uint32_t acked) {
  // RFC 6582 §3.2 step 5: deflate by the amount acked, add back SMSS if >= SMSS acked.
  cwnd_ = cwnd_ > acked ? cwnd_ - acked : 0;
  if (acked >= smss_) cwnd_ += smss_;
  cwnd_ = std::max(cwnd_, smss_);
}

void NewReno::on_recovery_exit(uint32_t flight) {
  // RFC 6582 §3.2 step 6 option (1): min(ssthresh, max(FlightSize, SMSS) + SMSS).
  cwnd_ = std::min(ssthresh_, std::max(flight, smss_) + smss_);
}

std::unique_ptr<CongestionControl> make_congestion_control(uint32_t smss) {
  return std::make_unique<NewReno>(smss);
}

}  // namespace utcp
