// parts_test.cc - the engine's parts (SipHash/ISN, ring buffer, reassembly bookkeeping,
// NewReno) and a connection fed hostile random segments.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "tcp/assembler.h"
#include "tcp/congestion.h"
#include "tcp/connection.h"
#include "tcp/copy.h"
#include "tcp/isn.h"
#include "tcp/ring_buffer.h"
#include "tcp/state_export.h"
#include "tcp_test_util.h"

namespace utcp::test {
namespace {

using namespace tcp_flags;

class PartsTest : public LeakChecked {};

TEST_F(PartsTest, SipHashReferenceVector) {
  // From the SipHash paper, appendix A: key 00..0f, message 00..0e.
  std::array<uint8_t, 16> key;
  for (int i = 0; i < 16; ++i) key[i] = uint8_t(i);
  std::vector<uint8_t> msg(15);
  for (int i = 0; i < 15; ++i) msg[i] = uint8_t(i);
  EXPECT_EQ(siphash24(key, msg), 0xa129ca6149be45e5ULL);
  // Empty message (reference implementation's vectors.h, first entry).
  EXPECT_EQ(siphash24(key, {}), 0x726fdb47dd0e0e31ULL);
}

TEST_F(PartsTest, IsnPerRfc6528) {  // RFC 6528 §3
  std::array<uint8_t, 16> key{1, 2, 3};
  IsnGenerator g(key);
  const Ipv4Addr a = Ipv4Addr::of(10, 0, 0, 1), b = Ipv4Addr::of(10, 0, 0, 2);
  const Instant t0(Duration(1'000'000));
  // The clock part M ticks every 4 us.
  EXPECT_EQ(g.isn(t0 + Duration(400), a, 1, b, 2) - g.isn(t0, a, 1, b, 2), 100);
  // F separates 4-tuples: ports, addresses and direction all matter.
  std::set<uint32_t> seen;
  for (uint16_t p = 1; p < 200; ++p) seen.insert(g.isn(t0, a, p, b, 80).raw());
  seen.insert(g.isn(t0, b, 1, a, 80).raw());
  EXPECT_EQ(seen.size(), 200u);
  // Another secret gives unrelated numbers.
  IsnGenerator h(std::array<uint8_t, 16>{9});
  EXPECT_NE(g.isn(t0, a, 1, b, 2), h.isn(t0, a, 1, b, 2));
  EXPECT_NE(IsnGenerator::random_key(), IsnGenerator::random_key());
}

TEST_F(PartsTest, RingBufferWrapsAndStoresAhead) {
  RingBuffer r(10);
  auto d = pattern(7);
  EXPECT_EQ(r.write(d), 7u);
  std::vector<uint8_t> out(5);
  EXPECT_EQ(r.read(out), 5u);
  EXPECT_EQ(r.write(pattern(8, 1)), 8u);  // wraps; 10 total
  EXPECT_EQ(r.free(), 0u);
  auto [p1, p2] = r.peek_spans(1, 9);
  EXPECT_EQ(p1.size() + p2.size(), 9u);
  EXPECT_FALSE(p2.empty());  // split by the wrap
  std::vector<uint8_t> all(10);
  EXPECT_EQ(r.read(all), 10u);
  EXPECT_EQ(all[0], d[5]);
  EXPECT_EQ(all[2], pattern(8, 1)[0]);
  // Out-of-order storage survives the readable part being drained.
  EXPECT_EQ(r.write(pattern(3)), 3u);
  EXPECT_EQ(r.write_at(2, pattern(4, 5)), 4u);  // bytes 5..8
  EXPECT_EQ(r.read(std::span(all).first(3)), 3u);
  EXPECT_EQ(r.write(pattern(2, 9)), 2u);  // fills the gap 3..4
  r.commit(4);
  std::vector<uint8_t> got(6);
  EXPECT_EQ(r.read(got), 6u);
  EXPECT_EQ(got[2], pattern(4, 5)[0]);
  EXPECT_EQ(got[5], pattern(4, 5)[3]);
  EXPECT_EQ(r.write_at(10, pattern(1)), 0u);  // beyond capacity
}

TEST_F(PartsTest, CopyBytesInPiecesCopiesExactlyTheRange) {
  // Sizes around the piece boundary, at unaligned offsets: every byte in the range
  // arrives, none outside it is touched.
  const size_t sizes[] = {0, 1, kCopyPiece - 1, kCopyPiece, kCopyPiece + 1, 3 * kCopyPiece + 7, 64 * 1024};
  for (size_t n : sizes) {
    for (size_t off : {size_t(0), size_t(3)}) {
      auto src = pattern(n + off, uint8_t(n));
      std::vector<uint8_t> dst(n + off + 16, 0xee);
      copy_bytes(dst.data() + off, src.data() + off, n);
      for (size_t i = 0; i < dst.size(); ++i) {
        const uint8_t want = i >= off && i < off + n ? src[i] : 0xee;
        ASSERT_EQ(dst[i], want) << "size " << n << " offset " << off << " byte " << i;
      }
    }
  }
}

TEST_F(PartsTest, RingBufferLargeWritesAndReadsMatchAModel) {
  // Writes and reads of many pieces each (as 64 KiB application writes and 256 KiB
  // reads are), wrapping a ring whose size is not a multiple of the piece: the bytes
  // come out as a FIFO holds them.
  RingBuffer r(5 * kCopyPiece + 123);
  std::mt19937 rng(7);
  std::vector<uint8_t> model;
  size_t model_head = 0;
  uint8_t next = 0;
  for (int step = 0; step < 400; ++step) {
    if (rng() % 2) {
      std::vector<uint8_t> in(rng() % (3 * kCopyPiece + 50));
      for (auto& b : in) b = next++;
      const size_t room = r.free();
      const size_t n = r.write(in);
      ASSERT_EQ(n, std::min(in.size(), room));
      model.insert(model.end(), in.begin(), in.begin() + long(n));
      next = uint8_t(next - (in.size() - n));  // the bytes not taken are offered again
    } else {
      std::vector<uint8_t> out(rng() % (4 * kCopyPiece + 50));
      const size_t n = r.read(out);
      ASSERT_EQ(n, std::min(out.size(), model.size() - model_head));
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], model[model_head + i]) << "step " << step << " byte " << i;
      model_head += n;
    }
    ASSERT_EQ(r.size(), model.size() - model_head);
  }
}

TEST_F(PartsTest, AssemblerMergesAndBounds) {
  Assembler a;
  EXPECT_TRUE(a.add(10, 5));
  EXPECT_TRUE(a.add(20, 5));
  EXPECT_TRUE(a.add(14, 7));  // bridges both
  EXPECT_EQ(a.ranges(), 1u);
  EXPECT_EQ(a.range(0).start, 10u);
  EXPECT_EQ(a.range(0).end, 25u);
  EXPECT_EQ(a.pop_front(), 0u);
  EXPECT_TRUE(a.add(0, 10));
  EXPECT_EQ(a.pop_front(), 25u);
  EXPECT_TRUE(a.empty());
  for (uint32_t i = 0; i < Assembler::kMaxRanges; ++i) EXPECT_TRUE(a.add(2 + 4 * i, 1));
  EXPECT_FALSE(a.add(1000, 1));     // one hole too many: refused
  EXPECT_TRUE(a.add(2, 1));         // already known: fine
  EXPECT_TRUE(a.add(3, 2));         // merges with neighbours: fine
  a.shift(10);
  EXPECT_EQ(a.range(0).start, 0u);  // what was [10, 11) is now at the front
}

AckSample ack_of(uint32_t acked, uint32_t flight) {
  AckSample a;
  a.acked = acked;
  a.flight = flight;
  return a;
}

TEST_F(PartsTest, NewRenoWindows) {  // RFC 5681 §3.1, RFC 6582 §3.2
  NewReno cc(1000);
  EXPECT_EQ(cc.cwnd(), 4000u);  // min(4*SMSS, max(2*SMSS, 4380))
  cc.on_ack(ack_of(1000, 4000));
  EXPECT_EQ(cc.cwnd(), 5000u);  // slow start
  cc.on_ack(ack_of(1000, 100));
  EXPECT_EQ(cc.cwnd(), 5000u);  // application-limited: no growth (RFC 7661)
  cc.on_loss(Instant{}, LossEvent::kFastRetransmit, 5000);
  EXPECT_EQ(cc.ssthresh(), 2500u);
  EXPECT_EQ(cc.cwnd(), 5500u);
  cc.on_dupack_in_recovery();
  EXPECT_EQ(cc.cwnd(), 6500u);
  cc.on_partial_ack(2000);
  EXPECT_EQ(cc.cwnd(), 5500u);
  cc.on_recovery_exit(1000);
  EXPECT_EQ(cc.cwnd(), 2000u);  // min(ssthresh, max(flight, SMSS) + SMSS)
  // Congestion avoidance: one SMSS per cwnd of data acknowledged.
  cc.restore(3000, 2000);
  cc.on_ack(ack_of(1000, 3000));
  cc.on_ack(ack_of(1000, 3000));
  EXPECT_EQ(cc.cwnd(), 3000u);
  cc.on_ack(ack_of(1000, 3000));
  EXPECT_EQ(cc.cwnd(), 4000u);
  cc.on_loss(Instant{}, LossEvent::kTimeout, 4000);
  EXPECT_EQ(cc.cwnd(), 1000u);  // loss window
  EXPECT_EQ(cc.ssthresh(), 2000u);
}

// Hostile input: random segments (flags, sequence and ACK numbers near and far from the
// windows, payloads, MSS options) against connections in every state. Nothing may
// crash, the send variables keep their order, the buffers their bounds.
TEST_F(PartsTest, RandomSegmentsKeepInvariants) {
  std::mt19937_64 rng(7);
  Capture out;
  TcpConfig cfg;
  cfg.rcvbuf = 8192;
  cfg.sndbuf = 8192;
  const FourTuple t{Ipv4Addr::of(10, 0, 0, 1), 80, Ipv4Addr::of(10, 0, 0, 2), 4000};
  auto data = pattern(3000);
  int states_seen[11] = {};
  for (int round = 0; round < 300; ++round) {
    Connection c(cfg, t, 1460);
    Instant now(Duration(1'000'000));
    const SeqNum iss{uint32_t(rng())}, irs{uint32_t(rng())};
    if (rng() % 2) {
      c.open_active(now, iss);
    } else {
      c.open_passive(iss);
    }
    c.dispatch(now, out);
    for (int i = 0; i < 400; ++i) {
      TcpRepr s;
      s.src_port = 4000;
      s.dst_port = 80;
      // Mostly plausible numbers (to get deep into the state machine), some wild ones.
      const uint32_t r = uint32_t(rng());
      s.seq = (r % 4 == 0) ? SeqNum(uint32_t(rng())) : c.rcv_nxt() + uint32_t(int32_t(rng() % 4000) - 1000);
      if (c.state() == TcpState::kListen || c.state() == TcpState::kSynSent) s.seq = irs;
      s.ack = (r % 8 == 1) ? SeqNum(uint32_t(rng())) : c.snd_una() + uint32_t(rng() % 3000);
      s.flags = uint8_t(rng());
      if (rng() % 3) s.flags &= uint8_t(~(kSyn | kRst));  // keep most connections alive
      s.flags |= (rng() % 4) ? kAck : 0;
      s.window = uint16_t(rng() % 3 == 0 ? 0 : rng());
      if (s.has(kSyn) && rng() % 2) s.options.mss = uint16_t(rng());
      const size_t len = rng() % 4 == 0 ? 0 : size_t(rng() % data.size());
      s.payload = std::span(data).first(len);
      // Half the time in the handshake states, the segment that completes it.
      if (rng() % 2) {
        if (c.state() == TcpState::kListen) s = TcpRepr{4000, 80, irs, {}, kSyn, 8192};
        if (c.state() == TcpState::kSynSent) s = TcpRepr{4000, 80, irs, iss + 1, kSyn | kAck, 8192};
        if (c.state() == TcpState::kSynReceived) s = TcpRepr{4000, 80, irs + 1, iss + 1, kAck, 8192};
      }
      c.process(now, s, out);
      if (rng() % 3 == 0) {
        std::vector<uint8_t> b(rng() % 5000);
        c.recv(b);
      }
      if (rng() % 3 == 0) c.send(std::span(data).first(rng() % 3000));
      if (rng() % 50 == 0) c.shutdown_write();
      now += Duration(int64_t(rng() % 300'000));
      c.dispatch(now, out);
      out.segs.clear();
      ASSERT_LE(c.snd_una(), c.snd_nxt());
      ASSERT_LE(c.snd_nxt(), c.snd_max());
      ASSERT_LE(c.recv_queued(), size_t(cfg.rcvbuf));
      ASSERT_LE(c.send_queued(), size_t(cfg.sndbuf));
      ASSERT_GE(c.snd_mss(), 64);
      states_seen[int(c.state())]++;
      if (c.state() == TcpState::kClosed) break;
    }
  }
  // The walk reached the states that matter for data and closing.
  EXPECT_GT(states_seen[int(TcpState::kEstablished)], 0);
  EXPECT_GT(states_seen[int(TcpState::kSynReceived)], 0);
  EXPECT_GT(states_seen[int(TcpState::kCloseWait)], 0);
}

// Hostile state bytes: random corruptions of a valid export must parse-and-refuse or
// import into a connection whose invariants hold; never crash or over-read.
TEST_F(PartsTest, CorruptedStateNeverImportsInconsistently) {
  ConnectionState st;
  st.tuple = {Ipv4Addr::of(10, 0, 0, 1), 80, Ipv4Addr::of(10, 0, 0, 2), 4000};
  st.state = TcpState::kEstablished;
  st.iss = 1000;
  st.snd_una = 1101;
  st.snd_nxt = st.snd_max = 1201;
  st.snd_wnd = st.max_snd_wnd = 60000;
  st.snd_wl1 = 5001;
  st.snd_wl2 = 1101;
  st.irs = 5000;
  st.rcv_nxt = 5301;
  st.rcv_adv = 5301 + 60000;
  st.snd_mss = st.rcv_mss = 1460;
  st.rto_us = 200'000;
  st.cwnd = 14600;
  st.ssthresh = 65535;
  st.congestion = "newreno";
  st.rcvbuf = st.sndbuf = 65536;
  st.send_data = pattern(100);
  st.recv_data = pattern(200);
  ASSERT_EQ(st.validate(), nullptr);
  const auto good = st.serialize();
  const char* err = nullptr;
  {
    auto c = Connection::import_state(TcpConfig{}, st, Instant{}, &err);
    ASSERT_TRUE(c) << err;
    EXPECT_EQ(c->send_queued(), 100u);
    EXPECT_EQ(c->recv_queued(), 200u);
  }
  std::mt19937_64 rng(3);
  int imported = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    auto b = good;
    const int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= uint8_t(1u << (rng() % 8));
    if (rng() % 8 == 0) b.resize(rng() % b.size());
    auto parsed = ConnectionState::parse(b, &err);
    if (!parsed) {
      ++refused;
      continue;
    }
    auto c = Connection::import_state(TcpConfig{}, *parsed, Instant{}, &err);
    if (!c) {
      ++refused;
      continue;
    }
    ++imported;
    ASSERT_LE(c->snd_una(), c->snd_nxt());
    ASSERT_LE(c->snd_nxt(), c->snd_max());
    ASSERT_LE(c->send_queued(), size_t(parsed->sndbuf));
    ASSERT_LE(c->recv_queued(), size_t(parsed->rcvbuf));
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(imported, 0);  // harmless flips (e.g. in the data bytes) still import
  // Any change to the framing (magic, version, reserved, length) is refused.
  for (size_t byte = 0; byte < 12; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto b = good;
      b[byte] ^= uint8_t(1u << bit);
      EXPECT_FALSE(ConnectionState::parse(b, &err)) << byte << ":" << bit;
    }
  }
}

}  // namespace
}  // namespace utcp::test
