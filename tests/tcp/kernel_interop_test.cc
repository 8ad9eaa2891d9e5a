// kernel_interop_test.cc - utcp's Stack against the Linux kernel's own TCP over a TAP
// interface in a private network namespace: handshakes both ways, data both ways with
// every byte checked, orderly close, reset. Skips when namespaces or TAP are unavailable.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "api/stack.h"
#include "device/fault.h"
#include "device/tap.h"
#include "tcp_test_util.h"
#include "../common/kernel_tap.h"

namespace utcp::test {
namespace {

const Ipv4Addr kKernelIp = Ipv4Addr::of(10, 9, 1, 1);
const Ipv4Addr kOurIp = Ipv4Addr::of(10, 9, 1, 2);
const MacAddr kOurMac{{0x02, 0x00, 0x00, 0x00, 0x01, 0x02}};



uint8_t byte_at(uint64_t i, int dir) { return uint8_t((i * 2654435761u) >> 11 ^ (i >> 17) ^ dir); }

class KernelInterop : public LeakChecked {
 protected:
  static void SetUpTestSuite() {
    tap_ = open_kernel_tap("utcptcp0", kKernelIp, &kernel_mac_, &skip_);
    if (!tap_) return;
    if (!add_kernel_neighbor(*tap_, kOurIp, kOurMac, &skip_)) tap_.reset();
  }
  static void TearDownTestSuite() { tap_.reset(); }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    StackConfig c;
    c.ip = kOurIp;
    c.mac = kOurMac;
    c.tcp.msl = Duration(100'000);
    stack_ = std::make_unique<Stack>(tap_.get(), c);
    stack_->add_neighbor(kKernelIp, kernel_mac_);
  }
  void TearDown() override {
    stack_.reset();
    LeakChecked::TearDown();
  }

  // Runs the stack on the real clock until `done()` or `seconds` pass.
  template <class F>
  bool pump(F&& done, double seconds = 10) {
    const Instant end = Clock::now() + Duration(int64_t(seconds * 1e6));
    while (!done()) {
      Instant now = Clock::now();
      if (now > end) return false;
      stack_->poll(now);
      Instant at = stack_->poll_at();
      int wait_ms = at <= now ? 0 : int(std::min<int64_t>((at - now).count() / 1000 + 1, 2));
      pollfd p{tap_->fd(), POLLIN, 0};
      ::poll(&p, 1, wait_ms);
    }
    return true;
  }

  static Fd kernel_listener(uint16_t port) {
    Fd l(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int one = 1;
    ::setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = sin_of(kKernelIp, port);
    EXPECT_EQ(::bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    EXPECT_EQ(::listen(l.fd, 4), 0);
    return l;
  }

  // utcp connects socket `h` to the kernel listener `l`; `k` gets the kernel's side.
  void connect_to_kernel(int h, const Fd& l, uint16_t port, Fd* k) {
    ASSERT_EQ(stack_->connect(h, kKernelIp, port, Clock::now()), -EINPROGRESS);
    ASSERT_TRUE(pump([&] {
      if (k->fd < 0) k->fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK);
      return k->fd >= 0 && (stack_->events(h) & kEventOut);
    })) << "no handshake with the kernel";
  }

  // Moves `total` bytes each way between utcp socket `h` and kernel socket `k` at once,
  // checking every byte; then utcp half-closes, the kernel sees EOF and closes, utcp
  // sees EOF.
  void exchange(int h, int k, uint64_t total) {
    std::vector<uint8_t> buf(65536), out(65536);
    uint64_t u_sent = 0, u_got = 0, k_sent = 0, k_got = 0;
    bool bad = false, u_shut = false, k_eof = false;
    ASSERT_TRUE(pump([&] {
      // utcp -> kernel
      while (u_sent < total) {
        size_t n = size_t(std::min<uint64_t>(out.size(), total - u_sent));
        for (size_t i = 0; i < n; ++i) out[i] = byte_at(u_sent + i, 0);
        int64_t w = stack_->write(h, {out.data(), n});
        if (w <= 0) break;
        u_sent += uint64_t(w);
      }
      if (u_sent == total && !u_shut) {
        EXPECT_EQ(stack_->shutdown(h, 1), 0);
        u_shut = true;
      }
      for (;;) {
        ssize_t r = ::recv(k, buf.data(), buf.size(), MSG_DONTWAIT);
        if (r == 0) k_eof = true;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; ++i)
          if (buf[size_t(i)] != byte_at(k_got + uint64_t(i), 0)) bad = true;
        k_got += uint64_t(r);
      }
      // kernel -> utcp
      while (k_sent < total) {
        size_t n = size_t(std::min<uint64_t>(buf.size(), total - k_sent));
        std::vector<uint8_t> chunk(n);
        for (size_t i = 0; i < n; ++i) chunk[i] = byte_at(k_sent + i, 1);
        ssize_t w = ::send(k, chunk.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0) break;
        k_sent += uint64_t(w);
      }
      for (;;) {
        int64_t r = stack_->read(h, buf);
        if (r <= 0) break;
        for (int64_t i = 0; i < r; ++i)
          if (buf[size_t(i)] != byte_at(u_got + uint64_t(i), 1)) bad = true;
        u_got += uint64_t(r);
      }
      return bad || (k_eof && u_got == total);
    }, 30)) << "utcp sent " << u_sent << ", kernel got " << k_got << "; kernel sent " << k_sent
            << ", utcp got " << u_got;
    EXPECT_FALSE(bad);
    EXPECT_EQ(k_got, total);
    ::shutdown(k, SHUT_WR);
    ASSERT_TRUE(pump([&] { return stack_->read(h, buf) == 0; }));
  }

  static inline std::string skip_;
  static inline std::unique_ptr<TapDevice> tap_;
  static inline MacAddr kernel_mac_;
  std::unique_ptr<Stack> stack_;
};

TEST_F(KernelInterop, UtcpConnectsToKernel) {  // RFC 9293 §3.5 against a real peer
  Fd l = kernel_listener(5001);
  int h = stack_->socket();
  Fd k;
  connect_to_kernel(h, l, 5001, &k);
  // The kernel took our MSS option: its segments fit our 1460.
  int mss = 0;
  socklen_t len = sizeof mss;
  ::getsockopt(k.fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &len);
  EXPECT_LE(mss, 1460);
  EXPECT_GT(mss, 500);
  exchange(h, k.fd, 4 << 20);
  EXPECT_EQ(stack_->close(h), 0);
  ASSERT_TRUE(pump([&] { return stack_->connection_count() == 0; }));  // via TIME-WAIT
}

TEST_F(KernelInterop, KernelConnectsToUtcp) {  // RFC 9293 §3.10.7.2 LISTEN
  int l = stack_->socket();
  ASSERT_EQ(stack_->bind(l, 7000), 0);
  ASSERT_EQ(stack_->listen(l, 4), 0);
  Fd k(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  sockaddr_in a = sin_of(kOurIp, 7000);
  ASSERT_EQ(::connect(k.fd, reinterpret_cast<sockaddr*>(&a), sizeof a), -1);
  ASSERT_EQ(errno, EINPROGRESS);
  int h = -1;
  ASSERT_TRUE(pump([&] {
    if (h < 0) h = stack_->accept(l);
    if (h == -EAGAIN) h = -1;
    return h >= 0;
  }));
  exchange(h, k.fd, 2 << 20);
  stack_->close(h);
  stack_->close(l);
}

TEST_F(KernelInterop, LossyLinkBothWays) {  // RFC 5681/6582/6298 recovery, kernel as peer
  // Frames are lost, duplicated and reordered on utcp's side of the TAP, both ways.
  FaultConfig f;
  f.seed = 5;
  f.loss = 0.02;
  f.duplicate = 0.01;
  f.reorder = 0.02;
  f.reorder_delay = Duration(300);
  FaultInjector lossy(*tap_, f);
  StackConfig c;
  c.ip = kOurIp;
  c.mac = kOurMac;
  c.tcp.msl = Duration(100'000);
  stack_ = std::make_unique<Stack>(&lossy, c);
  stack_->add_neighbor(kKernelIp, kernel_mac_);
  Fd l = kernel_listener(5003);
  int h = stack_->socket();
  Fd k;
  connect_to_kernel(h, l, 5003, &k);
  // Linux answers every option utcp offers (RFC 7323 window scaling and timestamps, RFC
  // 2018 SACK): the recovery below runs with all three.
  const Connection* conn = stack_->connection(h);
  ASSERT_NE(conn, nullptr);
  EXPECT_TRUE(conn->ws_enabled());
  EXPECT_TRUE(conn->ts_enabled());
  EXPECT_TRUE(conn->sack_enabled());
  exchange(h, k.fd, 1 << 20);
  EXPECT_GT(lossy.tx_stats().dropped + lossy.rx_stats().dropped, 0u);
  EXPECT_GT(stack_->connection(h)->stats().retransmits, 0u);
  stack_->close(h);
  stack_.reset();  // before the injector it runs over
}

TEST_F(KernelInterop, KernelRefusesAndResets) {  // RFC 9293 §3.10.7.1, §3.10.7.3, §3.10.5
  // No listener on the kernel side: its RST refuses our SYN.
  int h = stack_->socket();
  ASSERT_EQ(stack_->connect(h, kKernelIp, 5999, Clock::now()), -EINPROGRESS);
  ASSERT_TRUE(pump([&] { return (stack_->events(h) & kEventErr) != 0; }));
  int err = 0;
  size_t len = sizeof err;
  stack_->getsockopt(h, SockOpt::kError, &err, &len);
  EXPECT_EQ(err, ECONNREFUSED);
  stack_->close(h);
  // An established connection the kernel aborts (SO_LINGER 0): ECONNRESET here.
  Fd l = kernel_listener(5002);
  h = stack_->socket();
  Fd k;
  connect_to_kernel(h, l, 5002, &k);
  linger lg{1, 0};
  ::setsockopt(k.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(k.fd);
  k.fd = -1;
  std::vector<uint8_t> b(16);
  ASSERT_TRUE(pump([&] { return stack_->read(h, b) == -ECONNRESET; }));
  stack_->close(h);
}

}  // namespace
}  // namespace utcp::test
