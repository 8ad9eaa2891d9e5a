// input.cc - segment arrival (RFC 9293 §3.10.7), in the RFC's order: sequence number,
// RST, SYN, ACK, URG, text, FIN; with the RFC 5961 protections.
#include <algorithm>
#include <cstring>

#include "tcp/connection.h"
#include "tcp/copy.h"

namespace utcp {

using namespace tcp_flags;

std::optional<TcpRepr> rst_reply(const TcpRepr& seg) {
  // RFC 9293 §3.10.7.1: "An incoming segment containing a RST is discarded."
  if (seg.has(kRst)) return std::nullopt;
  TcpRepr r;
  r.src_port = seg.dst_port;
  r.dst_port = seg.src_port;
  if (seg.has(kAck)) {
    // "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>"
    r.seq = seg.ack;
    r.flags = kRst;
  } else {
    // "<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"
    r.seq = SeqNum(0);
    r.ack = seg.seq + seg.seg_len();
    r.flags = kRst | kAck;
  }
  return r;
}

void Connection::process(Instant now, const TcpRepr& seg, SegmentSink& out) {
  ++stats_.segs_in;
  switch (state_) {
    case TcpState::kClosed:
      // RFC 9293 §3.10.7.1: CLOSED answers everything but a RST with a RST.
      if (auto r = rst_reply(seg)) out.send(tuple_, *r, {}, {});
      return;
    case TcpState::kListen:
      process_listen(now, seg, out);
      return;
    case TcpState::kSynSent:
      process_syn_sent(now, seg, out);
      return;
    default:
      break;
  }

  // RFC 7323 §5.3 R1 (PAWS) and §3.2 (a missing TSopt), before the sequence check.
  if (timestamps_reject(now, seg, out)) return;

  SeqNum seq = seg.seq;
  bool syn = seg.has(kSyn);
  bool fin = seg.has(kFin);
  std::span<const uint8_t> data = seg.payload;
  bool simultaneous_synack = false;

  if (state_ == TcpState::kSynReceived && syn && seq == irs_) {
    if (!seg.has(kAck)) {
      // The peer retransmitted its SYN: our SYN-ACK was lost. Resend it now (as Linux
      // does) rather than waiting for our retransmission timer.
      if (passive_) snd_nxt_ = iss_;
      return;
    }
    // Simultaneous open (RFC 9293 §3.5 figure 7): the peer's SYN,ACK repeats the SYN
    // we already took; its ACK is what moves us to ESTABLISHED. Skip the SYN.
    syn = false;
    seq = seq + 1;
    simultaneous_synack = true;
  }

  // RFC 9293 §3.10.7.4 first: check the sequence number.
  if (!simultaneous_synack && !segment_acceptable(seg)) {
    // RFC 9293: "If an incoming segment is not acceptable, an acknowledgment should be
    // sent in reply (unless the RST bit is set ...)". RFC 5961 §4.2: a SYN gets a
    // (rate-limited) challenge ACK; RFC 5961 §3.2: an out-of-window RST is dropped.
    if (seg.has(kRst)) return;
    if (syn) {
      send_challenge_ack(now, out);
      return;
    }
    if (state_ == TcpState::kTimeWait && fin) {
      // RFC 9293 §3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN restarts the 2 MSL timeout.
      enter_time_wait(now);
    }
    // RFC 2883 §4: data we already have is reported as a D-SACK block in this ACK.
    if (!data.empty() && seq + uint32_t(data.size()) <= rcv_nxt_ && rcv_nxt_ - seq <= int32_t(rx_.capacity() + (1u << 16)))
      note_duplicate(seq, uint32_t(data.size()));
    send_ack(out, now);
    return;
  }

  // Trim to the window: RFC 9293 §3.10.7.4 "segments with higher beginning sequence
  // numbers may be held for later processing"; only the part inside the window is used.
  if (seq < rcv_nxt_) {
    uint32_t old = uint32_t(rcv_nxt_ - seq);
    if (syn) {
      syn = false;
      --old;
      seq = seq + 1;
    }
    size_t cut = std::min<size_t>(old, data.size());
    if (cut > 0) note_duplicate(seq, uint32_t(cut));  // RFC 2883 §4: the repeated part
    data = data.subspan(cut);
    seq = seq + uint32_t(cut);
  }
  const SeqNum wnd_end = rcv_nxt_ + rcv_wnd();
  if (seq + uint32_t(data.size()) > wnd_end) {
    uint32_t keep = seq < wnd_end ? uint32_t(wnd_end - seq) : 0;
    data = data.first(keep);
    fin = false;
    ack_now_ = true;  // RFC 9293 §3.8.6.1: a probe past a zero window gets an ACK
  }

  update_ts_recent(now, seg);

  // Second: the RST bit. RFC 5961 §3.2: reset only on an exact match with RCV.NXT;
  // any other in-window RST gets a challenge ACK.
  if (seg.has(kRst)) {
    if (seg.seq != rcv_nxt_) {
      send_challenge_ack(now, out);
      return;
    }
    switch (state_) {
      case TcpState::kSynReceived:
        if (passive_) {
          // RFC 9293 §3.10.7.4 second, SYN-RECEIVED: "If this connection was initiated
          // with a passive OPEN ... then return this connection to LISTEN state".
          back_to_listen();
        } else {
          die(ECONNREFUSED);  // "... active OPEN: connection refused"
        }
        return;
      case TcpState::kEstablished:
      case TcpState::kFinWait1:
      case TcpState::kFinWait2:
      case TcpState::kCloseWait:
        die(ECONNRESET);  // "any outstanding RECEIVEs and SEND should receive reset responses"
        return;
      default:  // CLOSING, LAST-ACK, TIME-WAIT: "enter the CLOSED state ... and return"
        die(0);
        return;
    }
  }

  // Third: security/compartment (RFC 9293 §3.10.7.4): not used by utcp.

  // Fourth: the SYN bit. RFC 9293 §3.10.7.4 / RFC 5961 §4.2: a SYN in a synchronized
  // state (or past the first in SYN-RECEIVED) gets a challenge ACK, whatever its sequence.
  if (syn) {
    if (state_ == TcpState::kSynReceived && passive_) {
      // RFC 9293: "If the connection was initiated with a passive OPEN, then return this
      // connection to the LISTEN state and return."
      back_to_listen();
      return;
    }
    send_challenge_ack(now, out);
    return;
  }

  // Fifth: the ACK field. "if the ACK bit is off, drop the segment and return".
  if (!seg.has(kAck)) return;
  if (!process_ack(now, seg, out)) return;
  touch_keepalive(now);  // after process_ack: SYN-RECEIVED may have become ESTABLISHED

  // Sixth: URG. utcp delivers urgent data inline and keeps no urgent pointer (RFC 6093
  // recommends against new uses of urgent data).

  // Seventh: segment text, in ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2 only; the other
  // states have already received a FIN.
  switch (state_) {
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
      process_text(now, seq, data, fin);
      if (ooo_ack_due_) {
        // RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an
        // out-of-order segment arrives" — one per segment, now, not one per batch the
        // stack delivers: the sender counts them (and, with SACK, learns each block).
        ooo_ack_due_ = false;
        send_ack(out, now);
      }
      break;
    case TcpState::kCloseWait:
    case TcpState::kClosing:
    case TcpState::kLastAck:
      break;  // "This should not occur since a FIN has been received from the remote side."
    case TcpState::kTimeWait:
      // Eighth, TIME-WAIT: a FIN (retransmitted) is acknowledged and restarts 2 MSL.
      if (fin) {
        ack_now_ = true;
        enter_time_wait(now);
      }
      break;
    default:
      break;
  }
}

void Connection::back_to_listen() {
  // A passive SYN-RECEIVED connection forgets its peer and waits for a SYN again.
  tx_.consume(tx_.size());
  rto_at_ = pto_at_ = rack_at_ = kInstantNever;
  rexmit_count_ = 0;
  rtt_timing_ = false;
  sent_.clear();
  snd_una_ = snd_nxt_ = snd_max_ = iss_;
  set_state(TcpState::kListen);
}

bool Connection::segment_acceptable(const TcpRepr& seg) const {
  // RFC 9293 §3.10.7.4 table of the four cases.
  const uint32_t len = seg.seg_len();
  const uint32_t wnd = rcv_wnd();
  const SeqNum s = seg.seq;
  if (len == 0) {
    if (wnd == 0) return s == rcv_nxt_;
    return rcv_nxt_ <= s && s < rcv_nxt_ + wnd;
  }
  if (wnd == 0) {
    // "If the RCV.WND is zero, no segments will be acceptable, but special allowance
    // should be made to accept valid ACKs, URGs, and RSTs": take the segment at RCV.NXT
    // and let trimming drop its text.
    return s == rcv_nxt_;
  }
  const SeqNum last = s + (len - 1);
  return (rcv_nxt_ <= s && s < rcv_nxt_ + wnd) || (rcv_nxt_ <= last && last < rcv_nxt_ + wnd);
}

void Connection::process_listen(Instant now, const TcpRepr& seg, SegmentSink& out) {
  // RFC 9293 §3.10.7.2 LISTEN.
  if (seg.has(kRst)) return;  // "first, check for a RST: an incoming RST should be ignored"
  if (seg.has(kAck)) {
    // "second, check for an ACK: ... form a reset <SEQ=SEG.ACK><CTL=RST>"
    send_rst(out, seg.ack);
    return;
  }
  if (!seg.has(kSyn)) return;  // "fourth, other text or control: drop"
  // "third, check for a SYN": RCV.NXT = SEG.SEQ+1, IRS = SEG.SEQ; send
  // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> (on dispatch); SYN-RECEIVED. Text in the SYN is
  // not kept (the peer retransmits it once we ACK only the SYN).
  take_syn(now, seg);
  snd_wl2_ = iss_;
  snd_una_ = snd_nxt_ = snd_max_ = iss_;
  recover_ = iss_;
  set_state(TcpState::kSynReceived);
}

void Connection::open_syncookie(Instant now, SeqNum iss, const TcpRepr& syn) {
  open_passive(iss);
  take_syn(now, syn);
  snd_wl2_ = iss_;
  snd_una_ = iss_;
  snd_nxt_ = snd_max_ = iss_ + 1;
  recover_ = iss_;
  set_state(TcpState::kSynReceived);
}

void Connection::process_syn_sent(Instant now, const TcpRepr& seg, SegmentSink& out) {
  // RFC 9293 §3.10.7.3 SYN-SENT.
  bool ack_ok = false;
  if (seg.has(kAck)) {
    // "first check the ACK bit: If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
    // (unless the RST bit is set, if so drop the segment and return)".
    if (seg.ack <= iss_ || seg.ack > snd_max_) {
      if (!seg.has(kRst)) send_rst(out, seg.ack);
      return;
    }
    ack_ok = true;  // SND.UNA < SEG.ACK =< SND.NXT
  }
  if (seg.has(kRst)) {
    // "second check the RST bit: If the ACK was acceptable, signal 'connection reset',
    // drop the segment, enter CLOSED. Otherwise drop" (RFC 5961 §3.2 keeps this).
    if (ack_ok) die(ECONNREFUSED);
    return;
  }
  if (!seg.has(kSyn)) return;  // "fifth, if neither SYN nor RST is set, drop"
  // "fourth check the SYN bit": RCV.NXT = SEG.SEQ+1, IRS = SEG.SEQ.
  take_syn(now, seg);
  if (ack_ok) {
    // "SND.UNA should be advanced to equal SEG.ACK ... If SND.UNA > ISS (our SYN has
    // been ACKed), change the connection state to ESTABLISHED, form an ACK segment".
    snd_una_ = seg.ack;
    syn_acked_ = true;
    snd_wl2_ = seg.ack;
    if (snd_nxt_ < snd_una_) snd_nxt_ = snd_una_;
    if (rtt_timing_ && rexmit_count_ == 0) rtt_sample(now - rtt_start_);  // Karn: only if not retransmitted
    rtt_timing_ = false;
    // RFC 6298 §5.7: a SYN timeout without an RTT sample leaves RTO at >= 3 s.
    if (rexmit_count_ > 0 && !have_rtt_) rto_ = std::max(rto_, Duration(3'000'000));
    rexmit_count_ = 0;
    rto_at_ = kInstantNever;
    recover_ = snd_una_;
    set_state(TcpState::kEstablished);
    touch_keepalive(now);
    ack_now_ = true;
    // "If there are other controls or text in the segment, then continue processing at
    // the sixth step": text and FIN.
    std::span<const uint8_t> data = seg.payload;
    bool fin = seg.has(kFin);
    if (data.size() > rcv_wnd()) {
      data = data.first(rcv_wnd());
      fin = false;
    }
    process_text(now, rcv_nxt_, data, fin);
    return;
  }
  // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT>" —
  // simultaneous open; the SYN,ACK goes out on dispatch (snd_nxt back at ISS).
  snd_nxt_ = iss_;
  rtt_timing_ = false;
  rto_at_ = kInstantNever;
  set_state(TcpState::kSynReceived);
}

void Connection::take_syn(Instant now, const TcpRepr& syn) {
  // RFC 9293 §3.10.7.2/§3.10.7.3: RCV.NXT = SEG.SEQ + 1, IRS = SEG.SEQ; the send window
  // from the SYN (RFC 7323 §2.2: a SYN's window is never scaled).
  irs_ = syn.seq;
  rcv_nxt_ = irs_ + 1;
  rcv_adv_ = rcv_nxt_;
  take_options(syn);
  // RFC 7323 §3.2: timestamps are used only when both SYNs carried TSopt (an active side
  // sent it when configured; a passive one answers only then); TS.Recent from the SYN.
  ts_ok_ = cfg_.timestamps && syn.options.timestamps.has_value();
  if (ts_ok_) {
    ts_recent_ = syn.options.timestamps->tsval;
    ts_recent_at_ = now;
  }
  last_ack_sent_ = rcv_nxt_;
  // RFC 2018 §2: SACK-permitted on both SYNs enables SACK for the connection.
  sack_ok_ = cfg_.sack && syn.options.sack_permitted;
  snd_wnd_ = syn.window;
  max_snd_wnd_ = snd_wnd_;
  snd_wl1_ = syn.seq;
  touch_keepalive(now);
}

void Connection::take_options(const TcpRepr& syn) {
  // RFC 9293 §3.7.1: send MSS = min(peer's MSS option or 536, what our MTU allows).
  uint16_t peer = syn.options.mss ? *syn.options.mss : 536;
  peer_sent_mss_ = syn.options.mss.has_value();
  snd_mss_ = std::max<uint16_t>(64, std::min(peer, rcv_mss_));  // a hostile MSS of 0 must not stall us
  make_cc();
  // RFC 7323 §2.2: window scaling applies only when both SYNs carried the option. A
  // passive side decides its offer now (it answers with it); an active one sent it.
  if (state_ == TcpState::kListen) rcv_wscale_offer_ = window_scale_for(uint32_t(rx_.capacity()));
  ws_ok_ = cfg_.window_scaling && syn.options.window_scale.has_value();
  if (ws_ok_) {
    // RFC 7323 §2.3: "If a Window Scale option is received with a shift.cnt value larger
    // than 14, the TCP SHOULD log the error but MUST use 14 instead of the specified value."
    snd_wnd_shift_ = std::min<uint8_t>(*syn.options.window_scale, 14);
    rcv_wnd_shift_ = rcv_wscale_offer_;
  } else {
    snd_wnd_shift_ = rcv_wnd_shift_ = 0;
  }
}

uint32_t Connection::seg_window(const TcpRepr& seg) const {
  // RFC 7323 §2.2: "The window field in a segment where the SYN bit is set ... MUST NOT
  // be scaled"; every other window is shifted by the peer's Snd.Wind.Shift.
  return uint32_t(seg.window) << (seg.has(kSyn) ? 0 : snd_wnd_shift_);
}

bool Connection::timestamps_reject(Instant now, const TcpRepr& seg, SegmentSink& out) {
  // RFC 7323 §5.3 R1 applies to every segment but a RST.
  if (!ts_ok_ || seg.has(kRst)) return false;
  if (!seg.options.timestamps) {
    // RFC 7323 §3.2: "If a non-<RST> segment is received without a TSopt, a TCP SHOULD
    // silently drop the segment." A SYN still reaches the RFC 5961 §4 challenge ACK.
    if (seg.has(kSyn)) return false;
    ++stats_.ts_missing;
    return true;
  }
  // RFC 7323 §5.3 R1: "If ... SEG.TSval < TS.Recent, TS.Recent is valid ..., and the RST
  // bit is not set, then treat the arriving segment as not acceptable: Send an
  // acknowledgment in reply ... and drop the segment." Modular comparison (§5.2);
  // §5.5: TS.Recent older than 24 days is no longer valid.
  const bool valid = now - ts_recent_at_ <= kPawsIdle;
  if (valid && int32_t(seg.options.timestamps->tsval - ts_recent_) < 0) {
    ++stats_.paws_rejected;
    send_ack(out, now);
    return true;
  }
  return false;
}

void Connection::update_ts_recent(Instant now, const TcpRepr& seg) {
  // RFC 7323 §4.3 (2) / §5.3 R3: "If SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent
  // then SEG.TSval is copied to TS.Recent" — so an ACK delayed over several segments
  // echoes the earliest one's TSval. A stale TS.Recent (§5.5) is replaced.
  if (!ts_ok_ || !seg.options.timestamps) return;
  const uint32_t tsval = seg.options.timestamps->tsval;
  const bool stale = now - ts_recent_at_ > kPawsIdle;
  if ((stale || int32_t(tsval - ts_recent_) >= 0) && seg.seq <= last_ack_sent_) {
    ts_recent_ = tsval;
    ts_recent_at_ = now;
  }
}

void Connection::enter_sack_recovery(Instant now, uint32_t flight) {
  // RFC 6675 §5 (4.1): RecoveryPoint = HighData; (4.2) ssthresh = cwnd = FlightSize / 2
  // (RFC 5681 eq. 4), no NewReno inflation: pipe counts what left the network.
  in_recovery_ = true;
  recover_ = snd_max_;
  recovery_undone_ = false;
  start_undo_episode();
  cc_->on_loss(now, LossEvent::kFastRetransmit, flight);
  cc_->restore(cc_->ssthresh(), cc_->ssthresh());
  high_rxt_ = snd_una_;
  // (4.3): retransmit HighACK+1 first; with RACK, what it marked lost goes first (RFC
  // 8985 §6: loss detection decides what to retransmit; recovery how fast).
  rexmit_one_ = !rack_on();
  pto_at_ = kInstantNever;  // RFC 8985 §7.2: no probes during recovery
  rtt_timing_ = false;  // Karn: the timed segment may be the one resent
  ++stats_.fast_retransmits;
  ++stats_.sack_recoveries;
}

uint32_t Connection::take_sack(const TcpRepr& seg, std::optional<SackBlock>* dsack) {
  if (!sack_ok_ || seg.options.sack_count == 0) return 0;
  uint32_t fresh = 0;
  const SeqNum floor = seg.ack > snd_una_ ? seg.ack : snd_una_;
  const size_t n = std::min<size_t>(seg.options.sack_count, seg.options.sack.size());
  for (size_t i = 0; i < n; ++i) {
    SackBlock b = seg.options.sack[i];
    if (i == 0 && b.left < b.right) {
      // RFC 2883 §4: the first block is a D-SACK when it lies at or below the cumulative
      // ACK, or inside the second block. Only what we may have sent (within a window
      // below SND.UNA, up to SND.MAX) is believed.
      const bool below = b.right <= seg.ack;
      const bool inside = n > 1 && seg.options.sack[1].left <= b.left && b.right <= seg.options.sack[1].right;
      if (below || inside) {
        if (b.right <= snd_max_ && b.left >= snd_una_ - std::max<uint32_t>(max_snd_wnd_, 1) &&
            uint32_t(b.right - b.left) <= std::max<uint32_t>(max_snd_wnd_, 1))
          *dsack = b;
        if (below) continue;
      }
    }
    // RFC 2018 §3: a block reports [left, right) above the cumulative ACK. Blocks at or
    // below it (RFC 2883 D-SACK) and blocks past what we sent (hostile) are ignored.
    if (!(b.left < b.right) || b.right <= floor || b.right > snd_max_) continue;
    if (b.left < floor) b.left = floor;
    fresh += scoreboard_.add(b.left, b.right);
  }
  return fresh;
}

void Connection::note_duplicate(SeqNum seq, uint32_t len) {
  // RFC 2883 §4: "each duplicate contiguous sequence of data received is reported in at
  // most one D-SACK block"; the ACK goes out at once so the sender learns it quickly.
  if (!sack_ok_ || len == 0) return;
  dsack_ = SackBlock{seq, seq + len};
  ack_now_ = true;
}

void Connection::note_ooo_arrival(SeqNum seq) {
  // RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block of data
  // containing the segment which triggered this ACK"; the rest repeat recent blocks.
  size_t k = 0;
  while (k < sack_recent_n_ && sack_recent_[k] != seq) ++k;
  if (k == sack_recent_n_ && sack_recent_n_ < sack_recent_.size()) ++sack_recent_n_;
  if (k == sack_recent_.size()) k = sack_recent_.size() - 1;
  for (; k > 0; --k) sack_recent_[k] = sack_recent_[k - 1];
  sack_recent_[0] = seq;
}

void Connection::send_challenge_ack(Instant now, SegmentSink& out) {
  // RFC 5961 §7: limit challenge ACKs (per connection here, per second).
  if (now - challenge_window_start_ >= Duration(1'000'000)) {
    challenge_window_start_ = now;
    challenge_count_ = 0;
  }
  if (challenge_count_ >= cfg_.challenge_ack_limit) return;
  ++challenge_count_;
  ++stats_.challenge_acks;
  send_ack(out, now);
}

void Connection::update_send_window(const TcpRepr& seg) {
  // RFC 9293 §3.10.7.4 fifth: "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and
  // SND.WL2 =< SEG.ACK), set SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
  if (snd_wl1_ < seg.seq || (snd_wl1_ == seg.seq && snd_wl2_ <= seg.ack)) {
    persist_probes_ = 0;  // the peer answers: probing may go on (RFC 9293 §3.8.6.1)
    if (seg.window == 0 && snd_wnd_ != 0) ++stats_.zero_windows;
    snd_wnd_ = seg_window(seg);
    snd_wl1_ = seg.seq;
    snd_wl2_ = seg.ack;
    max_snd_wnd_ = std::max(max_snd_wnd_, snd_wnd_);
    if (snd_wnd_ > 0) {
      persist_at_ = kInstantNever;  // RFC 9293 §3.8.6.1: the window opened
      persist_backoff_ = Duration(0);
    }
  }
}

bool Connection::process_ack(Instant now, const TcpRepr& seg, SegmentSink& out) {
  if (state_ == TcpState::kSynReceived) {
    // RFC 9293 §3.10.7.4 fifth, SYN-RECEIVED: "If SND.UNA < SEG.ACK =< SND.NXT, then
    // enter ESTABLISHED state ... If the segment acknowledgment is not acceptable, form
    // a reset segment <SEQ=SEG.ACK><CTL=RST>".
    if (!(snd_una_ < seg.ack && seg.ack <= snd_max_)) {
      send_rst(out, seg.ack);
      return false;
    }
    snd_wnd_ = seg_window(seg);
    max_snd_wnd_ = std::max(max_snd_wnd_, snd_wnd_);
    snd_wl1_ = seg.seq;
    snd_wl2_ = seg.ack;
    if (rtt_timing_ && rexmit_count_ == 0) rtt_sample(now - rtt_start_);
    rtt_timing_ = false;
    if (rexmit_count_ > 0 && !have_rtt_) rto_ = std::max(rto_, Duration(3'000'000));  // RFC 6298 §5.7
    rexmit_count_ = 0;
    recover_ = seg.ack;
    // A close() during SYN-RECEIVED queued a FIN: RFC 9293 §3.10.4 sends it now.
    set_state(fin_queued_ ? TcpState::kFinWait1 : TcpState::kEstablished);
  }

  // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT]; others get a
  // challenge ACK and the segment is dropped (RFC 9293 §3.10.7.4: ACK > SND.NXT: "send
  // an ACK, drop the segment, and return").
  if (seg.ack > snd_max_ || seg.ack < snd_una_ - std::max<uint32_t>(max_snd_wnd_, 1)) {
    send_challenge_ack(now, out);
    return false;
  }
  if (seg.ack < snd_una_) return true;  // an old duplicate: "it can be ignored"

  const uint32_t acked = uint32_t(seg.ack - snd_una_);
  const uint32_t flight_before = flight_size();
  std::optional<SackBlock> dsack;
  const uint32_t newly_sacked = take_sack(seg, &dsack);
  if (dsack) note_dsack_received(*dsack);
  // RFC 8985 §6.2 steps 1-4, before SND.UNA moves (cumulatively acknowledged segments count).
  if (rack_on()) rack_on_ack(now, seg, dsack.has_value());
  // RFC 5681 §2 DUPLICATE ACKNOWLEDGMENT: outstanding data, no data, no SYN/FIN, same
  // ACK number, same advertised window.
  // A zero window is not a loss signal: ACKs to window probes repeat themselves.
  const bool dupack = acked == 0 && flight_before > 0 && snd_wnd_ > 0 && seg.payload.empty() &&
                      !seg.has(kSyn) && !seg.has(kFin) &&
                      seg_window(seg) == snd_wnd_;
  // RFC 6675 §2 DupAck: with SACK, an ACK that SACKs new octets counts, window or not.
  const bool sack_dupack = acked == 0 && flight_before > 0 && newly_sacked > 0 &&
                           seg.payload.empty() && !seg.has(kSyn) && !seg.has(kFin);
  update_send_window(seg);

  if (acked > 0) {
    // The data bytes acknowledged exclude our SYN and FIN (RFC 9293 §3.4).
    uint32_t data_acked = acked;
    if (!syn_acked_) {
      --data_acked;
      syn_acked_ = true;
    }
    if (fin_queued_ && seg.ack > fin_seq_ && snd_una_ <= fin_seq_) --data_acked;
    tx_.consume(data_acked);
    snd_una_ = seg.ack;
    scoreboard_.advance(snd_una_);
    sent_.advance(snd_una_);
    if (snd_nxt_ < snd_una_) snd_nxt_ = snd_una_;
    skip_sacked();
    stats_.bytes_out += data_acked;

    Duration ack_rtt{-1};  // this ACK's RTT sample, for HyStart++ (RFC 9406 §4.2)
    if (ts_ok_ && seg.options.timestamps) {
      // RFC 7323 §4.1 RTTM: RTT = now - SEG.TSecr on an ACK of new data. TSecr echoes
      // the segment that advanced the window (§4.3), retransmitted or not, so the sample
      // has no ambiguity for Karn's rule to guard against. An echo from the future
      // (a forged or corrupted TSecr) gives no sample.
      const uint32_t ticks = ts_now(now) - seg.options.timestamps->tsecr;
      if (ticks < (1u << 31)) {
        // RFC 7323 Appendix G: with a sample on every ACK, weigh each by the number of
        // ACKs expected per RTT (FlightSize / (2 * SMSS), delayed ACKs).
        const uint32_t expected = std::max<uint32_t>(1, flight_before / (2u * snd_mss_));
        ack_rtt = Duration(int64_t(ticks) * 1000);
        rtt_sample(ack_rtt, expected);
      }
      rtt_timing_ = false;
    } else if (rtt_timing_ && seg.ack > rtt_seq_) {
      // RFC 6298 §3 / Karn: sample only a segment timed on its first transmission.
      ack_rtt = now - rtt_start_;
      rtt_sample(ack_rtt);
      rtt_timing_ = false;
    }
    rexmit_count_ = 0;
    dupacks_ = 0;
    // RFC 6298 §5.2/5.3: stop the timer when all is acknowledged, else restart it.
    if (snd_una_ == snd_max_) rto_at_ = kInstantNever; else arm_rto(now);
    tlp_on_ack(now, seg, dsack, flight_before);
    // RFC 8985 §6.2 step 5: RACK marks losses on every ACK.
    const bool rack_lost = rack_on() && rack_detect_loss(now);

    if (!in_recovery_ && snd_una_ >= recover_ &&
        (rack_on() ? rack_lost
                   : sack_ok_ && seg.options.sack_count > 0 && scoreboard_.is_lost(snd_una_, snd_mss_))) {
      // RFC 6675 §5 (4) IsLost(HighACK+1), tested on every ACK with SACK information,
      // not only on duplicates: a cumulative ACK that also SACKs DupThresh segments
      // past a hole is the same evidence (Linux tests every ACK likewise).
      enter_sack_recovery(now, flight_before);
    } else if (in_recovery_) {
      if (seg.ack >= recover_) {
        // RFC 6582 §3.2 step 6: a full acknowledgment ends fast recovery.
        in_recovery_ = false;
        if (!recovery_undone_) cc_->on_recovery_exit(flight_size());
        recovery_undone_ = false;
        // RFC 8985 §6.2 step 4: "exiting Fast or RTO recovery": the D-SACK widening of
        // the reordering window lasts 16 recoveries without D-SACK.
        if (rack_.reo_wnd_persist > 0 && --rack_.reo_wnd_persist == 0) rack_.reo_wnd_mult = 1;
      } else if (!sack_ok_) {
        // RFC 6582 §3.2 step 5: partial ACK: retransmit the first unacknowledged
        // segment, deflate cwnd, and (first partial ACK) reset the timer (done above).
        rexmit_one_ = true;
        cc_->on_partial_ack(data_acked);
      }
      // RFC 6675 §5 (C): with SACK a partial ACK only updates the scoreboard; pipe and
      // NextSeg() decide what is sent (dispatch).
    } else {
      AckSample a;
      a.now = now;
      a.acked = data_acked;
      a.flight = flight_before;
      a.ack = seg.ack;
      a.snd_nxt = snd_max_;
      a.rtt = ack_rtt;
      a.srtt = have_rtt_ ? srtt_ : Duration(0);
      cc_->on_ack(a);
    }
    arm_pto(now);  // RFC 8985 §7.2: (re)armed on an ACK of new data
  } else if (dupack || (sack_ok_ && sack_dupack)) {
    ++dupacks_;
    ++stats_.dupacks;
    // RFC 6675 §5 (4): recovery starts at DupThresh duplicates or when IsLost(HighACK+1);
    // with RACK (RFC 8985 §6.2), when RACK marks a segment lost.
    const bool lost = rack_on() ? rack_detect_loss(now)
                                : dupacks_ >= 3 || (sack_ok_ && scoreboard_.is_lost(snd_una_, snd_mss_));
    if (in_recovery_) {
      if (!sack_ok_) cc_->on_dupack_in_recovery();  // RFC 6582 §3.2 step 4 (no SACK)
    } else if (lost && snd_una_ >= recover_) {
      // RFC 6582 §3.2 step 2: the third duplicate ACK starts fast retransmit, unless it
      // does not cover more than "recover" (still inside a previous recovery episode).
      // RFC 6675 §5 (4.1): RecoveryPoint = HighData.
      if (sack_ok_) {
        enter_sack_recovery(now, flight_before);
      } else {
        in_recovery_ = true;
        recover_ = snd_max_;
        cc_->on_loss(now, LossEvent::kFastRetransmit, flight_before);
        rexmit_one_ = true;   // RFC 5681 §3.2 step 2: resend the first unacknowledged segment
        rtt_timing_ = false;  // Karn: the timed segment may be the one resent
        ++stats_.fast_retransmits;
      }
    }
  }

  // State-specific parts of RFC 9293 §3.10.7.4 fifth.
  switch (state_) {
    case TcpState::kFinWait1:
      if (fin_acked()) {
        set_state(TcpState::kFinWait2);  // "if the FIN segment is now acknowledged"
        if (orphaned_) timewait_at_ = now + cfg_.fin_wait2_timeout;  // nobody will read on
      }
      break;
    case TcpState::kClosing:
      if (fin_acked()) {
        enter_time_wait(now);  // "if the ACK acknowledges our FIN, enter TIME-WAIT"
        return false;
      }
      break;
    case TcpState::kLastAck:
      if (fin_acked()) {
        die(0);  // "if our FIN is now acknowledged, delete the TCB, enter CLOSED"
        return false;
      }
      break;
    default:
      break;
  }
  return true;
}

void Connection::process_text(Instant now, SeqNum seq, std::span<const uint8_t> data, bool fin) {
  if (!data.empty()) {
    const uint32_t off = uint32_t(seq - rcv_nxt_);
    stats_.bytes_in += data.size();
    if (off == 0 && ooo_.empty()) {
      // The common case: in order, nothing waiting behind a hole. With a read posted
      // and nothing buffered before this, the bytes go straight to the reader.
      size_t direct = 0;
      if (posted_got_ < posted_.size() && rx_.empty()) {
        direct = std::min(data.size(), posted_.size() - posted_got_);
        copy_bytes(posted_.data() + posted_got_, data.data(), direct);
        posted_got_ += direct;
        stats_.bytes_direct += direct;
      }
      size_t n = direct + rx_.write(data.subspan(direct));
      rcv_nxt_ += uint32_t(n);
      unacked_bytes_ += uint32_t(n);
      // RFC 5681 §4.2 / RFC 9293 §3.8.6.3: ACK at least every second full-sized segment
      // (cfg_.ack_every); otherwise delay it (bounded by cfg_.delayed_ack, < 0.5 s).
      // "Full-sized" is the sender's MSS, which we only see: the largest segment so far.
      largest_seg_ = std::max<uint32_t>(largest_seg_, uint32_t(n));
      if (unacked_bytes_ >= cfg_.ack_every * std::min<uint32_t>(largest_seg_, rcv_mss_) ||
          cfg_.delayed_ack.count() == 0)
        ack_now_ = true;
      else if (delack_at_ == kInstantNever) delack_at_ = now + cfg_.delayed_ack;
    } else {
      ++stats_.ooo_segments;
      // RFC 2883 §4: data already held past a hole is a duplicate too.
      for (size_t k = 0; k < ooo_.ranges(); ++k) {
        const uint32_t l = std::max(off, ooo_.range(k).start);
        const uint32_t r = std::min(off + uint32_t(data.size()), ooo_.range(k).end);
        if (l < r) {
          note_duplicate(rcv_nxt_ + l, r - l);
          break;
        }
      }
      rx_.write_at(off, data);
      if (!ooo_.add(off, uint32_t(data.size()))) {
        ++stats_.ooo_dropped;  // too many holes: drop, the sender retransmits
        fin = false;
      } else if (off > 0) {
        note_ooo_arrival(seq);
      }
      uint32_t contig = ooo_.pop_front();
      rx_.commit(contig);
      rcv_nxt_ += contig;
      // RFC 5681 §4.2: immediate ACK for an out-of-order segment and for one that
      // fills a hole, so fast retransmit and recovery work.
      ack_now_ = true;
      ooo_ack_due_ = true;
    }
  }
  if (fin) {
    const SeqNum fin_seq = seq + uint32_t(data.size());
    if (fin_seq == rcv_nxt_) {
      process_fin(now);
    } else {
      ooo_fin_ = fin_seq;  // a FIN behind a hole: taken when the hole fills
      ack_now_ = true;
    }
  } else if (ooo_fin_ && *ooo_fin_ == rcv_nxt_) {
    process_fin(now);
  }
}

void Connection::process_fin(Instant now) {
  // RFC 9293 §3.10.7.4 eighth: advance RCV.NXT over the FIN, send an ACK.
  rcv_nxt_ += 1;
  fin_received_ = true;
  ooo_fin_.reset();
  ooo_.clear();
  ack_now_ = true;
  switch (state_) {
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
      set_state(TcpState::kCloseWait);
      break;
    case TcpState::kFinWait1:
      // "If our FIN has been ACKed ... enter TIME-WAIT; otherwise, enter CLOSING".
      if (fin_acked()) enter_time_wait(now); else set_state(TcpState::kClosing);
      break;
    case TcpState::kFinWait2:
      enter_time_wait(now);
      break;
    case TcpState::kTimeWait:
      enter_time_wait(now);  // restart the 2 MSL timeout
      break;
    default:
      break;  // CLOSE-WAIT, CLOSING, LAST-ACK: remain
  }
}

}  // namespace utcp
