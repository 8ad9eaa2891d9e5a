// frame.h - one call from an Ethernet frame to the Reprs of all its layers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "wire/types.h"

namespace utcp {

struct ParsedFrame {
  EthernetRepr eth;
  Ipv4Repr ip;  // meaningful unless `arp` is set
  std::optional<TcpRepr> tcp;
  std::optional<UdpRepr> udp;
  std::optional<ArpRepr> arp;
  // The IPv4 payload (trimmed of link padding), e.g. for ICMP; empty for ARP.
  std::span<const uint8_t> ip_payload;
};

// Fills `*out` in place (the receive path's form: no Repr copies); false on refusal.
bool parse_frame_into(std::span<const uint8_t> frame, bool verify_checksums, ParsedFrame* out,
                      ParseError* err = nullptr);

// Parses Ethernet, then ARP or IPv4, then TCP or UDP. Other IP protocols (ICMP, ...)
// parse to a frame with neither `tcp` nor `udp` set. Other ethertypes (IPv6, VLAN
// tags, 802.3 lengths) are refused with kUnsupported. `verify_checksums` covers the
// IPv4 header and the TCP/UDP checksum. Payload spans point into `frame`.
std::optional<ParsedFrame> parse_frame(std::span<const uint8_t> frame, bool verify_checksums,
                                       ParseError* err = nullptr);

}  // namespace utcp
