// handoff.h - passing a live connection to another process, without the registry
// (paper §3.2: the inetd case).
//
// A connection is its endpoint file (the capability the module checks) plus the TCP
// state the library holds. The sender exports the connection from its stack
// (Stack::export_connection), then send_connection() passes the endpoint file by
// SCM_RIGHTS and the state with the facts needed to build frames, over a Unix socket it
// already shares with the receiver. recv_connection() on the other side gets both; the
// receiver maps the same rings (KmodDevice::open continues from the ring indices) and
// imports the state into its own stack. utcpd is not asked: it notices nothing until
// the last process holding the endpoint file lets go, and then inherits the connection.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "wire/types.h"

namespace utcp {

// What a process needs besides the state to continue a connection on an endpoint.
struct HandoffInfo {
  Ipv4Addr local_ip, remote_ip;
  MacAddr local_mac, next_hop;  // our link address, the remote's next hop
  uint16_t mtu = 0;
};

inline constexpr size_t kMaxHandoffState = 60000;

// Sends endpoint_fd (not closed here), `info` and `state` as one message on the
// connected Unix socket `sock`, which must keep message boundaries (SOCK_SEQPACKET or
// SOCK_DGRAM). Returns 0 or -errno with `error` set.
int send_connection(int sock, int endpoint_fd, const HandoffInfo& info, std::span<const uint8_t> state,
                    std::string* error);
// Receives what send_connection sent; *endpoint_fd (close-on-exec) becomes the caller's.
// Returns 0, or -errno with `error` saying what was wrong (-EBADMSG for a message that
// does not validate, -ECONNRESET when the sender hung up).
int recv_connection(int sock, int* endpoint_fd, HandoffInfo* info, std::vector<uint8_t>* state,
                    std::string* error);

}  // namespace utcp
