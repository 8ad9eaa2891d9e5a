// tap_test.cc - our frames against the real Linux stack through a TAP interface in a private network namespace.
//
// The kernel is the judge: it must answer our ARP request, accept our SYN (checksum,
// options) and reply with a SYN-ACK we parse, deliver our TCP and UDP payloads to its
// sockets, and drop a datagram with a wrong checksum. Skips when the process cannot
// create a network namespace or a TAP device.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "device/tap.h"
#include "wire/arp.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"
#include "../common/kernel_tap.h"

namespace utcp {
namespace {

using test::sin_of;

using Bytes = std::vector<uint8_t>;

const Ipv4Addr kKernelIp = Ipv4Addr::of(10, 9, 0, 1);
const Ipv4Addr kOurIp = Ipv4Addr::of(10, 9, 0, 2);
const MacAddr kOurMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};  // locally administered

// A kernel socket, closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};


bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

class TapTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tap_ = test::open_kernel_tap("utcptap0", kKernelIp, &kernel_mac_, &skip_);
  }
  static void TearDownTestSuite() { tap_.reset(); }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
  }

  // Sends one frame: Ethernet to the kernel, then whatever `l3` writes after it.
  static void send(uint16_t ethertype, const std::function<size_t(std::span<uint8_t>)>& l3) {
    auto buf = tap_->tx_buffer(1514);
    ASSERT_GE(buf.size(), 1514u);
    emit_ethernet({kernel_mac_, kOurMac, ethertype}, buf);
    size_t n = l3(buf.subspan(14));
    ASSERT_GT(n, 0u);
    tap_->tx_commit(14 + n);
    tap_->flush(Clock::now());
    ASSERT_EQ(tap_->tx_errors(), 0u) << std::strerror(tap_->last_tx_errno());
  }

  static void send_ip(uint8_t proto, const std::function<size_t(std::span<uint8_t>)>& l4) {
    send(uint16_t(EtherType::kIpv4), [&](std::span<uint8_t> out) -> size_t {
      size_t n = l4(out.subspan(20));
      if (n == 0) return 0;
      Ipv4Repr ip;
      ip.src = kOurIp;
      ip.dst = kKernelIp;
      ip.protocol = proto;
      ip.payload_len = uint16_t(n);
      return emit_ipv4(ip, out) + n;
    });
  }

  static void send_tcp(const TcpRepr& t) {
    send_ip(uint8_t(IpProto::kTcp), [&](std::span<uint8_t> out) { return emit_tcp(t, kOurIp, kKernelIp, out); });
  }

  // Receives until `want` accepts a frame (returned as bytes) or 2 s pass. Answers the
  // kernel's ARP requests for our address on the way. Every frame must parse with
  // checksums verified, except kinds utcp does not handle (IPv6 noise).
  static std::optional<Bytes> wait_for(const std::function<bool(const ParsedFrame&)>& want) {
    const auto deadline = Clock::now() + Duration(2'000'000);
    std::optional<Bytes> found;
    while (!found && Clock::now() < deadline) {
      readable(tap_->fd(), 50);
      std::vector<Bytes> frames;
      tap_->receive(Clock::now(), [&](std::span<const uint8_t> f) { frames.emplace_back(f.begin(), f.end()); });
      for (const Bytes& f : frames) {
        ParseError err = ParseError::kOk;
        auto p = parse_frame(f, true, &err);
        if (!p) {
          EXPECT_EQ(err, ParseError::kUnsupported) << "kernel frame refused: " << to_string(err);
          continue;
        }
        if (p->arp && p->arp->op == arp_op::kRequest && p->arp->target_ip == kOurIp) {
          ArpRepr reply{arp_op::kReply, kOurMac, p->arp->sender_mac, kOurIp, p->arp->sender_ip};
          send(uint16_t(EtherType::kArp), [&](std::span<uint8_t> out) { return emit_arp(reply, out); });
        }
        if (!found && want(*p)) found = f;
      }
    }
    return found;
  }

  static inline std::string skip_;
  static inline std::unique_ptr<TapDevice> tap_;
  static inline MacAddr kernel_mac_;
};

TEST_F(TapTest, KernelAnswersOurArpRequest) {
  ArpRepr req{arp_op::kRequest, kOurMac, MacAddr{}, kOurIp, kKernelIp};
  send(uint16_t(EtherType::kArp), [&](std::span<uint8_t> out) { return emit_arp(req, out); });
  auto f = wait_for([](const ParsedFrame& p) { return p.arp && p.arp->op == arp_op::kReply; });
  ASSERT_TRUE(f) << "no ARP reply from the kernel";
  auto p = parse_frame(*f, true, nullptr);
  EXPECT_EQ(p->arp->sender_ip, kKernelIp);
  EXPECT_EQ(p->arp->sender_mac, kernel_mac_);
  EXPECT_EQ(p->arp->target_mac, kOurMac);
  EXPECT_EQ(p->arp->target_ip, kOurIp);
  EXPECT_EQ(p->eth.dst, kOurMac);
}

TEST_F(TapTest, HandshakeAndDataWithALinuxListener) {
  Fd lsn(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(lsn.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = sin_of(kKernelIp, 7000);
  ASSERT_EQ(::bind(lsn.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(lsn.fd, 4), 0);

  TcpRepr syn;
  syn.src_port = 40000;
  syn.dst_port = 7000;
  syn.seq = SeqNum(0xfffffff0u);  // the handshake crosses the 2^32 wrap
  syn.flags = tcp_flags::kSyn;
  syn.window = 65535;
  syn.options.mss = 1400;
  syn.options.sack_permitted = true;
  syn.options.timestamps = TcpTimestamps{777, 0};
  syn.options.window_scale = 7;
  send_tcp(syn);

  auto sa = wait_for([](const ParsedFrame& p) {
    return p.tcp && p.tcp->src_port == 7000 && p.tcp->has(tcp_flags::kSyn);
  });
  ASSERT_TRUE(sa) << "no SYN-ACK from the kernel";
  const TcpRepr synack = *parse_frame(*sa, true, nullptr)->tcp;
  EXPECT_EQ(synack.flags, tcp_flags::kSyn | tcp_flags::kAck);
  EXPECT_EQ(synack.ack, syn.seq + 1);
  EXPECT_EQ(synack.options.mss, 1460);  // 1500 - 40
  EXPECT_TRUE(synack.options.sack_permitted);
  ASSERT_TRUE(synack.options.timestamps);
  EXPECT_EQ(synack.options.timestamps->tsecr, 777u);
  EXPECT_TRUE(synack.options.window_scale);

  const std::string hello = "hello from utcp";
  TcpRepr data;
  data.src_port = 40000;
  data.dst_port = 7000;
  data.seq = syn.seq + 1;
  data.ack = synack.seq + 1;
  data.flags = tcp_flags::kAck | tcp_flags::kPsh;
  data.window = 512;
  data.options.timestamps = TcpTimestamps{778, synack.options.timestamps->tsval};
  data.payload = std::span(reinterpret_cast<const uint8_t*>(hello.data()), hello.size());
  send_tcp(data);

  ASSERT_TRUE(readable(lsn.fd, 2000)) << "the kernel did not complete the handshake";
  Fd conn(::accept4(lsn.fd, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(conn.fd, 0);
  ASSERT_TRUE(readable(conn.fd, 2000));
  char got[64] = {};
  ASSERT_EQ(::recv(conn.fd, got, sizeof got, 0), ssize_t(hello.size()));
  EXPECT_EQ(std::string(got, hello.size()), hello);

  // The kernel answers with data we parse, checksum verified.
  ASSERT_EQ(::send(conn.fd, "pong", 4, 0), 4);
  auto seg = wait_for([](const ParsedFrame& p) { return p.tcp && p.tcp->src_port == 7000 && !p.tcp->payload.empty(); });
  ASSERT_TRUE(seg) << "no data segment from the kernel";
  const TcpRepr pong = *parse_frame(*seg, true, nullptr)->tcp;
  EXPECT_EQ(std::string(pong.payload.begin(), pong.payload.end()), "pong");
  EXPECT_EQ(pong.ack, data.seq + uint32_t(hello.size()));
  EXPECT_EQ(pong.seq, synack.seq + 1);

  // RFC 9293 §3.10.7.4: an in-window RST ends the connection; the kernel's recv sees it.
  TcpRepr rst;
  rst.src_port = 40000;
  rst.dst_port = 7000;
  rst.seq = data.seq + uint32_t(hello.size());
  rst.flags = tcp_flags::kRst;
  send_tcp(rst);
  ASSERT_TRUE(readable(conn.fd, 2000));
  EXPECT_EQ(::recv(conn.fd, got, sizeof got, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(TapTest, KernelResetsASynToAClosedPort) {
  TcpRepr syn;
  syn.src_port = 40002;
  syn.dst_port = 7999;
  syn.seq = SeqNum(123456);
  syn.flags = tcp_flags::kSyn;
  syn.window = 1000;
  send_tcp(syn);
  auto f = wait_for([](const ParsedFrame& p) { return p.tcp && p.tcp->src_port == 7999; });
  ASSERT_TRUE(f);
  auto t = *parse_frame(*f, true, nullptr)->tcp;
  // RFC 9293 §3.10.7.1 (CLOSED): <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
  EXPECT_EQ(t.flags, tcp_flags::kRst | tcp_flags::kAck);
  EXPECT_EQ(t.seq, SeqNum(0));
  EXPECT_EQ(t.ack, SeqNum(123457));
}

TEST_F(TapTest, UdpBothWaysZeroChecksumAcceptedBadChecksumDropped) {
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = sin_of(kKernelIp, 7001);
  ASSERT_EQ(::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto send_udp = [&](const std::string& msg, bool checksum, bool corrupt) {
    send_ip(uint8_t(IpProto::kUdp), [&](std::span<uint8_t> out) {
      UdpRepr u{40001, 7001, std::span(reinterpret_cast<const uint8_t*>(msg.data()), msg.size())};
      size_t n = emit_udp(u, kOurIp, kKernelIp, out, checksum);
      if (corrupt) out[6] ^= 0x01;
      return n;
    });
  };
  char got[64];
  for (bool checksum : {true, false}) {
    const std::string msg = checksum ? "with checksum" : "no checksum (RFC 768)";
    send_udp(msg, checksum, false);
    ASSERT_TRUE(readable(s.fd, 2000)) << msg;
    ASSERT_EQ(::recv(s.fd, got, sizeof got, 0), ssize_t(msg.size()));
    EXPECT_EQ(std::string(got, msg.size()), msg);
  }
  send_udp("corrupted", true, true);
  EXPECT_FALSE(readable(s.fd, 300)) << "the kernel accepted a datagram with a wrong checksum";

  sockaddr_in to = sin_of(kOurIp, 40001);
  ASSERT_EQ(::sendto(s.fd, "back", 4, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 4);
  auto f = wait_for([](const ParsedFrame& p) { return p.udp && p.udp->dst_port == 40001; });
  ASSERT_TRUE(f) << "no datagram from the kernel";
  auto u = *parse_frame(*f, true, nullptr)->udp;
  EXPECT_EQ(std::string(u.payload.begin(), u.payload.end()), "back");
}

TEST(TapOpen, RefusesBadNames) {
  std::string err;
  EXPECT_EQ(TapDevice::open("", &err), nullptr);
  EXPECT_NE(err.find("name"), std::string::npos);
  EXPECT_EQ(TapDevice::open("a-name-that-is-far-too-long", &err), nullptr);
}

}  // namespace
}  // namespace utcp
