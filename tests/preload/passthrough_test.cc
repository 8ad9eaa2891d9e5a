// passthrough_test.cc - run under LD_PRELOAD=libutcp-preload.so without utcpd or the module:
// what is not a utcp socket must behave exactly as without the layer, and a destination
// configured for utcp must fall back to the kernel's TCP (or fail clearly) when utcpd is
// not there.
//
//   preload_passthrough_test passthrough   files, pipes, Unix sockets, loopback TCP, poll/select/epoll, dup
//   preload_passthrough_test fallback      UTCP_PRELOAD_FALLBACK=1, DESTS naming the loopback listener
//   preload_passthrough_test refuse        UTCP_PRELOAD_FALLBACK=0: ECONNREFUSED (blocking and non-blocking)
//   preload_passthrough_test listen-fallback  UTCP_PRELOAD_LISTEN naming a port, no utcpd, FALLBACK=1:
//                                          the listen is the kernel's and serves loopback clients
//   preload_passthrough_test listen-refuse UTCP_PRELOAD_LISTEN, no utcpd, FALLBACK=0: listen fails
//                                          with EADDRNOTAVAIL, the socket stays bound; loopback stays kernel
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

int failures = 0;
#define EXPECT(cond)                                                                          \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "%s:%d: failed: %s (errno %s)\n", __FILE__, __LINE__, #cond,        \
                   std::strerror(errno));                                                     \
      ++failures;                                                                             \
    }                                                                                         \
  } while (0)

// The layer must really be loaded, or every check below proves nothing.
void expect_preloaded() {
  Dl_info info{};
  void* sym = dlsym(RTLD_DEFAULT, "connect");
  EXPECT(sym && dladdr(sym, &info) && info.dli_fname && std::strstr(info.dli_fname, "libutcp-preload.so"));
}

void files_and_pipes() {
  char path[] = "/tmp/preload-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT(fd >= 0);
  EXPECT(write(fd, "hello file", 10) == 10);
  int d = dup(fd);
  EXPECT(d >= 0 && lseek(d, 0, SEEK_SET) == 0);
  char buf[32] = {};
  EXPECT(read(fd, buf, sizeof buf) == 10 && std::memcmp(buf, "hello file", 10) == 0);
  int d2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  EXPECT(d2 >= 100 && (fcntl(d2, F_GETFD) & FD_CLOEXEC));
  EXPECT(close(d2) == 0 && close(d) == 0 && close(fd) == 0);
  EXPECT(close(fd) == -1 && errno == EBADF);  // libc's answer, unchanged
  unlink(path);

  int p[2];
  EXPECT(pipe2(p, O_NONBLOCK) == 0);
  EXPECT(read(p[0], buf, 1) == -1 && errno == EAGAIN);
  pollfd pf{p[0], POLLIN, 0};
  EXPECT(poll(&pf, 1, 0) == 0);
  EXPECT(write(p[1], "x", 1) == 1);
  EXPECT(poll(&pf, 1, 1000) == 1 && (pf.revents & POLLIN));
  fd_set r;
  FD_ZERO(&r);
  FD_SET(p[0], &r);
  timeval tv{1, 0};
  EXPECT(select(p[0] + 1, &r, nullptr, nullptr, &tv) == 1 && FD_ISSET(p[0], &r));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 42;
  EXPECT(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
  epoll_event out{};
  EXPECT(epoll_wait(ep, &out, 1, 1000) == 1 && out.data.u64 == 42);
  int n = -1;
  EXPECT(ioctl(p[0], FIONREAD, &n) == 0 && n == 1);
  EXPECT(dup2(p[0], 200) == 200 && read(200, buf, 1) == 1 && buf[0] == 'x');
  close(200);
  close(ep);
  close(p[0]);
  close(p[1]);
}

void unix_sockets() {
  int sv[2];
  EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  EXPECT(send(sv[0], "abc", 3, 0) == 3);
  char buf[8] = {};
  EXPECT(recv(sv[1], buf, sizeof buf, 0) == 3 && std::memcmp(buf, "abc", 3) == 0);
  // An fd passed with SCM_RIGHTS arrives intact.
  int p[2];
  EXPECT(pipe(p) == 0);
  char c = 'f';
  iovec iov{&c, 1};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
  EXPECT(sendmsg(sv[0], &mh, 0) == 1);
  std::memset(ctl, 0, sizeof ctl);
  mh.msg_controllen = sizeof ctl;
  EXPECT(recvmsg(sv[1], &mh, 0) == 1);
  int got = -1;
  cm = CMSG_FIRSTHDR(&mh);
  if (cm) std::memcpy(&got, CMSG_DATA(cm), sizeof(int));
  EXPECT(got >= 0 && write(got, "z", 1) == 1 && read(p[0], buf, 1) == 1 && buf[0] == 'z');
  close(got);
  close(p[0]);
  close(p[1]);
  close(sv[0]);
  close(sv[1]);
}

// A kernel TCP listener on loopback; returns its fd and port.
int listener(uint16_t* port) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  EXPECT(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
  EXPECT(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(l, 8) == 0);
  socklen_t len = sizeof a;
  EXPECT(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  *port = ntohs(a.sin_port);
  return l;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A kernel TCP connection on loopback, blocking or not, through every call the layer
// interposes; `l` is a listener.
void tcp_exchange(int l, uint16_t port, bool nonblocking) {
  int c = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  EXPECT(c >= 0);
  int one = 1;
  EXPECT(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
  sockaddr_in a = loopback(port);
  int r = connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (nonblocking) {
    EXPECT(r == 0 || errno == EINPROGRESS);
    pollfd pf{c, POLLOUT, 0};
    EXPECT(poll(&pf, 1, 5000) == 1 && (pf.revents & POLLOUT));
    int err = -1;
    socklen_t len = sizeof err;
    EXPECT(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0);
    EXPECT(fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK) == 0);
  } else {
    EXPECT(r == 0);
  }
  int s = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT(s >= 0);
  sockaddr_in peer{};
  socklen_t plen = sizeof peer;
  EXPECT(getpeername(c, reinterpret_cast<sockaddr*>(&peer), &plen) == 0 && ntohs(peer.sin_port) == port);
  int v = 0;
  socklen_t vlen = sizeof v;
  EXPECT(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, &vlen) == 0 && v == 1);
  EXPECT(write(c, "ping", 4) == 4);
  char buf[16] = {};
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = s;
  EXPECT(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
  epoll_event out{};
  EXPECT(epoll_wait(ep, &out, 1, 5000) == 1 && out.data.fd == s);
  int n = 0;
  EXPECT(ioctl(s, FIONREAD, &n) == 0 && n == 4);
  EXPECT(recv(s, buf, sizeof buf, MSG_PEEK) == 4 && read(s, buf, sizeof buf) == 4 && std::memcmp(buf, "ping", 4) == 0);
  iovec iov[2] = {{const_cast<char*>("po"), 2}, {const_cast<char*>("ng"), 2}};
  EXPECT(writev(s, iov, 2) == 4);
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(c, &rs);
  timeval tv{5, 0};
  EXPECT(select(c + 1, &rs, nullptr, nullptr, &tv) == 1);
  EXPECT(recv(c, buf, 4, MSG_WAITALL) == 4 && std::memcmp(buf, "pong", 4) == 0);
  EXPECT(shutdown(c, SHUT_WR) == 0 && read(s, buf, sizeof buf) == 0);
  int d = dup(c);
  EXPECT(close(c) == 0);
  EXPECT(send(s, "x", 1, MSG_NOSIGNAL) == 1 && read(d, buf, 1) == 1 && buf[0] == 'x');  // the dup keeps it open
  close(d);
  close(s);
  close(ep);
}

int run_refuse(uint16_t port) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = loopback(port);
  EXPECT(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == -1 && errno == ECONNREFUSED);
  int err = 0;
  socklen_t len = sizeof err;
  EXPECT(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
  EXPECT(write(c, "x", 1) == -1);
  close(c);
  c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  EXPECT(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == -1 && errno == EINPROGRESS);
  pollfd pf{c, POLLOUT, 0};
  EXPECT(poll(&pf, 1, 10000) == 1 && (pf.revents & POLLERR));
  err = 0;
  EXPECT(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ECONNREFUSED);
  close(c);
  return 0;
}

// A socket bound to addr:port with SO_REUSEADDR, or -1.
int bound(uint32_t addr, uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  EXPECT(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(addr);
  a.sin_port = htons(port);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    close(s);
    return -1;
  }
  return s;
}

uint16_t local_port(int s) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  EXPECT(getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return ntohs(a.sin_port);
}

// UTCP_PRELOAD_LISTEN names `port`, utcpd is absent.
void run_listen(uint16_t port, bool fallback) {
  int l = bound(INADDR_ANY, port);
  EXPECT(l >= 0);
  int acc = -1;
  socklen_t len = sizeof acc;
  if (fallback) {
    EXPECT(listen(l, 8) == 0);  // the kernel's, after the layer was told utcpd is not there
    EXPECT(getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc == 1);
    EXPECT(local_port(l) == port);
    tcp_exchange(l, port, false);
    tcp_exchange(l, port, true);
  } else {
    EXPECT(listen(l, 8) == -1 && errno == EADDRNOTAVAIL);
    EXPECT(local_port(l) == port);  // bound as before the listen
    EXPECT(getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc == 0);
    EXPECT(listen(l, 8) == -1 && errno == EADDRNOTAVAIL);  // the same again
    close(l);
    // Loopback is never utcp's: bound to 127.0.0.1, the same port listens on the kernel.
    l = bound(INADDR_LOOPBACK, port);
    EXPECT(l >= 0 && listen(l, 8) == 0);
    tcp_exchange(l, port, false);
  }
  close(l);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  expect_preloaded();
  uint16_t port = 0;
  int l = listener(&port);
  if (mode == "passthrough") {
    files_and_pipes();
    unix_sockets();
    tcp_exchange(l, port, false);
    tcp_exchange(l, port, true);
  } else if (mode == "fallback" || mode == "refuse") {
    // The destination is chosen by port: only this listener's port goes to utcp.
    std::string dests = "127.0.0.1:" + std::to_string(port);
    // Configuration is read once per process: re-exec with it in the environment.
    if (!std::getenv("UTCP_PRELOAD_DESTS")) {
      setenv("UTCP_PRELOAD_DESTS", dests.c_str(), 1);
      setenv("UTCP_REGISTRY", "/nonexistent/utcpd.sock", 1);
      setenv("UTCP_PRELOAD_FALLBACK", mode == "fallback" ? "1" : "0", 1);
      std::string fd = std::to_string(l);
      setenv("PRELOAD_TEST_LISTENER", fd.c_str(), 1);
      int fl = fcntl(l, F_GETFD);
      fcntl(l, F_SETFD, fl & ~FD_CLOEXEC);
      execv("/proc/self/exe", argv);
      std::perror("execv");
      return 1;
    }
    l = std::atoi(std::getenv("PRELOAD_TEST_LISTENER"));
    sockaddr_in a{};
    socklen_t len = sizeof a;
    EXPECT(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    if (mode == "fallback") {
      tcp_exchange(l, port, false);
      tcp_exchange(l, port, true);
    } else {
      run_refuse(port);
    }
  } else if (mode == "listen-fallback" || mode == "listen-refuse") {
    if (!std::getenv("UTCP_PRELOAD_LISTEN")) {
      close(l);
      int probe = bound(INADDR_ANY, 0);  // a free port for the listen
      std::string p = std::to_string(local_port(probe));
      close(probe);
      setenv("UTCP_PRELOAD_LISTEN", p.c_str(), 1);
      setenv("UTCP_PRELOAD_DESTS", "none", 1);
      setenv("UTCP_REGISTRY", "/nonexistent/utcpd.sock", 1);
      setenv("UTCP_PRELOAD_FALLBACK", mode == "listen-fallback" ? "1" : "0", 1);
      execv("/proc/self/exe", argv);
      std::perror("execv");
      return 1;
    }
    run_listen(uint16_t(std::atoi(std::getenv("UTCP_PRELOAD_LISTEN"))), mode == "listen-fallback");
  } else {
    std::fprintf(stderr, "usage: preload_passthrough_test passthrough|fallback|refuse|listen-fallback|listen-refuse\n");
    return 2;
  }
  std::printf("%s: %s\n", mode.c_str(), failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
