// malformed_test.cc - hostile and edge-case input: truncation, lengths, checksums, fragments, options; emit limits.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "golden_frames.h"
#include "hex.h"
#include "wire/arp.h"
#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

namespace utcp {
namespace {

using test::hex;
using Bytes = std::vector<uint8_t>;

const Ipv4Addr kA = Ipv4Addr::of(10, 0, 0, 1);
const Ipv4Addr kB = Ipv4Addr::of(10, 0, 0, 2);

ParseError parse_err(const Bytes& f, bool verify = true) {
  ParseError err = ParseError::kOk;
  auto r = parse_frame(f, verify, &err);
  if (r) {
    EXPECT_EQ(err, ParseError::kOk);
    return ParseError::kOk;
  }
  EXPECT_NE(err, ParseError::kOk);
  return err;
}

// Recomputes the IPv4 header checksum and the TCP/UDP checksum of an Ethernet frame
// after a test edited it, so that only the intended defect remains.
void fix_checksums(Bytes& f) {
  uint8_t* ip = f.data() + 14;
  // Tests give deliberately wrong IHLs: never sum past the bytes present.
  const size_t ihl = std::min(size_t(ip[0] & 0x0f) * 4, f.size() - 14);
  wire::store_be16(ip + 10, 0);
  wire::store_be16(ip + 10, checksum_fold(checksum_add({ip, ihl})));
  const size_t total = wire::load_be16(ip + 2);
  if (total < ihl || 14 + total > f.size()) return;
  uint8_t* l4 = ip + ihl;
  const size_t l4len = total - ihl;
  const size_t off = ip[9] == 6 ? 16 : 6;
  if (l4len < off + 2) return;
  wire::store_be16(l4 + off, 0);
  uint32_t sum = pseudo_header_sum({wire::load_be32(ip + 12)}, {wire::load_be32(ip + 16)}, ip[9], uint16_t(l4len));
  wire::store_be16(l4 + off, checksum_fold(checksum_add({l4, l4len}, sum)));
}

// A minimal TCP frame: 20-byte header, `opts` as the options (padded by caller), payload.
Bytes tcp_frame(const Bytes& opts, const Bytes& payload = {}) {
  Bytes f = hex("4640e402ecb2 96223603d1dd 0800 4500000000004000 40060000 0a000001 0a000002"
                "98cc1389 00000001 00000000 5010ffff 00000000");
  f[14 + 20 + 12] = uint8_t(((20 + opts.size()) / 4) << 4);
  f.insert(f.end(), opts.begin(), opts.end());
  f.insert(f.end(), payload.begin(), payload.end());
  wire::store_be16(f.data() + 16, uint16_t(f.size() - 14));
  fix_checksums(f);
  return f;
}

std::optional<TcpRepr> tcp_of(const Bytes& f, ParseError* err = nullptr) {
  auto p = parse_frame(f, true, err);
  if (!p) return std::nullopt;
  EXPECT_TRUE(p->tcp);
  return p->tcp;
}

TEST(Truncated, EveryPrefixOfEveryGoldenFrameIsRefused) {
  for (const char* h : {test::kLinuxSyn, test::kLinuxSynAck, test::kLinuxData, test::kLinuxUdp,
                        test::kLinuxArpRequest, test::kLinuxArpReply}) {
    const Bytes full = hex(h);
    ASSERT_EQ(parse_err(full), ParseError::kOk);
    for (size_t n = 0; n < full.size(); ++n) {
      // An exactly sized copy, so a read past the end is a heap overflow under ASan.
      Bytes prefix(full.begin(), full.begin() + long(n));
      ParseError err = parse_err(prefix);
      EXPECT_TRUE(err == ParseError::kTruncated || err == ParseError::kBadHeaderLen)
          << "len " << n << ": " << to_string(err);
    }
  }
}

TEST(Truncated, EthernetPaddingIsTrimmedByIpTotalLength) {
  Bytes f = tcp_frame({});  // 54 bytes
  f.resize(60, 0);          // RFC 894 minimum frame padding
  auto p = parse_frame(f, true, nullptr);
  ASSERT_TRUE(p && p->tcp);
  EXPECT_TRUE(p->tcp->payload.empty());
  EXPECT_EQ(p->ip.payload_len, 20);
  EXPECT_EQ(p->ip_payload.size(), 20u);
  Bytes arp = hex(test::kLinuxArpRequest);
  arp.resize(60, 0);
  EXPECT_EQ(parse_err(arp), ParseError::kOk);
}

TEST(BadLength, Ipv4HeaderFields) {
  const Bytes good = tcp_frame({});
  auto with = [&](auto edit) {
    Bytes f = good;
    edit(f.data() + 14);
    fix_checksums(f);
    return parse_err(f);
  };
  EXPECT_EQ(with([](uint8_t* ip) { ip[0] = 0x65; }), ParseError::kBadVersion);
  EXPECT_EQ(with([](uint8_t* ip) { ip[0] = 0x44; }), ParseError::kBadHeaderLen);
  EXPECT_EQ(with([](uint8_t* ip) { ip[0] = 0x40; }), ParseError::kBadHeaderLen);
  EXPECT_EQ(with([](uint8_t* ip) { ip[0] = 0x4f; }), ParseError::kBadHeaderLen);  // 60 > 40 present
  EXPECT_EQ(with([](uint8_t* ip) { wire::store_be16(ip + 2, 19); }), ParseError::kBadLength);
  EXPECT_EQ(with([](uint8_t* ip) { wire::store_be16(ip + 2, 41); }), ParseError::kTruncated);
  EXPECT_EQ(with([](uint8_t* ip) { wire::store_be16(ip + 2, 0xffff); }), ParseError::kTruncated);
  // Total length shorter than the TCP header leaves too few bytes for TCP.
  EXPECT_EQ(with([](uint8_t* ip) { wire::store_be16(ip + 2, 30); }), ParseError::kTruncated);
}

TEST(Fragments, AreRefused) {
  const Bytes good = tcp_frame({});
  auto flags = [&](uint16_t v) {
    Bytes f = good;
    wire::store_be16(f.data() + 14 + 6, v);
    fix_checksums(f);
    return parse_err(f);
  };
  EXPECT_EQ(flags(0x4000), ParseError::kOk);        // DF only
  EXPECT_EQ(flags(0x0000), ParseError::kOk);        // DF clear, not a fragment
  EXPECT_EQ(flags(0x2000), ParseError::kFragment);  // MF
  EXPECT_EQ(flags(0x0001), ParseError::kFragment);  // offset 8
  EXPECT_EQ(flags(0x1fff), ParseError::kFragment);  // last fragment far out
  auto p = parse_frame(good, true, nullptr);
  EXPECT_TRUE(p->ip.dont_fragment);
}

TEST(Ipv4, OptionsAreSkipped) {
  Bytes f = tcp_frame({});
  // IHL 6 with NOP NOP NOP EOL between the header and TCP.
  f.insert(f.begin() + 34, {0x01, 0x01, 0x01, 0x00});
  f[14] = 0x46;
  wire::store_be16(f.data() + 16, uint16_t(f.size() - 14));
  fix_checksums(f);
  auto p = parse_frame(f, true, nullptr);
  ASSERT_TRUE(p && p->tcp);
  EXPECT_EQ(p->ip.payload_len, 20);
  EXPECT_EQ(p->tcp->seq, SeqNum(1));
  auto v = Ipv4View::parse(std::span(f).subspan(14));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->options().size(), 4u);
}

TEST(BadChecksum, EachLayerIsChecked) {
  Bytes data = hex(test::kLinuxData);
  Bytes f = data;
  f.back() ^= 0x01;  // payload byte
  EXPECT_EQ(parse_err(f), ParseError::kBadChecksum);
  EXPECT_EQ(parse_err(f, false), ParseError::kOk);
  f = data;
  f[14 + 8] = 63;  // TTL: IP header checksum now wrong
  EXPECT_EQ(parse_err(f), ParseError::kBadChecksum);
  EXPECT_EQ(parse_err(f, false), ParseError::kOk);
  f = data;
  f[14 + 20 + 16] ^= 0xff;  // the TCP checksum itself
  EXPECT_EQ(parse_err(f), ParseError::kBadChecksum);
  // Pseudo-header coverage: the same segment from another source fails.
  auto v = TcpView::parse(std::span(data).subspan(34));
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->verify_checksum(kA, kB));
  EXPECT_FALSE(v->verify_checksum(Ipv4Addr::of(10, 0, 0, 3), kB));
}

TEST(Udp, ChecksumZeroLengthAndPadding) {
  Bytes udp = hex(test::kLinuxUdp);
  Bytes f = udp;
  wire::store_be16(f.data() + 34 + 6, 0);  // RFC 768: no checksum
  EXPECT_EQ(parse_err(f), ParseError::kOk);
  f = udp;
  f.back() ^= 1;
  EXPECT_EQ(parse_err(f), ParseError::kBadChecksum);
  f = udp;
  wire::store_be16(f.data() + 34 + 4, 7);
  fix_checksums(f);
  EXPECT_EQ(parse_err(f), ParseError::kBadLength);
  f = udp;
  wire::store_be16(f.data() + 34 + 4, 18);
  fix_checksums(f);
  EXPECT_EQ(parse_err(f), ParseError::kTruncated);
  // A UDP length shorter than the IP payload: the rest is not payload.
  auto r = parse_udp(std::span(udp).subspan(34), kA, kB, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload.size(), 9u);
  Bytes shorter(udp.begin() + 34, udp.end());
  wire::store_be16(shorter.data() + 4, 10);
  r = parse_udp(shorter, kA, kB, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload.size(), 2u);
}

TEST(Udp, ComputedZeroChecksumIsSentAsAllOnes) {
  // Pick a 2-byte payload that makes the ones'-complement sum 0xffff.
  UdpRepr u{1000, 2000, {}};
  uint8_t out[10];
  Bytes payload = {0, 0};
  u.payload = payload;
  ASSERT_EQ(emit_udp(u, kA, kB, out), 10u);
  const uint16_t c = wire::load_be16(out + 6);
  // c is ~S for the sum S of everything else; a payload word of c makes the total
  // S + ~S = 0xffff, whose complement is 0.
  payload = {uint8_t(c >> 8), uint8_t(c)};
  u.payload = payload;
  ASSERT_EQ(emit_udp(u, kA, kB, out), 10u);
  EXPECT_EQ(wire::load_be16(out + 6), 0xffff);
  EXPECT_TRUE(parse_udp(std::span(out, 10), kA, kB, true));
  ASSERT_EQ(emit_udp(u, kA, kB, out, false), 10u);
  EXPECT_EQ(wire::load_be16(out + 6), 0);
}

TEST(TcpHeaderLen, DataOffsetOutOfRange) {
  Bytes f = tcp_frame({});
  f[14 + 20 + 12] = 0x40;  // 16 bytes
  fix_checksums(f);
  EXPECT_EQ(parse_err(f), ParseError::kBadHeaderLen);
  f[14 + 20 + 12] = 0x60;  // 24 bytes, only 20 present
  fix_checksums(f);
  EXPECT_EQ(parse_err(f), ParseError::kBadHeaderLen);
}

TEST(TcpOptions, MalformedLengthsAreRefused) {
  struct Case {
    const char* opts;
    const char* why;
  } cases[] = {
      {"22000000", "zero-length option"},
      {"22010000", "length 1"},
      {"01010122", "kind without a length byte at the end"},
      {"02060000", "MSS claiming 6 bytes, 4 present"},
      {"220a0000", "unknown option running past the header"},
      // SACK claiming 5 blocks: 42 bytes cannot fit in 40 option bytes.
      {"0101052a0000000100000002000000030000000400000005000000060000000700000008000000", "SACK with 5 blocks"},
  };
  for (const auto& c : cases) {
    Bytes opts = hex(c.opts);
    Bytes f = tcp_frame(opts);
    ParseError err = ParseError::kOk;
    EXPECT_FALSE(tcp_of(f, &err)) << c.why;
    EXPECT_EQ(err, ParseError::kBadOption) << c.why;
  }
}

TEST(TcpOptions, KnownKindsWithWrongLengthAreIgnored) {
  // MSS with length 6 (fits), WS with length 4, SACK-perm with 3, TS with 9: 24 bytes.
  auto t = tcp_of(tcp_frame(hex("020605b40000 0304070000 040300 080900000000000000 01")));
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->options.mss);
  EXPECT_FALSE(t->options.window_scale);
  EXPECT_FALSE(t->options.sack_permitted);
  EXPECT_FALSE(t->options.timestamps);
  EXPECT_EQ(t->payload.size(), 0u);
  // SACK of length 2 + 7 is not 2 + 8n: ignored.
  t = tcp_of(tcp_frame(hex("0509 00000000000000 000000")));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->options.sack_count, 0);
}

TEST(TcpOptions, UnknownSkippedEolStops) {
  // Unknown kind 30 (MPTCP) length 4, then MSS, then EOL followed by garbage.
  auto t = tcp_of(tcp_frame(hex("1e04abcd 020405b4 00ffff01")));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->options.mss, 1460);
  EXPECT_FALSE(t->options.window_scale);
}

TEST(TcpOptions, SackBlocksOneToFour) {
  for (int n = 1; n <= 4; ++n) {
    Bytes opts = {0x01, 0x01, 0x05, uint8_t(2 + 8 * n)};
    for (int b = 0; b < n; ++b) {
      uint8_t blk[8];
      wire::store_be32(blk, 0xfffffff0u + 100 * b);
      wire::store_be32(blk + 4, 0xfffffff0u + 100 * b + 50);
      opts.insert(opts.end(), blk, blk + 8);
    }
    auto t = tcp_of(tcp_frame(opts, {1, 2, 3}));
    ASSERT_TRUE(t) << n;
    ASSERT_EQ(t->options.sack_count, n);
    for (int b = 0; b < n; ++b) {
      EXPECT_EQ(t->options.sack[b].left, SeqNum(0xfffffff0u + 100 * b));
      EXPECT_EQ(t->options.sack[b].right, SeqNum(0xfffffff0u + 100 * b + 50));
    }
    EXPECT_EQ(t->payload.size(), 3u);
  }
}

TcpRepr sample_tcp() {
  TcpRepr t;
  t.src_port = 1234;
  t.dst_port = 80;
  t.seq = SeqNum(0xfffffff0u);
  t.ack = SeqNum(77);
  t.flags = tcp_flags::kAck | tcp_flags::kPsh;
  t.window = 512;
  return t;
}

TEST(TcpEmit, SackBlocksRoundTripAndAreCappedToFit) {
  TcpRepr t = sample_tcp();
  t.options.sack_count = 4;
  for (int b = 0; b < 4; ++b) t.options.sack[b] = {SeqNum(1000u * b), SeqNum(1000u * b + 500)};
  EXPECT_EQ(tcp_header_len(t), 20u + 4 + 32);
  t.options.timestamps = TcpTimestamps{1, 2};
  // RFC 2018 §3: with timestamps, 3 blocks fit.
  EXPECT_EQ(tcp_sack_blocks_emitted(t.options), 3u);
  EXPECT_EQ(tcp_header_len(t), 20u + 12 + 4 + 24);
  t.options.mss = 1460;
  t.options.window_scale = 7;
  t.options.sack_permitted = true;
  EXPECT_EQ(tcp_sack_blocks_emitted(t.options), 2u);
  EXPECT_EQ(tcp_header_len(t), 60u);
  Bytes out(60);
  ASSERT_EQ(emit_tcp(t, kA, kB, out), 60u);
  auto r = parse_tcp(out, kA, kB, true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->options.sack_count, 2);
  EXPECT_EQ(r->options.sack[1], t.options.sack[1]);
  EXPECT_EQ(r->options.mss, 1460);
  EXPECT_EQ(r->options.window_scale, 7);
  EXPECT_TRUE(r->options.sack_permitted);
  EXPECT_EQ(r->options.timestamps, t.options.timestamps);
  EXPECT_EQ(r->seq, t.seq);
  EXPECT_EQ(r->ack, t.ack);
  EXPECT_EQ(r->flags, t.flags);
}

TEST(TcpEmit, EveryOptionCombinationRoundTrips) {
  for (int mask = 0; mask < 32; ++mask) {
    TcpRepr t = sample_tcp();
    if (mask & 1) t.options.mss = 536;
    if (mask & 2) t.options.window_scale = 14;
    if (mask & 4) t.options.sack_permitted = true;
    if (mask & 8) t.options.timestamps = TcpTimestamps{0xdeadbeef, 0x01020304};
    if (mask & 16) {
      t.options.sack_count = 1;
      t.options.sack[0] = {SeqNum(5), SeqNum(9)};
    }
    Bytes payload(13, 0x5a);
    t.payload = payload;
    Bytes out(tcp_header_len(t) + payload.size());
    ASSERT_EQ(tcp_header_len(t) % 4, 0u);
    ASSERT_EQ(emit_tcp(t, kA, kB, out), out.size());
    auto r = parse_tcp(out, kA, kB, true);
    ASSERT_TRUE(r) << mask;
    EXPECT_EQ(r->options.mss, t.options.mss);
    EXPECT_EQ(r->options.window_scale, t.options.window_scale);
    EXPECT_EQ(r->options.sack_permitted, t.options.sack_permitted);
    EXPECT_EQ(r->options.timestamps, t.options.timestamps);
    EXPECT_EQ(r->options.sack_count, t.options.sack_count);
    EXPECT_EQ(Bytes(r->payload.begin(), r->payload.end()), payload);
  }
}

TEST(TcpEmit, InPlacePayloadAndHeaderOnly) {
  TcpRepr t = sample_tcp();
  t.options.timestamps = TcpTimestamps{5, 6};
  const size_t hlen = tcp_header_len(t);
  Bytes buf(hlen + 1000);
  for (size_t i = 0; i < 1000; ++i) buf[hlen + i] = uint8_t(i * 13);
  Bytes copy = buf;
  // emit_tcp with the payload already in place.
  t.payload = std::span(buf).subspan(hlen);
  ASSERT_EQ(emit_tcp(t, kA, kB, buf), buf.size());
  EXPECT_TRUE(parse_tcp(buf, kA, kB, true));
  // emit_tcp_header with the payload summed by the caller gives the same bytes.
  const uint32_t psum = checksum_add(std::span(copy).subspan(hlen));
  ASSERT_EQ(emit_tcp_header(t, kA, kB, copy, 1000, psum), hlen);
  EXPECT_EQ(copy, buf);
  // Without checksum: the field holds the folded pseudo-header sum for offload.
  ASSERT_EQ(emit_tcp(t, kA, kB, buf, false), buf.size());
  const uint32_t pseudo = pseudo_header_sum(kA, kB, 6, uint16_t(buf.size()));
  EXPECT_EQ(wire::load_be16(buf.data() + 16), uint16_t(~checksum_fold(pseudo)));
  // Completing it as a device would yields a valid segment.
  wire::store_be16(buf.data() + 16, checksum_fold(checksum_add(buf)));
  EXPECT_TRUE(parse_tcp(buf, kA, kB, true));
}

TEST(Emit, RefusesShortOutput) {
  TcpRepr t = sample_tcp();
  Bytes payload(10);
  t.payload = payload;
  Bytes out(29);
  EXPECT_EQ(emit_tcp(t, kA, kB, out), 0u);
  EXPECT_EQ(emit_tcp_header(t, kA, kB, std::span(out).first(19), 0, 0), 0u);
  EXPECT_EQ(emit_tcp_header(t, kA, kB, out, 0xffff, 0), 0u);
  EXPECT_EQ(emit_ipv4(Ipv4Repr{}, std::span(out).first(19)), 0u);
  Ipv4Repr big;
  big.payload_len = 0xffff - 19;
  EXPECT_EQ(emit_ipv4(big, out), 0u);
  EXPECT_EQ(emit_ethernet(EthernetRepr{}, std::span(out).first(13)), 0u);
  EXPECT_EQ(emit_arp(ArpRepr{}, std::span(out).first(27)), 0u);
  EXPECT_EQ(emit_udp(UdpRepr{1, 2, payload}, kA, kB, std::span(out).first(17)), 0u);
}

TEST(Arp, UnsupportedKindsAreRefused) {
  const Bytes good = hex(test::kLinuxArpRequest);
  auto edit = [&](size_t off, uint8_t v) {
    Bytes f = good;
    f[14 + off] = v;
    return parse_err(f);
  };
  EXPECT_EQ(edit(1, 6), ParseError::kUnsupported);     // IEEE 802 hardware type
  EXPECT_EQ(edit(2, 0x86), ParseError::kUnsupported);  // protocol not IPv4
  EXPECT_EQ(edit(4, 8), ParseError::kUnsupported);     // hlen
  EXPECT_EQ(edit(5, 16), ParseError::kUnsupported);    // plen
  EXPECT_EQ(edit(7, 3), ParseError::kUnsupported);     // RARP request
}

TEST(Frame, OtherEthertypesAndIpProtocols) {
  Bytes f = hex(test::kLinuxSyn);
  f[12] = 0x86;
  f[13] = 0xdd;
  EXPECT_EQ(parse_err(f), ParseError::kUnsupported);
  f[12] = 0x81;
  f[13] = 0x00;  // VLAN tag
  EXPECT_EQ(parse_err(f), ParseError::kUnsupported);
  // ICMP echo: parsed to the IP layer, payload exposed.
  Bytes icmp = hex("4640e402ecb2 96223603d1dd 0800 4500001c00004000 40010000 0a000001 0a000002"
                   "0800f7ff00000000");
  fix_checksums(icmp);
  auto p = parse_frame(icmp, true, nullptr);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ip.protocol, 1);
  EXPECT_FALSE(p->tcp || p->udp || p->arp);
  EXPECT_EQ(p->ip_payload.size(), 8u);
  EXPECT_EQ(p->ip_payload[0], 8);
}

TEST(ParseError, EveryValueHasADistinctName) {
  std::set<std::string> names;
  for (int e = 0; e <= int(ParseError::kUnsupported); ++e) names.insert(to_string(ParseError(e)));
  EXPECT_EQ(names.size(), size_t(ParseError::kUnsupported) + 1);
  EXPECT_STREQ(to_string(ParseError::kBadChecksum), "bad checksum");
}

}  // namespace
}  // namespace utcp
