// server.cc - utcp-perf's server: kernel TCP, one thread, epoll, any number of
// connections, each serving the mode its request header names (sink, source, echo).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "perf.h"

namespace utcp::perf {

namespace {

struct ServerConn {
  int fd = -1;
  uint8_t hdr[Request::kLen];
  size_t hdr_len = 0;
  bool have_request = false;
  Request req;
  uint64_t received = 0;   // sink: bytes after the header
  uint64_t sent = 0;       // source: bytes sent so far
  bool peer_eof = false;
  bool fin_sent = false;
  std::vector<uint8_t> out;  // bytes waiting to be written (echo data, sink's count)
  size_t out_off = 0;
};

class Server {
 public:
  Server(bool verbose) : verbose_(verbose), buf_(256 * 1024), pattern_(1 << 20) {
    for (size_t i = 0; i < pattern_.size(); ++i) pattern_[i] = uint8_t(i * 131 + 7);
  }
  int run(const std::string& bind_addr, uint16_t port);

 private:
  void accept_all();
  // Runs one connection as far as it goes without blocking; false when it is finished.
  bool service(ServerConn& c);
  bool flush_out(ServerConn& c);
  void set_interest(ServerConn& c, bool write);
  void drop(int fd);

  bool verbose_;
  int listen_fd_ = -1, ep_ = -1;
  std::unordered_map<int, std::unique_ptr<ServerConn>> conns_;
  std::vector<uint8_t> buf_, pattern_;
  uint64_t served_ = 0;
};

int Server::run(const std::string& bind_addr, uint16_t port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return std::perror("utcp-perf server: socket"), 1;
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, bind_addr.c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "utcp-perf server: bad address %s\n", bind_addr.c_str());
    return 2;
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return std::fprintf(stderr, "utcp-perf server: bind %s:%u: %s\n", bind_addr.c_str(), port, std::strerror(errno)), 1;
  if (::listen(listen_fd_, 4096) < 0) return std::perror("utcp-perf server: listen"), 1;
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  ::epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev);
  std::fprintf(stderr, "utcp-perf server: listening on %s:%u\n", bind_addr.c_str(), port);
  std::vector<epoll_event> events(256);
  for (;;) {
    int n = ::epoll_wait(ep_, events.data(), int(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("utcp-perf server: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listen_fd_) {
        accept_all();
        continue;
      }
      auto it = conns_.find(fd);
      if (it == conns_.end()) continue;
      if (!service(*it->second)) drop(fd);
    }
  }
}

void Server::accept_all() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        std::fprintf(stderr, "utcp-perf server: accept: %s\n", std::strerror(errno));
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<ServerConn>();
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    ServerConn& ref = *c;
    conns_[fd] = std::move(c);
    if (!service(ref)) drop(fd);
  }
}

void Server::set_interest(ServerConn& c, bool write) {
  epoll_event ev{};
  // While output is blocked, only writability matters (level-triggered input would spin).
  ev.events = write ? uint32_t(EPOLLOUT) : uint32_t(EPOLLIN | EPOLLRDHUP);
  ev.data.fd = c.fd;
  ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Server::drop(int fd) {
  ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  conns_.erase(fd);
  ++served_;
  if (verbose_) std::fprintf(stderr, "utcp-perf server: %llu connections served\n", (unsigned long long)served_);
}

// Writes what is pending; false on a hard error. Leaves EPOLLOUT armed while bytes remain.
bool Server::flush_out(ServerConn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t w = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        set_interest(c, true);
        return true;
      }
      return false;
    }
    c.out_off += size_t(w);
  }
  c.out.clear();
  c.out_off = 0;
  return true;
}

bool Server::service(ServerConn& c) {
  // The request header first.
  while (!c.have_request) {
    ssize_t r = ::recv(c.fd, c.hdr + c.hdr_len, Request::kLen - c.hdr_len, 0);
    if (r == 0) return false;  // a connect-only client: closed before asking anything
    if (r < 0) return errno == EAGAIN || errno == EINTR;
    c.hdr_len += size_t(r);
    if (c.hdr_len < Request::kLen) continue;
    if (!c.req.decode(c.hdr)) {
      std::fprintf(stderr, "utcp-perf server: a connection sent no valid request header; closing it\n");
      return false;
    }
    c.have_request = true;
  }
  if (!flush_out(c)) return false;
  if (!c.out.empty()) return true;  // still blocked on output

  switch (c.req.mode) {
    case ServeMode::kSink:
      while (!c.peer_eof) {
        ssize_t r = ::recv(c.fd, buf_.data(), buf_.size(), 0);
        if (r == 0) {
          c.peer_eof = true;
          uint64_t n = c.received;
          c.out.resize(8);
          for (int i = 7; i >= 0; --i, n >>= 8) c.out[size_t(i)] = uint8_t(n);
          if (!flush_out(c)) return false;
          if (!c.out.empty()) return true;
          break;
        }
        if (r < 0) return errno == EAGAIN || errno == EINTR;
        c.received += uint64_t(r);
      }
      return !c.out.empty();  // count written: done
    case ServeMode::kSource: {
      const uint32_t ws = c.req.msg_size ? std::min<uint32_t>(c.req.msg_size, uint32_t(pattern_.size())) : 65536;
      while (c.req.bytes == 0 || c.sent < c.req.bytes) {
        size_t n = ws;
        if (c.req.bytes) n = size_t(std::min<uint64_t>(n, c.req.bytes - c.sent));
        ssize_t w = ::send(c.fd, pattern_.data(), n, MSG_NOSIGNAL);
        if (w < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) {
            set_interest(c, true);
            return true;
          }
          return false;  // the client closed (time-limited runs end so)
        }
        c.sent += uint64_t(w);
      }
      if (!c.fin_sent) {
        ::shutdown(c.fd, SHUT_WR);
        c.fin_sent = true;
        set_interest(c, false);
      }
      // Wait for the client's end of stream, discarding anything it sends.
      for (;;) {
        ssize_t r = ::recv(c.fd, buf_.data(), buf_.size(), 0);
        if (r == 0) return false;
        if (r < 0) return errno == EAGAIN || errno == EINTR;
      }
    }
    case ServeMode::kEcho:
      for (;;) {
        ssize_t r = ::recv(c.fd, buf_.data(), buf_.size(), 0);
        if (r == 0) return false;
        if (r < 0) {
          if (errno == EAGAIN || errno == EINTR) set_interest(c, false);
          return errno == EAGAIN || errno == EINTR;
        }
        ssize_t w = ::send(c.fd, buf_.data(), size_t(r), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) return false;
        if (w < r) {
          size_t done = w < 0 ? 0 : size_t(w);
          c.out.assign(buf_.data() + done, buf_.data() + r);
          c.out_off = 0;
          set_interest(c, true);
          return true;
        }
      }
  }
  return false;
}

}  // namespace

void Request::encode(uint8_t out[kLen]) const {
  auto put = [&](size_t at, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i, v >>= 8) out[at + size_t(i)] = uint8_t(v);
  };
  std::memset(out, 0, kLen);
  put(0, kMagic, 4);
  out[4] = uint8_t(mode);
  put(8, msg_size, 4);
  put(16, bytes, 8);
}

bool Request::decode(const uint8_t in[kLen]) {
  auto get = [&](size_t at, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | in[at + size_t(i)];
    return v;
  };
  if (get(0, 4) != kMagic) return false;
  if (in[4] < 1 || in[4] > 3) return false;
  for (size_t i : {5, 6, 7, 12, 13, 14, 15})
    if (in[i] != 0) return false;
  mode = ServeMode(in[4]);
  msg_size = uint32_t(get(8, 4));
  bytes = get(16, 8);
  return true;
}

int run_server(const std::string& bind_addr, uint16_t port, bool verbose) {
  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  Server s(verbose);
  return s.run(bind_addr, port);
}

}  // namespace utcp::perf
