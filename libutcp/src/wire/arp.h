// arp.h - ARP (RFC 826) for Ethernet/IPv4 only: checked view, parse to ArpRepr, emit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "wire/bytes.h"
#include "wire/types.h"

namespace utcp {

namespace arp_op {
inline constexpr uint16_t kRequest = 1, kReply = 2;
}

// A view over an ARP packet of at least 28 bytes (the Ethernet/IPv4 size).
class ArpView {
 public:
  static std::optional<ArpView> parse(std::span<const uint8_t> packet, ParseError* err = nullptr);

  uint16_t htype() const { return wire::load_be16(b_.data()); }
  uint16_t ptype() const { return wire::load_be16(b_.data() + 2); }
  uint8_t hlen() const { return b_[4]; }
  uint8_t plen() const { return b_[5]; }
  uint16_t op() const { return wire::load_be16(b_.data() + 6); }
  // The address accessors assume hlen 6 / plen 4 (checked by parse_arp).
  MacAddr sender_mac() const { return mac_at(8); }
  Ipv4Addr sender_ip() const { return {wire::load_be32(b_.data() + 14)}; }
  MacAddr target_mac() const { return mac_at(18); }
  Ipv4Addr target_ip() const { return {wire::load_be32(b_.data() + 24)}; }

 private:
  explicit ArpView(std::span<const uint8_t> b) : b_(b) {}
  MacAddr mac_at(size_t off) const;
  std::span<const uint8_t> b_;
};

// Parses an ARP packet. Refuses: fewer than 28 bytes (kTruncated); hardware type other
// than Ethernet (1) with 6-byte addresses, protocol other than IPv4 with 4-byte
// addresses, or an operation other than request/reply (kUnsupported).
std::optional<ArpRepr> parse_arp(std::span<const uint8_t> packet, ParseError* err = nullptr);

// Writes the 28-byte Ethernet/IPv4 ARP packet; returns 28, or 0 when `out` is too short.
size_t emit_arp(const ArpRepr& repr, std::span<uint8_t> out);

}  // namespace utcp
