// utcp-sps - the single protocol server: utcp's TCP in one process that applications
// reach over Unix sockets (tools/utcp-sps/sps_protocol.h).
//
// This is the structure the paper argues against (§1, the Mach 3.0/UX row of its tables),
// built from the same code as the library so that its cost is measured, not assumed:
// every byte an application sends crosses the Unix socket (a system call and a copy on
// each side) before this server's stack puts it in the endpoint's ring, and every byte
// received takes the same way back. One thread serves every connection: an epoll set
// over the Unix sockets and the endpoint files, the stacks run when their fd is ready or
// their timer is due. Endpoints come from utcpd like any application's (utcpd runs the
// handshake, paper §3.4); the server holds them, not the applications.
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "api/stack.h"
#include "device/kmod_device.h"
#include "registry/client.h"
#include "sps_protocol.h"

namespace utcp::sps {
namespace {

int g_verbose = 0;

struct Conn {
  int ufd = -1;  // the application's end of the IPC
  SpsOpen req{};
  size_t req_len = 0;
  registry::Grant grant{};
  std::unique_ptr<KmodDevice> dev;
  std::unique_ptr<Stack> stack;
  int h = -1;
  const Connection* closing = nullptr;
  bool app_eof = false;  // the application shut down writing: our FIN is queued
  bool tcp_eof = false;  // the peer's FIN arrived: the application's socket was shut down
  bool dead = false;     // to be closed (the application went away, or the connection died)
  std::vector<uint8_t> out = std::vector<uint8_t>(65536);  // from the stack, for the application
  size_t out_off = 0, out_len = 0;
  Instant close_deadline = kInstantNever;
  bool again = false;  // pump() stopped while data was still moving
};

class Server {
 public:
  int start(const std::string& path, std::string* err) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (reg_.connect(err) < 0) return -1;
    lfd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) {
      *err = "socket path too long: " + path;
      return -1;
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    ::unlink(path.c_str());
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(lfd_, 1024) < 0) {
      *err = "cannot listen on " + path + ": " + std::strerror(errno);
      return -1;
    }
    ::chmod(path.c_str(), 0666);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev);
    std::fprintf(stderr, "utcp-sps: serving on %s\n", path.c_str());
    return 0;
  }

  void run() {
    std::vector<Conn*> ready;
    for (;;) {
      Instant now = Clock::now();
      Instant next = now + Duration(1'000'000);
      for (auto& c : conns_)
        if (c->stack) next = std::min({next, c->again ? now : c->stack->poll_at(), c->close_deadline});
      int64_t us = std::max<int64_t>(0, (next - now).count());
      timespec ts{time_t(us / 1'000'000), long(us % 1'000'000) * 1000};
      epoll_event evs[64];
      int n = ::epoll_pwait2(ep_, evs, 64, &ts, nullptr);
      ready.clear();
      for (int i = 0; i < n; ++i) {
        if (evs[i].data.ptr == nullptr) accept_clients();
        else ready.push_back(static_cast<Conn*>(evs[i].data.ptr));
      }
      now = Clock::now();
      for (Conn* c : ready) pump(*c, now);
      for (auto it = conns_.begin(); it != conns_.end();) {
        Conn& c = **it;
        if (c.stack && (c.again || c.stack->poll_at() <= now || now >= c.close_deadline)) pump(c, now);
        if (finished(c, now)) {
          drop(c);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

 private:
  void accept_clients() {
    for (;;) {
      int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      auto c = std::make_unique<Conn>();
      c->ufd = fd;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = c.get();
      ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      conns_.push_back(std::move(c));
    }
  }

  void answer(Conn& c, int32_t status) {
    // The socket is new and empty: four bytes always fit.
    if (::send(c.ufd, &status, sizeof status, MSG_NOSIGNAL) != sizeof status) c.dead = true;
  }

  // The application's SpsOpen is complete: an endpoint and the handshake from utcpd
  // (blocking: one at a time, as a server that serialises its requests does).
  void open(Conn& c) {
    std::string err;
    std::vector<uint8_t> state;
    if (c.req.magic != kMagic || c.req.remote_port == 0) {
      answer(c, -EPROTO);
      c.dead = true;
      return;
    }
    int rc = reg_.connect_endpoint(Ipv4Addr{c.req.remote_ip}, c.req.remote_port, 0, &c.grant, &err, &state);
    if (rc < 0) {
      if (g_verbose) std::fprintf(stderr, "utcp-sps: connect: %s\n", err.c_str());
      answer(c, rc);
      c.dead = true;
      return;
    }
    c.dev = KmodDevice::open(c.grant.endpoint_fd, c.grant.mtu, &err);
    if (!c.dev) {
      c.grant.endpoint_fd = -1;
      answer(c, -EIO);
      c.dead = true;
      return;
    }
    StackConfig cfg;
    cfg.ip = c.grant.local_ip;
    cfg.mac = c.grant.local_mac;
    c.stack = std::make_unique<Stack>(c.dev.get(), cfg);
    c.stack->add_neighbor(c.grant.remote_ip, c.grant.next_hop_mac);
    c.h = c.stack->import_connection(state, Clock::now());
    if (c.h < 0) {
      answer(c, c.h);
      c.dead = true;
      return;
    }
    if (c.req.flags & kFlagNoDelay) {
      int one = 1;
      c.stack->setsockopt(c.h, SockOpt::kNoDelay, &one, sizeof one, Clock::now());
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.dev->fd(), &ev);
    if (g_verbose)
      std::fprintf(stderr, "utcp-sps: endpoint %u for local port %u -> port %u\n", c.grant.endpoint_id,
                   c.grant.local_port, c.grant.remote_port);
    answer(c, 0);
  }

  void pump(Conn& c, Instant now) {
    if (c.dead) return;
    if (c.req_len < sizeof c.req) {
      auto* p = reinterpret_cast<uint8_t*>(&c.req);
      ssize_t r = ::recv(c.ufd, p + c.req_len, sizeof c.req - c.req_len, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN)) c.dead = true;
      if (r > 0) c.req_len += size_t(r);
      if (c.req_len < sizeof c.req) return;
      open(c);
      if (c.dead) return;
    }
    if (c.h < 0) return;  // closing: the stack alone finishes the connection
    // Until a round moves nothing: a poll can take in data or ACKs (send space) that the
    // next event would not announce — the Unix socket is edge-triggered and the endpoint
    // may stay quiet — so what it made possible is done now, not on a later timer.
    // A busy connection gets a bounded number of rounds, then its turn comes again in the
    // next loop of run() without waiting: the others are served in between.
    Stack& s = *c.stack;
    c.again = false;
    for (int round = 0;; ++round) {
      s.poll(now);
      const bool moved_in = app_to_tcp(c);
      const bool moved_out = tcp_to_app(c);
      if (c.dead || !(moved_in || moved_out)) break;
      if (round == 16) {
        c.again = true;
        break;
      }
    }
    if (c.app_eof && c.tcp_eof && c.out_off >= c.out_len) start_close(c, now);
  }

  // Application -> TCP: only what the send buffer takes, so nothing is read and held.
  // True if anything moved.
  bool app_to_tcp(Conn& c) {
    Stack& s = *c.stack;
    uint8_t buf[65536];
    bool moved = false;
    while (!c.app_eof && !c.dead) {
      const Connection* conn = s.connection(c.h);
      size_t space = conn ? conn->send_space() : 0;
      if (space == 0) break;
      ssize_t r = ::recv(c.ufd, buf, std::min(space, sizeof buf), 0);
      if (r > 0) {
        s.write(c.h, {buf, size_t(r)});
        moved = true;
      } else if (r == 0) {
        c.app_eof = true;
        s.shutdown(c.h, 1);
        moved = true;
      } else {
        if (errno != EAGAIN) c.dead = true;
        break;
      }
    }
    return moved;
  }

  // TCP -> application. True if anything moved.
  bool tcp_to_app(Conn& c) {
    Stack& s = *c.stack;
    bool moved = false;
    while (!c.dead) {
      if (c.out_off < c.out_len) {
        ssize_t w = ::send(c.ufd, c.out.data() + c.out_off, c.out_len - c.out_off, MSG_NOSIGNAL);
        if (w < 0) {
          if (errno != EAGAIN) c.dead = true;
          break;
        }
        c.out_off += size_t(w);
        moved = true;
        continue;
      }
      int64_t n = s.read(c.h, c.out);
      if (n > 0) {
        c.out_off = 0;
        c.out_len = size_t(n);
      } else if (n == 0) {
        if (!c.tcp_eof) {
          ::shutdown(c.ufd, SHUT_WR);
          moved = true;
        }
        c.tcp_eof = true;
        break;
      } else {
        if (n != -EAGAIN) {
          // Reset or timed out: the application sees its socket end abruptly.
          ::shutdown(c.ufd, SHUT_RDWR);
          c.dead = true;
        }
        break;
      }
    }
    return moved;
  }

  void start_close(Conn& c, Instant now) {
    if (c.h < 0) return;
    c.closing = c.stack->connection(c.h);
    c.stack->close(c.h);
    c.h = -1;
    c.stack->poll(now);
    c.close_deadline = now + Duration(2'000'000);
    if (c.ufd >= 0) {
      ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.ufd, nullptr);
      ::close(c.ufd);
      c.ufd = -1;
    }
  }

  bool finished(Conn& c, Instant now) {
    if (c.dead) {
      if (c.stack && c.h >= 0) start_close(c, now);
      if (!c.stack) return true;
    }
    if (!c.stack || c.h >= 0) return false;
    c.stack->poll(now);
    return c.stack->connection_count() == 0 || now >= c.close_deadline ||
           (c.closing && c.closing->state() == TcpState::kTimeWait);
  }

  void drop(Conn& c) {
    if (c.ufd >= 0) {
      ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.ufd, nullptr);
      ::close(c.ufd);
    }
    const uint32_t id = c.grant.endpoint_id;
    if (c.dev) ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.dev->fd(), nullptr);
    c.stack.reset();
    c.dev.reset();
    std::string err;
    if (id && reg_.release(id, &err) < 0 && g_verbose)
      std::fprintf(stderr, "utcp-sps: releasing endpoint %u: %s\n", id, err.c_str());
  }

  registry::RegistryClient reg_;
  int ep_ = -1, lfd_ = -1;
  std::list<std::unique_ptr<Conn>> conns_;
};

int usage(FILE* out) {
  std::fprintf(out,
               "usage: utcp-sps [--socket PATH] [-v]\n"
               "\n"
               "The single protocol server: utcp's TCP in this one process, which applications\n"
               "reach over a Unix stream socket per connection (PATH, default %s) instead of\n"
               "linking the library: the structure the paper measured as Mach 3.0/UX, kept for\n"
               "benchmarks (utcp-perf --stack sps). Endpoints come from utcpd (UTCP_REGISTRY).\n",
               kDefaultSocket);
  return out == stdout ? 0 : 2;
}

}  // namespace
}  // namespace utcp::sps

int main(int argc, char** argv) {
  std::string path = utcp::sps::kDefaultSocket;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") return utcp::sps::usage(stdout);
    if (a == "--socket" && i + 1 < argc) path = argv[++i];
    else if (a == "-v") utcp::sps::g_verbose = 1;
    else return utcp::sps::usage(stderr);
  }
  ::signal(SIGPIPE, SIG_IGN);
  utcp::sps::Server s;
  std::string err;
  if (s.start(path, &err) < 0) {
    std::fprintf(stderr, "utcp-sps: %s\n", err.c_str());
    return 1;
  }
  s.run();
}
