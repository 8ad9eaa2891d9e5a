// sps_protocol.h - how applications talk to utcp-sps, the single protocol server.
//
// The paper's Mach 3.0/UX row (§4, Tables 2-4): the same TCP code, but in one server
// process that every application reaches through IPC, instead of in each application.
// Here the IPC is a Unix stream socket per TCP connection: the client sends SpsOpen,
// the server answers one int32 (0 once established, or -errno), and from then on the
// socket carries the connection's bytes both ways; a shutdown(SHUT_WR) of either side
// becomes a FIN on the other, and the end of the socket ends the connection.
#pragma once

#include <cstdint>

namespace utcp::sps {

inline constexpr uint32_t kMagic = 0x31535053;  // "SPS1"
inline constexpr const char* kDefaultSocket = "/run/utcp/sps.sock";
inline constexpr uint16_t kFlagNoDelay = 1;

struct SpsOpen {
  uint32_t magic = kMagic;
  uint32_t remote_ip = 0;    // host order
  uint16_t remote_port = 0;  // host order
  uint16_t flags = 0;        // kFlag*
};
static_assert(sizeof(SpsOpen) == 12);

}  // namespace utcp::sps
