// utcp_c.cc - the C API (include/utcp/utcp.h, raw.h) over utcp::Stack.
#include <cerrno>
#include <cstring>
#include <memory>

#include "api/raw_device.h"
#include "api/stack.h"
#include "tcp/state_export.h"
#include "utcp/raw.h"
#include "utcp/utcp.h"

struct utcp_stack {
  std::unique_ptr<utcp::RawDevice> raw;  // set for utcp_raw_create stacks
  std::unique_ptr<utcp::Stack> stack;
  bool manual = false;
  utcp::Instant now;

  utcp::Instant time() {
    if (!manual) now = utcp::Clock::now();
    return now;
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

int utcp_socket(utcp_stack* s) { return s ? s->stack->socket() : -EINVAL; }
int utcp_bind(utcp_stack* s, int sock, uint16_t port) {
  return s ? s->stack->bind(sock, port) : -EINVAL;
}
int utcp_listen(utcp_stack* s, int sock, int backlog) {
  return s ? s->stack->listen(sock, backlog) : -EINVAL;
}
int utcp_accept(utcp_stack* s, int sock, uint32_t* peer_ip, uint16_t* peer_port) {
  if (!s) return -EINVAL;
  utcp::FourTuple t;
  int r = s->stack->accept(sock, &t);
  if (r >= 0) {
    if (peer_ip) *peer_ip = t.remote_ip.v;
    if (peer_port) *peer_port = t.remote_port;
  }
  return r;
}
int utcp_connect(utcp_stack* s, int sock, uint32_t ip, uint16_t port) {
  return s ? s->stack->connect(sock, utcp::Ipv4Addr{ip}, port, s->time()) : -EINVAL;
}
ssize_t utcp_read(utcp_stack* s, int sock, void* buf, size_t len) {
  if (!s || (!buf && len)) return -EINVAL;
  s->time();  // reads may open the window: the stack compares against the latest time
  return s->stack->read(sock, {static_cast<uint8_t*>(buf), len});
}
ssize_t utcp_write(utcp_stack* s, int sock, const void* buf, size_t len) {
  if (!s || (!buf && len)) return -EINVAL;
  return s->stack->write(sock, {static_cast<const uint8_t*>(buf), len});
}
int utcp_shutdown(utcp_stack* s, int sock, int how) {
  return s ? s->stack->shutdown(sock, how) : -EINVAL;
}
int utcp_close(utcp_stack* s, int sock) { return s ? s->stack->close(sock) : -EINVAL; }
int utcp_poll(utcp_stack* s, int sock) { return s ? s->stack->events(sock) : -EINVAL; }

int utcp_setsockopt(utcp_stack* s, int sock, int opt, const void* val, size_t len) {
  if (!s) return -EINVAL;
  if (opt < UTCP_TCP_NODELAY || opt > UTCP_SO_ERROR) return -ENOPROTOOPT;
  return s->stack->setsockopt(sock, utcp::SockOpt(opt), val, len, s->time());
}
int utcp_getsockopt(utcp_stack* s, int sock, int opt, void* val, size_t* len) {
  if (!s) return -EINVAL;
  if (opt < UTCP_TCP_NODELAY || opt > UTCP_SO_ERROR) return -ENOPROTOOPT;
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
  return s->stack->import_connection({static_cast<const uint8_t*>(buf), len}, s->time());
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
