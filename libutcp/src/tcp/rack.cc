// rack.cc - RACK-TLP loss detection (RFC 8985) and the sender's use of D-SACK (RFC 2883):
// time-based loss marking over the transmission log, the reordering window and its timer,
// tail loss probes, and undoing a reduction D-SACK shows to have been spurious.
#include <algorithm>

#include "tcp/connection.h"

namespace utcp {

namespace {

// RFC 8985 §6.2 RACK_sent_after(t1, seq1, t2, seq2): sent later, ties broken by sequence.
bool sent_after(Instant t1, SeqNum s1, Instant t2, SeqNum s2) {
  return t1 > t2 || (t1 == t2 && s1 > s2);
}

constexpr Duration kWcDelAckT{200'000};     // RFC 8985 §7.2 worst-case delayed ACK
constexpr Duration kPtoNoRtt{1'000'000};    // §7.2: "Else: PTO = 1 second"
// Added to 2*SRTT so that a probe never races the ACK it waits for on a path whose RTT
// is below the clock's granularity (Linux adds TCP_TIMEOUT_MIN, 2 jiffies, likewise).
constexpr Duration kPtoSlack{2'000};
constexpr uint32_t kDupThresh = 3;          // §6.2 step 4 (RFC 5681's DupThresh)
constexpr uint32_t kReoWndPersist = 16;     // §6.2 step 4
constexpr uint32_t kMaxReoWndMult = 64;     // the window is capped by SRTT long before this

}  // namespace

void Connection::rack_on_ack(Instant now, const TcpRepr& seg, bool dsack) {
  // Called with the ACK's SACK blocks in the scoreboard and before SND.UNA moves: every
  // segment it newly delivers (cumulatively or selectively) updates RACK.
  const SeqNum ack = seg.ack;
  const SeqNum limit = scoreboard_.empty() || scoreboard_.high() < ack ? ack : scoreboard_.high();
  for (size_t i = 0; i < sent_.size() && sent_[i].start < limit; ++i) {
    SentLog::Seg& g = sent_[i];
    if (g.delivered) continue;
    if (!(g.end <= ack) && scoreboard_.sacked_end(g.start) < g.end) continue;
    g.delivered = true;
    g.lost = false;
    // §6.2 step 2 RACK_update(): "If Segment.retransmitted is TRUE: If ACK.ts_option.
    // echo_reply < Segment.xmit_ts: Return; If rtt < RACK.min_RTT: Return" — the ACK may
    // be for the original transmission.
    // The echo test is used for cumulative ACKs only: a SACK for data past a hole echoes
    // TS.Recent, which RFC 7323 §4.3 leaves at the last in-order segment (older than any
    // retransmission sent since), so there only the min_RTT test can tell.
    const Duration rtt = now - g.xmit;
    if (g.retransmitted) {
      if (g.end <= ack && ts_ok_ && seg.options.timestamps &&
          int32_t(seg.options.timestamps->tsecr - ts_now(g.xmit)) < 0)
        continue;
      if (rtt < rack_.min_rtt) continue;
    }
    if (!rack_.have || sent_after(g.xmit, g.end, rack_.xmit_ts, rack_.end_seq)) {
      rack_.rtt = rtt;
      rack_.xmit_ts = g.xmit;
      rack_.end_seq = g.end;
    }
    // §6.2 step 3 RACK_detect_reordering(): a never-retransmitted segment delivered below
    // the highest delivered one arrived out of order.
    if (!rack_.have || g.end > rack_.fack) {
      rack_.fack = g.end;
    } else if (g.end < rack_.fack && !g.retransmitted) {
      rack_.reord = true;
    }
    rack_.have = true;
  }
  // §6.2 step 4: "If RACK.dsack_round is not None AND SND.UNA >= RACK.dsack_round:
  // RACK.dsack_round = None. If RACK.dsack_round is None AND any DSACK option is present
  // on latest received ACK: RACK.dsack_round = SND.NXT; RACK.reo_wnd_mult += 1;
  // RACK.reo_wnd_persist = 16" — at most one widening per round trip.
  if (rack_.dsack_round_set && ack >= rack_.dsack_round) rack_.dsack_round_set = false;
  if (!rack_.dsack_round_set && dsack) {
    rack_.dsack_round_set = true;
    rack_.dsack_round = snd_max_;
    rack_.reo_wnd_mult = std::min(rack_.reo_wnd_mult + 1, kMaxReoWndMult);
    rack_.reo_wnd_persist = kReoWndPersist;
  }
}

Duration Connection::rack_reo_wnd() const {
  // §6.2 step 4 RACK_update_reo_wnd(): without observed reordering, be as quick as
  // DupThresh: no window in recovery or once DupThresh segments are SACKed.
  if (!rack_.reord) {
    if (in_recovery_) return Duration(0);
    uint32_t sacked = 0;
    for (size_t i = 0; i < sent_.size() && sacked < kDupThresh; ++i) sacked += sent_[i].delivered;
    if (sacked >= kDupThresh) return Duration(0);
  }
  // "return min(RACK.reo_wnd_mult * RACK.min_RTT / 4, SRTT)"
  const Duration base = rack_.min_rtt == Duration::max() ? srtt_ : rack_.min_rtt;
  return std::min(base * int64_t(rack_.reo_wnd_mult) / 4, srtt_);
}

bool Connection::rack_detect_loss(Instant now) {
  // §6.2 step 5 RACK_detect_loss(): a segment sent before the most recently delivered
  // one, and outstanding longer than RACK.rtt + RACK.reo_wnd, is lost; the earliest
  // deadline among the others arms the reordering timer (§6.3).
  rack_at_ = kInstantNever;
  if (!rack_.have) return false;
  const Duration reo = rack_reo_wnd();
  Duration timeout{0};
  bool marked = false;
  for (size_t i = 0; i < sent_.size(); ++i) {
    SentLog::Seg& g = sent_[i];
    if (g.delivered || g.lost) continue;
    if (!sent_after(rack_.xmit_ts, rack_.end_seq, g.xmit, g.end)) continue;
    const Duration remaining = (g.xmit + rack_.rtt + reo) - now;
    if (remaining <= Duration(0)) {
      g.lost = true;
      marked = true;
      ++stats_.rack_marked_lost;
    } else {
      timeout = std::max(timeout, remaining);
    }
  }
  if (timeout > Duration(0)) rack_at_ = now + timeout;
  return marked;
}

void Connection::arm_pto(Instant now) {
  // RFC 8985 §7.2: a probe timer while data is outstanding, the connection is not in
  // recovery and no probe is out; PTO = 2*SRTT (+ WCDelAckT when one segment is in
  // flight, whose ACK the receiver may delay), no later than the RTO.
  pto_at_ = kInstantNever;
  if (!rack_on() || in_recovery_ || tlp_outstanding_ || rexmit_count_ > 0 || !(snd_una_ < snd_max_))
    return;
  if (!syn_acked() || state_ == TcpState::kTimeWait) return;
  Duration pto = kPtoNoRtt;
  if (have_rtt_) {
    pto = 2 * srtt_ + kPtoSlack;
    if (flight_size() <= seg_size()) pto += kWcDelAckT;
  }
  pto_at_ = now + pto;
  if (rto_at_ != kInstantNever && rto_at_ < pto_at_) pto_at_ = rto_at_;
}

bool Connection::send_loss_probe(Instant now, SegmentSink& out) {
  // RFC 8985 §7.3: "If previously unsent segments exist AND the receive window allows new
  // segments to be sent: Transmit that new segment ... Else: Retransmit the last segment"
  // — either way past cwnd (one segment).
  bool fin = false;
  const size_t len = sendable_now(now, &fin, true);
  bool sent = false;
  if (len > 0 || fin) {
    sent = send_new(now, out, len, fin);
    tlp_is_retrans_ = false;
  } else if (!sent_.empty()) {
    const SeqNum s = sent_.back().start < snd_una_ ? snd_una_ : sent_.back().start;
    sent = retransmit_from(now, out, s, snd_max_);
    tlp_is_retrans_ = true;
  }
  pto_at_ = kInstantNever;
  if (sent) {
    // "TLP.end_seq = SND.NXT" (the highest sequence sent).
    tlp_outstanding_ = true;
    tlp_end_ = snd_max_;
    tlp_xmit_ = now;
    ++stats_.tlp_probes;
  }
  // "After attempting to send a loss probe, regardless of whether a loss probe was sent,
  // the sender MUST re-arm the RTO timer, not the PTO timer."
  if (snd_una_ < snd_max_) arm_rto(now);
  return sent;
}

void Connection::tlp_on_ack(Instant now, const TcpRepr& seg,
                            const std::optional<SackBlock>& dsack, uint32_t flight_before) {
  // RFC 8985 §7.4.2 TLP_process_ack(): once the probe's sequence is acknowledged, decide
  // whether it repaired a loss (then the congestion response of fast recovery is due).
  if (!tlp_outstanding_ || seg.ack < tlp_end_) return;
  tlp_outstanding_ = false;
  if (!tlp_is_retrans_) return;  // a new-data probe: RACK judges what it reveals
  // "If the ACK has a DSACK option matching TLP.end_seq": both copies arrived.
  if (dsack && dsack->right == tlp_end_) return;
  // With timestamps an ACK echoing an earlier TSval is for the original: not lost (a
  // D-SACK for the probe follows). utcp's refinement of §7.4.1's "wait for D-SACK".
  if (ts_ok_ && seg.options.timestamps &&
      int32_t(seg.options.timestamps->tsecr - ts_now(tlp_xmit_)) < 0)
    return;
  if (in_recovery_) return;  // that episode already reduced the window
  ++stats_.tlp_loss_detected;
  cc_->on_loss(now, LossEvent::kFastRetransmit, flight_before);
  cc_->restore(cc_->ssthresh(), cc_->ssthresh());
}

void Connection::start_undo_episode() {
  // A reduction begins: count what it retransmits; if every byte comes back as a D-SACK
  // duplicate the reduction was spurious (RFC 2883 §5, RFC 3708's idea, Linux's undo_retrans).
  undo_active_ = true;
  undo_marker_ = snd_una_;
  undo_retrans_ = 0;
}

void Connection::note_dsack_received(const SackBlock& b) {
  ++stats_.dsacks_received;
  if (!undo_active_ || b.left < undo_marker_ || b.right > snd_max_ || undo_retrans_ == 0) return;
  undo_retrans_ -= std::min<uint32_t>(uint32_t(b.right - b.left), undo_retrans_);
  if (undo_retrans_ == 0) {
    undo_active_ = false;
    // RFC 9438 §4.9 / RFC 5681: the congestion event was spurious: restore the window.
    if (cc_->undo()) {
      ++stats_.spurious_undos;
      recovery_undone_ = in_recovery_;
    }
  }
}

}  // namespace utcp
