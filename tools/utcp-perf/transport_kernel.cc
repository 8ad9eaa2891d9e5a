// transport_kernel.cc - utcp-perf's kernel-TCP client: plain sockets, poll() for waiting.
// Also the client of utcp-sps (the single protocol server): the same, except that the
// socket is a Unix one to the server, which runs the TCP (tools/utcp-sps).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "device/module.h"
#include "perf.h"
#include "../utcp-sps/sps_protocol.h"

namespace utcp::perf {

namespace {

struct KernelConn : Conn {
  int fd = -1;
  ~KernelConn() override {
    if (fd >= 0) ::close(fd);
  }
};

class KernelTransport final : public Transport {
 public:
  KernelTransport(const sockaddr_in& sa, bool nodelay, std::string sps = {})
      : sa_(sa), nodelay_(nodelay), sps_(std::move(sps)) {}
  const char* name() const override { return sps_.empty() ? "kernel" : "sps"; }

  std::unique_ptr<Conn> open(double* setup_us, std::string* error) override {
    if (!sps_.empty()) return open_sps(setup_us, error);
    auto c = std::make_unique<KernelConn>();
    c->fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
      *error = std::string("socket: ") + std::strerror(errno);
      return nullptr;
    }
    if (nodelay_) {
      int one = 1;
      ::setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    // A blocking connect returns once the handshake's ACK is sent: established.
    int64_t t0 = now_us();
    if (::connect(c->fd, reinterpret_cast<const sockaddr*>(&sa_), sizeof sa_) < 0) {
      *error = std::string("connect: ") + std::strerror(errno);
      return nullptr;
    }
    *setup_us = double(now_us() - t0);
    ::fcntl(c->fd, F_SETFL, ::fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    return c;
  }

  // utcp-sps: a Unix socket to the server, the open request, and its answer once the
  // server's stack has the connection established.
  std::unique_ptr<Conn> open_sps(double* setup_us, std::string* error) {
    auto c = std::make_unique<KernelConn>();
    c->fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof un.sun_path, "%s", sps_.c_str());
    int64_t t0 = now_us();
    if (c->fd < 0 || ::connect(c->fd, reinterpret_cast<const sockaddr*>(&un), sizeof un) < 0) {
      *error = "cannot reach utcp-sps at " + sps_ + ": " + std::strerror(errno) + " (is it running?)";
      return nullptr;
    }
    sps::SpsOpen req;
    req.remote_ip = ntohl(sa_.sin_addr.s_addr);
    req.remote_port = ntohs(sa_.sin_port);
    req.flags = nodelay_ ? sps::kFlagNoDelay : 0;
    int32_t status = -EPROTO;
    if (::send(c->fd, &req, sizeof req, MSG_NOSIGNAL) != sizeof req ||
        ::recv(c->fd, &status, sizeof status, MSG_WAITALL) != sizeof status || status != 0) {
      *error = std::string("utcp-sps could not connect: ") + std::strerror(status < 0 ? -status : EPROTO);
      return nullptr;
    }
    *setup_us = double(now_us() - t0);
    ::fcntl(c->fd, F_SETFL, ::fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    return c;
  }

  int64_t send(Conn& c, std::span<const uint8_t> data) override {
    ssize_t w = ::send(static_cast<KernelConn&>(c).fd, data.data(), data.size(), MSG_NOSIGNAL);
    return w < 0 ? -errno : w;
  }
  int64_t recv(Conn& c, std::span<uint8_t> out) override {
    ssize_t r = ::recv(static_cast<KernelConn&>(c).fd, out.data(), out.size(), 0);
    return r < 0 ? -errno : r;
  }
  int shutdown_write(Conn& c) override {
    return ::shutdown(static_cast<KernelConn&>(c).fd, SHUT_WR) < 0 ? -errno : 0;
  }
  void close(std::unique_ptr<Conn> c) override { c.reset(); }  // the kernel finishes the close

  void progress(std::span<Conn* const> conns, bool busy, int64_t max_wait_us) override {
    if (busy) return;  // the sockets do their own work; only sleeping is ours
    pfds_.clear();
    for (Conn* c : conns) {
      short ev = short((c->want_read ? POLLIN : 0) | (c->want_write ? POLLOUT : 0));
      if (ev) pfds_.push_back({static_cast<KernelConn*>(c)->fd, ev, 0});
    }
    if (pfds_.empty()) return;
    ::poll(pfds_.data(), pfds_.size(), int(std::max<int64_t>(0, max_wait_us / 1000)));
  }

 private:
  sockaddr_in sa_;
  bool nodelay_;
  std::string sps_;  // utcp-sps's socket, or empty: the kernel's TCP
  std::vector<pollfd> pfds_;
};

int64_t meminfo_kib(const std::string& text, const char* key) {
  auto at = text.find(std::string("\n") + key + ":");
  if (at == std::string::npos) return 0;
  return std::strtoll(text.c_str() + at + std::strlen(key) + 2, nullptr, 10);
}

}  // namespace

std::unique_ptr<Transport> make_kernel_transport(const Target& t, bool nodelay, std::string* error) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(t.port);
  if (inet_pton(AF_INET, t.host.c_str(), &sa.sin_addr) != 1) {
    *error = "bad server address " + t.host + " (an IPv4 address is needed)";
    return nullptr;
  }
  return std::make_unique<KernelTransport>(sa, nodelay);
}

std::unique_ptr<Transport> make_sps_transport(const Target& t, bool nodelay, const std::string& socket_path,
                                              std::string* error) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(t.port);
  if (inet_pton(AF_INET, t.host.c_str(), &sa.sin_addr) != 1) {
    *error = "bad server address " + t.host + " (an IPv4 address is needed)";
    return nullptr;
  }
  return std::make_unique<KernelTransport>(sa, nodelay, socket_path.empty() ? sps::kDefaultSocket : socket_path);
}

int64_t now_us() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

void raise_fd_limit() {
  rlimit r;
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

MemSample sample_memory() {
  MemSample m;
  auto slurp = [](const char* path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << "\n" << f.rdbuf();
    return ss.str();
  };
  std::string status = slurp("/proc/self/status"), meminfo = slurp("/proc/meminfo");
  m.rss_kib = meminfo_kib(status, "VmRSS");
  m.rss_anon_kib = meminfo_kib(status, "RssAnon");
  m.slab_kib = meminfo_kib(meminfo, "Slab");
  m.vmalloc_kib = meminfo_kib(meminfo, "VmallocUsed");
  // A control file of the module, kept for the process's life (it creates no endpoint).
  static const int ctl = ::open("/dev/utcp", O_RDWR | O_CLOEXEC);
  utcp_global_stats g{};
  if (ctl >= 0 && ctl_global_stats(ctl, &g) == 0) m.rings_kib = int64_t(g.live_ring_bytes / 1024);
  return m;
}

}  // namespace utcp::perf
