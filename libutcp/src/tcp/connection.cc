// connection.cc - a connection's life from the user's side: open, send, receive, close, abort.
#include "tcp/connection.h"

#include <algorithm>

namespace utcp {

const char* to_string(TcpState s) {
  switch (s) {
    case TcpState::kClosed: return "CLOSED";
    case TcpState::kListen: return "LISTEN";
    case TcpState::kSynSent: return "SYN-SENT";
    case TcpState::kSynReceived: return "SYN-RECEIVED";
    case TcpState::kEstablished: return "ESTABLISHED";
    case TcpState::kFinWait1: return "FIN-WAIT-1";
    case TcpState::kFinWait2: return "FIN-WAIT-2";
    case TcpState::kCloseWait: return "CLOSE-WAIT";
    case TcpState::kClosing: return "CLOSING";
    case TcpState::kLastAck: return "LAST-ACK";
    case TcpState::kTimeWait: return "TIME-WAIT";
  }
  return "?";
}

Connection::Connection(const TcpConfig& cfg, const FourTuple& tuple, uint16_t mss_local)
    : cfg_(cfg),
      tuple_(tuple),
      rcv_mss_(mss_local),
      tx_(cfg.sndbuf),
      rx_(cfg.rcvbuf),
      rto_(cfg.rto_initial) {
  make_cc();  // at the default MSS; again once the SYNs have set it
  // RFC 9293 §3.8.6.3: an ACK MUST NOT be delayed 0.5 s or more; utcp's bound is 200 ms.
  set_ack_policy(cfg_.delayed_ack, cfg_.ack_every);
  cfg_.rto_min = std::clamp(cfg_.rto_min, Duration(1000), cfg_.rto_max);
  rto_ = std::clamp(rto_, cfg_.rto_min, cfg_.rto_max);
}

Connection::~Connection() = default;

void Connection::set_ack_policy(Duration delayed_ack, uint32_t ack_every) {
  // RFC 9293 §3.8.6.3: an ACK MUST NOT be delayed 0.5 s or more; utcp's bound is 200 ms.
  cfg_.delayed_ack = std::clamp(delayed_ack, Duration(0), Duration(200'000));
  cfg_.ack_every = std::clamp<uint32_t>(ack_every, 1, 16);
}

int Connection::check_config(const TcpConfig& cfg) {
  return congestion_control_known(cfg.congestion) ? 0 : -EINVAL;
}

void Connection::make_cc() {
  cc_ = make_congestion_control(cfg_.congestion, snd_mss_, cfg_.hystart);
  // An unknown name cannot get here through set_congestion(); a stack that skipped
  // check_config() gets the default rather than no congestion control at all.
  if (!cc_) {
    cfg_.congestion = "cubic";
    cc_ = make_congestion_control(cfg_.congestion, snd_mss_, cfg_.hystart);
  }
}

int Connection::set_congestion(std::string_view name) {
  if (!congestion_control_known(name)) return -EINVAL;
  if (is_synchronized()) return -EISCONN;
  cfg_.congestion = std::string(name);
  make_cc();  // nothing has been sent under the old one: start afresh
  return 0;
}

Connection::Stats Connection::stats() const {
  Stats s = stats_;
  s.cc = cc_->state();
  s.rack_rtt = rack_.rtt;
  s.rack_min_rtt = rack_.min_rtt == Duration::max() ? Duration(0) : rack_.min_rtt;
  s.rack_reo_wnd = rack_reo_wnd();
  s.rack_reo_wnd_mult = rack_.reo_wnd_mult;
  s.rack_reordering_seen = rack_.reord;
  s.tlp_deadline = pto_at_;
  return s;
}

void Connection::open_active(Instant now, SeqNum iss) {
  // RFC 9293 §3.10.1 OPEN (active): select an ISS, send SYN, enter SYN-SENT.
  iss_ = snd_una_ = snd_nxt_ = snd_max_ = iss;
  ts_offset_ = iss.raw();
  passive_ = false;
  set_state(TcpState::kSynSent);
  (void)now;  // the SYN leaves on the next dispatch()
}

void Connection::open_passive(SeqNum iss) {
  iss_ = snd_una_ = snd_nxt_ = snd_max_ = iss;
  ts_offset_ = iss.raw();
  passive_ = true;
  set_state(TcpState::kListen);
}

bool Connection::writable() const {
  if (error_ != 0 || fin_queued_) return true;  // a write would return an error at once
  return is_synchronized() && tx_.free() > 0;
}

int64_t Connection::send(std::span<const uint8_t> data) {
  if (error_ != 0) return -error_;
  switch (state_) {
    case TcpState::kClosed:
    case TcpState::kListen:
      return -ENOTCONN;  // RFC 9293 §3.10.2: "error: connection does not exist"
    case TcpState::kSynSent:
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
    case TcpState::kCloseWait:
      break;  // RFC 9293 §3.10.2: queue (before ESTABLISHED: sent once it is reached)
    default:
      return -EPIPE;  // RFC 9293 §3.10.2: "error: connection closing"
  }
  if (fin_queued_) return -EPIPE;
  return int64_t(tx_.write(data));
}

int64_t Connection::recv(std::span<uint8_t> out) {
  if (!rx_.empty()) {
    size_t n = rx_.read(out);
    // RFC 9293 §3.8.6.2.2: a read may open the window enough for a window update.
    if (want_window_update()) ack_now_ = true;
    return int64_t(n);
  }
  if (fin_received_) return 0;
  if (error_ != 0) return -error_;
  if (state_ == TcpState::kClosed || state_ == TcpState::kListen) return -ENOTCONN;
  return -EAGAIN;
}

void Connection::shutdown_write() {
  if (fin_queued_) return;
  switch (state_) {
    case TcpState::kListen:
    case TcpState::kSynSent:
      // RFC 9293 §3.10.4: delete the TCB, enter CLOSED.
      set_state(TcpState::kClosed);
      return;
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
      // RFC 9293 §3.10.4: FIN after all queued data; FIN-WAIT-1 (from SYN-RECEIVED the FIN
      // waits until our SYN is acknowledged, see process_ack).
      fin_queued_ = true;
      fin_seq_ = snd_una_ + uint32_t(syn_acked() ? 0 : 1) + uint32_t(tx_.size());
      if (state_ == TcpState::kEstablished) set_state(TcpState::kFinWait1);
      return;
    case TcpState::kCloseWait:
      // RFC 9293 §3.10.4: queue the FIN, enter LAST-ACK.
      fin_queued_ = true;
      fin_seq_ = snd_una_ + uint32_t(tx_.size());
      set_state(TcpState::kLastAck);
      return;
    default:
      return;  // already closing
  }
}

void Connection::abort(SegmentSink& out) {
  // RFC 9293 §3.10.5 ABORT: in SYN-RECEIVED and the synchronized states (except the
  // closing ones past our FIN's ACK) send <SEQ=SND.NXT><CTL=RST>; then CLOSED.
  switch (state_) {
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
    case TcpState::kCloseWait:
      send_rst(out, snd_nxt_);
      break;
    default:
      break;
  }
  tx_.consume(tx_.size());
  rx_.consume(rx_.size());
  ooo_.clear();
  rto_at_ = persist_at_ = delack_at_ = keepalive_at_ = timewait_at_ = kInstantNever;
  rack_at_ = pto_at_ = kInstantNever;
  tlp_now_ = false;
  set_state(TcpState::kClosed);
}

void Connection::orphan(Instant now) {
  orphaned_ = true;
  if (state_ == TcpState::kFinWait2 && timewait_at_ == kInstantNever)
    timewait_at_ = now + cfg_.fin_wait2_timeout;
}

void Connection::set_keepalive(Instant now, bool on, Duration idle, Duration interval,
                               uint32_t count) {
  cfg_.keepalive = on;
  cfg_.keepalive_idle = idle;
  cfg_.keepalive_interval = interval;
  cfg_.keepalive_count = count;
  keepalive_probes_ = 0;
  touch_keepalive(now);
}

bool Connection::set_buffers(uint32_t rcvbuf, uint32_t sndbuf) {
  if (!tx_.empty() || !rx_.empty() || !ooo_.empty() || is_synchronized()) return false;
  if (rcvbuf == 0 || sndbuf == 0) return false;
  cfg_.rcvbuf = rcvbuf;
  cfg_.sndbuf = sndbuf;
  rx_.reset(rcvbuf);
  tx_.reset(sndbuf);
  return true;
}

void Connection::die(int err) {
  error_ = err;
  tx_.consume(tx_.size());
  ooo_.clear();
  rto_at_ = persist_at_ = delack_at_ = keepalive_at_ = timewait_at_ = kInstantNever;
  rack_at_ = pto_at_ = kInstantNever;
  ack_now_ = rexmit_one_ = probe_now_ = keepalive_now_ = tlp_now_ = false;
  set_state(TcpState::kClosed);
}

}  // namespace utcp
