// frame.cc - parse_frame and to_string(ParseError).
#include "wire/frame.h"

#include "wire/arp.h"
#include "wire/bytes.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

namespace utcp {

const char* to_string(ParseError e) {
  switch (e) {
    case ParseError::kOk: return "ok";
    case ParseError::kTruncated: return "truncated";
    case ParseError::kBadVersion: return "bad IP version";
    case ParseError::kBadHeaderLen: return "bad header length";
    case ParseError::kBadLength: return "bad length";
    case ParseError::kBadChecksum: return "bad checksum";
    case ParseError::kFragment: return "IPv4 fragment";
    case ParseError::kBadOption: return "malformed option";
    case ParseError::kUnsupported: return "unsupported";
  }
  return "unknown parse error";
}

std::optional<ParsedFrame> parse_frame(std::span<const uint8_t> frame, bool verify_checksums,
                                       ParseError* err) {
  ParsedFrame out;
  std::span<const uint8_t> l3;
  auto eth = parse_ethernet(frame, &l3, err);
  if (!eth) return std::nullopt;
  out.eth = *eth;
  if (eth->ethertype == uint16_t(EtherType::kArp)) {
    auto arp = parse_arp(l3, err);
    if (!arp) return std::nullopt;
    out.arp = *arp;
    return out;
  }
  if (eth->ethertype != uint16_t(EtherType::kIpv4)) {
    wire::set_error(err, ParseError::kUnsupported);
    return std::nullopt;
  }
  auto ip = parse_ipv4(l3, &out.ip_payload, verify_checksums, err);
  if (!ip) return std::nullopt;
  out.ip = *ip;
  if (ip->protocol == uint8_t(IpProto::kTcp)) {
    auto tcp = parse_tcp(out.ip_payload, ip->src, ip->dst, verify_checksums, err);
    if (!tcp) return std::nullopt;
    out.tcp = *tcp;
  } else if (ip->protocol == uint8_t(IpProto::kUdp)) {
    auto udp = parse_udp(out.ip_payload, ip->src, ip->dst, verify_checksums, err);
    if (!udp) return std::nullopt;
    out.udp = *udp;
  }
  return out;
}

}  // namespace utcp
