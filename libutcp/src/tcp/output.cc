// output.cc - what a connection sends: SYN, data (Nagle, windows), FIN, ACKs, retransmissions, RST.
#include <algorithm>

#include "tcp/connection.h"

namespace utcp {

using namespace tcp_flags;

uint8_t window_scale_for(uint32_t buf) {
  uint8_t shift = 0;
  while (shift < 14 && (uint32_t(0xffff) << shift) < buf) ++shift;
  return shift;
}

void Connection::syn_options(uint8_t flags, TcpOptions& o) {
  o.mss = rcv_mss_;  // RFC 9293 §3.7.1: MSS only in SYNs
  const bool synack = (flags & kAck) != 0;
  if (!synack) rcv_wscale_offer_ = window_scale_for(uint32_t(rx_.capacity()));
  // RFC 7323 §2.2: WS MAY be sent in a <SYN>; in a <SYN,ACK> only if the <SYN> had it.
  if (synack ? ws_ok_ : cfg_.window_scaling) o.window_scale = rcv_wscale_offer_;
}

uint32_t Connection::advertisable_space(uint8_t shift) const {
  // What the window field can carry: 16 bits, scaled by the shift (RFC 7323 §2.2).
  return std::min<uint32_t>(uint32_t(rx_.free()), uint32_t(0xffff) << shift);
}

uint16_t Connection::window_to_advertise(bool syn) {
  // RFC 7323 §2.2: "The window field in a segment where the SYN bit is set ... MUST
  // NOT be scaled."
  const uint8_t shift = syn ? 0 : rcv_wnd_shift_;
  const uint32_t free = advertisable_space(shift);
  const uint32_t cur = rcv_adv_ > rcv_nxt_ ? uint32_t(rcv_adv_ - rcv_nxt_) : 0;
  // RFC 9293 §3.8.6.2.2 receiver SWS avoidance: move the right edge only by at least
  // min(RCV.BUFF / 2, MSS); never move it left (the window is not shrunk).
  uint32_t wnd = cur;
  const uint32_t step = std::min<uint32_t>(uint32_t(rx_.capacity() / 2), rcv_mss_);
  if (free > cur && free - cur >= step) wnd = free;
  wnd = std::min(wnd, free) >> shift;
  rcv_adv_ = rcv_nxt_ + (wnd << shift);  // exactly the edge the peer will compute
  return uint16_t(wnd);
}

bool Connection::want_window_update() const {
  // Announce a window that grew by two segments or half the buffer (the usual rule,
  // as in Linux's __tcp_cleanup_rbuf), so a sender stalled by a small window resumes.
  const uint32_t free = advertisable_space(rcv_wnd_shift_);
  const uint32_t cur = rcv_adv_ > rcv_nxt_ ? uint32_t(rcv_adv_ - rcv_nxt_) : 0;
  if (!is_synchronized() || fin_received_ || free <= cur) return false;
  return free - cur >= std::min<uint32_t>(uint32_t(rx_.capacity() / 2), 2u * rcv_mss_);
}

bool Connection::send_segment(SegmentSink& out, Instant now, uint8_t flags, SeqNum seq,
                              size_t data_off, size_t len) {
  TcpRepr r;
  r.src_port = tuple_.local_port;
  r.dst_port = tuple_.remote_port;
  r.seq = seq;
  r.flags = flags;
  if (flags & kAck) r.ack = rcv_nxt_;
  if (flags & kSyn) syn_options(flags, r.options);
  // RFC 7323 §3.2: TSopt MAY be sent in a <SYN>, in a <SYN,ACK> only if the <SYN> had
  // it, and once negotiated in every non-<RST> segment. TSecr is zero without ACK.
  if ((flags & (kSyn | kAck)) == kSyn ? cfg_.timestamps : ts_ok_)
    r.options.timestamps = TcpTimestamps{ts_now(now), (flags & kAck) ? ts_recent_ : 0};
  // RFC 9293 §3.8.6.2.2: the window goes in every segment.
  r.window = window_to_advertise((flags & kSyn) != 0);
  std::span<const uint8_t> p1, p2;
  if (len > 0) std::tie(p1, p2) = tx_.peek_spans(data_off, len);
  if (len > 0 && p1.size() + p2.size() == len && (flags & kFin) == 0 && data_off + len == tx_.size())
    r.flags |= kPsh;  // RFC 9293 §3.9.1: push when the send queue empties
  if (!out.send(tuple_, r, p1, p2)) return false;
  ++stats_.segs_out;
  if (flags & kAck) {
    // Any ACK we send acknowledges everything: the delayed one is no longer due.
    ack_now_ = false;
    unacked_bytes_ = 0;
    delack_at_ = kInstantNever;
    last_ack_sent_ = rcv_nxt_;  // RFC 7323 §4.3 Last.ACK.sent
  }
  return true;
}

bool Connection::send_ack(SegmentSink& out, Instant now) {
  // RFC 9293 §3.10.7.4: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
  return send_segment(out, now, kAck, snd_nxt_, 0, 0);
}

void Connection::send_rst(SegmentSink& out, SeqNum seq) {
  TcpRepr r;
  r.src_port = tuple_.local_port;
  r.dst_port = tuple_.remote_port;
  r.seq = seq;
  r.flags = kRst;
  if (out.send(tuple_, r, {}, {})) ++stats_.segs_out;
}

size_t Connection::sendable_now(Instant, bool* fin) const {
  *fin = false;
  switch (state_) {
    case TcpState::kEstablished:
    case TcpState::kCloseWait:
    case TcpState::kFinWait1:
    case TcpState::kClosing:
    case TcpState::kLastAck:
      break;
    default:
      return 0;  // no data before the handshake completes, none after our FIN is acked
  }
  if (snd_nxt_ < snd_una_) return 0;
  const size_t off = tx_offset(snd_nxt_);
  const size_t avail = tx_.size() > off ? tx_.size() - off : 0;
  const uint32_t win = std::min(snd_wnd_, cc_->cwnd());
  const SeqNum wnd_end = snd_una_ + win;
  const size_t usable = wnd_end > snd_nxt_ ? size_t(wnd_end - snd_nxt_) : 0;
  const size_t len = std::min({avail, usable, size_t(seg_size())});
  const bool fin_possible = fin_queued_ && snd_nxt_ + uint32_t(len) == fin_seq_ && len == avail;
  if (len == 0) {
    // The FIN alone: it takes a sequence number but no window space (as Linux does).
    *fin = fin_possible && snd_nxt_ == fin_seq_;
    return 0;
  }
  // Retransmissions (after a timeout, below SND.MAX) are never held back.
  if (len < seg_size() && !fin_possible && snd_nxt_ >= snd_max_) {
    const bool outstanding = snd_max_ > snd_una_;
    if (outstanding) {
      // RFC 9293 §3.7.4 Nagle: with unacknowledged data, hold a short segment until
      // an ACK or a full segment (unless TCP_NODELAY and it is all the data there is).
      if (len == avail && !cfg_.nodelay) return 0;
      // RFC 9293 §3.8.6.2.1 sender SWS: a window-limited short piece waits for the ACK
      // that opens the window further.
      if (len < avail && len < max_snd_wnd_ / 2) return 0;
    }
  }
  *fin = fin_possible;
  return len;
}

bool Connection::retransmit_first(Instant now, SegmentSink& out) {
  // RFC 5681 §3.2 step 2 / RFC 6582 §3.2 step 5: retransmit the first unacknowledged
  // segment, whatever cwnd says.
  if (!syn_acked() || snd_max_ <= snd_una_) return false;
  const size_t off = tx_offset(snd_una_);
  const size_t data_end = fin_queued_ && snd_max_ > fin_seq_ ? size_t(fin_seq_ - snd_una_)
                                                             : size_t(snd_max_ - snd_una_);
  const size_t len = std::min({data_end, size_t(seg_size()), tx_.size() - std::min(off, tx_.size())});
  const bool fin = fin_queued_ && snd_max_ > fin_seq_ && snd_una_ + uint32_t(len) == fin_seq_;
  if (len == 0 && !fin) return false;
  if (!send_segment(out, now, kAck | (fin ? kFin : 0), snd_una_, off, len)) return false;
  ++stats_.retransmits;
  rtt_timing_ = false;  // Karn's rule
  if (rto_at_ == kInstantNever) arm_rto(now);
  return true;
}

void Connection::dispatch(Instant now, SegmentSink& out) {
  if (state_ == TcpState::kClosed || state_ == TcpState::kListen) return;
  on_timers(now, out);
  if (state_ == TcpState::kClosed) return;

  if (state_ == TcpState::kSynSent || state_ == TcpState::kSynReceived) {
    if (snd_nxt_ == iss_) {
      // RFC 9293 §3.10.1 / §3.10.7.2: <SEQ=ISS><CTL=SYN> or <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
      const uint8_t flags = state_ == TcpState::kSynSent ? kSyn : (kSyn | kAck);
      if (!send_segment(out, now, flags, iss_, 0, 0)) return;
      if (rexmit_count_ == 0 && !rtt_timing_) {
        rtt_timing_ = true;
        rtt_seq_ = iss_;
        rtt_start_ = now;
      } else if (rexmit_count_ > 0) {
        ++stats_.retransmits;
      }
      snd_nxt_ = iss_ + 1;
      snd_max_ = max(snd_max_, snd_nxt_);
      if (rto_at_ == kInstantNever) arm_rto(now);
    }
    if (ack_now_ && state_ == TcpState::kSynReceived && snd_nxt_ != iss_) send_ack(out, now);
    return;
  }

  if (rexmit_one_) {
    rexmit_one_ = false;
    retransmit_first(now, out);
  }

  if (probe_now_) {
    // RFC 9293 §3.8.6.1: a zero-window probe carries one octet of new data. It is sent
    // without advancing SND.NXT; SND.MAX covers it so its ACK is acceptable.
    probe_now_ = false;
    const size_t off = tx_offset(snd_nxt_);
    if (snd_nxt_ == snd_una_ && tx_.size() > off) {
      if (send_segment(out, now, kAck, snd_nxt_, off, 1)) {
        snd_max_ = max(snd_max_, snd_nxt_ + 1);
        ++stats_.window_probes;
      }
    } else if (snd_nxt_ == snd_una_) {
      send_ack(out, now);
    }
  }

  if (keepalive_now_) {
    // RFC 9293 §3.8.4: a keepalive is <SEQ=SND.NXT-1> with no data, which the peer
    // must answer with an ACK.
    keepalive_now_ = false;
    send_segment(out, now, kAck, snd_una_ - 1, 0, 0);
  }

  for (;;) {
    bool fin = false;
    const size_t len = sendable_now(now, &fin);
    if (len == 0 && !fin) break;
    const bool is_new = snd_nxt_ >= snd_max_;
    const uint8_t flags = kAck | (fin ? kFin : 0);
    if (!send_segment(out, now, flags, snd_nxt_, tx_offset(snd_nxt_), len)) break;
    if (len > 0 && is_new && !rtt_timing_) {
      // RFC 6298 §3: time one segment per RTT, on its first transmission only.
      rtt_timing_ = true;
      rtt_seq_ = snd_nxt_;
      rtt_start_ = now;
    }
    if (!is_new) ++stats_.retransmits;
    snd_nxt_ += uint32_t(len) + (fin ? 1 : 0);
    snd_max_ = max(snd_max_, snd_nxt_);
    if (rto_at_ == kInstantNever) arm_rto(now);  // RFC 6298 §5.1
    if (fin) break;
  }

  // RFC 9293 §3.8.6.1: with a zero send window, data waiting and no retransmission
  // timer running (nothing in flight, or a timeout already went back to SND.UNA and the
  // window let nothing out), the persist timer probes the window (with backoff).
  if (snd_wnd_ == 0 && persist_at_ == kInstantNever && rto_at_ == kInstantNever &&
      snd_nxt_ == snd_una_ &&
      (tx_.size() > tx_offset(snd_nxt_) || (fin_queued_ && snd_nxt_ <= fin_seq_)) &&
      is_synchronized()) {
    if (persist_backoff_ == Duration(0)) persist_backoff_ = std::max(rto_, cfg_.rto_min);
    persist_at_ = now + persist_backoff_;
  }

  if (ack_now_) send_ack(out, now);
}

Instant Connection::poll_at() const {
  if (state_ == TcpState::kClosed || state_ == TcpState::kListen) return kInstantNever;
  if (ack_now_ || rexmit_one_ || probe_now_ || keepalive_now_) return kInstantZero;
  if ((state_ == TcpState::kSynSent || state_ == TcpState::kSynReceived) && snd_nxt_ == iss_)
    return kInstantZero;
  bool fin = false;
  if (sendable_now(kInstantZero, &fin) > 0 || fin) return kInstantZero;
  return std::min({rto_at_, persist_at_, delack_at_, keepalive_at_, timewait_at_});
}

}  // namespace utcp
