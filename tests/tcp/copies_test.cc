// copies_test.cc - fewer copies on the data path.
// Sending from the send buffer in place: a connection's send buffer lives in the
// device's payload area (Device::tx_payload_area, the kernel module's upper TX slots),
// and data frames carry only headers plus a reference to the payload there
// (tx_commit_split, uapi UTCP_TXF_SPLIT), which the device reads when it sends.
// Receiving into a posted read: Stack::read(h, out, now) polls with the application's
// buffer posted, so in-order data is copied from the frame straight into it.
// utcp_read (the C API) is that posted read too.
// Over the in-memory link with loss, reordering and duplication; every byte checked.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "api/c_api.h"
#include "device/gso.h"
#include "stack_harness.h"
#include "tcp/ring_buffer.h"
#include "utcp/utcp.h"
#include "utcp/utcp.hpp"

namespace utcp::test {
namespace {

class SplitTest : public LeakChecked {};
class DirectReadTest : public LeakChecked {};

TEST_F(SplitTest, RingBufferAdoptKeepsTheBytesInOrder) {
  RingBuffer rb(100);
  std::vector<uint8_t> in(100);
  std::iota(in.begin(), in.end(), uint8_t(0));
  ASSERT_EQ(rb.write({in.data(), 80}), 80u);
  rb.consume(70);                                   // head at 70
  ASSERT_EQ(rb.write({in.data() + 80, 20}), 20u);   // wraps: 70..99 then 0..9
  ASSERT_EQ(rb.size(), 30u);
  std::vector<uint8_t> small(99), mem(120, 0xee);
  EXPECT_FALSE(rb.adopt(small));                    // smaller than the capacity: refused
  ASSERT_TRUE(rb.adopt(mem));
  EXPECT_EQ(rb.data(), mem.data());
  EXPECT_EQ(rb.capacity(), 100u);
  EXPECT_EQ(rb.size(), 30u);
  std::vector<uint8_t> out(30);
  EXPECT_EQ(rb.peek(0, out), 30u);
  for (size_t i = 0; i < 30; ++i) EXPECT_EQ(out[i], uint8_t(70 + i)) << i;
  // Goes on as a ring of the same capacity inside the adopted memory.
  ASSERT_EQ(rb.write({in.data(), 70}), 70u);
  EXPECT_EQ(rb.free(), 0u);
  EXPECT_EQ(mem[100], 0xee);                        // nothing written past the capacity
  rb.consume(30);
  ASSERT_EQ(rb.write({in.data(), 30}), 30u);        // wraps within mem[0, 100)
  EXPECT_EQ(mem[100], 0xee);
  std::vector<uint8_t> all(100);
  EXPECT_EQ(rb.read(all), 100u);
  for (size_t i = 0; i < 70; ++i) EXPECT_EQ(all[i], uint8_t(i));
  for (size_t i = 0; i < 30; ++i) EXPECT_EQ(all[70 + i], uint8_t(i));
}

LinkConfig lossy(double loss, uint64_t seed, size_t area) {
  LinkConfig c = lossy_link(loss, seed);
  c.delay = Duration(2000);
  c.bandwidth_bps = 0;
  c.queue_limit = 0;  // unlimited
  c.tx_ring = 1024;
  c.tx_payload_area = area;
  return c;
}

TcpConfig small_buffers() {
  TcpConfig t;
  t.sndbuf = 256 * 1024;
  t.rcvbuf = 256 * 1024;
  return t;
}

TEST_F(SplitTest, CleanTransferSendsFromTheArea) {
  // No checksum offload on this link: the stack sums header and payload separately
  // and the receiver verifies every segment.
  StackPair p(lossy(0, 1, 256 * 1024), small_buffers());
  Connected c = connect_pair(p);
  auto r = transfer(p, *p.a, c.client, *p.b, c.server, 8 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  const StackStats& s = p.a->stats();
  // Every data segment but those whose payload wrapped around the ring's end.
  EXPECT_GT(s.split_frames, 1000u);
  EXPECT_GT(s.split_bytes, uint64_t(7) << 20);
  EXPECT_EQ(p.b->stats().parse_errors, 0u);
  p.b->close(c.listener);
}

struct LossCase {
  const char* name;
  double loss;
  uint64_t seed;
  bool gso;
};

class SplitLossTest : public LeakChecked, public ::testing::WithParamInterface<LossCase> {};

TEST_P(SplitLossTest, EveryByteArrives) {
  const LossCase& k = GetParam();
  const size_t area = 256 * 1024;
  std::unique_ptr<StackPair> p;
  std::unique_ptr<SoftGso> ga, gb;
  if (k.gso) {
    // TSO too: multi-segment frames whose payload lies in the area (SoftGso joins
    // headers and payload at commit and cuts them as Linux's GSO does).
    p = std::make_unique<StackPair>(lossy(k.loss, k.seed, 0), small_buffers());
    ga = std::make_unique<SoftGso>(p->link.a(), 14 + 65535, area);
    gb = std::make_unique<SoftGso>(p->link.b(), 14 + 65535, area);
    p->a = StackPair::make_stack(*ga, kIpA, kMacA, small_buffers(), 1);
    p->b = StackPair::make_stack(*gb, kIpB, kMacB, small_buffers(), 2);
  } else {
    p = std::make_unique<StackPair>(lossy(k.loss, k.seed, area), small_buffers());
  }
  Connected c = connect_pair(*p);
  auto r = transfer(*p, *p->a, c.client, *p->b, c.server, 6 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  EXPECT_GT(p->a->stats().split_frames, 50u);
  if (k.gso) {
    EXPECT_GT(p->a->stats().gso_frames, 10u);
    EXPECT_EQ(ga->stats().dropped, 0u);
  }
  p->b->close(c.listener);
  p->a.reset();
  p->b.reset();
}

INSTANTIATE_TEST_SUITE_P(
    Loss, SplitLossTest,
    ::testing::Values(LossCase{"link_1pct", 0.01, 31, false}, LossCase{"link_5pct", 0.05, 32, false},
                      LossCase{"gso_clean", 0, 33, true}, LossCase{"gso_2pct", 0.02, 34, true},
                      LossCase{"gso_5pct", 0.05, 35, true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(SplitTest, AreaSmallerThanTheSendBufferIsNotUsed) {
  StackPair p(lossy(0.01, 41, 64 * 1024), small_buffers());  // 64 KiB < sndbuf 256 KiB
  Connected c = connect_pair(p);
  auto r = transfer(p, *p.a, c.client, *p.b, c.server, 2 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  EXPECT_EQ(p.a->stats().split_frames, 0u);
  p.b->close(c.listener);
}

TEST_F(SplitTest, OneConnectionHasTheAreaAndTheNextOneGetsItLater) {
  StackPair p(lossy(0.01, 51, 256 * 1024), small_buffers());
  Connected c1 = connect_pair(p);
  auto r1 = transfer(p, *p.a, c1.client, *p.b, c1.server, 1 << 20);
  EXPECT_TRUE(r1.ok) << r1.bytes;
  const uint64_t after_first = p.a->stats().split_frames;
  EXPECT_GT(after_first, 0u);
  // The first connection is gone (transfer() waits for that): the second may lend it.
  Connected c2 = connect_pair(p, 81);
  auto r2 = transfer(p, *p.a, c2.client, *p.b, c2.server, 1 << 20);
  EXPECT_TRUE(r2.ok) << r2.bytes;
  EXPECT_GT(p.a->stats().split_frames, after_first);
  p.b->close(c1.listener);
  p.b->close(c2.listener);
}

TEST_F(SplitTest, TwoConnectionsAtOnceShareNothing) {
  // Two connections of one stack write at the same time: one has the area, the other
  // sends as before; both streams arrive intact.
  StackPair p(lossy(0.02, 61, 256 * 1024), small_buffers());
  Connected c1 = connect_pair(p);
  Connected c2 = connect_pair(p, 82);
  std::vector<uint8_t> buf(32 * 1024);
  auto byte_at = [](int k, uint64_t i) { return uint8_t(i * 31 + uint64_t(k) * 7 + (i >> 11)); };
  const uint64_t total = 2 << 20;
  uint64_t sent[2] = {}, got[2] = {};
  bool bad = false;
  const int cl[2] = {c1.client, c2.client}, sv[2] = {c1.server, c2.server};
  ASSERT_TRUE(p.run_until([&] {
    for (int k = 0; k < 2; ++k) {
      while (sent[k] < total) {
        const size_t n = size_t(std::min<uint64_t>(buf.size(), total - sent[k]));
        for (size_t i = 0; i < n; ++i) buf[i] = byte_at(k, sent[k] + i);
        const int64_t w = p.a->write(cl[k], {buf.data(), n});
        if (w <= 0) break;
        sent[k] += uint64_t(w);
      }
      for (;;) {
        const int64_t n = p.b->read(sv[k], buf);
        if (n <= 0) break;
        for (int64_t i = 0; i < n; ++i)
          if (buf[size_t(i)] != byte_at(k, got[k] + uint64_t(i))) bad = true;
        got[k] += uint64_t(n);
      }
    }
    return bad || (got[0] == total && got[1] == total);
  }));
  EXPECT_FALSE(bad);
  EXPECT_GT(p.a->stats().split_frames, 0u);
  EXPECT_LT(p.a->stats().split_bytes, 2 * total);  // only one of them sent from the area
  for (int k = 0; k < 2; ++k) {
    p.a->close(cl[k]);
    p.b->close(sv[k]);
  }
  p.b->close(c1.listener);
  p.b->close(c2.listener);
  p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; });
}

struct ReadCase {
  const char* name;
  double loss;
  uint64_t seed;
  size_t read_size;
};

class DirectReadLossTest : public LeakChecked, public ::testing::WithParamInterface<ReadCase> {};

TEST_P(DirectReadLossTest, EveryByteArrives) {
  // The reader only ever uses the posting read; with loss and reordering, data past a
  // hole goes through the receive buffer and must come out in order behind what was
  // placed directly.
  const ReadCase& k = GetParam();
  StackPair p(lossy(k.loss, k.seed, 0), small_buffers());
  Connected c = connect_pair(p);
  const uint64_t total = 4 << 20;
  auto byte_at = [](uint64_t i) { return uint8_t((i * 2654435761u) >> 13 ^ (i >> 16)); };
  std::vector<uint8_t> chunk(64 * 1024), in(k.read_size);
  uint64_t sent = 0, got = 0;
  bool bad = false, eof = false;
  ASSERT_TRUE(p.run_until([&] {
    while (sent < total) {
      const size_t n = size_t(std::min<uint64_t>(chunk.size(), total - sent));
      for (size_t i = 0; i < n; ++i) chunk[i] = byte_at(sent + i);
      const int64_t w = p.a->write(c.client, {chunk.data(), n});
      if (w <= 0) break;
      sent += uint64_t(w);
    }
    if (sent == total) p.a->shutdown(c.client, 1);
    for (;;) {
      const int64_t n = p.b->read(c.server, in, p.now);
      if (n == 0) eof = true;
      if (n <= 0) break;
      for (int64_t i = 0; i < n; ++i)
        if (in[size_t(i)] != byte_at(got + uint64_t(i))) bad = true;
      got += uint64_t(n);
    }
    return bad || eof;
  }));
  EXPECT_FALSE(bad);
  EXPECT_EQ(got, total);
  const Connection* rc = p.b->connection(c.server);
  ASSERT_NE(rc, nullptr);
  // Some of it skipped the receive buffer; with reads as large as what one poll brings,
  // most of it (a small read takes only its size directly, the rest of the poll's
  // frames are buffered and read from there).
  EXPECT_GT(rc->stats().bytes_direct, 0u);
  if (k.read_size >= 64 * 1024) EXPECT_GT(rc->stats().bytes_direct, total / 2) << rc->stats().bytes_direct;
  EXPECT_LE(rc->stats().bytes_direct, rc->stats().bytes_in);
  if (k.loss > 0) EXPECT_GT(rc->stats().ooo_segments, 0u);
  EXPECT_EQ(rc->recv_queued(), 0u);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; });
}

INSTANTIATE_TEST_SUITE_P(
    Loss, DirectReadLossTest,
    ::testing::Values(ReadCase{"clean_64k", 0, 71, 64 * 1024}, ReadCase{"clean_100b", 0, 72, 100},
                      ReadCase{"loss_1pct_256k", 0.01, 73, 256 * 1024}, ReadCase{"loss_5pct_1500", 0.05, 74, 1500},
                      ReadCase{"loss_5pct_7k", 0.05, 75, 7000}),
    [](const auto& info) { return std::string(info.param.name); });

// utcp_read is the posted read: the reading stack is polled only by its reads (and, every
// 50th round, by utcp_stack_poll, so that some data waits in the receive buffer and must
// come out in order ahead of what the next read takes directly). Without the posted read
// nothing would count as direct.
class CApiReadTest : public LeakChecked, public ::testing::WithParamInterface<ReadCase> {};

TEST_P(CApiReadTest, EveryByteArrivesInOrderMostOfItDirectly) {
  const ReadCase& k = GetParam();
  LinkPair link(lossy(k.loss, k.seed, 0));
  utcp_stack_config ca{};
  ca.ip = kIpA.v;
  std::memcpy(ca.mac, kMacA.b.data(), 6);
  ca.clock = UTCP_CLOCK_MANUAL;
  ca.start_us = 1'000'000;
  ca.isn_seed = 1;
  utcp_stack_config cb = ca;
  cb.ip = kIpB.v;
  std::memcpy(cb.mac, kMacB.b.data(), 6);
  cb.isn_seed = 2;
  utcp_stack* a = utcp_stack_create(&ca, api::c_device(link.a()));
  utcp_stack* b = utcp_stack_create(&cb, api::c_device(link.b()));
  ASSERT_TRUE(a && b);
  utcp_stack_add_neighbor(a, kIpB.v, cb.mac);
  utcp_stack_add_neighbor(b, kIpA.v, ca.mac);
  int64_t now = ca.start_us;
  auto step = [&] {  // both clocks to the earlier next deadline
    int64_t ta = utcp_stack_next_timeout_us(a), tb = utcp_stack_next_timeout_us(b);
    int64_t t = ta < 0 ? tb : tb < 0 ? ta : std::min(ta, tb);
    now += t < 0 ? 1000 : std::max<int64_t>(t, 1);
    utcp_stack_set_time(a, now);
    utcp_stack_set_time(b, now);
  };
  const int l = utcp_socket(b);
  ASSERT_EQ(utcp_bind(b, l, 80), 0);
  ASSERT_EQ(utcp_listen(b, l, 4), 0);
  const int c = utcp_socket(a);
  ASSERT_EQ(utcp_connect(a, c, kIpB.v, 80), -EINPROGRESS);
  int srv = -1;
  for (int i = 0; i < 1000 && (srv < 0 || !(utcp_poll(a, c) & UTCP_POLLOUT)); ++i) {
    utcp_stack_poll(a);
    utcp_stack_poll(b);
    if (srv < 0) srv = utcp_accept(b, l, nullptr, nullptr);
    step();
  }
  ASSERT_GE(srv, 0);
  std::vector<uint8_t> in(k.read_size);
  EXPECT_EQ(utcp_read(b, srv, in.data(), in.size()), -EAGAIN);  // nothing sent yet
  const uint64_t total = 4 << 20;
  auto byte_at = [](uint64_t i) { return uint8_t((i * 2654435761u) >> 13 ^ (i >> 16)); };
  std::vector<uint8_t> chunk(64 * 1024);
  uint64_t sent = 0, got = 0, bad_at = ~uint64_t(0);
  bool eof = false, shut = false;
  for (int round = 0; round < 2'000'000 && !eof; ++round) {
    while (sent < total) {
      const size_t n = size_t(std::min<uint64_t>(chunk.size(), total - sent));
      for (size_t i = 0; i < n; ++i) chunk[i] = byte_at(sent + i);
      const ssize_t w = utcp_write(a, c, chunk.data(), n);
      if (w <= 0) break;
      sent += uint64_t(w);
    }
    if (sent == total && !shut) shut = utcp_shutdown(a, c, UTCP_SHUT_WR) == 0;
    utcp_stack_poll(a);
    if (round % 50 == 49) utcp_stack_poll(b);  // into the receive buffer, not a read's
    for (;;) {
      const ssize_t n = utcp_read(b, srv, in.data(), in.size());
      if (n == 0) eof = true;
      if (n <= 0) {
        EXPECT_TRUE(n == 0 || n == -EAGAIN) << n;
        break;
      }
      for (ssize_t i = 0; i < n; ++i)
        if (in[size_t(i)] != byte_at(got + uint64_t(i)) && bad_at == ~uint64_t(0)) bad_at = got + uint64_t(i);
      got += uint64_t(n);
    }
    step();
  }
  EXPECT_TRUE(eof);
  EXPECT_EQ(bad_at, ~uint64_t(0)) << "first wrong byte at offset " << bad_at;
  EXPECT_EQ(got, total);
  const Connection* rc = api::stack_of(b)->connection(srv);
  ASSERT_NE(rc, nullptr);
  EXPECT_GT(rc->stats().bytes_direct, 0u);
  if (k.read_size >= 64 * 1024) {
    EXPECT_GT(rc->stats().bytes_direct, total / 2) << rc->stats().bytes_direct;
  }
  EXPECT_LT(rc->stats().bytes_direct, total);  // the rounds that utcp_stack_poll took in
  EXPECT_EQ(rc->recv_queued(), 0u);
  EXPECT_EQ(utcp_read(b, srv, in.data(), in.size()), 0);  // end of stream stays
  EXPECT_EQ(utcp_close(a, c), 0);
  EXPECT_EQ(utcp_close(b, srv), 0);
  EXPECT_EQ(utcp_close(b, l), 0);
  for (int i = 0; i < 100000 && (api::stack_of(a)->connection_count() || api::stack_of(b)->connection_count()); ++i) {
    utcp_stack_poll(a);
    utcp_stack_poll(b);
    step();
  }
  EXPECT_EQ(api::stack_of(a)->connection_count() + api::stack_of(b)->connection_count(), 0u);
  utcp_stack_destroy(a);
  utcp_stack_destroy(b);
}

INSTANTIATE_TEST_SUITE_P(
    Loss, CApiReadTest,
    ::testing::Values(ReadCase{"clean_256k", 0, 91, 256 * 1024}, ReadCase{"clean_1000b", 0, 92, 1000},
                      ReadCase{"loss_2pct_128k", 0.02, 93, 128 * 1024}, ReadCase{"loss_5pct_3000b", 0.05, 94, 3000}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(DirectReadTest, NothingBufferedMeansNothingPostedAfterwards) {
  // A posting read that finds nothing returns -EAGAIN and leaves nothing posted: data
  // arriving later goes to the receive buffer, and a plain read gets it.
  StackPair p(lossy(0, 81, 0), small_buffers());
  Connected c = connect_pair(p);
  std::vector<uint8_t> in(4096);
  EXPECT_EQ(p.b->read(c.server, in, p.now), -EAGAIN);
  const uint8_t msg[] = {1, 2, 3, 4, 5};
  ASSERT_EQ(p.a->write(c.client, msg), 5);
  ASSERT_TRUE(p.run_until([&] { return p.b->connection(c.server)->recv_queued() == 5; }));
  std::fill(in.begin(), in.end(), 0);
  EXPECT_EQ(p.b->read(c.server, in), 5);
  EXPECT_EQ(std::vector<uint8_t>(in.begin(), in.begin() + 5), std::vector<uint8_t>(msg, msg + 5));
  EXPECT_EQ(p.b->connection(c.server)->stats().bytes_direct, 0u);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; });
}

}  // namespace
}  // namespace utcp::test
