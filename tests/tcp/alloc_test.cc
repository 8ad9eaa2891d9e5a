// alloc_test.cc - the data path allocates nothing per packet: a steady bulk transfer
// between two stacks over the LinkPair is run with operator new counted.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "device/gso.h"
#include "stack_harness.h"

namespace {
std::atomic<uint64_t> g_allocs{0};
}  // namespace

void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace utcp::test {
namespace {

class AllocTest : public LeakChecked {};

// Runs a bulk transfer A -> B until warm (rings, pools, hash tables and vectors at
// their sizes: with a 1 MiB scaled window the link holds up to ~700 frames in flight,
// hence the long warm-up), then 32 MiB more; returns the allocations made in those.
uint64_t steady_allocs(StackPair& p, const Connected& c) {
  std::vector<uint8_t> out(64 * 1024, 0x77), in(64 * 1024);
  uint64_t got = 0;
  auto pump = [&](uint64_t until) {
    while (got < until) {
      p.a->write(c.client, out);
      p.step();
      int64_t n;
      while ((n = p.b->read(c.server, in)) > 0) got += uint64_t(n);
    }
  };
  pump(32 << 20);
  const uint64_t before = g_allocs.load();
  pump(got + (32 << 20));
  return g_allocs.load() - before;
}

TEST_F(AllocTest, SteadyTransferAllocatesNothing) {
  LinkConfig lc;
  lc.delay = Duration(100);
  StackPair p(lc);
  Connected c = connect_pair(p);
  EXPECT_EQ(steady_allocs(p, c), 0u) << "over 32 MiB of 1460-byte segments";
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
}

TEST_F(AllocTest, SteadyTsoTransferAllocatesNothing) {
  // The same with TSO frames: the sender's device (SoftGso) takes multi-segment frames.
  LinkConfig lc;
  lc.delay = Duration(100);
  lc.tx_ring = 1024;
  StackPair p(lc);
  SoftGso gso(p.link.a());
  p.a = StackPair::make_stack(gso, kIpA, kMacA, TcpConfig{}, 1);
  Connected c = connect_pair(p);
  const uint64_t frames_before = p.a->stats().gso_frames;
  EXPECT_EQ(steady_allocs(p, c), 0u);
  EXPECT_GT(p.a->stats().gso_frames, frames_before);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  p.a.reset();
}

}  // namespace
}  // namespace utcp::test
