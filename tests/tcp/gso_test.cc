// gso_test.cc - TSO sends: the stack puts several full-sized segments of a connection in
// one frame when the device cuts frames itself (SoftGso in front of the in-memory link,
// as the kernel module's GSO path does), and every byte still arrives, with loss,
// reordering and duplication, with SACK + RACK and with NewReno alone.
#include <gtest/gtest.h>

#include "device/gso.h"
#include "stack_harness.h"
#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace utcp::test {
namespace {

// A StackPair whose stacks send through a SoftGso on each end of the link.
struct GsoPair {
  GsoPair(const LinkConfig& a_to_b, const LinkConfig& b_to_a, const TcpConfig& tcp)
      : p(a_to_b, b_to_a) {
    ga = std::make_unique<SoftGso>(p.link.a());
    gb = std::make_unique<SoftGso>(p.link.b());
    p.a = StackPair::make_stack(*ga, kIpA, kMacA, tcp, 1);
    p.b = StackPair::make_stack(*gb, kIpB, kMacB, tcp, 2);
  }
  GsoPair(const LinkConfig& lc, const TcpConfig& tcp = TcpConfig{}) : GsoPair(lc, lc, tcp) {}
  ~GsoPair() {
    p.a.reset();
    p.b.reset();
  }
  StackPair p;
  std::unique_ptr<SoftGso> ga, gb;
};

// Unlimited bandwidth, 2 ms each way, a TX ring for 64 KiB frames' worth of segments.
LinkConfig link_with(double loss, uint64_t seed) {
  LinkConfig c = lossy_link(loss, seed);
  c.delay = Duration(2000);
  c.bandwidth_bps = 0;
  c.queue_limit = 0;  // unlimited
  c.tx_ring = 1024;
  return c;
}

// Software GRO on the receive side: consecutive in-order data segments of one flow in
// a receive batch are merged into one frame (up to 64 KiB), as the kernel's GRO merges
// them before the module copies them into the ring (UTCP_RXF_GRO). A merged frame's TCP
// checksum is left *wrong* and the frame flagged as verified (UTCP_RXF_CSUM_OK), so the
// transfer only succeeds if the stack takes the flag instead of checking; frames that
// pass unmerged keep their own checksum and are not vouched for.
class GroDevice final : public Device {
 public:
  explicit GroDevice(Device& inner) : inner_(inner) {}
  DeviceCaps caps() const override {
    DeviceCaps c = inner_.caps();
    c.max_rx_frame = 14 + 65535;
    return c;
  }
  bool rx_frame_checksum_ok() const override { return ok_; }
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn, size_t max) override {
    batch_.clear();
    const size_t n = inner_.receive(now, [&](std::span<const uint8_t> f) { batch_.emplace_back(f.begin(), f.end()); }, max);
    size_t i = 0;
    while (i < batch_.size()) {
      size_t j = i + 1;
      merged_ = batch_[i];
      while (j < batch_.size() && merge(batch_[j])) ++j;
      ok_ = j > i + 1;
      if (ok_) {
        ++merged_frames;
        largest = std::max(largest, merged_.size());
        merged_[14 + 20 + 16] ^= 0xff;  // wrong on purpose: the flag must be trusted
      }
      fn(merged_);
      ok_ = false;
      i = j;
    }
    return n;
  }
  std::span<uint8_t> tx_buffer(size_t len) override { return inner_.tx_buffer(len); }
  void tx_commit(size_t len) override { inner_.tx_commit(len); }
  void flush(Instant now) override { inner_.flush(now); }
  Instant poll_at() const override { return inner_.poll_at(); }

  uint64_t merged_frames = 0;
  size_t largest = 0;

 private:
  // Appends `f` to merged_ when it continues it: both plain IPv4 TCP with 20-byte IP
  // headers, the same header but for seq/checksum/PSH, seq right after, data in both.
  bool merge(const std::vector<uint8_t>& f) {
    auto& m = merged_;
    auto tcp_ok = [](const std::vector<uint8_t>& x) {
      return x.size() > 54 && x[12] == 0x08 && x[13] == 0 && x[14] == 0x45 && x[23] == 6;
    };
    if (!tcp_ok(m) || !tcp_ok(f)) return false;
    const size_t thl = size_t(m[14 + 20 + 12] >> 4) * 4, hdrs = 34 + thl;
    if (size_t(f[14 + 20 + 12] >> 4) * 4 != thl || f.size() <= hdrs || m.size() <= hdrs) return false;
    if ((m[14 + 20 + 13] & ~tcp_flags::kPsh) != tcp_flags::kAck || (m[14 + 20 + 13] & tcp_flags::kPsh) ||
        (f[14 + 20 + 13] & ~tcp_flags::kPsh) != tcp_flags::kAck)
      return false;
    if (m.size() + f.size() - hdrs > 14 + 65535) return false;
    if (!std::equal(m.begin(), m.begin() + 14, f.begin()) ||
        !std::equal(m.begin() + 26, m.begin() + 38, f.begin() + 26) ||  // addresses, ports
        !std::equal(m.begin() + 42, m.begin() + 50, f.begin() + 42) ||  // ack, offset, flags, window
        !std::equal(m.begin() + 52, m.begin() + long(hdrs), f.begin() + 52))
      return false;
    const uint32_t mseq = wire::load_be32(&m[38]), fseq = wire::load_be32(&f[38]);
    if (fseq != mseq + uint32_t(m.size() - hdrs)) return false;
    m.insert(m.end(), f.begin() + long(hdrs), f.end());
    m[14 + 20 + 13] = f[14 + 20 + 13];
    wire::store_be16(&m[16], uint16_t(m.size() - 14));
    wire::store_be16(&m[24], 0);
    wire::store_be16(&m[24], checksum_fold(checksum_add({&m[14], 20})));
    return true;
  }

  Device& inner_;
  std::vector<std::vector<uint8_t>> batch_;
  std::vector<uint8_t> merged_;
  bool ok_ = false;
};

class GsoTest : public LeakChecked {};

TEST_F(GsoTest, SoftGsoCutsLikeLinuxGso) {
  // One frame of three segments' payload (and a bit): cut at MTU - 20 - 32 with
  // timestamps, seq advanced, PSH+FIN only on the last, ident counting up, every
  // checksum valid.
  LinkConfig lc;
  LinkPair link(lc);
  SoftGso gso(link.a());
  ASSERT_TRUE(gso.caps().gso());
  TcpRepr r;
  r.src_port = 1000;
  r.dst_port = 80;
  r.seq = SeqNum(4'294'967'000u);  // wraps inside the frame
  r.ack = SeqNum(77);
  r.flags = tcp_flags::kAck | tcp_flags::kPsh | tcp_flags::kFin;
  r.window = 500;
  r.options.timestamps = TcpTimestamps{1, 2};
  std::vector<uint8_t> data(3 * 1448 + 100);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * 7 + 3);
  r.payload = data;
  const size_t thl = tcp_header_len(r);
  ASSERT_EQ(thl, 32u);
  auto buf = gso.tx_buffer(14 + 20 + thl + data.size());
  ASSERT_FALSE(buf.empty());
  const size_t n = emit_tcp(r, kIpA, kIpB, buf.subspan(34), false);
  Ipv4Repr ip;
  ip.src = kIpA;
  ip.dst = kIpB;
  ip.protocol = uint8_t(IpProto::kTcp);
  ip.ident = 65534;
  ip.payload_len = uint16_t(n);
  emit_ipv4(ip, buf.subspan(14, 20));
  emit_ethernet(EthernetRepr{kMacB, kMacA, uint16_t(EtherType::kIpv4)}, buf);
  gso.tx_commit(14 + 20 + n);
  gso.flush(kInstantZero);
  EXPECT_EQ(gso.stats().gso_frames, 1u);
  EXPECT_EQ(gso.stats().segments, 4u);
  std::vector<std::vector<uint8_t>> got;
  link.b().receive(Instant(Duration(1'000'000)), [&](std::span<const uint8_t> f) { got.emplace_back(f.begin(), f.end()); });
  ASSERT_EQ(got.size(), 4u);
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < got.size(); ++i) {
    ParseError err;
    auto f = parse_frame(got[i], true, &err);  // checksums verified
    ASSERT_TRUE(f && f->tcp) << "segment " << i;
    EXPECT_LE(got[i].size(), 1514u);
    EXPECT_EQ(f->ip.ident, uint16_t(65534 + i));
    EXPECT_EQ(f->tcp->seq, r.seq + uint32_t(i * 1448));
    EXPECT_EQ(f->tcp->ack, r.ack);
    EXPECT_EQ(f->tcp->options.timestamps->tsval, 1u);
    const bool last = i + 1 == got.size();
    EXPECT_EQ(f->tcp->flags, last ? r.flags : tcp_flags::kAck);
    EXPECT_EQ(f->tcp->payload.size(), last ? 100u : 1448u);
    joined.insert(joined.end(), f->tcp->payload.begin(), f->tcp->payload.end());
  }
  EXPECT_EQ(joined, data);
}

TEST_F(GsoTest, CleanTransferUsesLargeFrames) {
  GsoPair g(link_with(0, 1));
  Connected c = connect_pair(g.p);
  auto r = transfer(g.p, *g.p.a, c.client, *g.p.b, c.server, 16 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  // Most data left in multi-segment frames, which the link never saw: it got
  // MTU-sized segments only, every one with a valid checksum.
  EXPECT_GT(g.p.a->stats().gso_frames, 100u);
  EXPECT_GT(g.p.a->stats().gso_segments, 5 * g.p.a->stats().gso_frames / 2);
  EXPECT_EQ(g.ga->stats().gso_frames, g.p.a->stats().gso_frames);
  EXPECT_EQ(g.p.link.stats_a_to_b().dropped_oversize, 0u);
  EXPECT_EQ(g.p.b->stats().parse_errors, 0u);
  EXPECT_EQ(g.p.a->stats().parse_errors, 0u);
  g.p.a->close(c.client);
  g.p.b->close(c.server);
  g.p.b->close(c.listener);
}

TEST_F(GsoTest, BothDirectionsAtOnce) {
  GsoPair g(link_with(0.01, 5));
  Connected c = connect_pair(g.p);
  // B -> A first (the accepted side sends), then A -> B on the same connection would
  // need a half-open one; use a second connection instead.
  auto r1 = transfer(g.p, *g.p.b, c.server, *g.p.a, c.client, 4 << 20);
  EXPECT_TRUE(r1.ok) << r1.bytes;
  EXPECT_GT(g.p.b->stats().gso_frames, 0u);
  g.p.a->close(c.client);
  g.p.b->close(c.server);
  g.p.b->close(c.listener);
}

struct LossCase {
  const char* name;
  double loss;
  uint64_t seed;
  bool sack, timestamps;
  const char* congestion;
};

class GsoLossTest : public LeakChecked, public ::testing::WithParamInterface<LossCase> {};

TEST_P(GsoLossTest, EveryByteArrives) {
  const LossCase& k = GetParam();
  TcpConfig tcp;
  tcp.sack = k.sack;
  tcp.timestamps = k.timestamps;
  tcp.congestion = k.congestion;
  GsoPair g(link_with(k.loss, k.seed), tcp);
  Connected c = connect_pair(g.p);
  auto r = transfer(g.p, *g.p.a, c.client, *g.p.b, c.server, 8 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  EXPECT_GT(g.p.a->stats().gso_frames, 10u);
  EXPECT_GT(g.p.a->connection(c.client)->stats().retransmits, 0u);
  EXPECT_EQ(g.p.link.stats_a_to_b().dropped_oversize, 0u);
  g.p.a->close(c.client);
  g.p.b->close(c.server);
  g.p.b->close(c.listener);
}

INSTANTIATE_TEST_SUITE_P(
    Loss, GsoLossTest,
    ::testing::Values(LossCase{"sack_rack_cubic_1pct", 0.01, 11, true, true, "cubic"},
                      LossCase{"sack_rack_cubic_5pct", 0.05, 12, true, true, "cubic"},
                      LossCase{"newreno_nosack_2pct", 0.02, 13, false, true, "newreno"},
                      LossCase{"nots_sack_3pct", 0.03, 14, true, false, "cubic"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(GsoTest, SmallerPeerMssKeepsFramesSmall) {
  // B's link has a smaller MTU, so B announces MSS 960: A's segments are shorter than
  // what the device would cut at, and A must not hand it multi-segment frames (the
  // device would cut them at A's MTU, beyond the peer's MSS).
  LinkConfig ab = link_with(0, 21), ba = link_with(0, 22);
  ba.mtu = 1000;
  GsoPair g(ab, ba, TcpConfig{});
  Connected c = connect_pair(g.p);
  auto r = transfer(g.p, *g.p.a, c.client, *g.p.b, c.server, 2 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  EXPECT_EQ(g.p.a->stats().gso_frames, 0u);
  EXPECT_EQ(g.ga->stats().gso_frames, 0u);
  g.p.a->close(c.client);
  g.p.b->close(c.server);
  g.p.b->close(c.listener);
}

TEST_F(GsoTest, GroFramesAndVouchedChecksumsAccepted) {
  // B receives through software GRO: frames longer than its MTU, whose checksums it
  // must not check (they are wrong, and flagged as verified by the device).
  LinkConfig lc = link_with(0, 31);
  lc.tx_ring = 1024;
  StackPair p(lc);
  GroDevice gro(p.link.b());
  p.b = StackPair::make_stack(gro, kIpB, kMacB, TcpConfig{}, 2);
  Connected c = connect_pair(p);
  auto r = transfer(p, *p.a, c.client, *p.b, c.server, 8 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  EXPECT_GT(gro.merged_frames, 10u);
  EXPECT_GT(gro.largest, 3 * 1514u);
  EXPECT_EQ(p.b->stats().parse_errors, 0u);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
  p.b.reset();
}

TEST_F(GsoTest, UnvouchedBadChecksumStillRefused) {
  // The flag is per frame: a frame the device does not vouch for is verified, and a
  // corrupted one is refused (counted as a parse error).
  LinkConfig lc = link_with(0, 41);
  lc.corrupt = 0.02;
  StackPair p(lc);
  Connected c = connect_pair(p);
  auto r = transfer(p, *p.a, c.client, *p.b, c.server, 1 << 20);
  EXPECT_TRUE(r.ok) << r.bytes;
  EXPECT_GT(p.b->stats().parse_errors + p.a->stats().parse_errors, 0u);
  p.a->close(c.client);
  p.b->close(c.server);
  p.b->close(c.listener);
}

}  // namespace
}  // namespace utcp::test
