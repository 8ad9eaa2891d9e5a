// connection.h - one TCP connection (the TCB of RFC 9293 §3.3.1): a pure state machine.
//
// No I/O and no clock (STYLE.md): the stack hands in segments with process(), asks for
// segments to send with dispatch(), and calls again at poll_at(). Timers are deadlines
// held here; the stack keeps one TimerEntry per connection in its timing wheel, armed
// at poll_at(). Split like lwIP: input.cc (segment arrival, RFC 9293 §3.10.7),
// output.cc (send, retransmit, RST), timers.cc (timer expiry), connection.cc (user calls).
#pragma once

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/time.h"
#include "tcp/assembler.h"
#include "tcp/congestion.h"
#include "tcp/live.h"
#include "tcp/ring_buffer.h"
#include "tcp/scoreboard.h"
#include "wire/seq.h"
#include "wire/types.h"

namespace utcp {

enum class TcpState : uint8_t {
  kClosed = 0,
  kListen,
  kSynSent,
  kSynReceived,
  kEstablished,
  kFinWait1,
  kFinWait2,
  kCloseWait,
  kClosing,
  kLastAck,
  kTimeWait,
};
const char* to_string(TcpState s);

struct FourTuple {
  Ipv4Addr local_ip;
  uint16_t local_port = 0;
  Ipv4Addr remote_ip;
  uint16_t remote_port = 0;
  bool operator==(const FourTuple&) const = default;
};

struct FourTupleHash {
  size_t operator()(const FourTuple& t) const {
    uint64_t x = (uint64_t(t.local_ip.v) << 32 | t.remote_ip.v) ^
                 (uint64_t(t.local_port) << 16 | t.remote_port) * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    return size_t(x ^ (x >> 32));
  }
};

// Tunables; defaults follow Linux where the RFCs leave a choice.
struct TcpConfig {
  Duration msl = Duration(30'000'000);          // TIME-WAIT lasts 2*MSL (RFC 9293 §3.4.2)
  Duration rto_initial = Duration(1'000'000);   // RFC 6298 §2.1
  Duration rto_min = Duration(200'000);         // Linux's TCP_RTO_MIN (RFC 6298 §2.4 says 1 s)
  Duration rto_max = Duration(60'000'000);      // RFC 6298 §2.5
  uint32_t max_retransmits = 15;                // then ETIMEDOUT (Linux tcp_retries2)
  uint32_t max_syn_retransmits = 6;             // Linux tcp_syn_retries
  Duration delayed_ack = Duration(40'000);      // RFC 9293 §3.8.6.3: < 0.5 s; Linux's minimum
  // ACK at least every this many full-sized segments: 2 is RFC 5681 §4.2's SHOULD; more
  // ("stretch ACKs", the bulk profile) trades ACK clocking for fewer ACKs; 1 ACKs all.
  uint32_t ack_every = 2;
  bool nodelay = false;                         // disables Nagle (RFC 9293 §3.7.4)
  bool keepalive = false;                       // RFC 9293 §3.8.4, off by default
  Duration keepalive_idle = Duration(7200'000'000);
  Duration keepalive_interval = Duration(75'000'000);
  uint32_t keepalive_count = 9;
  // 1 MiB: with window scaling a window can cover one such buffer per RTT (RFC 7323 §1.1).
  uint32_t rcvbuf = 1024 * 1024;
  uint32_t sndbuf = 1024 * 1024;
  // Options offered on our SYN; each is used only when both sides sent it.
  bool window_scaling = true;  // RFC 7323 §2
  bool timestamps = true;      // RFC 7323 §3 (RTTM §4, PAWS §5)
  bool sack = true;            // RFC 2018, with RFC 6675 loss recovery
  // Congestion control by name (make_congestion_control): "cubic" (RFC 9438, Linux's
  // default) or "newreno" (RFC 5681 / RFC 6582). Connection::check_config() refuses others.
  std::string congestion = "cubic";
  bool hystart = true;  // RFC 9406 HyStart++ for the initial slow start
  // RFC 8985 RACK-TLP loss detection when SACK is in use (else RFC 6675's DupThresh
  // rule); peers without SACK always get NewReno dupack recovery (RFC 6582).
  bool rack = true;
  uint32_t challenge_ack_limit = 100;           // per second per connection (RFC 5961 §7)
  // A connection the user has closed (orphan) waits this long in FIN-WAIT-2 for the
  // peer's FIN, then is dropped (Linux tcp_fin_timeout; RFC 9293 sets no bound).
  Duration fin_wait2_timeout = Duration(60'000'000);
};

// Where a connection's segments go. `repr.payload` is ignored: the payload is `p1`
// followed by `p2` (two pieces when it wraps in the send ring). Returns false when the
// device has no room; the connection then keeps the data and tries again later.
class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  virtual bool send(const FourTuple& t, const TcpRepr& repr, std::span<const uint8_t> p1,
                    std::span<const uint8_t> p2) = 0;
};

// The RST that answers `seg` when no connection takes it (RFC 9293 §3.10.7.1), or
// nothing when `seg` itself is a RST.
std::optional<TcpRepr> rst_reply(const TcpRepr& seg);

// RFC 7323 §2.3: the smallest shift (at most 14) whose scaled 16-bit window covers `buf`.
uint8_t window_scale_for(uint32_t buf);

// Everything needed to continue a connection elsewhere (paper §3.4): see state_export.h.
struct ConnectionState;

class Connection {
 public:
  // `mss_local` is the MSS this side can receive: device MTU - 40 (RFC 9293 §3.7.1).
  Connection(const TcpConfig& cfg, const FourTuple& tuple, uint16_t mss_local);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // --- opening (RFC 9293 §3.10.1) ---
  // Active open: SYN-SENT; the SYN goes out on the next dispatch().
  void open_active(Instant now, SeqNum iss);
  // Passive open for this exact tuple: LISTEN, taking the first SYN (the stack creates
  // one such connection per SYN arriving at a listener).
  void open_passive(SeqNum iss);
  // Passive open from a returned SYN cookie (RFC 4987 §3.6): the SYN-ACK with ISS went
  // out without state, so this enters SYN-RECEIVED as if it had been sent (SND.NXT =
  // ISS+1, no RTT timing: its send time is unknown) from `syn`, the SYN rebuilt from the
  // cookie (its MSS; no other options). The returning ACK is then process()ed as usual.
  void open_syncookie(Instant now, SeqNum iss, const TcpRepr& syn);

  // --- segment arrival (input.cc) ---
  // RFC 9293 §3.10.7. One-off replies (RST, challenge ACK, ACK for an unacceptable
  // segment) go straight to `out`; ordinary ACKs and data wait for dispatch().
  void process(Instant now, const TcpRepr& seg, SegmentSink& out);

  // --- output (output.cc) ---
  // Handles expired timers, then sends what the windows, Nagle and pending ACKs allow.
  void dispatch(Instant now, SegmentSink& out);
  // When dispatch() next has work: kInstantZero-ish (<= now) for "now", a timer deadline,
  // or kInstantNever.
  Instant poll_at() const;

  // --- user calls (connection.cc) ---
  // Queues data; returns bytes taken (0 when the send buffer is full) or -errno
  // (-EPIPE after shutdown/close, -ENOTCONN before open, the error of a dead connection).
  int64_t send(std::span<const uint8_t> data);
  // Reads in-order data; returns bytes read, 0 at end of stream (FIN received and all
  // read), -EAGAIN when nothing is there yet, or -errno of a dead connection.
  int64_t recv(std::span<uint8_t> out);
  // A posted read: until end_posted_read(), in-order data that arrives while the
  // receive buffer is empty goes straight into `out` (copied once, from the frame it
  // came in) rather than into the receive buffer, as if read at once -- so it takes
  // none of the advertised window, which stays what the buffer has free. Data past a
  // hole, and what does not fit in `out`, goes to the receive buffer as always.
  void post_read(std::span<uint8_t> out) {
    posted_ = out;
    posted_got_ = 0;
  }
  // Ends the posted read; returns the bytes placed in its buffer.
  size_t end_posted_read() {
    const size_t n = posted_got_;
    posted_ = {};
    posted_got_ = 0;
    return n;
  }
  // RFC 9293 §3.10.4 CLOSE: a FIN after the queued data (half-close: reading goes on).
  void shutdown_write();
  // RFC 9293 §3.10.5 ABORT: RST to the peer (SO_LINGER 0), queues discarded, CLOSED.
  void abort(SegmentSink& out);
  // The user let go of the connection (closed its socket): FIN-WAIT-2 gets a deadline.
  void orphan(Instant now);

  // The configuration's values are usable: 0, or -EINVAL (unknown congestion control).
  static int check_config(const TcpConfig& cfg);

  // --- socket options ---
  void set_nodelay(bool on) { cfg_.nodelay = on; }
  // Delayed-ACK bound (clamped to 200 ms) and segments per ACK (1..16).
  void set_ack_policy(Duration delayed_ack, uint32_t ack_every);
  // TCP_CONGESTION: 0, -EINVAL for an unknown name, -EISCONN once the connection is
  // synchronized (the controller starts with the connection's first window).
  int set_congestion(std::string_view name);
  std::string_view congestion() const { return cc_->name(); }
  void set_keepalive(Instant now, bool on, Duration idle, Duration interval, uint32_t count);
  // Buffer sizes can change only while nothing is queued (before data flows).
  bool set_buffers(uint32_t rcvbuf, uint32_t sndbuf);
  // Keeps the send buffer in `mem` from now on (device memory frames can be sent from
  // in place: Device::tx_payload_area), moving what is queued there; the capacity stays
  // sndbuf. False, nothing changed, when `mem` is smaller. `mem` must outlive the
  // connection or a later set_buffers().
  bool place_send_buffer(std::span<uint8_t> mem) { return tx_.adopt(mem); }
  // Moves an empty send buffer back to memory of its own, once this connection can
  // queue no more data (its FIN is out, or it is closed), so the memory given to
  // place_send_buffer can go to another connection. False while it may still need it.
  bool return_send_buffer() {
    const bool done = state_ == TcpState::kClosed || state_ == TcpState::kFinWait1 ||
                      state_ == TcpState::kFinWait2 || state_ == TcpState::kClosing ||
                      state_ == TcpState::kLastAck || state_ == TcpState::kTimeWait;
    if (!done || !tx_.empty()) return false;
    tx_.reset(tx_.capacity());
    return true;
  }
  // Where the send buffer's bytes are (for the stack: in the device's area or not).
  const uint8_t* send_buffer_data() const { return tx_.data(); }
  const TcpConfig& config() const { return cfg_; }

  // --- state for the socket layer and tests ---
  TcpState state() const { return state_; }
  const FourTuple& tuple() const { return tuple_; }
  int error() const { return error_; }  // errno that killed the connection, 0 if none
  bool readable() const { return !rx_.empty() || fin_received_ || error_ != 0; }
  bool writable() const;
  bool at_eof() const { return fin_received_ && rx_.empty(); }
  bool is_synchronized() const { return state_ >= TcpState::kEstablished; }
  bool was_passive() const { return passive_; }
  size_t send_queued() const { return tx_.size(); }
  size_t recv_queued() const { return rx_.size(); }
  size_t send_space() const { return tx_.free(); }

  SeqNum iss() const { return iss_; }
  SeqNum irs() const { return irs_; }
  SeqNum snd_una() const { return snd_una_; }
  SeqNum snd_nxt() const { return snd_nxt_; }
  SeqNum snd_max() const { return snd_max_; }
  uint32_t snd_wnd() const { return snd_wnd_; }
  SeqNum rcv_nxt() const { return rcv_nxt_; }
  uint32_t rcv_wnd() const { return uint32_t(rx_.free()); }
  uint16_t snd_mss() const { return snd_mss_; }
  uint8_t snd_wnd_shift() const { return snd_wnd_shift_; }
  uint8_t rcv_wnd_shift() const { return rcv_wnd_shift_; }
  bool ws_enabled() const { return ws_ok_; }
  bool ts_enabled() const { return ts_ok_; }
  bool sack_enabled() const { return sack_ok_; }
  const Scoreboard& scoreboard() const { return scoreboard_; }
  uint32_t ts_recent() const { return ts_recent_; }
  // RFC 7323 §4.1: our TSval clock, one tick per millisecond from `now`, plus the offset.
  uint32_t ts_now(Instant now) const {
    return uint32_t(uint64_t(now.time_since_epoch().count()) / 1000) + ts_offset_;
  }
  // Data bytes in a full segment: the MSS less the options every segment carries
  // (RFC 6691 §2: the MSS counts no options; RFC 7323 §3.2: 12 bytes of TSopt).
  uint16_t seg_size() const { return uint16_t(snd_mss_ - (ts_ok_ ? 12 : 0)); }
  uint16_t rcv_mss() const { return rcv_mss_; }
  Duration rto() const { return rto_; }
  Duration srtt() const { return srtt_; }
  Duration rttvar() const { return rttvar_; }
  uint32_t cwnd() const { return cc_->cwnd(); }
  uint32_t ssthresh() const { return cc_->ssthresh(); }
  bool in_recovery() const { return in_recovery_; }
  uint32_t retransmits() const { return rexmit_count_; }
  Instant rto_deadline() const { return rto_at_; }
  Instant persist_deadline() const { return persist_at_; }
  Instant delack_deadline() const { return delack_at_; }
  Instant keepalive_deadline() const { return keepalive_at_; }
  Instant timewait_deadline() const { return timewait_at_; }

  struct Stats {
    uint64_t segs_in = 0, segs_out = 0, bytes_in = 0, bytes_out = 0;
    uint64_t bytes_direct = 0;  // of bytes_in, placed straight into a posted read
    uint64_t retransmits = 0, fast_retransmits = 0, timeouts = 0, dupacks = 0;
    uint64_t challenge_acks = 0, ooo_segments = 0, ooo_dropped = 0;
    uint64_t zero_windows = 0, window_probes = 0;  // peer closed its window; probes sent
    uint64_t paws_rejected = 0, ts_missing = 0;      // RFC 7323 §5.3 R1; §3.2 drops
    uint64_t sack_recoveries = 0;                    // RFC 6675 loss recovery episodes
    uint64_t rack_marked_lost = 0;                   // RFC 8985 segments RACK declared lost
    uint64_t rack_timer_fired = 0;                   // RFC 8985 §6.3 reordering timer expiries
    uint64_t tlp_probes = 0;                         // RFC 8985 §7.3 loss probes sent
    uint64_t tlp_loss_detected = 0;                  // §7.4: a probe repaired a loss
    uint64_t dsacks_sent = 0, dsacks_received = 0;   // RFC 2883
    uint64_t spurious_undos = 0;                     // reductions undone (D-SACK, RFC 9438 §4.9)
    // Snapshots, filled by stats(): the congestion controller (name, cwnd, ssthresh,
    // CUBIC's W_max/K/epoch, HyStart++) and RACK's state (RFC 8985 §5.2).
    CongestionState cc;
    Duration rack_rtt{0}, rack_min_rtt{0}, rack_reo_wnd{0};
    uint32_t rack_reo_wnd_mult = 1;
    bool rack_reordering_seen = false;
    Instant tlp_deadline = kInstantNever;
  };
  Stats stats() const;
  const Stats& counters() const { return stats_; }  // without the snapshots: cheap

  // --- moving a connection (state_export.cc) ---
  ConnectionState export_state(Instant now) const;
  // Builds a connection from exported state; nullptr (and `err` set) when inconsistent.
  static std::unique_ptr<Connection> import_state(const TcpConfig& cfg, const ConnectionState& st,
                                                  Instant now, const char** err);

 private:
  friend struct ConnectionTestPeer;

  // input.cc
  void process_listen(Instant now, const TcpRepr& seg, SegmentSink& out);
  void process_syn_sent(Instant now, const TcpRepr& seg, SegmentSink& out);
  void back_to_listen();
  bool segment_acceptable(const TcpRepr& seg) const;
  bool process_ack(Instant now, const TcpRepr& seg, SegmentSink& out);
  void process_text(Instant now, SeqNum seq, std::span<const uint8_t> data, bool fin);
  void process_fin(Instant now);
  void update_send_window(const TcpRepr& seg);
  void take_syn(Instant now, const TcpRepr& syn);
  void take_options(const TcpRepr& syn);
  uint32_t seg_window(const TcpRepr& seg) const;
  void send_challenge_ack(Instant now, SegmentSink& out);
  bool timestamps_reject(Instant now, const TcpRepr& seg, SegmentSink& out);
  void update_ts_recent(Instant now, const TcpRepr& seg);
  uint32_t take_sack(const TcpRepr& seg, std::optional<SackBlock>* dsack);
  void note_dsack_received(const SackBlock& b);
  void note_duplicate(SeqNum seq, uint32_t len);
  void start_undo_episode();
  void enter_sack_recovery(Instant now, uint32_t flight);
  void note_ooo_arrival(SeqNum seq);

  // output.cc
  bool send_segment(SegmentSink& out, Instant now, uint8_t flags, SeqNum seq, size_t data_off,
                    size_t len);
  bool send_ack(SegmentSink& out, Instant now);
  void send_rst(SegmentSink& out, SeqNum seq);
  uint16_t window_to_advertise(bool syn);
  void syn_options(uint8_t flags, TcpOptions& o);
  uint32_t advertisable_space(uint8_t shift) const;
  size_t sendable_now(Instant now, bool* fin, bool pipe_limited = false) const;
  bool send_new(Instant now, SegmentSink& out, size_t len, bool fin);
  void skip_sacked();
  bool want_window_update() const;
  bool retransmit_first(Instant now, SegmentSink& out);
  bool retransmit_from(Instant now, SegmentSink& out, SeqNum s, SeqNum end);
  bool fill_sack(TcpOptions& o, size_t len) const;  // true when it placed the D-SACK block
  uint32_t sack_pipe() const;
  struct NextSeg {
    SeqNum left, right;  // un-SACKed octets to retransmit
    bool new_data;       // RFC 6675 NextSeg rule (2): send new data instead
  };
  std::optional<NextSeg> next_seg(Instant now) const;
  void send_in_recovery(Instant now, SegmentSink& out);
  void log_sent(Instant now, SeqNum s, SeqNum e, bool retransmission);
  bool send_loss_probe(Instant now, SegmentSink& out);

  // rack.cc (RFC 8985)
  bool rack_on() const { return sack_ok_ && cfg_.rack; }
  void rack_on_ack(Instant now, const TcpRepr& seg, bool dsack);
  bool rack_detect_loss(Instant now);
  Duration rack_reo_wnd() const;
  void arm_pto(Instant now);
  void tlp_on_ack(Instant now, const TcpRepr& seg, const std::optional<SackBlock>& dsack,
                  uint32_t flight_before);

  // timers.cc
  void on_timers(Instant now, SegmentSink& out);
  void arm_rto(Instant now);
  void rtt_sample(Duration r, uint32_t expected_samples = 1);
  void make_cc();
  void enter_time_wait(Instant now);
  void touch_keepalive(Instant now);
  void die(int err);  // to CLOSED with an error for the user

  // connection.cc
  void set_state(TcpState s) { state_ = s; }
  uint32_t flight_size() const { return uint32_t(snd_max_ - snd_una_); }
  bool fin_acked() const { return fin_queued_ && snd_una_ > fin_seq_; }
  // A flag, not SND.UNA > ISS: that comparison breaks once 2^31 bytes have been sent.
  bool syn_acked() const { return syn_acked_; }
  // Offset into tx_ of the data byte with sequence number `s` (s >= data start).
  size_t tx_offset(SeqNum s) const { return size_t(s - (snd_una_ + (syn_acked() ? 0 : 1))); }

  TcpConfig cfg_;
  FourTuple tuple_;
  TcpState state_ = TcpState::kClosed;
  bool passive_ = false;
  int error_ = 0;

  // RFC 9293 §3.3.1 send sequence variables.
  SeqNum iss_, snd_una_, snd_nxt_, snd_max_;  // snd_max_: highest sequence sent + 1
  uint32_t snd_wnd_ = 0, max_snd_wnd_ = 0;
  SeqNum snd_wl1_, snd_wl2_;
  bool syn_acked_ = false;     // our SYN has been acknowledged
  uint8_t snd_wnd_shift_ = 0;  // RFC 7323 window scaling: not negotiated yet
  // Receive sequence variables.
  SeqNum irs_, rcv_nxt_;
  SeqNum rcv_adv_;  // right edge of the window last advertised
  uint8_t rcv_wnd_shift_ = 0;
  // RFC 7323 §2.3: the shift we offer on our SYN (from the receive buffer), and whether
  // both SYNs carried the option (only then do the shifts apply).
  uint8_t rcv_wscale_offer_ = 0;
  bool ws_ok_ = false;
  // RFC 7323 §3-§5 timestamps: negotiated when both SYNs carried TSopt.
  bool ts_ok_ = false;
  uint32_t ts_offset_ = 0;   // RFC 7323 §7.1: a per-connection offset (the ISS, itself keyed-random)
  uint32_t ts_recent_ = 0;   // TS.Recent (§4.3)
  Instant ts_recent_at_ = kInstantZero;
  static constexpr Duration kPawsIdle = Duration(24LL * 86400 * 1'000'000);  // RFC 7323 §5.5  // when TS.Recent was set: PAWS validity (§5.5)
  SeqNum last_ack_sent_;     // Last.ACK.sent (§4.3)
  bool sack_ok_ = false;     // RFC 2018 §2: both SYNs carried SACK-permitted
  // RFC 2018 §4 receiver: where the latest out-of-order segments started, newest first.
  std::array<SeqNum, 4> sack_recent_{};
  uint8_t sack_recent_n_ = 0;
  // RFC 2883 receiver: the duplicate to report first in the next ACK, once.
  std::optional<SackBlock> dsack_;
  // RFC 6675 sender: SACKed ranges, and HighRxt (highest octet retransmitted + 1).
  Scoreboard scoreboard_;
  SeqNum high_rxt_;

  uint16_t rcv_mss_;        // what we advertise
  uint16_t snd_mss_ = 536;  // RFC 9293 §3.7.1: default when the peer sends no MSS option
  bool peer_sent_mss_ = false;

  RingBuffer tx_, rx_;
  std::span<uint8_t> posted_;  // post_read(): the application's buffer, and how much
  size_t posted_got_ = 0;      // of it is filled
  Assembler ooo_;
  std::optional<SeqNum> ooo_fin_;  // a FIN seen past a hole
  bool fin_queued_ = false;        // user closed the sending side
  SeqNum fin_seq_;                 // sequence number of our FIN, once queued
  bool fin_received_ = false;
  bool orphaned_ = false;

  // ACK policy (RFC 9293 §3.8.6.3, RFC 5681 §4.2).
  bool ack_now_ = false;
  bool ooo_ack_due_ = false;    // process() answers an out-of-order segment at once
  uint32_t unacked_bytes_ = 0;  // in-order bytes received since our last ACK
  uint32_t largest_seg_ = 0;    // largest in-order segment received (the peer's MSS, seen)
  Instant delack_at_ = kInstantNever;

  // RFC 6298 estimator and retransmission timer.
  bool have_rtt_ = false;
  Duration srtt_{0}, rttvar_{0}, rto_;
  bool rtt_timing_ = false;
  SeqNum rtt_seq_;
  Instant rtt_start_;
  Instant rto_at_ = kInstantNever;
  uint32_t rexmit_count_ = 0;  // consecutive timeouts

  // RFC 8985 RACK-TLP (§5.2 "per-connection variables").
  SentLog sent_;
  struct Rack {
    bool have = false;   // a delivered segment has set xmit_ts / end_seq
    Instant xmit_ts;     // latest transmission time among delivered segments
    SeqNum end_seq;      // its end (ties broken by sequence)
    SeqNum fack;         // highest end of a delivered segment
    Duration rtt{0};     // RTT of that segment
    Duration min_rtt = Duration::max();
    bool reord = false;  // reordering observed (§6.2 step 3)
    uint32_t reo_wnd_mult = 1, reo_wnd_persist = 0;  // §6.2 step 4 (D-SACK)
    bool dsack_round_set = false;
    SeqNum dsack_round;
  } rack_;
  Instant rack_at_ = kInstantNever;  // §6.3 reordering timer
  Instant pto_at_ = kInstantNever;   // §7.2 probe timeout
  bool tlp_now_ = false;             // the PTO fired: send a probe on dispatch
  bool tlp_outstanding_ = false;     // §7.3 TLP.end_seq is set
  SeqNum tlp_end_;
  bool tlp_is_retrans_ = false;
  Instant tlp_xmit_;
  // Undo of a spurious reduction (RFC 2883 §5 / RFC 3708 idea, as Linux's undo_retrans):
  // bytes retransmitted in the current episode that no D-SACK has yet shown to be duplicates.
  bool undo_active_ = false;
  SeqNum undo_marker_;
  uint32_t undo_retrans_ = 0;
  bool recovery_undone_ = false;  // undone during recovery: its exit must not deflate cwnd

  // Loss recovery (RFC 5681 §3.2, RFC 6582).
  std::unique_ptr<CongestionControl> cc_;
  uint32_t dupacks_ = 0;
  bool in_recovery_ = false;
  SeqNum recover_;
  bool rexmit_one_ = false;  // fast retransmit / partial ack: resend the first segment

  // Zero-window probing (RFC 9293 §3.8.6.1).
  Instant persist_at_ = kInstantNever;
  Duration persist_backoff_{0};
  uint32_t persist_probes_ = 0;  // window probes the peer has not answered
  bool probe_now_ = false;

  // Keepalive (RFC 9293 §3.8.4).
  Instant keepalive_at_ = kInstantNever;
  uint32_t keepalive_probes_ = 0;
  bool keepalive_now_ = false;

  Instant timewait_at_ = kInstantNever;

  // RFC 5961 §7 challenge ACK rate limit.
  Instant challenge_window_start_ = kInstantZero;
  uint32_t challenge_count_ = 0;

  Stats stats_;
  LiveToken<LiveKind::kConnection> live_;
};

}  // namespace utcp
