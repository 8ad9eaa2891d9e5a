// accept_many.cc - the VM test scale_accept's utcp server: N connections accepted on one
// listen through utcpd's passive open (paper §3.4), all held open at once, each one's
// data checked and echoed, every endpoint given back (issue 6).
//
//   accept_many PORT N BYTES [--rings RX,TX,SLOT] [--backlog B]
//
// Each client sends BYTES bytes: its index (4 bytes, big-endian, 0..N-1) and then
// SeededStream(index + 1) for the rest, and ends its direction. A connection's bytes are
// checked when its end of stream arrives; nothing is echoed until all N connections have
// been accepted (so all N are open here at once), then each gets its bytes back and is
// closed. One thread, one epoll set over the registry socket and every endpoint file.
// Prints "listening on IP:PORT" when utcpd listens and a summary at the end; exit 0 when
// all N arrived once each with the right bytes and every endpoint was released.
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "api/stack.h"
#include "device/kmod_device.h"
#include "registry/client.h"
#include "../../examples/seeded_stream.h"

using namespace utcp;
using utcp::examples::SeededStream;

namespace {

struct Conn {
  registry::Grant grant;
  std::unique_ptr<KmodDevice> dev;
  std::unique_ptr<Stack> stack;
  int h = -1;
  std::vector<uint8_t> got;
  bool peer_eof = false, checked = false, closed = false, released = false;
  size_t echoed = 0;
  const Connection* closing = nullptr;
  Instant close_deadline{};
};

int usage() {
  std::fprintf(stderr, "usage: accept_many PORT N BYTES [--rings RX,TX,SLOT] [--backlog B]\n"
                       "(N connections through utcpd's passive open; BYTES >= 4 from each, echoed)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return usage();
  const int port = std::atoi(argv[1]);
  const long n = std::atol(argv[2]);
  const long bytes = std::atol(argv[3]);
  if (port <= 0 || port > 65535 || n <= 0 || n > 100000 || bytes < 4 || bytes > (64 << 20)) return usage();
  registry::RingSize rings{32, 32, 2048};
  int backlog = int(std::min<long>(n, registry::kMaxBacklog));
  for (int i = 4; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rings" && i + 1 < argc) {
      unsigned rx = 0, tx = 0, slot = 0;
      char tail = 0;
      if (std::sscanf(argv[++i], "%u,%u,%u%c", &rx, &tx, &slot, &tail) != 3 || rx > 4096 || tx > 4096 ||
          slot > registry::kMaxRingSlot)
        return usage();
      rings = registry::RingSize{uint16_t(rx), uint16_t(tx), slot};
    } else if (a == "--backlog" && i + 1 < argc) {
      backlog = std::atoi(argv[++i]);
      if (backlog < 0 || backlog > 65535) return usage();
    } else {
      return usage();
    }
  }
  // One endpoint file per connection.
  if (rlimit r{}; ::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }

  std::string err;
  registry::RegistryClient reg;
  if (reg.connect(&err) < 0) return std::fprintf(stderr, "accept_many: %s\n", err.c_str()), 1;
  reg.set_rings(rings);
  registry::Grant lg;
  if (reg.listen(uint16_t(port), uint16_t(backlog), &lg, &err) < 0)
    return std::fprintf(stderr, "accept_many: listen: %s\n", err.c_str()), 1;
  in_addr la{htonl(lg.local_ip.v)};
  std::fprintf(stderr, "accept_many: listening on %s:%u (backlog %d)\n", inet_ntoa(la), lg.local_port, backlog);

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event rev{};
  rev.events = EPOLLIN;
  rev.data.ptr = nullptr;  // the registry socket
  if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, reg.fd(), &rev) < 0)
    return std::fprintf(stderr, "accept_many: epoll: %s\n", std::strerror(errno)), 1;

  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<int> seen(size_t(n), 0);
  long errors = 0, checked_ok = 0, released = 0, open_now = 0, open_peak = 0;
  auto bad = [&](const std::string& what) {
    if (++errors <= 20) std::fprintf(stderr, "accept_many: %s\n", what.c_str());
  };
  auto release = [&](Conn& c) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, c.dev->fd(), nullptr);
    c.stack.reset();
    c.dev.reset();
    c.released = true;
    --open_now;
    ++released;
    std::string e;
    if (reg.release(c.grant.endpoint_id, &e, false) < 0) bad("releasing endpoint: " + e);
  };
  std::vector<uint8_t> buf(64 * 1024), want(static_cast<size_t>(bytes));
  const Instant started = Clock::now();
  Instant all_accepted{};

  while (released < n) {
    // Accepts one at a time on the registry socket, until N have come.
    if (long(conns.size()) < n && !reg.accept_pending() && reg.send_accept(lg.endpoint_id, true, &err) < 0)
      return std::fprintf(stderr, "accept_many: accept: %s\n", err.c_str()), 1;
    Instant now = Clock::now();
    Instant next = now + Duration(200'000);
    const bool all_in = long(conns.size()) == n;
    for (auto& cp : conns) {
      Conn& c = *cp;
      if (c.released) continue;
      c.stack->poll(now);
      if (c.closed) {
        // The stack holds only this connection: while its table is not empty, `closing`
        // (the entry) stays valid after the handle was closed.
        const bool gone = c.stack->connection_count() == 0 || !c.closing;
        const bool time_wait = !gone && c.closing->state() == TcpState::kTimeWait;
        if (gone || time_wait || now >= c.close_deadline) {
          if (!gone && !time_wait)
            bad("a connection did not finish its close in time");
          release(c);
          continue;
        }
      }
      while (!c.peer_eof && !c.closed) {
        int64_t r = c.stack->read(c.h, buf);
        if (r > 0) {
          if (c.got.size() + size_t(r) > size_t(bytes)) {
            bad("a connection sent more than " + std::to_string(bytes) + " bytes");
            c.got.resize(size_t(bytes) + 1);
          } else {
            c.got.insert(c.got.end(), buf.begin(), buf.begin() + r);
          }
          continue;
        }
        if (r == 0) c.peer_eof = true;
        else if (r != -EAGAIN) {
          bad(std::string("read: ") + std::strerror(int(-r)));
          c.closing = c.stack->connection(c.h);
          c.stack->close(c.h);
          c.closed = true;
          c.close_deadline = now + Duration(5'000'000);
        }
        break;
      }
      if (c.peer_eof && !c.checked) {
        c.checked = true;
        uint32_t idx = c.got.size() >= 4 ? (uint32_t(c.got[0]) << 24 | uint32_t(c.got[1]) << 16 |
                                            uint32_t(c.got[2]) << 8 | c.got[3])
                                         : UINT32_MAX;
        if (long(c.got.size()) != bytes) {
          bad("a connection carried " + std::to_string(c.got.size()) + " bytes, not " + std::to_string(bytes));
        } else if (idx >= uint32_t(n) || seen[idx]++) {
          bad("client index " + std::to_string(idx) + " out of range or seen twice");
        } else {
          SeededStream(idx + 1, uint64_t(bytes - 4)).read(want.data() + 4, size_t(bytes - 4));
          std::memcpy(want.data(), c.got.data(), 4);
          if (std::memcmp(want.data(), c.got.data(), size_t(bytes)) != 0) bad("client " + std::to_string(idx) + "'s bytes differ");
          else ++checked_ok;
        }
      }
      // Echo only once every connection has been accepted (all N held open at once).
      if (all_in && c.checked && !c.closed) {
        while (c.echoed < c.got.size()) {
          int64_t w = c.stack->write(c.h, std::span<const uint8_t>(c.got.data() + c.echoed, c.got.size() - c.echoed));
          if (w <= 0) {
            if (w != -EAGAIN && w != 0) {
              bad(std::string("write: ") + std::strerror(int(-w)));
              c.echoed = c.got.size();
            }
            break;
          }
          c.echoed += size_t(w);
        }
        if (c.echoed == c.got.size()) {
          c.closing = c.stack->connection(c.h);
          c.stack->close(c.h);
          c.closed = true;
          c.close_deadline = now + Duration(30'000'000);
          c.stack->poll(now);
        }
      }
      next = std::min(next, c.stack->poll_at());
      if (c.closed) next = std::min(next, c.close_deadline);
    }
    if (released == n) break;
    now = Clock::now();
    const int64_t us = next <= now ? 0 : std::min<int64_t>((next - now).count(), 200'000);
    timespec ts{time_t(us / 1'000'000), long(us % 1'000'000) * 1000};
    epoll_event evs[64];
    int k = ::epoll_pwait2(ep, evs, 64, &ts, nullptr);
    for (int i = 0; i < k; ++i) {
      if (evs[i].data.ptr != nullptr) continue;  // an endpoint: polled above
      auto c = std::make_unique<Conn>();
      std::vector<uint8_t> state;
      if (reg.receive_accept(&c->grant, &state, &err) < 0)
        return std::fprintf(stderr, "accept_many: accept %zu: %s\n", conns.size() + 1, err.c_str()), 1;
      c->dev = KmodDevice::open(c->grant.endpoint_fd, c->grant.mtu, &err);
      if (!c->dev) return std::fprintf(stderr, "accept_many: endpoint: %s\n", err.c_str()), 1;
      StackConfig cfg;
      cfg.ip = c->grant.local_ip;
      cfg.mac = c->grant.local_mac;
      c->stack = std::make_unique<Stack>(c->dev.get(), cfg);
      c->stack->add_neighbor(c->grant.remote_ip, c->grant.next_hop_mac);
      c->h = c->stack->import_connection(state, Clock::now());
      if (c->h < 0)
        return std::fprintf(stderr, "accept_many: importing a connection: %s\n", std::strerror(-c->h)), 1;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c.get();
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, c->dev->fd(), &ev) < 0)
        return std::fprintf(stderr, "accept_many: epoll_ctl: %s\n", std::strerror(errno)), 1;
      conns.push_back(std::move(c));
      open_peak = std::max(open_peak, ++open_now);
      if (long(conns.size()) == n) all_accepted = Clock::now();
    }
  }
  std::string e;
  if (reg.release_listen(lg.endpoint_id, &e) < 0) bad("closing the listen: " + e);
  const double acc_s = std::chrono::duration<double>(all_accepted - started).count();
  const double all_s = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("accepted %zu, open at once %ld, checked %ld, released %ld, errors %ld; all accepted after %.1f s, done after %.1f s\n",
              conns.size(), open_peak, checked_ok, released, errors, acc_s, all_s);
  return errors == 0 && checked_ok == n && open_peak == n ? 0 : 1;
}
