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

bool parse_frame_into(std::span<const uint8_t> frame, bool verify_checksums, ParsedFrame* out,
                      ParseError* err) {
  out->tcp.reset();
  out->udp.reset();
  out->arp.reset();
  out->ip_payload = {};
  std::span<const uint8_t> l3;
  if (!parse_ethernet_into(frame, &out->eth, &l3, err)) return false;
  if (out->eth.ethertype == uint16_t(EtherType::kArp)) {
    auto arp = parse_arp(l3, err);
    if (!arp) return false;
    out->arp = *arp;
    return true;
  }
  if (out->eth.ethertype != uint16_t(EtherType::kIpv4)) {
    wire::set_error(err, ParseError::kUnsupported);
    return false;
  }
  if (!parse_ipv4_into(l3, &out->ip, &out->ip_payload, verify_checksums, err)) return false;
  const Ipv4Repr& ip = out->ip;
  if (ip.protocol == uint8_t(IpProto::kTcp)) {
    if (!parse_tcp_into(out->ip_payload, ip.src, ip.dst, verify_checksums, &out->tcp.emplace(), err)) {
      out->tcp.reset();
      return false;
    }
  } else if (ip.protocol == uint8_t(IpProto::kUdp)) {
    auto udp = parse_udp(out->ip_payload, ip.src, ip.dst, verify_checksums, err);
    if (!udp) return false;
    out->udp = *udp;
  }
  return true;
}

std::optional<ParsedFrame> parse_frame(std::span<const uint8_t> frame, bool verify_checksums,
                                       ParseError* err) {
  std::optional<ParsedFrame> out(std::in_place);
  if (!parse_frame_into(frame, verify_checksums, &*out, err)) return std::nullopt;
  return out;
}

}  // namespace utcp
