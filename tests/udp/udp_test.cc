// udp_test.cc - the UDP library over the in-memory link: datagrams both ways with every
// byte checked, the size limits, errors, hostile frames (corrupted, misaddressed, TCP),
// the receive-queue bound, and a lossy duplicating link.
#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

#include "device/link.h"
#include "udp/udp_endpoint.h"

namespace utcp {
namespace {

const Ipv4Addr kA = Ipv4Addr::of(10, 1, 0, 1), kB = Ipv4Addr::of(10, 1, 0, 2);
const MacAddr kMa{{2, 0, 0, 0, 1, 1}}, kMb{{2, 0, 0, 0, 1, 2}};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 31 + seed);
  return v;
}

struct Pair {
  explicit Pair(const LinkConfig& c = LinkConfig{}, size_t qlimit = 1024)
      : link(c), a(&link.a(), kA, kMa, 5000, qlimit), b(&link.b(), kB, kMb, 6000, qlimit) {
    a.add_neighbor(kB, kMb);
    b.add_neighbor(kA, kMa);
  }
  // Moves the clock past every delivery.
  void settle() {
    for (int i = 0; i < 1000 && link.poll_at() != kInstantNever; ++i) {
      now = std::max(now, link.poll_at());
      a.poll(now);
      b.poll(now);
    }
    a.poll(now);
    b.poll(now);
  }
  LinkPair link;
  UdpEndpoint a, b;
  Instant now{Duration(1000)};
};

TEST(Udp, DatagramsBothWaysEveryByteChecked) {  // RFC 768
  Pair p;
  for (size_t n : {size_t(0), size_t(1), size_t(100), p.a.max_payload()}) {
    auto msg = pattern(n, uint8_t(n));
    ASSERT_EQ(p.a.sendto(kB, 6000, msg, p.now), int64_t(n));
    p.settle();
    std::vector<uint8_t> buf(2000);
    Ipv4Addr src;
    uint16_t sport = 0;
    ASSERT_EQ(p.b.recvfrom(buf, &src, &sport, p.now), int64_t(n));
    EXPECT_EQ(src, kA);
    EXPECT_EQ(sport, 5000);
    EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + long(n)), msg);
    // And back.
    ASSERT_EQ(p.b.sendto(src, sport, msg, p.now), int64_t(n));
    p.settle();
    ASSERT_EQ(p.a.recvfrom(buf, nullptr, nullptr, p.now), int64_t(n));
    EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + long(n)), msg);
  }
  EXPECT_EQ(p.b.recvfrom({}, nullptr, nullptr, p.now), -EAGAIN);
  EXPECT_EQ(p.a.max_payload(), 1472u);
}

TEST(Udp, ErrorsAndTruncation) {
  Pair p;
  auto big = pattern(p.a.max_payload() + 1, 1);
  EXPECT_EQ(p.a.sendto(kB, 6000, big, p.now), -EMSGSIZE);
  EXPECT_EQ(p.a.sendto(Ipv4Addr::of(10, 1, 0, 9), 6000, pattern(4, 1), p.now), -EHOSTUNREACH);
  EXPECT_EQ(p.a.sendto(kB, 0, pattern(4, 1), p.now), -EINVAL);
  EXPECT_EQ(p.a.sendto(Ipv4Addr{0}, 6000, pattern(4, 1), p.now), -EINVAL);
  EXPECT_EQ(p.a.stats().tx_no_neighbor, 1u);
  // A datagram longer than the buffer: the full length comes back (MSG_TRUNC), the
  // buffer holds the start, and the datagram is consumed.
  auto msg = pattern(300, 7);
  ASSERT_EQ(p.a.sendto(kB, 6000, msg, p.now), 300);
  p.settle();
  std::vector<uint8_t> small(10);
  EXPECT_EQ(p.b.recvfrom(small, nullptr, nullptr, p.now), 300);
  EXPECT_EQ(small, std::vector<uint8_t>(msg.begin(), msg.begin() + 10));
  EXPECT_EQ(p.b.queued(), 0u);
}

TEST(Udp, HostileFramesAreDroppedAndCounted) {
  // Every frame gets one bit flipped: none may be delivered with a wrong byte.
  LinkConfig c;
  c.corrupt = 1.0;
  Pair p(c);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(p.a.sendto(kB, 6000, pattern(64, uint8_t(i)), p.now), 64);
  p.settle();
  std::vector<uint8_t> buf(100);
  int delivered = 0;
  while (p.b.recvfrom(buf, nullptr, nullptr, p.now) >= 0) ++delivered;
  // A flip in the Ethernet header's MAC addresses is not checked by any checksum (the
  // module's classifier matches IP addresses and ports), so those few may arrive intact;
  // every other flip must be caught.
  EXPECT_EQ(uint64_t(delivered) + p.b.stats().rx_malformed + p.b.stats().rx_not_for_us, 200u);
  EXPECT_GT(p.b.stats().rx_malformed, 150u);
  EXPECT_LT(delivered, 30);

  // Misaddressed: another port.
  Pair q;
  UdpEndpoint other(&q.link.a(), kA, kMa, 5001);
  other.add_neighbor(kB, kMb);
  ASSERT_EQ(other.sendto(kB, 6001, pattern(8, 1), q.now), 8);
  q.settle();
  EXPECT_EQ(q.b.queued(), 0u);
  EXPECT_EQ(q.b.stats().rx_not_for_us, 1u);
}

TEST(Udp, ReceiveQueueIsBounded) {
  Pair p(LinkConfig{}, 16);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(p.a.sendto(kB, 6000, pattern(32, uint8_t(i)), p.now), 32);
  p.settle();
  EXPECT_EQ(p.b.queued(), 16u);
  EXPECT_EQ(p.b.stats().rx_queue_drops, 24u);
  // The ones kept are the first 16, in order.
  std::vector<uint8_t> buf(64);
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(p.b.recvfrom(buf, nullptr, nullptr, p.now), 32);
    EXPECT_EQ(buf[0], pattern(32, uint8_t(i))[0]) << i;
  }
}

TEST(Udp, LossyDuplicatingReorderingLinkDeliversOnlyIntactDatagrams) {
  LinkConfig c;
  c.seed = 7;
  c.loss = 0.1;
  c.duplicate = 0.05;
  c.reorder = 0.1;
  c.delay = Duration(100);
  Pair p(c);
  const int n = 2000;
  std::vector<uint8_t> buf(300);
  std::vector<int> seen(n, 0);
  auto drain = [&] {
    p.settle();
    int64_t r;
    while ((r = p.b.recvfrom(buf, nullptr, nullptr, p.now)) >= 0) {
      ASSERT_EQ(r, 200);
      int i = buf[0] | (buf[1] << 8);
      ASSERT_LT(i, n);
      auto want = pattern(200, uint8_t(i));
      want[0] = uint8_t(i);
      want[1] = uint8_t(i >> 8);
      EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + 200), want) << i;
      ++seen[size_t(i)];
    }
  };
  for (int i = 0; i < n; ++i) {
    auto m = pattern(200, uint8_t(i));
    m[0] = uint8_t(i);
    m[1] = uint8_t(i >> 8);
    ASSERT_EQ(p.a.sendto(kB, 6000, m, p.now), 200);
    if (i % 64 == 0) drain();
  }
  drain();
  EXPECT_EQ(p.b.stats().rx_queue_drops, 0u);
  int got = 0;
  for (int s : seen) got += s > 0;
  // UDP does not recover loss: about 90% arrive, duplicates included, all intact.
  EXPECT_GT(got, n * 80 / 100);
  EXPECT_LT(got, n);
}

}  // namespace
}  // namespace utcp
