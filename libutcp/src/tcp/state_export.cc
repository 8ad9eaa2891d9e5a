// state_export.cc - ConnectionState: export from a Connection, checked import, byte format.
#include "tcp/state_export.h"

#include <algorithm>
#include <cstring>

namespace utcp {
namespace {

class Writer {
 public:
  void u8(uint8_t v) { b_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void i64(int64_t v) { put(uint64_t(v), 8); }
  void bytes(const std::vector<uint8_t>& v) {
    u32(uint32_t(v.size()));
    b_.insert(b_.end(), v.begin(), v.end());
  }
  std::vector<uint8_t>& out() { return b_; }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b_.push_back(uint8_t(v >> (8 * i)));
  }
  std::vector<uint8_t> b_;
};

// Every read checks the remaining length first; a short input sets ok_ = false.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  bool ok() const { return ok_; }
  size_t left() const { return b_.size() - pos_; }
  uint8_t u8() { return uint8_t(get(1)); }
  uint16_t u16() { return uint16_t(get(2)); }
  uint32_t u32() { return uint32_t(get(4)); }
  int64_t i64() { return int64_t(get(8)); }
  bool flag() {
    uint8_t v = u8();
    if (v > 1) ok_ = false;
    return v == 1;
  }
  std::vector<uint8_t> bytes(uint32_t max) {
    uint32_t n = u32();
    if (!ok_ || n > max || n > left()) {
      ok_ = false;
      return {};
    }
    std::vector<uint8_t> v(b_.begin() + pos_, b_.begin() + pos_ + n);
    pos_ += n;
    return v;
  }

 private:
  uint64_t get(int n) {
    if (!ok_ || left() < size_t(n)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(b_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::vector<uint8_t> ConnectionState::serialize() const {
  Writer w;
  w.u32(kMagic);
  w.u16(kVersion);
  w.u16(0);  // reserved, must be zero
  w.u32(0);  // total length, patched below
  w.u32(tuple.local_ip.v);
  w.u16(tuple.local_port);
  w.u32(tuple.remote_ip.v);
  w.u16(tuple.remote_port);
  w.u8(uint8_t(state));
  w.u8(passive);
  for (uint32_t v : {iss, snd_una, snd_nxt, snd_max, snd_wnd, max_snd_wnd, snd_wl1, snd_wl2, irs,
                     rcv_nxt, rcv_adv})
    w.u32(v);
  w.u8(snd_wnd_shift);
  w.u8(rcv_wnd_shift);
  w.u8(ws_ok);
  w.u8(ts_ok);
  w.u8(sack_ok);
  w.u32(ts_offset);
  w.u32(ts_recent);
  w.u16(snd_mss);
  w.u16(rcv_mss);
  w.u8(fin_queued);
  w.u8(fin_received);
  w.u32(fin_seq);
  w.u8(have_rtt);
  w.i64(srtt_us);
  w.i64(rttvar_us);
  w.i64(rto_us);
  w.u32(cwnd);
  w.u32(ssthresh);
  w.u8(uint8_t(congestion.size()));
  for (char c : congestion) w.u8(uint8_t(c));
  for (uint32_t v : {cubic_w_max, cubic_cwnd_epoch, cubic_w_est, cubic_cwnd_prior}) w.u32(v);
  w.i64(cubic_k_us);
  w.i64(cubic_epoch_age_us);
  w.u8(cubic_after_timeout);
  w.u8(hystart_phase);
  w.i64(hystart_last_min_rtt_us);
  w.i64(hystart_cur_min_rtt_us);
  w.i64(hystart_css_baseline_us);
  w.u32(hystart_rtt_samples);
  w.u32(hystart_css_rounds);
  w.u8(hystart_window_set);
  w.u32(hystart_window_end);
  w.u32(rcvbuf);
  w.u32(sndbuf);
  w.u8(nodelay);
  w.u8(keepalive);
  w.i64(keepalive_idle_us);
  w.i64(keepalive_interval_us);
  w.u32(keepalive_count);
  w.i64(timewait_left_us);
  w.bytes(send_data);
  w.bytes(recv_data);
  auto& b = w.out();
  const uint32_t len = uint32_t(b.size());
  for (int i = 0; i < 4; ++i) b[8 + i] = uint8_t(len >> (8 * i));
  return std::move(b);
}

std::optional<ConnectionState> ConnectionState::parse(std::span<const uint8_t> bytes,
                                                      const char** err) {
  auto fail = [&](const char* m) {
    if (err) *err = m;
    return std::nullopt;
  };
  Reader r(bytes);
  if (r.u32() != kMagic || !r.ok()) return fail("not a utcp connection state (bad magic)");
  if (r.u16() != kVersion) return fail("unsupported connection state version");
  if (r.u16() != 0) return fail("reserved field not zero");
  if (r.u32() != bytes.size()) return fail("length field does not match the bytes given");
  ConnectionState s;
  s.tuple.local_ip.v = r.u32();
  s.tuple.local_port = r.u16();
  s.tuple.remote_ip.v = r.u32();
  s.tuple.remote_port = r.u16();
  uint8_t st = r.u8();
  if (st > uint8_t(TcpState::kTimeWait)) return fail("unknown TCP state");
  s.state = TcpState(st);
  s.passive = r.flag();
  for (uint32_t* v : {&s.iss, &s.snd_una, &s.snd_nxt, &s.snd_max, &s.snd_wnd, &s.max_snd_wnd,
                      &s.snd_wl1, &s.snd_wl2, &s.irs, &s.rcv_nxt, &s.rcv_adv})
    *v = r.u32();
  s.snd_wnd_shift = r.u8();
  s.rcv_wnd_shift = r.u8();
  s.ws_ok = r.flag();
  s.ts_ok = r.flag();
  s.sack_ok = r.flag();
  s.ts_offset = r.u32();
  s.ts_recent = r.u32();
  s.snd_mss = r.u16();
  s.rcv_mss = r.u16();
  s.fin_queued = r.flag();
  s.fin_received = r.flag();
  s.fin_seq = r.u32();
  s.have_rtt = r.flag();
  s.srtt_us = r.i64();
  s.rttvar_us = r.i64();
  s.rto_us = r.i64();
  s.cwnd = r.u32();
  s.ssthresh = r.u32();
  const uint8_t name_len = r.u8();
  if (name_len == 0 || name_len > 15) return fail("congestion control name length out of range");
  for (uint8_t i = 0; i < name_len; ++i) {
    const char c = char(r.u8());
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return fail("congestion control name has a bad character");
    s.congestion.push_back(c);
  }
  for (uint32_t* v : {&s.cubic_w_max, &s.cubic_cwnd_epoch, &s.cubic_w_est, &s.cubic_cwnd_prior})
    *v = r.u32();
  s.cubic_k_us = r.i64();
  s.cubic_epoch_age_us = r.i64();
  s.cubic_after_timeout = r.flag();
  s.hystart_phase = r.u8();
  s.hystart_last_min_rtt_us = r.i64();
  s.hystart_cur_min_rtt_us = r.i64();
  s.hystart_css_baseline_us = r.i64();
  s.hystart_rtt_samples = r.u32();
  s.hystart_css_rounds = r.u32();
  s.hystart_window_set = r.flag();
  s.hystart_window_end = r.u32();
  s.rcvbuf = r.u32();
  s.sndbuf = r.u32();
  s.nodelay = r.flag();
  s.keepalive = r.flag();
  s.keepalive_idle_us = r.i64();
  s.keepalive_interval_us = r.i64();
  s.keepalive_count = r.u32();
  s.timewait_left_us = r.i64();
  s.send_data = r.bytes(kMaxBuffer);
  s.recv_data = r.bytes(kMaxBuffer);
  if (!r.ok()) return fail("truncated or malformed connection state");
  if (r.left() != 0) return fail("trailing bytes after connection state");
  return s;
}

const char* ConnectionState::validate() const {
  switch (state) {
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
    case TcpState::kCloseWait:
    case TcpState::kClosing:
    case TcpState::kLastAck:
    case TcpState::kTimeWait:
      break;
    default:
      return "only synchronized connections can move";
  }
  const SeqNum una(snd_una), nxt(snd_nxt), mx(snd_max), is(iss), ir(irs), rn(rcv_nxt), ra(rcv_adv);
  // (ISS/IRS are not compared with SND.UNA/RCV.NXT: after 2^31 bytes they wrap past.)
  if (una == is) return "our SYN is not acknowledged";
  if (rn == ir) return "the peer's SYN was not received";
  if (!(una <= nxt && nxt <= mx)) return "need SND.UNA <= SND.NXT <= SND.MAX";
  if (snd_wnd_shift > 14 || rcv_wnd_shift > 14) return "window shift above 14 (RFC 7323 §2.3)";
  if (!ws_ok && (snd_wnd_shift != 0 || rcv_wnd_shift != 0))
    return "window shift without negotiated scaling (RFC 7323 §2.2)";
  if (ts_ok && snd_mss < 64 + 12) return "MSS leaves no room for data after the timestamps";
  if (snd_wnd > (0xffffu << snd_wnd_shift)) return "send window larger than the field allows";
  if (snd_mss < 64 || rcv_mss < 64 || snd_mss > 65495 || rcv_mss > 65495) return "MSS out of range";
  if (rcvbuf == 0 || sndbuf == 0 || rcvbuf > kMaxBuffer || sndbuf > kMaxBuffer)
    return "buffer size out of range";
  if (send_data.size() > sndbuf) return "send data exceeds the send buffer";
  if (recv_data.size() > rcvbuf) return "received data exceeds the receive buffer";
  if (ra < rn || uint32_t(ra - rn) > rcvbuf - recv_data.size())
    return "advertised window inconsistent with the receive buffer";
  const bool fin_state = state == TcpState::kFinWait1 || state == TcpState::kFinWait2 ||
                         state == TcpState::kClosing || state == TcpState::kLastAck ||
                         state == TcpState::kTimeWait;
  if (fin_queued != fin_state) return "FIN queued does not match the state";
  const bool rfin_state = state == TcpState::kCloseWait || state == TcpState::kClosing ||
                          state == TcpState::kLastAck || state == TcpState::kTimeWait;
  if (fin_received != rfin_state) return "FIN received does not match the state";
  const uint32_t outstanding = uint32_t(mx - una);
  if (fin_queued) {
    const SeqNum fs(fin_seq);
    const bool fin_acked = una > fs;
    if (fin_acked) {
      if (!send_data.empty() || una != fs + 1) return "FIN acknowledged but data remains";
    } else if (fs != una + uint32_t(send_data.size())) {
      return "FIN sequence does not follow the send data";
    }
    if (mx > fs + 1) return "SND.MAX beyond our FIN";
  } else if (outstanding > send_data.size() + 1) {  // +1: a zero-window probe byte
    return "more data in flight than in the send queue";
  }
  if (srtt_us < 0 || rttvar_us < 0 || rto_us <= 0 || rto_us > 3600'000'000LL)
    return "RTT estimator out of range";
  if (cwnd == 0 || ssthresh == 0) return "congestion window is zero";
  if (!congestion_control_known(congestion)) return "unknown congestion control";
  if (cubic_epoch_age_us < -1 || cubic_epoch_age_us > kMaxEpochAge) return "CUBIC epoch age out of range";
  if (hystart_phase > uint8_t(HyStartPhase::kDone)) return "unknown HyStart++ phase";
  for (int64_t v : {hystart_last_min_rtt_us, hystart_cur_min_rtt_us, hystart_css_baseline_us})
    if (v < -1 || v > 3600'000'000LL) return "HyStart++ RTT out of range";
  {
    // The algorithm checks its own variables (as import will).
    auto cc = make_congestion_control(congestion, snd_mss, false);
    if (const char* why = cc->import(congestion_state(Instant(Duration(kMaxEpochAge)))))
      return why;
  }
  if (keepalive && (keepalive_idle_us <= 0 || keepalive_interval_us <= 0 || keepalive_count == 0))
    return "keepalive parameters out of range";
  if (timewait_left_us < 0) return "negative TIME-WAIT";
  return nullptr;
}

CongestionState ConnectionState::congestion_state(Instant now) const {
  CongestionState c;
  c.name = congestion;
  c.cwnd = cwnd;
  c.ssthresh = ssthresh;
  c.w_max = cubic_w_max;
  c.cwnd_epoch = cubic_cwnd_epoch;
  c.w_est = cubic_w_est;
  c.cwnd_prior = cubic_cwnd_prior;
  c.k = Duration(cubic_k_us);
  c.epoch_start = cubic_epoch_age_us < 0 ? kInstantNever : now - Duration(cubic_epoch_age_us);
  c.after_timeout = cubic_after_timeout;
  auto rtt = [](int64_t us) { return us < 0 ? HyStartPlusPlus::kInfinity : Duration(us); };
  c.hystart.phase = HyStartPhase(hystart_phase);
  c.hystart.last_round_min_rtt = rtt(hystart_last_min_rtt_us);
  c.hystart.current_round_min_rtt = rtt(hystart_cur_min_rtt_us);
  c.hystart.css_baseline_min_rtt = rtt(hystart_css_baseline_us);
  c.hystart.rtt_samples = hystart_rtt_samples;
  c.hystart.css_rounds = hystart_css_rounds;
  c.hystart.window_set = hystart_window_set;
  c.hystart.window_end = SeqNum(hystart_window_end);
  return c;
}

ConnectionState Connection::export_state(Instant now) const {
  ConnectionState s;
  s.tuple = tuple_;
  s.state = state_;
  s.passive = passive_;
  s.iss = iss_.raw();
  s.snd_una = snd_una_.raw();
  s.snd_nxt = snd_nxt_.raw();
  s.snd_max = snd_max_.raw();
  s.snd_wnd = snd_wnd_;
  s.max_snd_wnd = max_snd_wnd_;
  s.snd_wl1 = snd_wl1_.raw();
  s.snd_wl2 = snd_wl2_.raw();
  s.irs = irs_.raw();
  s.rcv_nxt = rcv_nxt_.raw();
  s.rcv_adv = rcv_adv_.raw();
  s.snd_wnd_shift = snd_wnd_shift_;
  s.rcv_wnd_shift = rcv_wnd_shift_;
  s.ws_ok = ws_ok_;
  s.ts_ok = ts_ok_;
  s.sack_ok = sack_ok_;
  s.ts_offset = ts_offset_;
  s.ts_recent = ts_recent_;
  s.snd_mss = snd_mss_;
  s.rcv_mss = rcv_mss_;
  s.fin_queued = fin_queued_;
  s.fin_received = fin_received_;
  s.fin_seq = fin_seq_.raw();
  s.have_rtt = have_rtt_;
  s.srtt_us = srtt_.count();
  s.rttvar_us = rttvar_.count();
  s.rto_us = rto_.count();
  const CongestionState c = cc_->state();
  s.cwnd = c.cwnd;
  s.ssthresh = c.ssthresh;
  s.congestion = std::string(c.name);
  s.cubic_w_max = c.w_max;
  s.cubic_cwnd_epoch = c.cwnd_epoch;
  s.cubic_w_est = c.w_est;
  s.cubic_cwnd_prior = c.cwnd_prior;
  s.cubic_k_us = c.k.count();
  s.cubic_epoch_age_us = c.epoch_start == kInstantNever
                             ? -1
                             : std::clamp<int64_t>((now - c.epoch_start).count(), 0, ConnectionState::kMaxEpochAge);
  s.cubic_after_timeout = c.after_timeout;
  auto rtt = [](Duration d) { return d == HyStartPlusPlus::kInfinity ? int64_t(-1) : d.count(); };
  s.hystart_phase = uint8_t(c.hystart.phase);
  s.hystart_last_min_rtt_us = rtt(c.hystart.last_round_min_rtt);
  s.hystart_cur_min_rtt_us = rtt(c.hystart.current_round_min_rtt);
  s.hystart_css_baseline_us = rtt(c.hystart.css_baseline_min_rtt);
  s.hystart_rtt_samples = c.hystart.rtt_samples;
  s.hystart_css_rounds = c.hystart.css_rounds;
  s.hystart_window_set = c.hystart.window_set;
  s.hystart_window_end = c.hystart.window_end.raw();
  s.rcvbuf = uint32_t(rx_.capacity());
  s.sndbuf = uint32_t(tx_.capacity());
  s.nodelay = cfg_.nodelay;
  s.keepalive = cfg_.keepalive;
  s.keepalive_idle_us = cfg_.keepalive_idle.count();
  s.keepalive_interval_us = cfg_.keepalive_interval.count();
  s.keepalive_count = cfg_.keepalive_count;
  s.timewait_left_us = timewait_at_ == kInstantNever ? 0 : std::max<int64_t>(0, (timewait_at_ - now).count());
  s.send_data.resize(tx_.size());
  tx_.peek(0, s.send_data);
  s.recv_data.resize(rx_.size());
  rx_.peek(0, s.recv_data);
  return s;
}

std::unique_ptr<Connection> Connection::import_state(const TcpConfig& cfg, const ConnectionState& s,
                                                     Instant now, const char** err) {
  if (const char* why = s.validate()) {
    if (err) *err = why;
    return nullptr;
  }
  TcpConfig c = cfg;
  c.rcvbuf = s.rcvbuf;
  c.sndbuf = s.sndbuf;
  c.nodelay = s.nodelay;
  c.keepalive = s.keepalive;
  if (s.keepalive) {
    c.keepalive_idle = Duration(s.keepalive_idle_us);
    c.keepalive_interval = Duration(s.keepalive_interval_us);
    c.keepalive_count = s.keepalive_count;
  }
  auto conn = std::make_unique<Connection>(c, s.tuple, s.rcv_mss);
  Connection& k = *conn;
  k.state_ = s.state;
  k.passive_ = s.passive;
  k.iss_ = SeqNum(s.iss);
  k.syn_acked_ = true;
  k.snd_una_ = SeqNum(s.snd_una);
  // Whatever was in flight is resent from SND.UNA by the new stack (go-back-N), so a
  // segment lost during the move costs no retransmission timeout.
  k.snd_nxt_ = SeqNum(s.snd_una);
  k.snd_max_ = SeqNum(s.snd_max);
  k.snd_wnd_ = s.snd_wnd;
  k.max_snd_wnd_ = s.max_snd_wnd;
  k.snd_wl1_ = SeqNum(s.snd_wl1);
  k.snd_wl2_ = SeqNum(s.snd_wl2);
  k.irs_ = SeqNum(s.irs);
  k.rcv_nxt_ = SeqNum(s.rcv_nxt);
  k.rcv_adv_ = SeqNum(s.rcv_adv);
  k.snd_wnd_shift_ = s.snd_wnd_shift;
  k.rcv_wnd_shift_ = s.rcv_wnd_shift;
  k.ws_ok_ = s.ws_ok;
  k.ts_ok_ = s.ts_ok;
  k.sack_ok_ = s.sack_ok;
  k.ts_offset_ = s.ts_offset;
  k.ts_recent_ = s.ts_recent;
  k.ts_recent_at_ = now;
  k.last_ack_sent_ = SeqNum(s.rcv_nxt);
  k.snd_mss_ = s.snd_mss;
  k.fin_queued_ = s.fin_queued;
  k.fin_received_ = s.fin_received;
  k.fin_seq_ = SeqNum(s.fin_seq);
  k.have_rtt_ = s.have_rtt;
  k.srtt_ = Duration(s.srtt_us);
  k.rttvar_ = Duration(s.rttvar_us);
  k.rto_ = Duration(s.rto_us);
  k.cfg_.congestion = s.congestion;
  k.make_cc();
  if (const char* why = k.cc_->import(s.congestion_state(now))) {
    if (err) *err = why;
    return nullptr;
  }
  k.recover_ = SeqNum(s.snd_una);
  k.tx_.write(s.send_data);
  k.rx_.write(s.recv_data);
  if (s.state == TcpState::kTimeWait) {
    k.timewait_at_ = now + Duration(s.timewait_left_us);
  } else if (k.snd_max_ > k.snd_una_) {
    k.arm_rto(now);
  }
  k.ack_now_ = s.state != TcpState::kTimeWait;  // tell the peer where we are
  k.touch_keepalive(now);
  return conn;
}

}  // namespace utcp
