// utcp_c.cc - the C API (include/utcp/utcp.h, raw.h) over utcp::Stack.
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "api/c_api.h"
#include "api/profiles.h"
#include "api/raw_device.h"
#include "api/stack.h"
#include "tcp/state_export.h"
#include "utcp/raw.h"
#include "utcp/utcp.h"

// Per-socket settings that only the blocking layer here uses.
struct SockMode {
  bool blocking = false;
  utcp::Duration rcvtimeo{0}, sndtimeo{0};  // 0: no limit
  utcp::Duration busy_poll{0};              // spin this long before sleeping (profiles)
};

struct utcp_stack {
  std::unique_ptr<utcp::RawDevice> raw;  // set for utcp_raw_create stacks
  std::unique_ptr<utcp::Stack> stack;
  bool manual = false;
  utcp::Instant now;
  std::vector<SockMode> modes;  // index = socket handle

  utcp::Instant time() {
    if (!manual) now = utcp::Clock::now();
    return now;
  }
  bool can_wait() const { return !manual && stack->device()->wait_fd() >= 0; }
  SockMode& mode(int h) {
    if (size_t(h) >= modes.size()) modes.resize(size_t(h) + 1);
    return modes[size_t(h)];
  }
  bool blocking(int h) const { return h >= 0 && size_t(h) < modes.size() && modes[size_t(h)].blocking; }
  // A new handle starts with `m` (defaults, or the listener's for accepted sockets).
  int adopt(int h, SockMode m = {}) {
    if (h >= 0) mode(h) = m;
    return h;
  }

  // Polls the stack, then sleeps on the device until frames arrive, the stack's next
  // timer, or `deadline` (kInstantNever: no limit), and polls again. 1: frames; 0:
  // nothing; -EINTR. With poll_stack false it only waits: for a caller whose next try
  // polls itself (a posted read, which must be the one to take the frames in).
  int wait_until(utcp::Instant deadline, utcp::Duration spin = utcp::Duration(0), bool poll_stack = true) {
    if (poll_stack) stack->poll(time());
    // Busy-polling (latency profile): look at the device without sleeping for a while
    // first, trading a core for the wake-up latency of a sleep.
    if (spin.count() > 0) {
      utcp::Instant until = std::min(time() + spin, deadline);
      pollfd q{stack->device()->wait_fd(), POLLIN, 0};
      while (time() < until && stack->poll_at() > now)  // `now`: just read by time()
        if (::poll(&q, 1, 0) > 0) {
          if (poll_stack) stack->poll(time());
          return 1;
        }
    }
    utcp::Instant at = std::min(stack->poll_at(), deadline);
    utcp::Instant t = time();
    int ms = -1;
    if (at != utcp::kInstantNever) ms = at <= t ? 0 : int(std::min<int64_t>(((at - t).count() + 999) / 1000, 1 << 30));
    pollfd p{stack->device()->wait_fd(), POLLIN, 0};
    int rc = ::poll(&p, 1, ms);
    if (rc < 0 && errno == EINTR) return -EINTR;
    if (poll_stack) stack->poll(time());
    return rc > 0 ? 1 : 0;
  }
  utcp::Instant deadline_after(utcp::Duration d) { return d.count() > 0 ? time() + d : utcp::kInstantNever; }

  // Retries `op` (a call returning -EAGAIN while it would wait) until it gives anything
  // else, waiting in between; -EAGAIN at `deadline`, -EINTR on a signal. `op_polls`: op
  // polls the stack itself whenever it would return -EAGAIN (see wait_until).
  template <typename Op>
  int64_t block(utcp::Instant deadline, Op op, utcp::Duration spin = utcp::Duration(0), bool op_polls = false) {
    for (;;) {
      int64_t r = op();
      if (r != -EAGAIN) return r;
      if (time() >= deadline) return -EAGAIN;
      int w = wait_until(deadline, spin, !op_polls);
      if (w == -EINTR) return -EINTR;
    }
  }
};

namespace {

std::array<uint8_t, 16> key_from_seed(uint64_t seed) {
  std::array<uint8_t, 16> k{};
  for (int i = 0; i < 8; ++i) {
    k[i] = uint8_t(seed >> (8 * i));
    k[8 + i] = uint8_t((seed * 0x9e3779b97f4a7c15ULL) >> (8 * i));
  }
  return k;
}

utcp::MacAddr mac_of(const uint8_t m[6]) {
  utcp::MacAddr a;
  std::memcpy(a.b.data(), m, 6);
  return a;
}

}  // namespace

utcp::Stack* utcp::api::stack_of(utcp_stack* s) { return s ? s->stack.get() : nullptr; }

extern "C" {

utcp_stack* utcp_stack_create(const struct utcp_stack_config* cfg, utcp_device* dev) {
  if (!cfg || !dev || cfg->ip == 0 || cfg->reserved[0] || cfg->reserved[1] ||
      (cfg->clock != UTCP_CLOCK_REAL && cfg->clock != UTCP_CLOCK_MANUAL)) {
    errno = EINVAL;
    return nullptr;
  }
  utcp::StackConfig sc;
  sc.ip = utcp::Ipv4Addr{cfg->ip};
  sc.mac = mac_of(cfg->mac);
  if (cfg->isn_seed) sc.isn_key = key_from_seed(cfg->isn_seed);
  auto s = std::make_unique<utcp_stack>();
  s->manual = cfg->clock == UTCP_CLOCK_MANUAL;
  s->now = utcp::Instant(utcp::Duration(cfg->start_us));
  s->stack = std::make_unique<utcp::Stack>(reinterpret_cast<utcp::Device*>(dev), sc);
  return s.release();
}

void utcp_stack_destroy(utcp_stack* s) { delete s; }

int utcp_stack_add_neighbor(utcp_stack* s, uint32_t ip, const uint8_t mac[6]) {
  if (!s || !mac) return -EINVAL;
  s->stack->add_neighbor(utcp::Ipv4Addr{ip}, mac_of(mac));
  return 0;
}

int utcp_stack_poll(utcp_stack* s) {
  if (!s) return -EINVAL;
  s->stack->poll(s->time());
  return 0;
}

int64_t utcp_stack_next_timeout_us(utcp_stack* s) {
  if (!s) return -EINVAL;
  utcp::Instant at = s->stack->poll_at();
  if (at == utcp::kInstantNever) return -1;
  utcp::Instant now = s->time();
  return at <= now ? 0 : (at - now).count();
}

int utcp_stack_set_time(utcp_stack* s, int64_t now_us) {
  if (!s || !s->manual) return -EINVAL;
  utcp::Instant t{utcp::Duration(now_us)};
  if (t < s->now) return -EINVAL;
  s->now = t;
  return 0;
}

int64_t utcp_stack_now_us(utcp_stack* s) {
  if (!s) return -EINVAL;
  return s->time().time_since_epoch().count();
}

int utcp_stack_fd(utcp_stack* s) {
  if (!s) return -EINVAL;
  int fd = s->stack->device()->wait_fd();
  return fd >= 0 ? fd : -EOPNOTSUPP;
}

int utcp_stack_wait(utcp_stack* s, int64_t timeout_us) {
  if (!s) return -EINVAL;
  if (!s->can_wait()) return -EOPNOTSUPP;
  return s->wait_until(timeout_us < 0 ? utcp::kInstantNever : s->time() + utcp::Duration(timeout_us));
}

int utcp_socket(utcp_stack* s) { return s ? s->adopt(s->stack->socket()) : -EINVAL; }
int utcp_bind(utcp_stack* s, int sock, uint16_t port) {
  return s ? s->stack->bind(sock, port) : -EINVAL;
}
int utcp_listen(utcp_stack* s, int sock, int backlog) {
  return s ? s->stack->listen(sock, backlog) : -EINVAL;
}
int utcp_accept(utcp_stack* s, int sock, uint32_t* peer_ip, uint16_t* peer_port) {
  if (!s) return -EINVAL;
  utcp::FourTuple t;
  int r;
  if (s->blocking(sock)) {
    SockMode m = s->mode(sock);
    r = int(s->block(s->deadline_after(m.rcvtimeo), [&] { return s->stack->accept(sock, &t); }, m.busy_poll));
  } else {
    r = s->stack->accept(sock, &t);
  }
  if (r >= 0) {
    s->adopt(r, s->blocking(sock) ? s->mode(sock) : SockMode{});
    if (peer_ip) *peer_ip = t.remote_ip.v;
    if (peer_port) *peer_port = t.remote_port;
  }
  return r;
}
int utcp_connect(utcp_stack* s, int sock, uint32_t ip, uint16_t port) {
  if (!s) return -EINVAL;
  int r = s->stack->connect(sock, utcp::Ipv4Addr{ip}, port, s->time());
  if (r != -EINPROGRESS || !s->blocking(sock)) return r;
  // Blocking: wait for the handshake's outcome (established, or the error it ended with).
  utcp::Instant deadline = s->deadline_after(s->mode(sock).sndtimeo);
  int64_t w = s->block(deadline, [&]() -> int64_t {
    int ev = s->stack->events(sock);
    if (ev < 0) return ev;
    if (ev & (utcp::kEventErr | utcp::kEventHup)) {
      int err = 0;
      size_t len = sizeof err;
      s->stack->getsockopt(sock, utcp::SockOpt::kError, &err, &len);
      return err ? -err : -ECONNRESET;
    }
    return (ev & utcp::kEventOut) ? 0 : -EAGAIN;
  });
  return w == -EAGAIN ? -ETIMEDOUT : int(w);
}
ssize_t utcp_read(utcp_stack* s, int sock, void* buf, size_t len) {
  if (!s || (!buf && len)) return -EINVAL;
  std::span<uint8_t> out{static_cast<uint8_t*>(buf), len};
  // The posted read (Stack::read with the time): what is buffered, else one poll with
  // `buf` posted, which copies in-order data from the received frames straight into it
  // (one copy, not two through the receive buffer). A blocking read waits without
  // polling, so that the next try's poll is the one that takes the frames in.
  if (!s->blocking(sock) || len == 0) return s->stack->read(sock, out, s->time());
  const SockMode& m = s->mode(sock);
  return s->block(s->deadline_after(m.rcvtimeo), [&] { return s->stack->read(sock, out, s->time()); }, m.busy_poll,
                  true);
}
ssize_t utcp_write(utcp_stack* s, int sock, const void* buf, size_t len) {
  if (!s || (!buf && len)) return -EINVAL;
  std::span<const uint8_t> in{static_cast<const uint8_t*>(buf), len};
  if (!s->blocking(sock) || len == 0) return s->stack->write(sock, in);
  // Blocking: queue every byte, waiting for room; stop early only on an error, a signal
  // or the send timeout, returning what was queued if anything was.
  utcp::Instant deadline = s->deadline_after(s->mode(sock).sndtimeo);
  size_t done = 0;
  while (done < len) {
    int64_t r = s->block(deadline, [&]() -> int64_t {
      int64_t w = s->stack->write(sock, in.subspan(done));
      return w == 0 ? -EAGAIN : w;  // no room yet
    }, s->mode(sock).busy_poll);
    if (r < 0) return done > 0 ? ssize_t(done) : ssize_t(r);
    done += size_t(r);
    s->stack->poll(s->time());  // push it out while the application prepares more
  }
  return ssize_t(done);
}
int utcp_shutdown(utcp_stack* s, int sock, int how) {
  return s ? s->stack->shutdown(sock, how) : -EINVAL;
}
int utcp_close(utcp_stack* s, int sock) {
  if (!s) return -EINVAL;
  bool blocking = s->blocking(sock);
  utcp::Connection* c = s->stack->connection(sock);
  utcp::LingerOpt lg{0, 0};
  size_t lglen = sizeof lg;
  if (c) s->stack->getsockopt(sock, utcp::SockOpt::kLinger, &lg, &lglen);
  utcp::FourTuple t = c ? c->tuple() : utcp::FourTuple{};
  int r = s->stack->close(sock);
  if (r < 0) return r;
  s->adopt(sock);
  if (!blocking || !c || !lg.onoff || lg.seconds <= 0) return 0;
  // Lingering close: until the peer acknowledged our FIN, the connection went, or time ran out.
  utcp::Instant deadline = s->time() + utcp::Duration(int64_t(lg.seconds) * 1'000'000);
  int64_t w = s->block(deadline, [&]() -> int64_t {
    const utcp::Connection* k = s->stack->find(t);
    using utcp::TcpState;
    bool acked = !k || k->state() == TcpState::kFinWait2 || k->state() == TcpState::kTimeWait ||
                 k->state() == TcpState::kClosed;  // LAST-ACK ends with the connection gone
    return acked ? 0 : -EAGAIN;
  });
  return w == -EAGAIN ? 0 : int(w);  // as Linux: the linger time ran out, the close stands
}
int utcp_poll(utcp_stack* s, int sock) { return s ? s->stack->events(sock) : -EINVAL; }

int utcp_poll_wait(utcp_stack* s, struct utcp_pollfd* fds, size_t n, int64_t timeout_us) {
  if (!s || (!fds && n)) return -EINVAL;
  utcp::Instant deadline = timeout_us < 0 ? utcp::kInstantNever : s->time() + utcp::Duration(timeout_us);
  bool first = true;
  for (;;) {
    if (!first || timeout_us != 0) s->stack->poll(s->time());
    first = false;
    int ready = 0;
    for (size_t i = 0; i < n; ++i) {
      int ev = s->stack->events(fds[i].sock);
      short want = short(fds[i].events | UTCP_POLLERR | UTCP_POLLHUP);
      fds[i].revents = ev < 0 ? short(UTCP_POLLNVAL) : short(ev & want);
      if (fds[i].revents) ++ready;
    }
    if (ready > 0 || s->time() >= deadline) return ready;
    if (!s->can_wait()) return -EOPNOTSUPP;
    if (s->wait_until(deadline) == -EINTR) return -EINTR;
  }
}

int utcp_set_blocking(utcp_stack* s, int sock, int on) {
  if (!s) return -EINVAL;
  if (s->stack->events(sock) < 0) return -EBADF;
  if (on && !s->can_wait()) return -EOPNOTSUPP;
  s->mode(sock).blocking = on != 0;
  return 0;
}

namespace {
// UTCP_SO_RCVTIMEO / UTCP_SO_SNDTIMEO: kept here, where blocking happens.
utcp::Duration* timeout_opt(utcp_stack* s, int sock, int opt) {
  if (opt != UTCP_SO_RCVTIMEO && opt != UTCP_SO_SNDTIMEO) return nullptr;
  SockMode& m = s->mode(sock);
  return opt == UTCP_SO_RCVTIMEO ? &m.rcvtimeo : &m.sndtimeo;
}
}  // namespace

int utcp_setsockopt(utcp_stack* s, int sock, int opt, const void* val, size_t len) {
  if (!s) return -EINVAL;
  if (opt == UTCP_SO_RCVTIMEO || opt == UTCP_SO_SNDTIMEO) {
    if (s->stack->events(sock) < 0) return -EBADF;
    int64_t us;
    if (!val || len != sizeof us) return -EINVAL;
    std::memcpy(&us, val, sizeof us);
    if (us < 0) return -EINVAL;
    *timeout_opt(s, sock, opt) = utcp::Duration(us);
    return 0;
  }
  if (opt < UTCP_TCP_NODELAY || (opt > UTCP_SO_ERROR && opt != UTCP_TCP_CONGESTION && opt != UTCP_SO_PROFILE))
    return -ENOPROTOOPT;
  int r = s->stack->setsockopt(sock, utcp::SockOpt(opt), val, len, s->time());
  if (r == 0 && opt == UTCP_SO_PROFILE) {
    // The profile's busy-polling is the blocking layer's, kept here.
    std::string name(static_cast<const char*>(val), strnlen(static_cast<const char*>(val), len));
    s->mode(sock).busy_poll = utcp::find_profile(name)->busy_poll;
  }
  return r;
}
int utcp_getsockopt(utcp_stack* s, int sock, int opt, void* val, size_t* len) {
  if (!s) return -EINVAL;
  if (opt == UTCP_SO_RCVTIMEO || opt == UTCP_SO_SNDTIMEO) {
    if (s->stack->events(sock) < 0) return -EBADF;
    if (!val || !len || *len < sizeof(int64_t)) return -EINVAL;
    int64_t us = timeout_opt(s, sock, opt)->count();
    std::memcpy(val, &us, sizeof us);
    *len = sizeof us;
    return 0;
  }
  if (opt < UTCP_TCP_NODELAY || (opt > UTCP_SO_ERROR && opt != UTCP_TCP_CONGESTION && opt != UTCP_SO_PROFILE))
    return -ENOPROTOOPT;
  return s->stack->getsockopt(sock, utcp::SockOpt(opt), val, len);
}

ssize_t utcp_export(utcp_stack* s, int sock, void* buf, size_t cap, size_t* needed) {
  if (!s) return -EINVAL;
  utcp::Connection* c = s->stack->connection(sock);
  if (!c) return -ENOTCONN;
  // Size first, so a short buffer leaves the connection where it is.
  auto probe = c->export_state(s->time()).serialize();
  if (needed) *needed = probe.size();
  if (probe.size() > cap || !buf) return -ENOSPC;
  std::vector<uint8_t> bytes;
  int r = s->stack->export_connection(sock, s->time(), &bytes);
  if (r < 0) return r;
  std::memcpy(buf, bytes.data(), bytes.size());
  return ssize_t(bytes.size());
}

int utcp_import(utcp_stack* s, const void* buf, size_t len) {
  if (!s || !buf) return -EINVAL;
  return s->adopt(s->stack->import_connection({static_cast<const uint8_t*>(buf), len}, s->time()));
}

const char* utcp_strerror(int err) {
  if (err >= 0) return "success";
  switch (-err) {
    case EAGAIN: return "operation would block: poll the stack and retry";
    case EINPROGRESS: return "connection in progress: poll for UTCP_POLLOUT";
    case ECONNREFUSED: return "connection refused by the peer (RST to our SYN)";
    case ECONNRESET: return "connection reset by the peer";
    case ETIMEDOUT: return "connection timed out (no answer to retransmissions or keepalives)";
    case EPIPE: return "writing after shutdown or close";
    case ENOTCONN: return "socket is not connected";
    case EADDRINUSE: return "address (port) already in use";
    case EBADF: return "not an open utcp socket";
    case EINTR: return "interrupted by a signal before anything happened";
    case EOPNOTSUPP: return "blocking needs the real clock and a device that can wait (module endpoint or TAP)";
    case EINVAL: return "invalid argument";
    default: return strerror(-err);
  }
}

// ---------------------------------------------------------------- raw API

utcp_stack* utcp_raw_create(uint32_t ip, uint32_t mtu, int64_t start_us, uint64_t isn_seed) {
  if (ip == 0 || (mtu != 0 && (mtu < 576 || mtu > 65535))) {
    errno = EINVAL;
    return nullptr;
  }
  const utcp::MacAddr stack_mac{{0x02, 0, 0, 0, 0, 0x01}}, peer_mac{{0x02, 0, 0, 0, 0, 0x02}};
  auto s = std::make_unique<utcp_stack>();
  s->raw = std::make_unique<utcp::RawDevice>(mtu ? mtu : 1500, stack_mac, peer_mac);
  utcp::StackConfig sc;
  sc.ip = utcp::Ipv4Addr{ip};
  sc.mac = stack_mac;
  sc.default_neighbor = peer_mac;
  if (isn_seed) sc.isn_key = key_from_seed(isn_seed);
  s->manual = true;
  s->now = utcp::Instant(utcp::Duration(start_us));
  s->stack = std::make_unique<utcp::Stack>(s->raw.get(), sc);
  return s.release();
}

int utcp_raw_inject(utcp_stack* s, const void* pkt, size_t len) {
  if (!s || !s->raw || !pkt) return -EINVAL;
  if (!s->raw->inject({static_cast<const uint8_t*>(pkt), len})) return -EINVAL;
  s->stack->poll(s->now);
  return 0;
}

ssize_t utcp_raw_collect(utcp_stack* s, void* buf, size_t cap) {
  if (!s || !s->raw) return -EINVAL;
  auto p = s->raw->front();
  if (p.empty()) return 0;
  if (p.size() > cap || !buf) return -ENOSPC;
  std::memcpy(buf, p.data(), p.size());
  ssize_t n = ssize_t(p.size());
  s->raw->pop();
  return n;
}

int utcp_raw_advance(utcp_stack* s, int64_t usec) {
  if (!s || !s->raw || usec < 0) return -EINVAL;
  s->now += utcp::Duration(usec);
  s->stack->poll(s->now);
  return 0;
}

void utcp_raw_destroy(utcp_stack* s) { delete s; }

}  // extern "C"
