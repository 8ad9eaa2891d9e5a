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
#include <vector>

#include "tcp/connection.h"

namespace utcp {

struct ConnectionState {
  static constexpr uint32_t kMagic = 0x50435455;  // "UTCP" little-endian
  static constexpr uint16_t kVersion = 2;  // 2: negotiated options (RFC 7323, RFC 2018)
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
};

}  // namespace utcp
