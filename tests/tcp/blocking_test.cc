// blocking_test.cc - the C API's blocking calls (utcp_set_blocking, timeouts, EINTR,
// utcp_poll_wait, lingering close) against the Linux kernel's own TCP over a TAP
// interface in a private namespace. The kernel side runs in a thread with ordinary
// blocking sockets; utcp's side blocks in utcp_* calls on the real clock. Skips when
// namespaces or TAP are unavailable.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/c_api.h"
#include "device/tap.h"
#include "utcp/raw.h"
#include "utcp/utcp.h"
#include "utcp/utcp.hpp"
#include "../common/kernel_tap.h"

namespace utcp::test {
namespace {

const Ipv4Addr kKernelIp = Ipv4Addr::of(10, 9, 2, 1);
const Ipv4Addr kOurIp = Ipv4Addr::of(10, 9, 2, 2);
const MacAddr kOurMac{{0x02, 0x00, 0x00, 0x00, 0x02, 0x02}};

uint8_t pattern(uint64_t i) { return uint8_t((i * 2654435761u) >> 13 ^ (i >> 19)); }

Fd kernel_listener(uint16_t port) {
  Fd l(::socket(AF_INET, SOCK_STREAM, 0));
  int one = 1;
  ::setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = sin_of(kKernelIp, port);
  EXPECT_EQ(::bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(l.fd, 8), 0);
  return l;
}

// Receives until EOF; returns the byte count, or -1 at the first byte off the pattern.
int64_t kernel_drain(int fd) {
  std::vector<uint8_t> buf(65536);
  int64_t got = 0;
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? -1 : got;
    for (ssize_t i = 0; i < r; ++i)
      if (buf[size_t(i)] != pattern(uint64_t(got + i))) return -1;
    got += r;
  }
}

volatile sig_atomic_t g_alarms = 0;
void on_alarm(int) { g_alarms = g_alarms + 1; }

class Blocking : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tap_ = open_kernel_tap("utcpblk0", kKernelIp, &kernel_mac_, &skip_);
    if (tap_ && !add_kernel_neighbor(*tap_, kOurIp, kOurMac, &skip_)) tap_.reset();
  }
  static void TearDownTestSuite() { tap_.reset(); }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    utcp_stack_config cfg{};
    cfg.ip = kOurIp.v;
    std::memcpy(cfg.mac, kOurMac.b.data(), 6);
    cfg.clock = UTCP_CLOCK_REAL;
    stack_ = api::StackHandle(cfg, api::c_device(*tap_));
    ASSERT_EQ(utcp_stack_add_neighbor(s(), kKernelIp.v, kernel_mac_.b.data()), 0);
  }
  void TearDown() override {
    if (!stack_.get()) return;
    // Let closes finish (FIN exchanges) so the next test starts on a quiet link.
    for (int i = 0; i < 50; ++i) utcp_stack_wait(s(), 10'000);
    stack_.reset();
  }
  utcp_stack* s() { return stack_.get(); }

  // Runs a kernel-side peer in a thread; join() keeps the stack moving (our FIN, ACKs)
  // until the peer is done, as a non-blocking close leaves that to later polls.
  struct Peer {
    std::atomic<bool> done{false};
    std::thread t;
  };
  template <class F>
  void start(Peer& p, F f) {
    p.t = std::thread([&p, f] {
      f();
      p.done = true;
    });
  }
  void join(Peer& p) {
    for (int i = 0; i < 1000 && !p.done; ++i) utcp_stack_wait(s(), 10'000);
    p.t.join();
  }

  // A blocking utcp socket connected to the kernel listener `port`.
  int connect_blocking(uint16_t port) {
    int h = utcp_socket(s());
    EXPECT_GE(h, 0);
    EXPECT_EQ(utcp_set_blocking(s(), h, 1), 0);
    EXPECT_EQ(utcp_connect(s(), h, kKernelIp.v, port), 0);
    return h;
  }

  static inline std::string skip_;
  static inline std::unique_ptr<TapDevice> tap_;
  static inline MacAddr kernel_mac_;
  api::StackHandle stack_;
};

// One write of 4 MiB (four times the send buffer) must queue every byte, blocking while
// the kernel drains; a blocking read then waits for the kernel's verdict and EOF.
TEST_F(Blocking, ConnectWriteAllReadUntilEof) {
  Fd l = kernel_listener(6001);
  std::atomic<int64_t> kernel_got{-2};
  std::thread peer([&] {
    Fd k(::accept(l.fd, nullptr, nullptr));
    int64_t got = kernel_drain(k.fd);
    kernel_got = got;
    ::send(k.fd, &got, sizeof got, MSG_NOSIGNAL);
  });
  int h = connect_blocking(6001);
  const size_t total = 4 << 20;
  std::vector<uint8_t> data(total);
  for (size_t i = 0; i < total; ++i) data[i] = pattern(i);
  EXPECT_EQ(utcp_write(s(), h, data.data(), total), ssize_t(total));
  EXPECT_EQ(utcp_shutdown(s(), h, UTCP_SHUT_WR), 0);
  int64_t verdict = 0;
  ASSERT_EQ(utcp_read(s(), h, &verdict, sizeof verdict), ssize_t(sizeof verdict));
  EXPECT_EQ(verdict, int64_t(total));
  char c;
  EXPECT_EQ(utcp_read(s(), h, &c, 1), 0);  // end of stream, after waiting for the FIN
  peer.join();
  EXPECT_EQ(kernel_got.load(), int64_t(total));
  EXPECT_EQ(utcp_close(s(), h), 0);
}

// A blocking read is the posted read: it waits on the device without polling, and the
// read that wakes polls with its buffer posted, so bytes go from the RX frame straight
// into it. 4 MiB from the kernel, every byte checked, in 64 KiB reads until EOF.
TEST_F(Blocking, ReadsTakeTheKernelsBytesIntoTheirBuffer) {
  Fd l = kernel_listener(6002);
  const size_t total = 4 << 20;
  std::thread peer([&] {
    Fd k(::accept(l.fd, nullptr, nullptr));
    std::vector<uint8_t> data(total);
    for (size_t i = 0; i < total; ++i) data[i] = pattern(i);
    for (size_t off = 0; off < total;) {
      ssize_t w = ::send(k.fd, data.data() + off, total - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return;
      off += size_t(w);
    }
  });
  int h = connect_blocking(6002);
  std::vector<uint8_t> buf(64 * 1024);
  uint64_t got = 0, bad_at = ~uint64_t(0);
  for (;;) {
    ssize_t r = utcp_read(s(), h, buf.data(), buf.size());
    ASSERT_GE(r, 0) << utcp_strerror(int(r));
    if (r == 0) break;
    for (ssize_t i = 0; i < r; ++i)
      if (buf[size_t(i)] != pattern(got + uint64_t(i)) && bad_at == ~uint64_t(0)) bad_at = got + uint64_t(i);
    got += uint64_t(r);
  }
  peer.join();
  EXPECT_EQ(got, total);
  EXPECT_EQ(bad_at, ~uint64_t(0)) << "first wrong byte at offset " << bad_at;
  const Connection* c = api::stack_of(s())->connection(h);
  ASSERT_NE(c, nullptr);
  EXPECT_GT(c->stats().bytes_direct, 0u);
  EXPECT_LE(c->stats().bytes_direct, c->stats().bytes_in);
  EXPECT_EQ(utcp_close(s(), h), 0);
}

// RFC 9293 §3.10.7.2: a blocking accept waits for the kernel's connection.
TEST_F(Blocking, AcceptWaitsForKernelClient) {
  int l = utcp_socket(s());
  ASSERT_EQ(utcp_bind(s(), l, 7001), 0);
  ASSERT_EQ(utcp_listen(s(), l, 4), 0);
  ASSERT_EQ(utcp_set_blocking(s(), l, 1), 0);
  std::thread peer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Fd k(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a = sin_of(kOurIp, 7001);
    if (::connect(k.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    ::send(k.fd, "hello, utcp", 11, MSG_NOSIGNAL);
  });
  uint32_t ip = 0;
  uint16_t port = 0;
  int a = utcp_accept(s(), l, &ip, &port);
  ASSERT_GE(a, 0) << utcp_strerror(a);
  EXPECT_EQ(ip, kKernelIp.v);
  EXPECT_NE(port, 0);
  // The accepted socket inherited blocking mode: reads wait for the bytes, then EOF.
  std::string got;
  char buf[64];
  for (;;) {
    ssize_t r = utcp_read(s(), a, buf, sizeof buf);
    ASSERT_GE(r, 0) << utcp_strerror(int(r));
    if (r == 0) break;
    got.append(buf, size_t(r));
  }
  peer.join();
  EXPECT_EQ(got, "hello, utcp");
  EXPECT_EQ(utcp_close(s(), a), 0);
  EXPECT_EQ(utcp_close(s(), l), 0);
}

// RFC 9293 §3.10.7.3: a RST answering our SYN fails the blocking connect.
TEST_F(Blocking, ConnectRefused) {
  int h = utcp_socket(s());
  ASSERT_EQ(utcp_set_blocking(s(), h, 1), 0);
  EXPECT_EQ(utcp_connect(s(), h, kKernelIp.v, 6099), -ECONNREFUSED);
  EXPECT_EQ(utcp_close(s(), h), 0);
}

// SO_RCVTIMEO: a read with nothing coming ends with EAGAIN after the timeout, not before;
// SO_SNDTIMEO bounds a blocking connect to a silent address (ETIMEDOUT).
TEST_F(Blocking, Timeouts) {
  Fd l = kernel_listener(6002);
  Peer peer;
  start(peer, [&] { Fd k(::accept(l.fd, nullptr, nullptr)); kernel_drain(k.fd); });
  int h = connect_blocking(6002);
  int64_t to = 200'000;
  ASSERT_EQ(utcp_setsockopt(s(), h, UTCP_SO_RCVTIMEO, &to, sizeof to), 0);
  int64_t back = 0;
  size_t len = sizeof back;
  ASSERT_EQ(utcp_getsockopt(s(), h, UTCP_SO_RCVTIMEO, &back, &len), 0);
  EXPECT_EQ(back, to);
  auto t0 = std::chrono::steady_clock::now();
  char c;
  EXPECT_EQ(utcp_read(s(), h, &c, 1), -EAGAIN);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::microseconds(to));
  EXPECT_EQ(utcp_close(s(), h), 0);
  join(peer);

  // Nobody answers at .77: the SYN is retransmitted until the send timeout.
  uint8_t nobody_mac[6] = {0x02, 0, 0, 0, 0x77, 0x77};
  ASSERT_EQ(utcp_stack_add_neighbor(s(), Ipv4Addr::of(10, 9, 2, 77).v, nobody_mac), 0);
  int q = utcp_socket(s());
  ASSERT_EQ(utcp_set_blocking(s(), q, 1), 0);
  ASSERT_EQ(utcp_setsockopt(s(), q, UTCP_SO_SNDTIMEO, &to, sizeof to), 0);
  EXPECT_EQ(utcp_connect(s(), q, Ipv4Addr::of(10, 9, 2, 77).v, 80), -ETIMEDOUT);
  EXPECT_EQ(utcp_close(s(), q), 0);

  int bad = -1;
  EXPECT_EQ(utcp_setsockopt(s(), q, UTCP_SO_RCVTIMEO, &to, sizeof to), -EBADF);
  int64_t neg = -1;
  int r = utcp_socket(s());
  EXPECT_EQ(utcp_setsockopt(s(), r, UTCP_SO_RCVTIMEO, &neg, sizeof neg), -EINVAL);
  EXPECT_EQ(utcp_setsockopt(s(), r, UTCP_SO_RCVTIMEO, &bad, sizeof bad), -EINVAL);  // wrong size
  EXPECT_EQ(utcp_close(s(), r), 0);
}

// A signal ends a blocking wait with EINTR (no SA_RESTART semantics in the library).
TEST_F(Blocking, SignalInterruptsRead) {
  Fd l = kernel_listener(6003);
  Peer peer;
  start(peer, [&] { Fd k(::accept(l.fd, nullptr, nullptr)); kernel_drain(k.fd); });
  int h = connect_blocking(6003);
  struct sigaction sa {}, old {};
  sa.sa_handler = on_alarm;
  ASSERT_EQ(::sigaction(SIGALRM, &sa, &old), 0);
  g_alarms = 0;
  itimerval it{};
  it.it_value.tv_usec = 100'000;
  ASSERT_EQ(::setitimer(ITIMER_REAL, &it, nullptr), 0);
  char c;
  EXPECT_EQ(utcp_read(s(), h, &c, 1), -EINTR);
  EXPECT_EQ(g_alarms, 1);
  ::sigaction(SIGALRM, &old, nullptr);
  EXPECT_EQ(utcp_close(s(), h), 0);
  join(peer);
}

// utcp_poll_wait sleeps until one of several sockets is readable and says which.
TEST_F(Blocking, PollWaitReportsTheReadySocket) {
  Fd l = kernel_listener(6004);
  std::atomic<bool> go{false};
  Peer peer;
  start(peer, [&] {
    Fd k1(::accept(l.fd, nullptr, nullptr)), k2(::accept(l.fd, nullptr, nullptr));
    while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::send(k2.fd, "x", 1, MSG_NOSIGNAL);  // the kernel accepted in connection order
    kernel_drain(k1.fd);
    kernel_drain(k2.fd);
  });
  int a = connect_blocking(6004), b = connect_blocking(6004);
  utcp_pollfd fds[2] = {{a, UTCP_POLLIN, 0}, {b, UTCP_POLLIN, 0}};
  EXPECT_EQ(utcp_poll_wait(s(), fds, 2, 0), 0);  // nothing yet, and no waiting
  go = true;
  ASSERT_EQ(utcp_poll_wait(s(), fds, 2, 5'000'000), 1);
  EXPECT_EQ(fds[0].revents, 0);
  EXPECT_EQ(fds[1].revents, UTCP_POLLIN);
  EXPECT_EQ(utcp_close(s(), a), 0);
  EXPECT_EQ(utcp_close(s(), b), 0);
  utcp_pollfd gone{a, UTCP_POLLIN, 0};
  EXPECT_EQ(utcp_poll_wait(s(), &gone, 1, 0), 1);
  EXPECT_EQ(gone.revents, UTCP_POLLNVAL);
  EXPECT_EQ(utcp_poll_wait(s(), nullptr, 1, 0), -EINVAL);
  join(peer);
}

// SO_LINGER {1, N}: a blocking close returns once the kernel acknowledged our FIN, so
// when it returns the kernel has already seen end of stream.
TEST_F(Blocking, LingeringCloseWaitsForFinAck) {
  Fd l = kernel_listener(6005);
  std::atomic<int64_t> got{-2};
  std::thread peer([&] { Fd k(::accept(l.fd, nullptr, nullptr)); got = kernel_drain(k.fd); });
  int h = connect_blocking(6005);
  std::vector<uint8_t> data(300'000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = pattern(i);
  ASSERT_EQ(utcp_write(s(), h, data.data(), data.size()), ssize_t(data.size()));
  utcp_linger lg{1, 5};
  ASSERT_EQ(utcp_setsockopt(s(), h, UTCP_SO_LINGER, &lg, sizeof lg), 0);
  EXPECT_EQ(utcp_close(s(), h), 0);
  peer.join();  // returns at once: the kernel already had every byte and the FIN
  EXPECT_EQ(got.load(), int64_t(data.size()));
}

// Blocking needs something to sleep on and a clock that moves by itself.
TEST(BlockingRefused, ManualClockAndRawStacks) {
  utcp_stack* raw = utcp_raw_create(0x0a000001, 1500, 0, 1);
  ASSERT_NE(raw, nullptr);
  int h = utcp_socket(raw);
  ASSERT_EQ(utcp_bind(raw, h, 80), 0);
  ASSERT_EQ(utcp_listen(raw, h, 4), 0);
  EXPECT_EQ(utcp_set_blocking(raw, h, 1), -EOPNOTSUPP);
  EXPECT_EQ(utcp_set_blocking(raw, h, 0), 0);
  EXPECT_EQ(utcp_set_blocking(raw, 999, 1), -EBADF);
  EXPECT_EQ(utcp_stack_wait(raw, 0), -EOPNOTSUPP);
  EXPECT_EQ(utcp_stack_fd(raw), -EOPNOTSUPP);
  utcp_pollfd p{h, UTCP_POLLIN, 0};
  EXPECT_EQ(utcp_poll_wait(raw, &p, 1, 1000), -EOPNOTSUPP);
  EXPECT_EQ(utcp_poll_wait(raw, &p, 1, 0), 0);
  EXPECT_STRNE(utcp_strerror(-EOPNOTSUPP), "");
  utcp_raw_destroy(raw);
}

}  // namespace
}  // namespace utcp::test
