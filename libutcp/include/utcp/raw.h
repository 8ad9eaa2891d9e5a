/* raw.h - a raw-packet C API for conformance tools: IPv4 packets in, IPv4 packets out,
 * on an explicit clock.
 *
 * The stack runs over an internal device that wraps injected IPv4 packets in Ethernet
 * and unwraps what the stack sends; no link addresses are needed. Use the socket calls
 * of utcp.h on the returned stack.
 */
#ifndef UTCP_RAW_H
#define UTCP_RAW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "utcp/utcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A stack with address `ip` (host byte order), MTU `mtu` (0: 1500) and a manual clock
 * starting at `start_us`; `isn_seed` as in utcp_stack_config. */
utcp_stack* utcp_raw_create(uint32_t ip, uint32_t mtu, int64_t start_us, uint64_t isn_seed);
/* Hands one IPv4 packet to the stack (processed at once, at the current time).
 * Returns 0, -EINVAL for a packet longer than the MTU or empty. Malformed packets are
 * accepted here and dropped by the stack's parser. */
int utcp_raw_inject(utcp_stack* s, const void* ipv4_packet, size_t len);
/* Copies the oldest packet the stack emitted into buf; returns its length, 0 when none,
 * -ENOSPC when cap is too small (the packet stays queued). */
ssize_t utcp_raw_collect(utcp_stack* s, void* buf, size_t cap);
/* Moves the clock forward by `usec` and runs the stack (timers fire). Socket calls
 * (connect, write, close) take effect on the next run: advance by 0 to send at once. */
int utcp_raw_advance(utcp_stack* s, int64_t usec);
/* Destroys a stack made by utcp_raw_create (utcp_stack_destroy does too). */
void utcp_raw_destroy(utcp_stack* s);

#ifdef __cplusplus
}
#endif

#endif /* UTCP_RAW_H */
