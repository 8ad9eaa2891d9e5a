// stack_harness.h - two Stacks joined by a LinkPair on a virtual clock, and a verified bulk transfer.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "api/stack.h"
#include "device/link.h"
#include "tcp_test_util.h"

namespace utcp::test {

// The transfers' seeded lossy link: `loss` of the frames dropped, as many reordered, half as
// many duplicated; 500 us each way at 10 Gbit/s.
inline LinkConfig lossy_link(double loss, uint64_t seed) {
  LinkConfig c;
  c.seed = seed;
  c.loss = loss;
  c.reorder = loss;
  c.duplicate = loss / 2;
  c.delay = Duration(500);
  c.bandwidth_bps = 10'000'000'000ull;
  c.queue_limit = 4096;
  return c;
}

inline const Ipv4Addr kIpA = Ipv4Addr::of(10, 0, 0, 1), kIpB = Ipv4Addr::of(10, 0, 0, 2);
inline const MacAddr kMacA{{0x02, 0, 0, 0, 0, 0x0a}}, kMacB{{0x02, 0, 0, 0, 0, 0x0b}};

struct StackPair {
  StackPair(const LinkConfig& link_cfg, const TcpConfig& tcp = TcpConfig{}) : link(link_cfg) {
    a = make_stack(link.a(), kIpA, kMacA, tcp, 1);
    b = make_stack(link.b(), kIpB, kMacB, tcp, 2);
  }
  // Each direction of the link its own config.
  StackPair(const LinkConfig& a_to_b, const LinkConfig& b_to_a, const TcpConfig& tcp = TcpConfig{})
      : link(a_to_b, b_to_a) {
    a = make_stack(link.a(), kIpA, kMacA, tcp, 1);
    b = make_stack(link.b(), kIpB, kMacB, tcp, 2);
  }
  static std::unique_ptr<Stack> make_stack(Device& dev, Ipv4Addr ip, MacAddr mac,
                                           const TcpConfig& tcp, uint8_t key) {
    StackConfig c;
    c.ip = ip;
    c.mac = mac;
    c.tcp = tcp;
    c.isn_key = std::array<uint8_t, 16>{key, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    auto s = std::make_unique<Stack>(&dev, c);
    s->add_neighbor(kIpA, kMacA);
    s->add_neighbor(kIpB, kMacB);
    return s;
  }

  // Polls both stacks, then moves the clock to the next thing due (never backwards).
  void step() {
    if (a) a->poll(now);
    if (b) b->poll(now);
    // Each stack's poll_at() includes its device's next delivery; a device whose stack
    // is gone is not waited for.
    Instant next = kInstantNever;
    if (a) next = std::min(next, a->poll_at());
    if (b) next = std::min(next, b->poll_at());
    if (next > now && next != kInstantNever) now = next;
    else if (next == kInstantNever) now += Duration(1000);
  }
  // Steps until `done()` or the virtual deadline; returns done().
  template <class F>
  bool run_until(F&& done, Duration limit = Duration(600'000'000)) {
    const Instant end = now + limit;
    while (!done()) {
      if (now > end) return false;
      step();
    }
    return true;
  }

  LinkPair link;
  std::unique_ptr<Stack> a, b;
  Instant now = Instant(Duration(1'000'000));
};

// A connected pair of sockets: client on A, server (accepted) on B.
struct Connected {
  int client = -1, server = -1, listener = -1;
};

inline Connected connect_pair(StackPair& p, uint16_t port = 80) {
  Connected c;
  c.listener = p.b->socket();
  EXPECT_EQ(p.b->bind(c.listener, port), 0);
  EXPECT_EQ(p.b->listen(c.listener, 16), 0);
  c.client = p.a->socket();
  EXPECT_EQ(p.a->connect(c.client, kIpB, port, p.now), -EINPROGRESS);
  EXPECT_TRUE(p.run_until([&] {
    if (c.server < 0) c.server = p.b->accept(c.listener);
    if (c.server == -EAGAIN) c.server = -1;
    return c.server >= 0 && (p.a->events(c.client) & kEventOut);
  }, Duration(200'000'000)));
  return c;
}

struct TransferResult {
  bool ok = false;
  uint64_t bytes = 0;
  Duration virtual_time{0};
};

// Sends `total` bytes of a known pattern from `from` to `to`, checks every byte on
// arrival, then closes both ends and waits until both connections are gone.
inline TransferResult transfer(StackPair& p, Stack& sa, int from, Stack& sb, int to, uint64_t total,
                               Duration limit = Duration(3600'000'000)) {
  TransferResult r;
  std::vector<uint8_t> chunk(64 * 1024), in(64 * 1024);
  uint64_t sent = 0, got = 0;
  const Instant start = p.now;
  auto byte_at = [](uint64_t i) { return uint8_t((i * 2654435761u) >> 13 ^ (i >> 16)); };
  bool bad = false;
  bool closed_w = false;
  size_t chunk_off = 0, chunk_len = 0;
  const bool done = p.run_until([&] {
    // The chunk is filled once and written from an offset: a full send buffer costs
    // nothing here, so the stacks dominate the run time.
    while (sent < total) {
      if (chunk_off == chunk_len) {
        chunk_len = size_t(std::min<uint64_t>(chunk.size(), total - sent));
        for (size_t i = 0; i < chunk_len; ++i) chunk[i] = byte_at(sent + i);
        chunk_off = 0;
      }
      int64_t w = sa.write(from, {chunk.data() + chunk_off, chunk_len - chunk_off});
      if (w <= 0) break;
      chunk_off += size_t(w);
      sent += uint64_t(w);
    }
    if (sent == total && !closed_w) {
      sa.shutdown(from, 1);
      closed_w = true;
    }
    for (;;) {
      int64_t n = sb.read(to, in);
      if (n <= 0) break;
      for (int64_t i = 0; i < n; ++i)
        if (in[size_t(i)] != byte_at(got + uint64_t(i))) bad = true;
      got += uint64_t(n);
    }
    return bad || (got == total && sb.read(to, in) == 0);
  }, limit);
  r.virtual_time = p.now - start;
  r.bytes = got;
  r.ok = done && !bad && got == total;
  return r;
}

}  // namespace utcp::test
