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
  // RFC 2018 §2: SACK-permitted "MUST NOT be sent on non-SYN segments"; on a SYN,ACK
  // only in answer to one.
  o.sack_permitted = synack ? sack_ok_ : cfg_.sack;
}

bool Connection::fill_sack(TcpOptions& o, size_t len) const {
  // RFC 2018 §4: the block holding the most recent arrival first, then the other recent
  // ones, then the rest; the wire layer keeps as many as fit (3 beside timestamps).
  // RFC 2883 §4: a D-SACK block goes first of all, followed by the block holding it.
  size_t max_blocks = o.sack.size();
  if (len > 0) {
    // A data segment must still fit the peer's MSS with its options (RFC 6691 §2).
    const int budget = int(snd_mss_) - int(len) - (ts_ok_ ? 12 : 0) - 4;
    max_blocks = budget >= 8 ? std::min<size_t>(max_blocks, size_t(budget / 8)) : 0;
  }
  size_t n = 0, first = 0;
  bool dsack = false;
  if (dsack_ && max_blocks > 0) {
    o.sack[n++] = *dsack_;
    first = 1;  // the blocks after it are not compared with it (RFC 2883 §4 example 3)
    dsack = true;
    if (rcv_nxt_ < dsack_->right) {
      const uint32_t off = uint32_t(dsack_->left - rcv_nxt_);
      for (size_t k = 0; k < ooo_.ranges() && n < max_blocks; ++k)
        if (ooo_.range(k).start <= off && off < ooo_.range(k).end)
          o.sack[n++] = SackBlock{rcv_nxt_ + ooo_.range(k).start, rcv_nxt_ + ooo_.range(k).end};
    }
  }
  auto add = [&](const Assembler::Range& rg) {
    const SackBlock b{rcv_nxt_ + rg.start, rcv_nxt_ + rg.end};
    for (size_t k = first; k < n; ++k)
      if (o.sack[k] == b) return;
    if (n < max_blocks) o.sack[n++] = b;
  };
  for (size_t i = 0; i < sack_recent_n_; ++i) {
    if (sack_recent_[i] < rcv_nxt_) continue;  // since delivered
    const uint32_t off = uint32_t(sack_recent_[i] - rcv_nxt_);
    for (size_t k = 0; k < ooo_.ranges(); ++k)
      if (ooo_.range(k).start <= off && off < ooo_.range(k).end) add(ooo_.range(k));
  }
  for (size_t k = 0; k < ooo_.ranges() && n < max_blocks; ++k) add(ooo_.range(k));
  o.sack_count = uint8_t(n);
  return dsack;
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
  bool dsack_sent = false;
  if (sack_ok_ && (flags & (kAck | kSyn)) == kAck && (!ooo_.empty() || dsack_))
    dsack_sent = fill_sack(r.options, len);
  // RFC 9293 §3.8.6.2.2: the window goes in every segment.
  r.window = window_to_advertise((flags & kSyn) != 0);
  std::span<const uint8_t> p1, p2;
  if (len > 0) std::tie(p1, p2) = tx_.peek_spans(data_off, len);
  if (len > 0 && p1.size() + p2.size() == len && (flags & kFin) == 0 && data_off + len == tx_.size())
    r.flags |= kPsh;  // RFC 9293 §3.9.1: push when the send queue empties
  if (!out.send(tuple_, r, p1, p2)) return false;
  ++stats_.segs_out;
  if (dsack_sent) {
    dsack_.reset();  // RFC 2883 §4: reported once
    ++stats_.dsacks_sent;
  }
  if (flags & kAck) {
    // Any ACK we send acknowledges everything: the delayed one is no longer due.
    ack_now_ = ooo_ack_due_ = false;
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

size_t Connection::sendable_now(Instant, bool* fin, bool pipe_limited) const {
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
  // In SACK recovery the caller has checked cwnd against pipe (RFC 6675 §5 (C)): only
  // the peer's window limits new data.
  uint32_t cwnd = cc_->cwnd();
  // RFC 3042 §2 limited transmit: on the first two duplicate ACKs one new segment each
  // may go beyond cwnd (outstanding <= cwnd + 2*SMSS), so a small window still yields
  // the duplicates fast retransmit needs. cwnd itself is unchanged.
  if (!in_recovery_ && dupacks_ > 0 && snd_nxt_ >= snd_max_)
    cwnd += std::min<uint32_t>(dupacks_, 2) * seg_size();
  const uint32_t win = pipe_limited ? snd_wnd_ : std::min(snd_wnd_, cwnd);
  const SeqNum wnd_end = snd_una_ + win;
  const size_t usable = wnd_end > snd_nxt_ ? size_t(wnd_end - snd_nxt_) : 0;
  size_t len = std::min({avail, usable, size_t(seg_size())});
  // Resending after a timeout stops short of data the peer has SACKed (skip_sacked()).
  if (sack_ok_ && snd_nxt_ < snd_max_) len = std::min<size_t>(len, scoreboard_.unsacked_run(snd_nxt_, snd_max_));
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
  return retransmit_from(now, out, snd_una_, snd_max_);
}

bool Connection::retransmit_from(Instant now, SegmentSink& out, SeqNum s, SeqNum end) {
  // Up to one segment of already-sent sequence space [s, end), with our FIN if it lies there.
  const bool fin_sent = fin_queued_ && snd_max_ > fin_seq_;
  const SeqNum data_end = fin_sent && fin_seq_ < end ? fin_seq_ : end;
  const size_t off = tx_offset(s);
  const size_t room = tx_.size() - std::min(off, tx_.size());
  const size_t len = data_end > s ? std::min({size_t(data_end - s), size_t(seg_size()), room}) : 0;
  const bool fin = fin_sent && s + uint32_t(len) == fin_seq_ && fin_seq_ < end;
  if (len == 0 && !fin) return false;
  if (!send_segment(out, now, kAck | (fin ? kFin : 0), s, off, len)) return false;
  ++stats_.retransmits;
  rtt_timing_ = false;  // Karn's rule
  log_sent(now, s, s + uint32_t(len) + (fin ? 1 : 0), true);
  // RFC 6675 §4 HighRxt: the highest octet retransmitted.
  const SeqNum sent_end = s + uint32_t(len) + (fin ? 1 : 0);
  if (high_rxt_ < sent_end) high_rxt_ = sent_end;
  if (rto_at_ == kInstantNever) arm_rto(now);
  return true;
}

void Connection::log_sent(Instant now, SeqNum s, SeqNum e, bool retransmission) {
  if (retransmission && undo_active_) undo_retrans_ += uint32_t(e - s);
  // RFC 8985 §5.2: the transmission time of each segment, for RACK.
  if (rack_on()) sent_.on_send(s, e, now, retransmission);
}

uint32_t Connection::sack_pipe() const {
  if (rack_on()) {
    // With RACK the log knows each segment's fate: in flight unless delivered (SACKed)
    // or marked lost and not yet resent (RFC 8985 §6, as Linux's packets_in_flight).
    uint32_t pipe = 0;
    for (size_t i = 0; i < sent_.size(); ++i)
      if (!sent_[i].delivered && !sent_[i].lost) pipe += uint32_t(sent_[i].end - sent_[i].start);
    return pipe;
  }
  // RFC 6675 §4 SetPipe: over the un-SACKed octets of [HighACK, HighData): (a) those not
  // deemed lost are in flight, (b) those retransmitted (below HighRxt) are in flight again.
  uint32_t pipe = 0;
  scoreboard_.for_each_hole(snd_una_, snd_max_, snd_mss_, [&](const Scoreboard::Hole& h) {
    if (!h.lost) pipe += uint32_t(h.right - h.left);
    if (h.left < high_rxt_) pipe += uint32_t((h.right < high_rxt_ ? h.right : high_rxt_) - h.left);
    return true;
  });
  return pipe;
}

std::optional<Connection::NextSeg> Connection::next_seg(Instant now) const {
  // RFC 6675 §4 NextSeg(), rules (1)-(3) (the optional rescue retransmission (4) is not used).
  std::optional<NextSeg> lost, other;
  if (rack_on()) {
    // RFC 8985: what RACK (or a timeout) marked lost, lowest first; then new data.
    for (size_t i = 0; i < sent_.size(); ++i)
      if (sent_[i].lost && !sent_[i].delivered) return NextSeg{sent_[i].start, sent_[i].end, false};
  } else if (!scoreboard_.empty()) {
    const SeqNum high_sacked = scoreboard_.high();
    scoreboard_.for_each_hole(snd_una_, snd_max_, snd_mss_, [&](const Scoreboard::Hole& h) {
      if (!(h.left < high_sacked)) return false;  // only below the highest SACKed octet
      const SeqNum from = h.left < high_rxt_ ? high_rxt_ : h.left;  // above HighRxt
      if (!(from < h.right)) return true;
      if (h.lost) {
        lost = NextSeg{from, h.right, false};  // (1) lost and not yet retransmitted
        return false;
      }
      if (!other) other = NextSeg{from, h.right, false};
      return true;
    });
  }
  if (lost) return lost;
  bool fin = false;
  if (sendable_now(now, &fin, true) > 0 || fin) return NextSeg{snd_nxt_, snd_nxt_, true};  // (2)
  return other;  // (3): not yet deemed lost, but below the highest SACKed octet
}

void Connection::send_in_recovery(Instant now, SegmentSink& out) {
  // RFC 6675 §5 (C): "If cwnd - pipe >= 1 SMSS the sender SHOULD transmit one or more
  // segments": NextSeg() picks each; pipe grows with every one sent.
  if (high_rxt_ < snd_una_) high_rxt_ = snd_una_;
  for (;;) {
    if (cc_->cwnd() < sack_pipe() + seg_size()) return;
    const auto next = next_seg(now);
    if (!next) return;
    if (next->new_data) {
      bool fin = false;
      const size_t len = sendable_now(now, &fin, true);
      if (!send_new(now, out, len, fin) || fin) return;
    } else if (!retransmit_from(now, out, next->left, next->right)) {
      return;
    }
  }
}

bool Connection::send_new(Instant now, SegmentSink& out, size_t len, bool fin) {
  // Sends [SND.NXT, SND.NXT+len) (and the FIN): new data, or a resend after a timeout.
  const bool is_new = snd_nxt_ >= snd_max_;
  const uint8_t flags = kAck | (fin ? kFin : 0);
  if (!send_segment(out, now, flags, snd_nxt_, tx_offset(snd_nxt_), len)) return false;
  if (len > 0 && is_new && !rtt_timing_) {
    // RFC 6298 §3: time one segment per RTT, on its first transmission only.
    rtt_timing_ = true;
    rtt_seq_ = snd_nxt_;
    rtt_start_ = now;
  }
  if (!is_new) ++stats_.retransmits;
  log_sent(now, snd_nxt_, snd_nxt_ + uint32_t(len) + (fin ? 1 : 0), !is_new);
  snd_nxt_ += uint32_t(len) + (fin ? 1 : 0);
  snd_max_ = max(snd_max_, snd_nxt_);
  skip_sacked();
  if (rto_at_ == kInstantNever) arm_rto(now);  // RFC 6298 §5.1
  if (is_new && !tlp_outstanding_) arm_pto(now);  // RFC 8985 §7.2: on sending new data
  return true;
}

void Connection::skip_sacked() {
  // RFC 6675 §5.1: the scoreboard outlives a timeout (reneging is rare; RFC 2018 §8's
  // SHOULD is relaxed there), so the go-back-N resend after an RTO skips what the
  // receiver holds, as Linux does.
  if (!sack_ok_) return;
  while (snd_nxt_ < snd_max_) {
    const SeqNum e = scoreboard_.sacked_end(snd_nxt_);
    if (e == snd_nxt_) break;
    snd_nxt_ = e < snd_max_ ? e : snd_max_;
  }
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

  if (tlp_now_) {
    tlp_now_ = false;
    send_loss_probe(now, out);  // RFC 8985 §7.3
  }

  if (probe_now_) {
    // RFC 9293 §3.8.6.1: a zero-window probe carries one octet of new data. It is sent
    // without advancing SND.NXT; SND.MAX covers it so its ACK is acceptable.
    probe_now_ = false;
    const size_t off = tx_offset(snd_nxt_);
    if (snd_nxt_ == snd_una_ && tx_.size() > off) {
      if (send_segment(out, now, kAck, snd_nxt_, off, 1)) {
        log_sent(now, snd_nxt_, snd_nxt_ + 1, snd_nxt_ < snd_max_);
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

  if (in_recovery_ && sack_ok_) {
    send_in_recovery(now, out);  // RFC 6675 §5: pipe, not FlightSize, against cwnd
  } else {
    for (;;) {
      bool fin = false;
      const size_t len = sendable_now(now, &fin);
      if (len == 0 && !fin) break;
      if (!send_new(now, out, len, fin) || fin) break;
    }
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
  if (ack_now_ || rexmit_one_ || probe_now_ || keepalive_now_ || tlp_now_) return kInstantZero;
  if ((state_ == TcpState::kSynSent || state_ == TcpState::kSynReceived) && snd_nxt_ == iss_)
    return kInstantZero;
  bool fin = false;
  if (in_recovery_ && sack_ok_) {
    if (cc_->cwnd() >= sack_pipe() + seg_size() && next_seg(kInstantZero)) return kInstantZero;
  } else if (sendable_now(kInstantZero, &fin) > 0 || fin) {
    return kInstantZero;
  }
  return std::min({rto_at_, persist_at_, delack_at_, keepalive_at_, timewait_at_, rack_at_, pto_at_});
}

}  // namespace utcp
