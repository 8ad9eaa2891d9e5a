// link_test.cc - the in-memory link, FaultInjector and pcap on the virtual clock.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <cstring>
#include <map>
#include <vector>

#include "device/fault.h"
#include "device/link.h"
#include "device/pcap.h"
#include "hex.h"

// Counts heap allocations, to check the link's steady state allocates nothing per frame.
// The replacements pair malloc with free; GCC cannot see that through inlined allocators.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<uint64_t> g_allocs{0};
}
void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace utcp {
namespace {

Instant at_us(int64_t us) { return Instant(Duration(us)); }

// A frame of `len` bytes whose first 4 bytes carry `index`, so deliveries can be traced.
// The rest is a hash of (index, position), so distinct frames differ in many bits.
std::vector<uint8_t> frame(uint32_t index, size_t len = 64) {
  std::vector<uint8_t> f(len);
  for (size_t k = 0; k < len; ++k) {
    uint64_t z = (uint64_t(index) << 32 | k) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
    f[k] = uint8_t(z >> 56);
  }
  std::memcpy(f.data(), &index, sizeof index);
  return f;
}
uint32_t index_of(std::span<const uint8_t> f) {
  uint32_t i;
  std::memcpy(&i, f.data(), sizeof i);
  return i;
}

struct Delivery {
  int64_t at_us;
  std::vector<uint8_t> bytes;
  bool operator==(const Delivery&) const = default;
};

// Drains `dev` up to `until`, stepping the virtual clock through each poll_at().
std::vector<Delivery> drain(Device& dev, int64_t until_us) {
  std::vector<Delivery> out;
  for (Instant t = dev.poll_at(); t <= at_us(until_us); t = dev.poll_at()) {
    dev.receive(t, [&](std::span<const uint8_t> f) {
      out.push_back({t.time_since_epoch().count(), {f.begin(), f.end()}});
    });
  }
  return out;
}

// Sends `n` frames a→b, one every `gap_us`, flushing each, and returns what b received.
std::vector<Delivery> run(const LinkConfig& cfg, uint32_t n, int64_t gap_us, LinkPair* keep = nullptr) {
  LinkPair local(cfg);
  LinkPair& link = keep ? *keep : local;
  std::vector<Delivery> got;
  for (uint32_t i = 0; i < n; ++i) {
    Instant now = at_us(int64_t(i) * gap_us);
    link.b().receive(now, [&](std::span<const uint8_t> f) {
      got.push_back({now.time_since_epoch().count(), {f.begin(), f.end()}});
    });
    EXPECT_TRUE(link.a().transmit(frame(i)));
    link.a().flush(now);
  }
  auto rest = drain(link.b(), int64_t(n) * gap_us + 10'000'000);
  got.insert(got.end(), rest.begin(), rest.end());
  return got;
}

TEST(Link, DeliversAfterDelayOnVirtualClock) {
  LinkConfig cfg;
  cfg.delay = Duration(100);
  LinkPair link(cfg);
  ASSERT_TRUE(link.a().transmit(frame(1)));
  EXPECT_EQ(link.b().poll_at(), kInstantNever);  // not sent until flush
  link.a().flush(at_us(50));
  EXPECT_EQ(link.b().poll_at(), at_us(150));
  EXPECT_EQ(link.b().receive(at_us(149), [](auto) { FAIL(); }), 0u);
  std::vector<uint8_t> got;
  EXPECT_EQ(link.b().receive(at_us(150), [&](auto f) { got.assign(f.begin(), f.end()); }), 1u);
  EXPECT_EQ(got, frame(1));
  EXPECT_EQ(link.b().poll_at(), kInstantNever);
  EXPECT_EQ(link.a().poll_at(), kInstantNever);  // nothing went b→a
  EXPECT_EQ(link.stats_a_to_b().sent, 1u);
  EXPECT_EQ(link.stats_a_to_b().delivered, 1u);
  EXPECT_EQ(link.stats_b_to_a().sent, 0u);
}

TEST(Link, BandwidthSerializesFramesBackToBack) {
  LinkConfig cfg;
  cfg.bandwidth_bps = 10'000'000;  // 1250 bytes = 1 ms
  cfg.delay = Duration(500);
  LinkPair link(cfg);
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(link.a().transmit(frame(i, 1250)));
  link.a().flush(at_us(0));
  auto got = drain(link.b(), 1'000'000);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].at_us, 1500);
  EXPECT_EQ(got[1].at_us, 2500);
  EXPECT_EQ(got[2].at_us, 3500);
  // An idle wire starts the next frame at once.
  ASSERT_TRUE(link.a().transmit(frame(9, 125)));
  link.a().flush(at_us(10'000));
  EXPECT_EQ(link.b().poll_at(), at_us(10'000 + 100 + 500));
}

TEST(Link, SubMicrosecondSerializationAccumulates) {
  LinkConfig cfg;
  cfg.bandwidth_bps = 100'000'000'000;  // 64 B = 5.12 ns
  cfg.tx_ring = 1000;
  LinkPair link(cfg);
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_TRUE(link.a().transmit(frame(i, 64)));
  link.a().flush(at_us(0));
  auto got = drain(link.b(), 1'000'000);
  ASSERT_EQ(got.size(), 1000u);
  EXPECT_EQ(got.back().at_us, 6);  // 5120 ns, rounded up; not 1000 µs
}

TEST(Link, QueueLimitTailDrops) {
  LinkConfig cfg;
  cfg.bandwidth_bps = 8'000'000;  // 1000 bytes = 1 ms
  cfg.queue_limit = 2;
  LinkPair link(cfg);
  for (uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(link.a().transmit(frame(i, 1000)));
  link.a().flush(at_us(0));
  EXPECT_EQ(link.stats_a_to_b().dropped_queue, 3u);
  // After the first frame has left the wire there is room for one more.
  ASSERT_TRUE(link.a().transmit(frame(5, 1000)));
  link.a().flush(at_us(1000));
  EXPECT_EQ(link.stats_a_to_b().dropped_queue, 3u);
  auto got = drain(link.b(), 1'000'000);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(index_of(got[2].bytes), 5u);
  EXPECT_EQ(got[2].at_us, 3000);
}

TEST(Link, OversizeFramesAreDroppedAndCounted) {
  LinkConfig cfg;
  cfg.mtu = 100;
  LinkPair link(cfg);
  EXPECT_EQ(link.a().caps().max_tx_frame, 114u);
  ASSERT_TRUE(link.a().transmit(frame(0, 115)));
  ASSERT_TRUE(link.a().transmit(frame(1, 114)));
  link.a().flush(at_us(0));
  auto got = drain(link.b(), 10);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(index_of(got[0].bytes), 1u);
  EXPECT_EQ(link.stats_a_to_b().dropped_oversize, 1u);
}

TEST(Link, TxRingBackPressureUntilFlush) {
  LinkConfig cfg;
  cfg.tx_ring = 2;
  LinkPair link(cfg);
  EXPECT_TRUE(link.a().transmit(frame(0)));
  EXPECT_TRUE(link.a().transmit(frame(1)));
  EXPECT_TRUE(link.a().tx_buffer(64).empty());
  EXPECT_FALSE(link.a().transmit(frame(2)));
  link.a().flush(at_us(0));
  EXPECT_TRUE(link.a().transmit(frame(2)));
}

TEST(Link, InPlaceBuildWithShorterCommit) {
  LinkPair link(LinkConfig{});
  auto buf = link.a().tx_buffer(1514);
  ASSERT_GE(buf.size(), 1514u);
  std::memset(buf.data(), 0xab, 60);
  link.a().tx_commit(60);
  link.a().flush(at_us(0));
  auto got = drain(link.b(), 0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].bytes, std::vector<uint8_t>(60, 0xab));
}

LinkConfig lossy(uint64_t seed) {
  LinkConfig cfg;
  cfg.seed = seed;
  cfg.loss = 0.05;
  cfg.duplicate = 0.05;
  cfg.reorder = 0.05;
  cfg.corrupt = 0.05;
  cfg.delay = Duration(200);
  cfg.jitter = Duration(150);
  cfg.bandwidth_bps = 100'000'000;
  return cfg;
}

TEST(Link, SameSeedSameDeliverySequence) {
  auto x = run(lossy(42), 2000, 10);
  auto y = run(lossy(42), 2000, 10);
  auto z = run(lossy(43), 2000, 10);
  ASSERT_GT(x.size(), 1500u);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
}

TEST(Link, LossRateWithinStatisticalBounds) {
  LinkConfig cfg;
  cfg.seed = 7;
  cfg.loss = 0.1;
  LinkPair link(cfg);
  auto got = run(cfg, 20000, 1, &link);
  // Binomial(20000, 0.1): sd = 42.4; ±5 sd.
  const auto& s = link.stats_a_to_b();
  EXPECT_EQ(s.sent, 20000u);
  EXPECT_NEAR(double(s.dropped), 2000.0, 212.0);
  EXPECT_EQ(got.size(), s.sent - s.dropped);
  EXPECT_EQ(s.delivered, got.size());
  EXPECT_EQ(s.reordered, 0u);
}

TEST(Link, DuplicatesAndCorruptionAreCountedExactly) {
  LinkConfig cfg;
  cfg.seed = 3;
  cfg.duplicate = 0.2;
  cfg.corrupt = 0.1;
  LinkPair link(cfg);
  auto got = run(cfg, 5000, 1, &link);
  const auto& s = link.stats_a_to_b();
  EXPECT_EQ(got.size(), s.sent + s.duplicated);
  EXPECT_NEAR(double(s.duplicated), 1000.0, 150.0);
  EXPECT_NEAR(double(s.corrupted), 500.0, 110.0);
  // Find each delivered frame's original by whichever half a single flip left intact,
  // then count the frames that differ from it: exactly one flipped bit each.
  std::map<std::vector<uint8_t>, uint32_t> by_head, by_tail;
  for (uint32_t i = 0; i < 5000; ++i) {
    auto f = frame(i);
    by_head[{f.begin(), f.begin() + 32}] = i;
    by_tail[{f.begin() + 32, f.end()}] = i;
  }
  uint64_t corrupted = 0;
  for (const auto& d : got) {
    auto h = by_head.find({d.bytes.begin(), d.bytes.begin() + 32});
    auto t = by_tail.find({d.bytes.begin() + 32, d.bytes.end()});
    ASSERT_TRUE(h != by_head.end() || t != by_tail.end());
    auto want = frame(h != by_head.end() ? h->second : t->second);
    int bits = 0;
    for (size_t k = 0; k < want.size(); ++k) bits += __builtin_popcount(want[k] ^ d.bytes[k]);
    ASSERT_LE(bits, 1);
    corrupted += bits;
  }
  EXPECT_EQ(corrupted, s.corrupted);
}

TEST(Link, ReorderHoldsFramesBackAndCountsOvertakes) {
  LinkConfig cfg;
  cfg.seed = 11;
  cfg.reorder = 0.1;
  cfg.reorder_delay = Duration(350);
  LinkPair link(cfg);
  auto got = run(cfg, 3000, 100, &link);
  ASSERT_EQ(got.size(), 3000u);
  uint64_t overtaken = 0;
  uint32_t high = 0;
  for (const auto& d : got) {
    uint32_t i = index_of(d.bytes);
    if (i + 1 < high) ++overtaken;
    high = std::max(high, i + 1);
  }
  EXPECT_EQ(overtaken, link.stats_a_to_b().reordered);
  // A held frame is overtaken by the three sent during its 350 µs hold; each held frame
  // counts once.
  EXPECT_NEAR(double(overtaken), 300.0, 90.0);
}

TEST(Link, DirectionsAreIndependent) {
  LinkConfig ab;
  ab.delay = Duration(10);
  LinkConfig ba;
  ba.delay = Duration(1000);
  LinkPair link(ab, ba);
  link.a().transmit(frame(1));
  link.a().flush(at_us(0));
  link.b().transmit(frame(2));
  link.b().flush(at_us(0));
  EXPECT_EQ(link.b().poll_at(), at_us(10));
  EXPECT_EQ(link.a().poll_at(), at_us(1000));
  EXPECT_EQ(link.poll_at(), at_us(10));
}

TEST(FaultInjector, TxLossDropsBeforeTheInnerDevice) {
  LinkPair link(LinkConfig{});
  FaultConfig fc;
  fc.loss = 1.0;
  FaultInjector inj(link.a(), FaultConfig{}, fc);
  for (uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(inj.transmit(frame(i)));
  inj.flush(at_us(0));
  EXPECT_TRUE(drain(link.b(), 100).empty());
  EXPECT_EQ(inj.tx_stats().dropped, 10u);
  EXPECT_EQ(link.stats_a_to_b().sent, 0u);
}

TEST(FaultInjector, RxDelayAndTxDelayOnVirtualClock) {
  LinkPair link(LinkConfig{});
  FaultConfig rx, tx;
  rx.delay = Duration(300);
  tx.delay = Duration(40);
  FaultInjector inj(link.a(), rx, tx);
  // b → injected a: held 300 µs inside the injector.
  link.b().transmit(frame(1));
  link.b().flush(at_us(0));
  EXPECT_EQ(inj.receive(at_us(0), [](auto) {}), 0u);
  EXPECT_EQ(inj.poll_at(), at_us(300));
  EXPECT_EQ(inj.receive(at_us(300), [](auto f) { EXPECT_EQ(index_of(f), 1u); }), 1u);
  // injected a → b: held 40 µs, released by a later receive() call.
  inj.transmit(frame(2));
  inj.flush(at_us(1000));
  EXPECT_EQ(inj.poll_at(), at_us(1040));
  EXPECT_EQ(link.b().poll_at(), kInstantNever);
  inj.receive(at_us(1040), [](auto) {});
  auto got = drain(link.b(), 2000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].at_us, 1040);
}

TEST(FaultInjector, SameSeedReproducesCorruption) {
  auto once = [] {
    LinkPair link(LinkConfig{});
    FaultConfig fc;
    fc.seed = 99;
    fc.corrupt = 0.5;
    fc.duplicate = 0.3;
    FaultInjector inj(link.b(), fc);
    for (uint32_t i = 0; i < 200; ++i) link.a().transmit(frame(i));
    link.a().flush(at_us(0));
    std::vector<std::vector<uint8_t>> got;
    inj.receive(at_us(0), [&](auto f) { got.emplace_back(f.begin(), f.end()); }, 1000);
    return got;
  };
  auto x = once();
  EXPECT_GT(x.size(), 200u);
  EXPECT_EQ(x, once());
}

TEST(Pcap, GlobalAndRecordHeaderGoldenBytes) {
  std::vector<uint8_t> out;
  PcapWriter w([&](std::span<const uint8_t> b) { out.insert(out.end(), b.begin(), b.end()); }, 96);
  w.write(at_us(1'500'002), std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef});
  std::vector<uint8_t> big(100, 0x55);
  w.write(at_us(3'000'000), big);
  auto want = test::hex(
      "d4c3b2a1 0200 0400 00000000 00000000 60000000 01000000"  // global header
      "01000000 22a10700 04000000 04000000 deadbeef");          // 1.500002 s, 4 bytes
  ASSERT_GE(out.size(), want.size());
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + long(want.size())), want);
  // Second record: cut to the 96-byte snaplen, original length 100.
  auto rec2 = test::hex("03000000 00000000 60000000 64000000");
  EXPECT_EQ(std::vector<uint8_t>(out.begin() + long(want.size()), out.begin() + long(want.size()) + 16), rec2);
  EXPECT_EQ(out.size(), want.size() + 16 + 96);
  EXPECT_EQ(w.frames(), 2u);
}

TEST(Pcap, OpenReportsUnwritablePath) {
  std::string err;
  EXPECT_EQ(PcapWriter::open("/nonexistent-dir/x.pcap", &err), nullptr);
  EXPECT_NE(err.find("/nonexistent-dir/x.pcap"), std::string::npos);
}

TEST(Pcap, FileOnDiskHasHeaderAndRecords) {
  std::string path = ::testing::TempDir() + "utcp_pcap_test.pcap";
  {
    std::string err;
    auto w = PcapWriter::open(path, &err);
    ASSERT_TRUE(w) << err;
    w->write(at_us(1), frame(1));
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> bytes(4096);
  bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f));
  std::fclose(f);
  std::remove(path.c_str());
  EXPECT_EQ(bytes.size(), 24u + 16 + 64);
}

TEST(PcapTap, RecordsBothDirectionsWithTheirTimes) {
  LinkConfig cfg;
  cfg.delay = Duration(7);
  LinkPair link(cfg);
  std::vector<uint8_t> out;
  PcapWriter w([&](std::span<const uint8_t> b) { out.insert(out.end(), b.begin(), b.end()); });
  PcapTap tap(link.a(), w);
  ASSERT_TRUE(tap.transmit(frame(1)));
  tap.flush(at_us(5));
  link.b().transmit(frame(2));
  link.b().flush(at_us(10));
  EXPECT_EQ(tap.poll_at(), at_us(17));
  EXPECT_EQ(tap.receive(at_us(17), [](auto f) { EXPECT_EQ(index_of(f), 2u); }), 1u);
  EXPECT_EQ(w.frames(), 2u);
  ASSERT_EQ(out.size(), 24u + 2 * (16 + 64));
  // Record 1 at 5 µs carries frame 1, record 2 at 17 µs frame 2.
  EXPECT_EQ(out[24 + 4], 5);
  EXPECT_EQ(index_of(std::span(out).subspan(24 + 16)), 1u);
  EXPECT_EQ(out[24 + 80 + 4], 17);
  EXPECT_EQ(index_of(std::span(out).subspan(24 + 80 + 16)), 2u);
  // The frame still reached the peer.
  EXPECT_EQ(drain(link.b(), 100).size(), 1u);
}

TEST(Link, SteadyStateAllocatesNothingPerFrame) {
  LinkConfig cfg;
  cfg.seed = 5;
  cfg.loss = 0.1;
  cfg.duplicate = 0.1;
  cfg.reorder = 0.1;
  cfg.corrupt = 0.1;
  cfg.delay = Duration(300);
  cfg.jitter = Duration(100);
  cfg.bandwidth_bps = 1'000'000'000;
  LinkPair link(cfg);
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 64; ++i) frames.push_back(frame(i, 1514));
  size_t received = 0;
  auto count = [&](std::span<const uint8_t>) { ++received; };
  auto step = [&](int64_t t) {
    for (int k = 0; k < 8; ++k) {
      auto buf = link.a().tx_buffer(1514);
      std::copy(frames[size_t(t + k) % 64].begin(), frames[size_t(t + k) % 64].end(), buf.begin());
      link.a().tx_commit(1514);
    }
    link.a().flush(at_us(t * 100));
    link.b().receive(at_us(t * 100), count, 64);
  };
  for (int64_t t = 0; t < 2000; ++t) step(t);  // warm-up: pools and queues reach size
  const uint64_t before = g_allocs.load();
  for (int64_t t = 2000; t < 4000; ++t) step(t);
  EXPECT_EQ(g_allocs.load() - before, 0u);
  EXPECT_GT(received, 10000u);
}

TEST(Prng, KnownSequenceAndRanges) {
  Prng a(1), b(1), c(2);
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
  }
  Prng r(5);
  for (int i = 0; i < 10000; ++i) {
    double u = r.uniform();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    EXPECT_LT(r.below(7), 7u);
  }
  EXPECT_EQ(r.below(0), 0u);
  EXPECT_FALSE(r.chance(0.0));
  EXPECT_TRUE(r.chance(1.0));
}

}  // namespace
}  // namespace utcp
