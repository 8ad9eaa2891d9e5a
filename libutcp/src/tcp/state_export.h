// state_export.h - a connection's state as a plain, versioned, serialisable value (paper §3.4).
//
// Export on one stack, import on another, and the connection goes on: the 4-tuple, the
// sequence and window variables, negotiated options, the RTT estimator and congestion
// state, and the bytes still owed to each side (unacknowledged/unsent send data, received
// but unread data). Out-of-order data past a hole is not carried: the peer retransmits it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tcp/connection.h"

namespace utcp {

struct ConnectionState {
  static constexpr uint32_t kMagic = 0x50435455;  // "UTCP" little-endian
  // 2: negotiated options (RFC 7323, RFC 2018); 3: congestion control by name, with
  // CUBIC's and HyStart++'s state.
  static constexpr uint16_t kVersion = 3;
  static constexpr uint32_t kMaxBuffer = 64u << 20;

  FourTuple tuple;
  TcpState state = TcpState::kClosed;
  bool passive = false;
  uint32_t iss = 0, snd_una = 0, snd_nxt = 0, snd_max = 0, snd_wnd = 0, max_snd_wnd = 0;
  uint32_t snd_wl1 = 0, snd_wl2 = 0;
  uint32_t irs = 0, rcv_nxt = 0, rcv_adv = 0;
  uint8_t snd_wnd_shift = 0, rcv_wnd_shift = 0;
  bool ws_ok = false, ts_ok = false, sack_ok = false;  // options both SYNs carried
  uint32_t ts_offset = 0, ts_recent = 0;                // RFC 7323 §4.3, §7.1
  uint16_t snd_mss = 0, rcv_mss = 0;
  bool fin_queued = false, fin_received = false;
  uint32_t fin_seq = 0;
  bool have_rtt = false;
  int64_t srtt_us = 0, rttvar_us = 0, rto_us = 0;
  uint32_t cwnd = 0, ssthresh = 0;
  std::string congestion;  // make_congestion_control() name, 1..15 of [a-z0-9_-]
  // CUBIC (RFC 9438 §4.1), zero for NewReno. The epoch is carried as its age.
  uint32_t cubic_w_max = 0, cubic_cwnd_epoch = 0, cubic_w_est = 0, cubic_cwnd_prior = 0;
  int64_t cubic_k_us = 0;
  int64_t cubic_epoch_age_us = -1;  // -1: no epoch; at most kMaxEpochAge
  bool cubic_after_timeout = false;
  // HyStart++ (RFC 9406 §4.2); RTTs of -1 stand for "infinity" (no sample).
  uint8_t hystart_phase = 0;
  int64_t hystart_last_min_rtt_us = -1, hystart_cur_min_rtt_us = -1, hystart_css_baseline_us = -1;
  uint32_t hystart_rtt_samples = 0, hystart_css_rounds = 0;
  bool hystart_window_set = false;
  uint32_t hystart_window_end = 0;
  static constexpr int64_t kMaxEpochAge = 30LL * 86400 * 1'000'000;
  uint32_t rcvbuf = 0, sndbuf = 0;
  bool nodelay = false, keepalive = false;
  int64_t keepalive_idle_us = 0, keepalive_interval_us = 0;
  uint32_t keepalive_count = 0;
  int64_t timewait_left_us = 0;  // TIME-WAIT only
  std::vector<uint8_t> send_data;  // from SND.UNA: unacknowledged, then unsent
  std::vector<uint8_t> recv_data;  // in order, not yet read

  std::vector<uint8_t> serialize() const;
  // Checks framing (magic, version, reserved bits, exact length); nullopt and `*err`
  // on refusal. Semantic consistency is checked by validate().
  static std::optional<ConnectionState> parse(std::span<const uint8_t> bytes, const char** err);
  // Refuses values no real connection could have; nullptr when consistent.
  const char* validate() const;
  // The congestion controller's part as CongestionState, with the epoch relative to `now`.
  CongestionState congestion_state(Instant now) const;
};

}  // namespace utcp
