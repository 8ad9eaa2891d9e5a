// golden_test.cc - wire formats against real captured bytes: deconstruct, construct, refuse.
#include <gtest/gtest.h>

#include <vector>

#include "golden_frames.h"
#include "hex.h"
#include "wire/arp.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

namespace utcp {
namespace {

using test::hex;

const Ipv4Addr kClient = Ipv4Addr::of(10, 0, 0, 1);
const Ipv4Addr kServer = Ipv4Addr::of(10, 0, 0, 2);
const MacAddr kClientMac{{0x96, 0x22, 0x36, 0x03, 0xd1, 0xdd}};
const MacAddr kServerMac{{0x46, 0x40, 0xe4, 0x02, 0xec, 0xb2}};

// Builds a whole Ethernet/IPv4/TCP frame from Reprs, as the stack will.
std::vector<uint8_t> build_tcp_frame(const EthernetRepr& eth, Ipv4Repr ip, const TcpRepr& tcp) {
  std::vector<uint8_t> out(14 + 20 + tcp_header_len(tcp) + tcp.payload.size());
  EXPECT_EQ(emit_ethernet(eth, out), 14u);
  std::span<uint8_t> l4 = std::span(out).subspan(34);
  size_t n = emit_tcp(tcp, ip.src, ip.dst, l4);
  EXPECT_EQ(n, l4.size());
  ip.payload_len = uint16_t(n);
  EXPECT_EQ(emit_ipv4(ip, std::span(out).subspan(14)), 20u);
  return out;
}

TEST(GoldenTcp, LinuxSynDeconstructs) {
  auto bytes = hex(test::kLinuxSyn);
  ParseError err = ParseError::kOk;
  auto f = parse_frame(bytes, true, &err);
  ASSERT_TRUE(f) << to_string(err);
  EXPECT_EQ(f->eth.dst, kServerMac);
  EXPECT_EQ(f->eth.src, kClientMac);
  EXPECT_EQ(f->eth.ethertype, 0x0800);
  EXPECT_EQ(f->ip.src, kClient);
  EXPECT_EQ(f->ip.dst, kServer);
  EXPECT_EQ(f->ip.ttl, 64);
  EXPECT_EQ(f->ip.ident, 0x19d5);
  EXPECT_TRUE(f->ip.dont_fragment);
  EXPECT_EQ(f->ip.payload_len, 40);
  ASSERT_TRUE(f->tcp);
  const TcpRepr& t = *f->tcp;
  EXPECT_EQ(t.src_port, 39116);
  EXPECT_EQ(t.dst_port, 5001);
  EXPECT_EQ(t.seq, SeqNum(0xe7504a5d));
  EXPECT_EQ(t.flags, tcp_flags::kSyn);
  EXPECT_EQ(t.window, 64240);
  EXPECT_EQ(t.options.mss, 1460);
  EXPECT_TRUE(t.options.sack_permitted);
  ASSERT_TRUE(t.options.timestamps);
  EXPECT_EQ(t.options.timestamps->tsval, 0x81c3fdb2u);
  EXPECT_EQ(t.options.timestamps->tsecr, 0u);
  EXPECT_EQ(t.options.window_scale, 10);
  EXPECT_EQ(t.options.sack_count, 0);
  EXPECT_TRUE(t.payload.empty());
  EXPECT_EQ(t.seg_len(), 1u);
  EXPECT_FALSE(f->udp);
  EXPECT_FALSE(f->arp);
}

TEST(GoldenTcp, LinuxSynConstructsByteForByte) {
  auto bytes = hex(test::kLinuxSyn);
  TcpRepr t;
  t.src_port = 39116;
  t.dst_port = 5001;
  t.seq = SeqNum(0xe7504a5d);
  t.flags = tcp_flags::kSyn;
  t.window = 64240;
  t.options.mss = 1460;
  t.options.sack_permitted = true;
  t.options.timestamps = TcpTimestamps{0x81c3fdb2, 0};
  t.options.window_scale = 10;
  Ipv4Repr ip;
  ip.src = kClient;
  ip.dst = kServer;
  ip.protocol = uint8_t(IpProto::kTcp);
  ip.ident = 0x19d5;
  EXPECT_EQ(tcp_header_len(t), 40u);
  EXPECT_EQ(build_tcp_frame({kServerMac, kClientMac, 0x0800}, ip, t), bytes);
}

TEST(GoldenTcp, LinuxSynAckRoundTrips) {
  auto bytes = hex(test::kLinuxSynAck);
  auto f = parse_frame(bytes, true, nullptr);
  ASSERT_TRUE(f && f->tcp);
  EXPECT_EQ(f->tcp->flags, tcp_flags::kSyn | tcp_flags::kAck);
  EXPECT_EQ(f->tcp->ack, SeqNum(0xe7504a5e));
  EXPECT_EQ(f->tcp->options.timestamps->tsecr, 0x81c3fdb2u);
  EXPECT_EQ(build_tcp_frame(f->eth, f->ip, *f->tcp), bytes);
}

TEST(GoldenTcp, LinuxDataSegment) {
  auto bytes = hex(test::kLinuxData);
  auto f = parse_frame(bytes, true, nullptr);
  ASSERT_TRUE(f && f->tcp);
  const TcpRepr& t = *f->tcp;
  EXPECT_EQ(t.flags, tcp_flags::kPsh | tcp_flags::kAck);
  EXPECT_EQ(t.window, 63);
  EXPECT_FALSE(t.options.mss);
  EXPECT_FALSE(t.options.sack_permitted);
  ASSERT_EQ(t.payload.size(), 4u);
  EXPECT_EQ(std::vector<uint8_t>(t.payload.begin(), t.payload.end()), hex("70696e67"));
  // The payload span points into the frame, not a copy.
  EXPECT_EQ(t.payload.data(), bytes.data() + bytes.size() - 4);
  EXPECT_EQ(build_tcp_frame(f->eth, f->ip, t), bytes);
}

TEST(GoldenUdp, LinuxDatagramRoundTrips) {
  auto bytes = hex(test::kLinuxUdp);
  auto f = parse_frame(bytes, true, nullptr);
  ASSERT_TRUE(f && f->udp);
  EXPECT_EQ(f->udp->src_port, 0x82f5);
  EXPECT_EQ(f->udp->dst_port, 5002);
  EXPECT_EQ(std::string(f->udp->payload.begin(), f->udp->payload.end()), "hello udp");
  std::vector<uint8_t> out(bytes.size());
  emit_ethernet(f->eth, out);
  Ipv4Repr ip = f->ip;
  ASSERT_EQ(emit_udp(*f->udp, ip.src, ip.dst, std::span(out).subspan(34)), 17u);
  emit_ipv4(ip, std::span(out).subspan(14));
  EXPECT_EQ(out, bytes);
}

TEST(GoldenArp, LinuxRequestAndReply) {
  for (const char* h : {test::kLinuxArpRequest, test::kLinuxArpReply}) {
    auto bytes = hex(h);
    auto f = parse_frame(bytes, true, nullptr);
    ASSERT_TRUE(f && f->arp);
    std::vector<uint8_t> out(42);
    emit_ethernet(f->eth, out);
    ASSERT_EQ(emit_arp(*f->arp, std::span(out).subspan(14)), 28u);
    EXPECT_EQ(out, bytes);
  }
  auto req = parse_frame(hex(test::kLinuxArpRequest), true, nullptr);
  EXPECT_EQ(req->arp->op, arp_op::kRequest);
  EXPECT_EQ(req->arp->sender_ip, kClient);
  EXPECT_EQ(req->arp->target_ip, kServer);
  EXPECT_EQ(req->eth.dst, MacAddr::broadcast());
}

TEST(ParseFrameInto, ReusedFrameCarriesNothingStale) {
  ParsedFrame f;
  auto syn = hex(test::kLinuxSyn);
  auto udp = hex(test::kLinuxUdp);
  auto arp = hex(test::kLinuxArpReply);
  ASSERT_TRUE(parse_frame_into(syn, true, &f));
  ASSERT_TRUE(f.tcp);
  ASSERT_TRUE(parse_frame_into(udp, true, &f));
  EXPECT_FALSE(f.tcp);
  EXPECT_TRUE(f.udp);
  ASSERT_TRUE(parse_frame_into(arp, true, &f));
  EXPECT_FALSE(f.udp);
  EXPECT_TRUE(f.arp);
  EXPECT_TRUE(f.ip_payload.empty());
  ASSERT_TRUE(parse_frame_into(syn, true, &f));
  EXPECT_FALSE(f.arp);
  // A failed parse reports why and leaves no half-filled transport layer behind.
  syn.back() ^= 1;
  ParseError err = ParseError::kOk;
  EXPECT_FALSE(parse_frame_into(syn, true, &f, &err));
  EXPECT_EQ(err, ParseError::kBadChecksum);
  EXPECT_FALSE(f.tcp);
  // Options from an earlier segment do not leak into a later one without them.
  auto data = hex(test::kLinuxData);
  auto syn2 = hex(test::kLinuxSyn);
  TcpRepr t;
  ASSERT_TRUE(parse_tcp_into(std::span(syn2).subspan(34), kClient, kServer, true, &t));
  ASSERT_TRUE(t.options.mss);
  ASSERT_TRUE(parse_tcp_into(std::span(data).subspan(34), kClient, kServer, true, &t));
  EXPECT_FALSE(t.options.mss);
  EXPECT_FALSE(t.options.window_scale);
}

}  // namespace
}  // namespace utcp
