// timers.cc - connection timer expiry: retransmission (RFC 6298), persist, delayed ACK,
// keepalive, TIME-WAIT; and the RTT estimator.
#include <algorithm>

#include "tcp/connection.h"

namespace utcp {

using namespace tcp_flags;

void Connection::arm_rto(Instant now) { rto_at_ = now + rto_; }

void Connection::rtt_sample(Duration r, uint32_t expected_samples) {
  if (r < Duration(0)) return;
  rack_.min_rtt = std::min(rack_.min_rtt, r);  // RFC 8985 §5.2 RACK.min_RTT
  if (!have_rtt_) {
    // RFC 6298 §2.2: first measurement R: SRTT <- R, RTTVAR <- R/2.
    srtt_ = r;
    rttvar_ = r / 2;
    have_rtt_ = true;
  } else if (expected_samples <= 1) {
    // RFC 6298 §2.3 with alpha = 1/8, beta = 1/4.
    const Duration diff = srtt_ > r ? srtt_ - r : r - srtt_;
    rttvar_ = (3 * rttvar_ + diff) / 4;
    srtt_ = (7 * srtt_ + r) / 8;
  } else {
    // RFC 7323 Appendix G: alpha' = alpha / ExpectedSamples, beta' = beta / ExpectedSamples.
    const Duration diff = srtt_ > r ? srtt_ - r : r - srtt_;
    rttvar_ += (diff - rttvar_) / (4 * int64_t(expected_samples));
    srtt_ += (r - srtt_) / (8 * int64_t(expected_samples));
  }
  // RTO <- SRTT + max(G, K*RTTVAR), K = 4, G = 1 ms; clamped to [min, max] (§2.4, §2.5).
  rto_ = std::clamp(srtt_ + std::max(Duration(1000), 4 * rttvar_), cfg_.rto_min, cfg_.rto_max);
}

void Connection::enter_time_wait(Instant now) {
  // RFC 9293 §3.10.7.4: "Enter the TIME-WAIT state. Start the time-wait timer, turn off
  // the other timers." The 2 MSL timeout (§3.4.2) is configurable.
  set_state(TcpState::kTimeWait);
  timewait_at_ = now + 2 * cfg_.msl;
  rto_at_ = persist_at_ = delack_at_ = keepalive_at_ = rack_at_ = pto_at_ = kInstantNever;
  rexmit_one_ = probe_now_ = keepalive_now_ = tlp_now_ = false;
  in_recovery_ = false;
}

void Connection::touch_keepalive(Instant now) {
  keepalive_probes_ = 0;
  keepalive_at_ = cfg_.keepalive && is_synchronized() && state_ != TcpState::kTimeWait
                      ? now + cfg_.keepalive_idle
                      : kInstantNever;
}

void Connection::on_timers(Instant now, SegmentSink& out) {
  if (timewait_at_ <= now) {
    timewait_at_ = kInstantNever;
    // RFC 9293 §3.10.8: "If the time-wait timeout expires ... delete the TCB"; or an
    // orphan's FIN-WAIT-2 wait ran out.
    die(0);
    return;
  }

  if (rto_at_ <= now) {
    rto_at_ = kInstantNever;
    const bool handshake = state_ == TcpState::kSynSent || state_ == TcpState::kSynReceived;
    const uint32_t limit = handshake ? cfg_.max_syn_retransmits : cfg_.max_retransmits;
    if (rexmit_count_ >= limit) {
      // RFC 9293 §3.8.3 R2: give up; the user sees ETIMEDOUT.
      if (!handshake) send_rst(out, snd_nxt_);
      die(ETIMEDOUT);
      return;
    }
    ++rexmit_count_;
    ++stats_.timeouts;
    // RFC 6298 §5.5: back off the timer.
    rto_ = std::min(rto_ * 2, cfg_.rto_max);
    if (!handshake) {
      // RFC 5681 §3.1: ssthresh from FlightSize on the first timeout of a segment;
      // cwnd to the loss window on every one.
      if (rexmit_count_ == 1) {
        start_undo_episode();  // a spurious timeout shows as D-SACKs for the resent data
        cc_->on_loss(now, LossEvent::kTimeout, flight_size());
      } else {
        undo_active_ = false;  // a second timeout in a row is no spurious one
        cc_->restore(snd_mss_, cc_->ssthresh());
      }
      // RFC 8985 §6.3 / §7: the timeout resends everything; probes and the reordering
      // timer wait for new ACKs; everything outstanding counts as lost (not in flight).
      pto_at_ = rack_at_ = kInstantNever;
      tlp_outstanding_ = tlp_now_ = false;
      for (size_t i = 0; i < sent_.size(); ++i)
        if (!sent_[i].delivered) sent_[i].lost = true;
      // RFC 6582 §4: after a timeout, recover = highest sequence sent; leave recovery.
      recover_ = snd_max_;
      in_recovery_ = false;
      dupacks_ = 0;
      // The scoreboard is kept (RFC 6675 §5.1; see skip_sacked()), but a second timeout
      // in a row may mean the receiver reneged: then RFC 2018 §8 applies and it goes.
      if (rexmit_count_ > 1) scoreboard_.clear();
    }
    rtt_timing_ = false;  // Karn
    // RFC 6298 §5.4: retransmit the earliest unacknowledged segment: go back to SND.UNA
    // and resend (as cwnd now allows); §5.6 restarts the timer when it leaves.
    snd_nxt_ = snd_una_;
    rexmit_one_ = false;
  }

  if (rack_at_ <= now) {
    // RFC 8985 §6.3: the reordering window of a segment ran out.
    rack_at_ = kInstantNever;
    ++stats_.rack_timer_fired;
    if (rack_on() && rack_detect_loss(now) && !in_recovery_ && snd_una_ >= recover_ &&
        rexmit_count_ == 0)
      enter_sack_recovery(now, flight_size());
  }

  if (pto_at_ <= now) {
    // RFC 8985 §7.3: the probe timeout: a loss probe leaves on dispatch.
    pto_at_ = kInstantNever;
    if (rack_on() && !in_recovery_ && !tlp_outstanding_ && rexmit_count_ == 0 && snd_una_ < snd_max_)
      tlp_now_ = true;
  }

  if (persist_at_ <= now) {
    persist_at_ = kInstantNever;
    if (snd_wnd_ == 0 && snd_nxt_ == snd_una_) {  // only a probe byte may be out
      // RFC 9293 §3.8.6.1 keeps probing only while the peer acknowledges the probes; a
      // peer silent for as many probes as retransmissions allowed is gone (Linux too).
      if (persist_probes_ >= cfg_.max_retransmits) {
        send_rst(out, snd_nxt_);
        die(ETIMEDOUT);
        return;
      }
      ++persist_probes_;
      probe_now_ = true;
      persist_backoff_ = std::min(persist_backoff_ * 2, cfg_.rto_max);  // exponential backoff
      persist_at_ = now + persist_backoff_;
    }
  }

  if (delack_at_ <= now) {
    delack_at_ = kInstantNever;
    ack_now_ = true;  // RFC 9293 §3.8.6.3: the delayed ACK is due
  }

  if (keepalive_at_ <= now) {
    keepalive_at_ = kInstantNever;
    if (cfg_.keepalive && is_synchronized() && state_ != TcpState::kTimeWait) {
      if (keepalive_probes_ >= cfg_.keepalive_count) {
        // No answer to `count` probes: the peer is gone (Linux resets it too).
        send_rst(out, snd_nxt_);
        die(ETIMEDOUT);
        return;
      }
      ++keepalive_probes_;
      keepalive_now_ = true;
      keepalive_at_ = now + cfg_.keepalive_interval;
    }
  }
}

}  // namespace utcp
