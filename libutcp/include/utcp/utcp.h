/* utcp.h - the public C API of libutcp: a TCP/IPv4 stack over a device, socket-like calls.
 *
 * Sockets start non-blocking (like SOCK_NONBLOCK): calls return -EAGAIN when they would
 * wait and connect() returns -EINPROGRESS; progress happens in utcp_stack_poll(), to be
 * called when utcp_stack_next_timeout_us() says so or after I/O (or let
 * utcp_stack_wait()/utcp_poll_wait() do both). utcp_set_blocking() makes a socket's
 * calls block instead, driving the stack while they wait: that needs the real clock and a
 * device that can be slept on (a module endpoint or a TAP device; see utcp_stack_fd()).
 * Errors are negative errno values (ECONNREFUSED, ECONNRESET, ETIMEDOUT, EAGAIN, EPIPE,
 * ENOTCONN, EADDRINUSE, EINVAL, EBADF, EINTR, ...). A stack is not thread-safe: use it
 * from one thread at a time.
 */
#ifndef UTCP_UTCP_H
#define UTCP_UTCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct utcp_stack utcp_stack;
/* A link device: a utcp::Device from C++ (see utcp.hpp), or a module endpoint. */
typedef struct utcp_device utcp_device;

/* Clock of a stack: the real monotonic clock, or a manual one moved by
 * utcp_stack_set_time() (tests, simulations, conformance tools). */
enum utcp_clock { UTCP_CLOCK_REAL = 0, UTCP_CLOCK_MANUAL = 1 };

struct utcp_stack_config {
  uint32_t ip;         /* local IPv4 address, host byte order (10.0.0.1 == 0x0a000001) */
  uint8_t mac[6];      /* local MAC address */
  uint8_t reserved[2]; /* must be zero */
  int clock;           /* enum utcp_clock */
  int64_t start_us;    /* UTCP_CLOCK_MANUAL: initial time in microseconds */
  uint64_t isn_seed;   /* 0: random RFC 6528 secret; otherwise a fixed one (tests) */
};

/* Creates a stack over `dev` (not owned; must outlive the stack). NULL and errno set
 * (EINVAL) on a bad configuration. */
utcp_stack* utcp_stack_create(const struct utcp_stack_config* cfg, utcp_device* dev);
void utcp_stack_destroy(utcp_stack* s);
/* Static neighbour table: the link address for an IPv4 address (host byte order). */
int utcp_stack_add_neighbor(utcp_stack* s, uint32_t ip, const uint8_t mac[6]);
/* Receives, runs timers, sends. Returns 0. */
int utcp_stack_poll(utcp_stack* s);
/* Microseconds until the stack next needs utcp_stack_poll() (0: now; -1: nothing). */
int64_t utcp_stack_next_timeout_us(utcp_stack* s);
/* UTCP_CLOCK_MANUAL only: sets the current time (never backwards: -EINVAL). */
int utcp_stack_set_time(utcp_stack* s, int64_t now_us);
int64_t utcp_stack_now_us(utcp_stack* s);

/* A file descriptor that poll(2)/epoll report readable when the stack has received
 * frames to process (then call utcp_stack_poll()), or -EOPNOTSUPP when the device has
 * none. Combine it with utcp_stack_next_timeout_us() in an event loop. */
int utcp_stack_fd(utcp_stack* s);
/* Runs utcp_stack_poll(), then sleeps until frames arrive, the stack's next timer, or
 * `timeout_us` (-1: no limit) passes, and polls again. Returns 1 when frames arrived,
 * 0 otherwise, -EINTR when a signal interrupted the sleep, -EOPNOTSUPP for a manual
 * clock or a device without utcp_stack_fd(). */
int utcp_stack_wait(utcp_stack* s, int64_t timeout_us);

/* Sockets: small non-negative integers, per stack. */
int utcp_socket(utcp_stack* s);
int utcp_bind(utcp_stack* s, int sock, uint16_t port); /* port 0: ephemeral */
int utcp_listen(utcp_stack* s, int sock, int backlog);
/* Returns a new socket, or -EAGAIN. `peer_ip`/`peer_port` may be NULL. */
int utcp_accept(utcp_stack* s, int sock, uint32_t* peer_ip, uint16_t* peer_port);
/* Returns -EINPROGRESS; completion shows as UTCP_POLLOUT, failure as UTCP_POLLERR with
 * the reason in UTCP_SO_ERROR (ECONNREFUSED, ETIMEDOUT). */
int utcp_connect(utcp_stack* s, int sock, uint32_t ip, uint16_t port);
ssize_t utcp_read(utcp_stack* s, int sock, void* buf, size_t len);  /* 0 = end of stream */
ssize_t utcp_write(utcp_stack* s, int sock, const void* buf, size_t len);
enum { UTCP_SHUT_RD = 0, UTCP_SHUT_WR = 1, UTCP_SHUT_RDWR = 2 };
int utcp_shutdown(utcp_stack* s, int sock, int how);
/* Graceful close (FIN, TIME-WAIT handled by the stack); with UTCP_SO_LINGER {1, 0} or
 * unread data: abortive close (RST). */
int utcp_close(utcp_stack* s, int sock);

/* Event bits: the values of poll(2). */
enum { UTCP_POLLIN = 0x001, UTCP_POLLOUT = 0x004, UTCP_POLLERR = 0x008, UTCP_POLLHUP = 0x010 };
/* Returns the events ready on `sock` (no waiting), or -EBADF. */
int utcp_poll(utcp_stack* s, int sock);

/* poll(2) over sockets of one stack: fills each revents (UTCP_POLLERR and UTCP_POLLHUP
 * are always reported; a closed socket gets UTCP_POLLNVAL) and returns how many entries
 * have events, waiting up to `timeout_us` (-1: no limit; 0: just look) while driving the
 * stack. Returns -EINTR on a signal, -EINVAL for a bad array, -EOPNOTSUPP when it would
 * have to sleep on a stack that cannot (see utcp_stack_wait). */
enum { UTCP_POLLNVAL = 0x020 };
struct utcp_pollfd {
  int sock;
  short events;
  short revents;
};
int utcp_poll_wait(utcp_stack* s, struct utcp_pollfd* fds, size_t n, int64_t timeout_us);

/* Blocking mode for one socket (on = 1) or back to non-blocking (0). Blocking calls:
 * connect() returns 0 once established (or the reason it failed); accept() waits for a
 * connection; read() for at least one byte or end of stream; write() until every byte
 * is queued (a partial count when interrupted by a signal or UTCP_SO_SNDTIMEO after some
 * bytes); close() with UTCP_SO_LINGER {1, N>0} until the peer acknowledged our FIN or N
 * seconds passed. A signal ends a wait with -EINTR; a UTCP_SO_RCVTIMEO/SNDTIMEO timeout
 * with -EAGAIN (connect: -ETIMEDOUT). Accepted sockets inherit the listener's mode.
 * Returns -EOPNOTSUPP on a stack with a manual clock or a device that cannot wait. */
int utcp_set_blocking(utcp_stack* s, int sock, int on);

enum {
  UTCP_TCP_NODELAY = 1,   /* int */
  UTCP_SO_KEEPALIVE = 2,  /* int */
  UTCP_TCP_KEEPIDLE = 3,  /* int, seconds */
  UTCP_TCP_KEEPINTVL = 4, /* int, seconds */
  UTCP_TCP_KEEPCNT = 5,   /* int */
  UTCP_SO_LINGER = 6,     /* struct utcp_linger */
  UTCP_SO_RCVBUF = 7,     /* int, bytes; before the connection is established */
  UTCP_SO_SNDBUF = 8,     /* int, bytes; before the connection is established */
  UTCP_SO_ERROR = 9,      /* int, get only */
  UTCP_SO_RCVTIMEO = 10,  /* int64_t, microseconds; 0 = wait forever (blocking sockets) */
  UTCP_SO_SNDTIMEO = 11,  /* int64_t, microseconds; 0 = wait forever (blocking sockets) */
  UTCP_TCP_CONGESTION = 12, /* char[16]: "cubic" (default) or "newreno"; set before the
                               handshake (-EISCONN after, -ENOENT for an unknown name) */
  UTCP_SO_PROFILE = 13,   /* char[16]: a named set of options, before the handshake:
                             "default"; "latency" (no Nagle, immediate ACKs, 256 KiB buffers,
                             blocking calls busy-poll 50 us); "rpc" (no Nagle, ACKs delayed
                             <= 1 ms); "bulk" (stretch ACKs, 4 MiB buffers). See docs/profiles.md */
};
struct utcp_linger {
  int l_onoff;
  int l_linger; /* seconds: 0 aborts on close (RST); N > 0 on a blocking socket makes
                    close() wait up to N s for the peer to acknowledge our FIN */
};
int utcp_setsockopt(utcp_stack* s, int sock, int opt, const void* val, size_t len);
int utcp_getsockopt(utcp_stack* s, int sock, int opt, void* val, size_t* len);

/* Moving a connection between stacks (same local address): export removes it from `s`
 * silently and writes its state into buf (returns the length, or -ENOSPC with *needed
 * set); import continues it and returns a new socket. */
ssize_t utcp_export(utcp_stack* s, int sock, void* buf, size_t cap, size_t* needed);
int utcp_import(utcp_stack* s, const void* buf, size_t len);

/* Text for a negative return value. */
const char* utcp_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* UTCP_UTCP_H */
