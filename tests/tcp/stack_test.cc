// stack_test.cc - two stacks over the simulated link: handshakes, transfers (every byte
// checked) with loss/reorder/duplication, closes, resets, keepalive, connection moving.
#include <gtest/gtest.h>

#include "stack_harness.h"
#include "tcp/state_export.h"

namespace utcp::test {
namespace {

class StackTest : public LeakChecked {};

LinkConfig lossy(double loss, uint64_t seed) { return lossy_link(loss, seed); }

TEST_F(StackTest, ConnectAcceptTransferClose) {
  TcpConfig tcp;
  tcp.msl = Duration(1'000'000);
  {
    StackPair p(lossy(0, 1), tcp);
    Connected c = connect_pair(p);
    ASSERT_GE(c.server, 0);
    auto r = transfer(p, *p.a, c.client, *p.b, c.server, 1 << 20);
    EXPECT_TRUE(r.ok) << r.bytes;
    EXPECT_EQ(p.b->shutdown(c.server, 1), 0);
    ASSERT_TRUE(p.run_until([&] {
      std::vector<uint8_t> b(16);
      return p.a->read(c.client, b) == 0;
    }));
    EXPECT_EQ(p.a->close(c.client), 0);
    EXPECT_EQ(p.b->close(c.server), 0);
    EXPECT_EQ(p.b->close(c.listener), 0);
    // The active closer (A) waits 2 MSL in TIME-WAIT; then both tables are empty.
    ASSERT_TRUE(p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; }));
    EXPECT_EQ(p.a->timers().size(), 0u);
  }
}

// Stack::set_defer_flush: poll() builds the frames but leaves them in the device until
// the caller's flush (utcp-perf sends them in the call it sleeps in, UTCP_IOC_TX_WAIT).
TEST_F(StackTest, DeferredFlushHoldsFramesUntilFlush) {
  StackPair p(lossy(0, 11));
  Connected c = connect_pair(p);
  ASSERT_GE(c.server, 0);
  p.a->set_defer_flush(true);
  const uint64_t before = p.link.stats_a_to_b().sent;
  const uint8_t msg[] = {'r', 'q'};
  ASSERT_EQ(p.a->write(c.client, msg), 2);
  p.a->poll(p.now);
  std::vector<uint8_t> peek(2);
  EXPECT_EQ(p.a->read(c.client, peek, p.now), -EAGAIN);  // a read's poll defers too
  EXPECT_EQ(p.link.stats_a_to_b().sent, before);         // built and queued, not on the link
  p.a->flush(p.now);
  EXPECT_EQ(p.link.stats_a_to_b().sent, before + 1);
  p.a->set_defer_flush(false);
  std::vector<uint8_t> got(2);
  ASSERT_TRUE(p.run_until([&] { return p.b->read(c.server, got) == 2; }));
  EXPECT_EQ(got[0], 'r');
  EXPECT_EQ(got[1], 'q');
}

TEST_F(StackTest, ConnectToClosedPortIsRefused) {  // RFC 9293 §3.10.7.1 / §3.10.7.3
  StackPair p(lossy(0, 2));
  int s = p.a->socket();
  ASSERT_EQ(p.a->connect(s, kIpB, 9999, p.now), -EINPROGRESS);
  ASSERT_TRUE(p.run_until([&] { return (p.a->events(s) & kEventErr) != 0; }));
  int err = 0;
  size_t len = sizeof(err);
  EXPECT_EQ(p.a->getsockopt(s, SockOpt::kError, &err, &len), 0);
  EXPECT_EQ(err, ECONNREFUSED);
  EXPECT_EQ(p.b->stats().rst_sent_no_connection, 1u);
  p.a->close(s);
  p.step();
}

TEST_F(StackTest, SimultaneousOpenBetweenStacks) {  // RFC 9293 §3.5 figure 7
  StackPair p(lossy(0, 3));
  int sa = p.a->socket(), sb = p.b->socket();
  ASSERT_EQ(p.a->bind(sa, 5000), 0);
  ASSERT_EQ(p.b->bind(sb, 6000), 0);
  ASSERT_EQ(p.a->connect(sa, kIpB, 6000, p.now), -EINPROGRESS);
  ASSERT_EQ(p.b->connect(sb, kIpA, 5000, p.now), -EINPROGRESS);
  ASSERT_TRUE(p.run_until([&] {
    return (p.a->events(sa) & kEventOut) && (p.b->events(sb) & kEventOut);
  }));
  EXPECT_EQ(p.a->connection(sa)->state(), TcpState::kEstablished);
  EXPECT_EQ(p.b->connection(sb)->state(), TcpState::kEstablished);
  auto r = transfer(p, *p.a, sa, *p.b, sb, 100'000);
  EXPECT_TRUE(r.ok);
  p.a->close(sa);
  p.b->close(sb);
}

TEST_F(StackTest, SimultaneousCloseBetweenStacks) {  // RFC 9293 §3.6 figure 13
  TcpConfig tcp;
  tcp.msl = Duration(1'000'000);
  StackPair p(lossy(0, 4), tcp);
  Connected c = connect_pair(p);
  p.a->shutdown(c.client, 1);
  p.b->shutdown(c.server, 1);
  bool saw_closing = false;
  ASSERT_TRUE(p.run_until([&] {
    Connection* x = p.a->connection(c.client);
    if (x && x->state() == TcpState::kClosing) saw_closing = true;
    return x && x->state() == TcpState::kTimeWait && p.b->connection(c.server)->state() == TcpState::kTimeWait;
  }));
  EXPECT_TRUE(saw_closing);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  ASSERT_TRUE(p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; }));
}

TEST_F(StackTest, OrphanInFinWait2TimesOut) {  // Linux tcp_fin_timeout for closed sockets
  TcpConfig tcp;
  tcp.fin_wait2_timeout = Duration(5'000'000);
  StackPair p(lossy(0, 13), tcp);
  Connected c = connect_pair(p);
  ASSERT_EQ(p.a->close(c.client), 0);  // B never closes: A waits in FIN-WAIT-2
  const Instant t0 = p.now;
  ASSERT_TRUE(p.run_until([&] { return p.a->connection_count() == 0; }));
  EXPECT_GE(p.now - t0, Duration(5'000'000));
  EXPECT_LE(p.now - t0, Duration(6'000'000));
  EXPECT_EQ(p.b->connection(c.server)->state(), TcpState::kCloseWait);
  // A socket the user still holds is not timed out: it may wait for the FIN forever.
  Connected d = connect_pair(p, 81);
  p.a->shutdown(d.client, 1);
  const Instant t1 = p.now;
  ASSERT_TRUE(p.run_until([&] { return p.now > t1 + Duration(20'000'000); }));
  EXPECT_EQ(p.a->connection(d.client)->state(), TcpState::kFinWait2);
  p.a->close(d.client);
  p.b->close(d.server);
  p.b->close(d.listener);
  p.b->close(c.server);
  p.b->close(c.listener);
}

TEST_F(StackTest, HalfCloseThenReply) {  // RFC 9293 §3.6 half-close
  StackPair p(lossy(0, 5));
  Connected c = connect_pair(p);
  const char req[] = "request";
  ASSERT_EQ(p.a->write(c.client, {reinterpret_cast<const uint8_t*>(req), 7}), 7);
  ASSERT_EQ(p.a->shutdown(c.client, 1), 0);
  std::vector<uint8_t> buf(100);
  std::string got;
  int64_t n = 0;
  ASSERT_TRUE(p.run_until([&] {
    n = p.b->read(c.server, buf);
    if (n > 0) got.append(buf.begin(), buf.begin() + n);
    return n == 0;
  }));
  EXPECT_EQ(got, "request");
  // The server saw the request and the FIN, and can still answer.
  ASSERT_EQ(p.b->connection(c.server)->state(), TcpState::kCloseWait);
  ASSERT_EQ(p.b->write(c.server, {reinterpret_cast<const uint8_t*>("reply"), 5}), 5);
  ASSERT_TRUE(p.run_until([&] { n = p.a->read(c.client, buf); return n > 0; }));
  EXPECT_EQ(n, 5);
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 5), "reply");
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
}

TEST_F(StackTest, LingerZeroAbortsWithReset) {  // RFC 9293 §3.10.5 ABORT, SO_LINGER 0
  StackPair p(lossy(0, 6));
  Connected c = connect_pair(p);
  LingerOpt l{1, 0};
  ASSERT_EQ(p.a->setsockopt(c.client, SockOpt::kLinger, &l, sizeof(l), p.now), 0);
  ASSERT_EQ(p.a->close(c.client), 0);
  std::vector<uint8_t> buf(10);
  ASSERT_TRUE(p.run_until([&] { return p.b->read(c.server, buf) == -ECONNRESET; }));
  EXPECT_TRUE(p.b->events(c.server) & kEventErr);
  p.b->close(c.server);
  p.b->close(c.listener);
  p.step();
  EXPECT_EQ(p.a->connection_count(), 0u);
  EXPECT_EQ(p.b->connection_count(), 0u);
}

TEST_F(StackTest, WriteAfterPeerResetIsError) {
  StackPair p(lossy(0, 7));
  Connected c = connect_pair(p);
  LingerOpt l{1, 0};
  p.b->setsockopt(c.server, SockOpt::kLinger, &l, sizeof(l), p.now);
  p.b->close(c.server);
  std::vector<uint8_t> d(10);
  ASSERT_TRUE(p.run_until([&] { return p.a->write(c.client, d) == -ECONNRESET; }));
  p.a->close(c.client);
  p.b->close(c.listener);
}

TEST_F(StackTest, KeepaliveDetectsDeadPeer) {  // RFC 9293 §3.8.4
  StackPair p(lossy(0, 8));
  Connected c = connect_pair(p);
  int on = 1, idle = 10, intvl = 2, cnt = 3;
  p.a->setsockopt(c.client, SockOpt::kKeepAlive, &on, sizeof(on), p.now);
  p.a->setsockopt(c.client, SockOpt::kKeepIdle, &idle, sizeof(idle), p.now);
  p.a->setsockopt(c.client, SockOpt::kKeepIntvl, &intvl, sizeof(intvl), p.now);
  p.a->setsockopt(c.client, SockOpt::kKeepCnt, &cnt, sizeof(cnt), p.now);
  // Peer answers: still alive after a minute.
  const Instant t0 = p.now;
  ASSERT_TRUE(p.run_until([&] { return p.now > t0 + Duration(60'000'000); }));
  EXPECT_EQ(p.a->connection(c.client)->state(), TcpState::kEstablished);
  // The peer stack vanishes (no RST, nothing): ETIMEDOUT after idle + cnt * intvl.
  p.b.reset();
  const Instant t1 = p.now;
  std::vector<uint8_t> buf(4);
  ASSERT_TRUE(p.run_until([&] { return p.a->read(c.client, buf) == -ETIMEDOUT; }));
  EXPECT_LE(p.now - t1, Duration((10 + 3 * 2 + 2) * 1'000'000));
  p.a->close(c.client);
}

TEST_F(StackTest, RetransmissionsGiveUpWithTimeout) {  // RFC 9293 §3.8.3 R2
  TcpConfig tcp;
  tcp.max_retransmits = 5;
  StackPair p(lossy(0, 9), tcp);
  Connected c = connect_pair(p);
  p.b.reset();
  std::vector<uint8_t> d(1000, 7);
  ASSERT_EQ(p.a->write(c.client, d), 1000);
  ASSERT_TRUE(p.run_until([&] { return p.a->write(c.client, d) == -ETIMEDOUT; }));
  p.a->close(c.client);
}

TEST_F(StackTest, SegmentToNoConnectionGetsReset) {  // RFC 9293 §3.10.7.1
  StackPair p(lossy(0, 10));
  Connected c = connect_pair(p);
  // B forgets the connection silently (as after a crash); A's next data draws a RST.
  std::vector<uint8_t> bytes;
  ASSERT_EQ(p.b->export_connection(c.server, p.now, &bytes), 0);
  p.b->close(c.listener);  // else LISTEN answers (RFC 9293 §3.10.7.2), also with a RST
  std::vector<uint8_t> d(100, 1);
  ASSERT_EQ(p.a->write(c.client, d), 100);
  std::vector<uint8_t> buf(4);
  ASSERT_TRUE(p.run_until([&] { return p.a->read(c.client, buf) == -ECONNRESET; }));
  EXPECT_GE(p.b->stats().rst_sent_no_connection, 1u);
  p.a->close(c.client);
}

TEST_F(StackTest, PortsAndHandles) {
  StackPair p(lossy(0, 11));
  int s1 = p.a->socket(), s2 = p.a->socket();
  EXPECT_EQ(p.a->bind(s1, 7000), 0);
  EXPECT_EQ(p.a->bind(s2, 7000), -EADDRINUSE);
  EXPECT_EQ(p.a->bind(s2, 0), 0);
  EXPECT_GE(p.a->local_port(s2), 32768);
  EXPECT_EQ(p.a->listen(s1, 4), 0);
  EXPECT_EQ(p.a->accept(s1), -EAGAIN);
  EXPECT_EQ(p.a->read(s2, {}), -ENOTCONN);
  EXPECT_EQ(p.a->write(99, {}), -EBADF);
  EXPECT_EQ(p.a->close(99), -EBADF);
  EXPECT_EQ(p.a->shutdown(s1, 7), -EINVAL);
  EXPECT_EQ(p.a->close(s1), 0);
  EXPECT_EQ(p.a->close(s1), -EBADF);
  int s3 = p.a->socket();
  EXPECT_EQ(p.a->bind(s3, 7000), 0);  // freed by close
  p.a->close(s2);
  p.a->close(s3);
}

TEST_F(StackTest, BacklogLimitsPendingConnections) {
  StackPair p(lossy(0, 12));
  int l = p.b->socket();
  p.b->bind(l, 80);
  p.b->listen(l, 2);
  std::vector<int> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(p.a->socket());
    p.a->connect(cs.back(), kIpB, 80, p.now);
  }
  const Instant t0 = p.now;
  p.run_until([&] { return p.now > t0 + Duration(100'000); });
  EXPECT_EQ(p.b->connection_count(), 2u);
  EXPECT_GE(p.b->stats().syn_dropped_backlog, 2u);
  // Accepting makes room; the others get in on their SYN retransmission.
  int accepted = 0;
  ASSERT_TRUE(p.run_until([&] {
    int h = p.b->accept(l);
    if (h >= 0) {
      ++accepted;
      p.b->close(h);
    }
    return accepted == 4;
  }));
  for (int s : cs) p.a->close(s);
  p.b->close(l);
}

// ---------------------------------------------------------------- transfers

struct LossCase {
  double loss;
  uint64_t bytes;
  uint64_t seed;
};

class TransferTest : public LeakChecked, public ::testing::WithParamInterface<LossCase> {};

TEST_P(TransferTest, EveryByteArrives) {
  const LossCase lc = GetParam();
  TcpConfig tcp;
  tcp.msl = Duration(1'000'000);
  StackPair p(lossy(lc.loss, lc.seed), tcp);
  Connected c = connect_pair(p);
  ASSERT_GE(c.server, 0);
  auto r = transfer(p, *p.a, c.client, *p.b, c.server, lc.bytes);
  EXPECT_TRUE(r.ok) << "got " << r.bytes << " of " << lc.bytes;
  const auto& st = p.a->connection(c.client)->stats();
  if (lc.loss > 0) {
    EXPECT_GT(st.retransmits, 0u);
  }
  RecordProperty("virtual_ms", int(r.virtual_time.count() / 1000));
  RecordProperty("fast_retransmits", int(st.fast_retransmits));
  RecordProperty("timeouts", int(st.timeouts));
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  ASSERT_TRUE(p.run_until([&] { return p.a->connection_count() == 0 && p.b->connection_count() == 0; }));
}

INSTANTIATE_TEST_SUITE_P(Loss, TransferTest,
                         ::testing::Values(LossCase{0.0, 100 << 20, 21}, LossCase{0.01, 100 << 20, 22},
                                           LossCase{0.05, 100 << 20, 23}, LossCase{0.01, 8 << 20, 24},
                                           LossCase{0.02, 8 << 20, 25}, LossCase{0.05, 8 << 20, 26},
                                           LossCase{0.10, 4 << 20, 27}),
                         [](const auto& info) {
                           return "loss" + std::to_string(int(info.param.loss * 100)) + "_" +
                                  std::to_string(info.param.bytes >> 20) + "MB_seed" +
                                  std::to_string(info.param.seed);
                         });

TEST_F(StackTest, BidirectionalTransfer) {
  StackPair p(lossy(0.01, 31));
  Connected c = connect_pair(p);
  // Both directions at once: each side writes and reads.
  const uint64_t total = 2 << 20;
  std::vector<uint8_t> out(32768), in(32768);
  uint64_t sent[2] = {}, got[2] = {};
  bool bad = false;
  auto val = [](int dir, uint64_t i) { return uint8_t(i * 31 + dir * 7 + (i >> 11)); };
  Stack* st[2] = {p.a.get(), p.b.get()};
  int h[2] = {c.client, c.server};
  ASSERT_TRUE(p.run_until([&] {
    for (int d = 0; d < 2; ++d) {
      if (sent[d] < total) {
        size_t n = size_t(std::min<uint64_t>(out.size(), total - sent[d]));
        for (size_t i = 0; i < n; ++i) out[i] = val(d, sent[d] + i);
        int64_t w = st[d]->write(h[d], {out.data(), n});
        if (w > 0) sent[d] += uint64_t(w);
      }
      int64_t r = st[1 - d]->read(h[1 - d], in);
      for (int64_t i = 0; i < r; ++i)
        if (in[size_t(i)] != val(d, got[d] + uint64_t(i))) bad = true;
      if (r > 0) got[d] += uint64_t(r);
    }
    return bad || (got[0] == total && got[1] == total);
  }));
  EXPECT_FALSE(bad);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
}

TEST_F(StackTest, ManyConnectionsAtOnce) {  // demultiplexing, one timer per connection
  StackPair p(lossy(0.02, 33));
  constexpr int kConns = 24;
  constexpr uint64_t kBytes = 200'000;
  int l = p.b->socket();
  ASSERT_EQ(p.b->bind(l, 80), 0);
  ASSERT_EQ(p.b->listen(l, kConns), 0);
  std::vector<int> cli(kConns), srv;
  for (int i = 0; i < kConns; ++i) {
    cli[i] = p.a->socket();
    ASSERT_EQ(p.a->connect(cli[i], kIpB, 80, p.now), -EINPROGRESS);
  }
  std::vector<uint64_t> sent(kConns), got(kConns);
  std::vector<uint8_t> buf(16384);
  auto val = [](int conn, uint64_t i) { return uint8_t(i * 13 + conn * 101 + (i >> 9)); };
  bool bad = false;
  // Each server socket learns which client it serves from the first byte's pattern:
  // client i sends its index first.
  std::vector<int> owner;
  ASSERT_TRUE(p.run_until([&] {
    int h;
    while ((h = p.b->accept(l)) >= 0) {
      srv.push_back(h);
      owner.push_back(-1);
    }
    for (int i = 0; i < kConns; ++i) {
      if (!(p.a->events(cli[i]) & kEventOut) || sent[i] >= kBytes) continue;
      size_t n = size_t(std::min<uint64_t>(buf.size(), kBytes - sent[i]));
      std::vector<uint8_t> chunk(n);
      for (size_t k = 0; k < n; ++k) chunk[k] = sent[i] + k == 0 ? uint8_t(i) : val(i, sent[i] + k);
      int64_t w = p.a->write(cli[i], chunk);
      if (w > 0) sent[i] += uint64_t(w);
    }
    for (size_t j = 0; j < srv.size(); ++j) {
      int64_t r;
      while ((r = p.b->read(srv[j], buf)) > 0) {
        size_t k0 = 0;
        if (owner[j] < 0) {
          owner[j] = buf[0];
          k0 = 1;
          got[owner[j]] = 1;
        }
        const int o = owner[j];
        for (size_t k = k0; k < size_t(r); ++k)
          if (buf[k] != val(o, got[o] + k - k0)) bad = true;
        got[o] += uint64_t(r) - k0;
      }
    }
    if (bad) return true;
    for (int i = 0; i < kConns; ++i)
      if (got[i] != kBytes) return false;
    return true;
  }));
  EXPECT_FALSE(bad);
  EXPECT_EQ(p.a->connection_count(), size_t(kConns));
  for (int h : cli) p.a->close(h);
  for (int h : srv) p.b->close(h);
  p.b->close(l);
}

TEST_F(StackTest, SlowReaderZeroWindow) {  // RFC 9293 §3.8.6.1 zero window, §3.8.6.2.2 updates
  TcpConfig tcp;
  tcp.rcvbuf = 4096;
  StackPair p(lossy(0.01, 32), tcp);
  Connected c = connect_pair(p);
  const uint64_t total = 300'000;
  std::vector<uint8_t> out(total), in(700);
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(i * 7 + (i >> 8));
  uint64_t sent = 0, got = 0;
  bool bad = false;
  Instant next_read = p.now;
  ASSERT_TRUE(p.run_until([&] {
    if (sent < total) {
      int64_t w = p.a->write(c.client, std::span(out).subspan(sent));
      if (w > 0) sent += uint64_t(w);
    }
    if (p.now >= next_read) {  // the reader takes 700 bytes every 5 ms
      int64_t r = p.b->read(c.server, in);
      for (int64_t i = 0; i < r; ++i)
        if (in[size_t(i)] != out[got + uint64_t(i)]) bad = true;
      if (r > 0) got += uint64_t(r);
      next_read = p.now + Duration(5'000);
    }
    return bad || got == total;
  }));
  EXPECT_FALSE(bad);
  // The sender met a zero window on the way (the reader is far slower than the link)
  // and probed it.
  EXPECT_GT(p.a->connection(c.client)->stats().zero_windows, 0u);
  EXPECT_GT(p.a->connection(c.client)->stats().window_probes, 0u);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
}

// ---------------------------------------------------------------- moving a connection

// Paper §3.4, state that can move: mid-transfer at 1% loss, one side's connection is
// exported, its stack destroyed, and a fresh stack on the same link imports it. Moving
// the sender carries unacknowledged data; moving the receiver carries unread data.
class MoveTest : public LeakChecked, public ::testing::WithParamInterface<bool> {};

TEST_P(MoveTest, ExportImportMidTransfer) {
  const bool move_receiver = GetParam();
  StackPair p(lossy(0.01, 41));
  Connected c = connect_pair(p);
  const uint64_t total = 4 << 20;
  std::vector<uint8_t> chunk(65536), in(65536);
  uint64_t sent = 0, got = 0;
  bool bad = false, moved = false;
  auto val = [](uint64_t i) { return uint8_t((i * 2654435761u) >> 9); };
  int client = c.client, server = c.server;
  size_t carried = 0;
  ASSERT_TRUE(p.run_until([&] {
    Stack* from = move_receiver ? p.b.get() : p.a.get();
    int& h = move_receiver ? server : client;
    Connection* conn = from->connection(h);
    const size_t owed = move_receiver ? conn->recv_queued() : conn->send_queued();
    if (!moved && got > total / 3 && owed > 0) {
      std::vector<uint8_t> bytes;
      EXPECT_EQ(from->export_connection(h, p.now, &bytes), 0);
      carried = owed;
      if (move_receiver) {
        p.b.reset();  // the listener goes with it
        p.b = StackPair::make_stack(p.link.b(), kIpB, kMacB, TcpConfig{}, 98);
        h = p.b->import_connection(bytes, p.now);
      } else {
        p.a.reset();
        p.a = StackPair::make_stack(p.link.a(), kIpA, kMacA, TcpConfig{}, 99);
        h = p.a->import_connection(bytes, p.now);
      }
      EXPECT_GE(h, 0);
      moved = true;
    }
    while (sent < total) {
      size_t n = size_t(std::min<uint64_t>(chunk.size(), total - sent));
      for (size_t i = 0; i < n; ++i) chunk[i] = val(sent + i);
      int64_t w = p.a->write(client, {chunk.data(), n});
      if (w <= 0) break;
      sent += uint64_t(w);
    }
    int64_t r;
    // The receiver reads only every other step, so data waits in its buffer to be moved.
    while (((p.now.time_since_epoch().count() / 1000) % 2 == 0 || moved) &&
           (r = p.b->read(server, in)) > 0) {
      for (int64_t i = 0; i < r; ++i)
        if (in[size_t(i)] != val(got + uint64_t(i))) bad = true;
      got += uint64_t(r);
    }
    return bad || got == total;
  }));
  EXPECT_TRUE(moved);
  EXPECT_GT(carried, 0u);
  EXPECT_FALSE(bad);
  EXPECT_EQ(got, total);
  p.a->close(client);
  p.b->close(server);
  if (!move_receiver) p.b->close(c.listener);
}

INSTANTIATE_TEST_SUITE_P(Side, MoveTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "receiver" : "sender"; });

TEST_F(StackTest, ExportedStateRoundTripsAndValidates) {
  StackPair p(lossy(0, 42));
  Connected c = connect_pair(p);
  std::vector<uint8_t> d(5000, 3);
  p.a->write(c.client, d);
  p.a->poll(p.now);  // in flight, unacknowledged
  ConnectionState st = p.a->connection(c.client)->export_state(p.now);
  EXPECT_EQ(st.validate(), nullptr);
  EXPECT_EQ(st.send_data.size(), 5000u);
  auto bytes = st.serialize();
  const char* err = nullptr;
  auto back = ConnectionState::parse(bytes, &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->serialize(), bytes);
  // Framing: every truncation is refused, as is any trailing byte.
  for (size_t n = 0; n < bytes.size(); n += 7)
    EXPECT_FALSE(ConnectionState::parse(std::span(bytes).first(n), &err)) << n;
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(ConnectionState::parse(longer, &err));
  auto badver = bytes;
  badver[4] = 9;
  EXPECT_FALSE(ConnectionState::parse(badver, &err));
  // Semantics: inconsistent values are refused on import.
  auto expect_refused = [&](auto mutate, const char* what) {
    ConnectionState s = st;
    mutate(s);
    EXPECT_NE(s.validate(), nullptr) << what;
    EXPECT_LT(p.b->import_connection(s.serialize(), p.now), 0) << what;
  };
  expect_refused([](ConnectionState& s) { s.snd_nxt = s.snd_una - 1; }, "SND.NXT < SND.UNA");
  expect_refused([](ConnectionState& s) { s.snd_max = s.snd_una + 6000; }, "in flight > queued");
  expect_refused([](ConnectionState& s) { s.state = TcpState::kSynSent; }, "unsynchronized");
  expect_refused([](ConnectionState& s) { s.fin_queued = true; }, "FIN without state");
  expect_refused([](ConnectionState& s) { s.snd_mss = 0; }, "MSS 0");
  expect_refused([](ConnectionState& s) { s.sndbuf = 100; }, "data > buffer");
  expect_refused([](ConnectionState& s) { s.rcv_adv = s.rcv_nxt + s.rcvbuf + 1; }, "window > buffer");
  expect_refused([](ConnectionState& s) { s.rto_us = 0; }, "RTO 0");
  expect_refused([](ConnectionState& s) { s.snd_wnd_shift = 15; }, "shift 15");
  // Import into a stack with another address is refused; into its own stack: in use.
  EXPECT_EQ(p.b->import_connection(bytes, p.now), -EINVAL);
  EXPECT_EQ(p.a->import_connection(bytes, p.now), -EADDRINUSE);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
}

}  // namespace
}  // namespace utcp::test
