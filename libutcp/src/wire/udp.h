// udp.h - UDP header (RFC 768): checked view, parse to UdpRepr, emit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "wire/bytes.h"
#include "wire/types.h"

namespace utcp {

// A view over a UDP datagram whose 8-byte header is present and whose length field lies
// in 8..bytes present.
class UdpView {
 public:
  static std::optional<UdpView> parse(std::span<const uint8_t> datagram, ParseError* err = nullptr);

  uint16_t src_port() const { return wire::load_be16(b_.data()); }
  uint16_t dst_port() const { return wire::load_be16(b_.data() + 2); }
  uint16_t length() const { return wire::load_be16(b_.data() + 4); }
  uint16_t checksum() const { return wire::load_be16(b_.data() + 6); }
  std::span<const uint8_t> payload() const {
    return b_.subspan(UdpRepr::kHeaderLen, length() - UdpRepr::kHeaderLen);
  }
  // RFC 768: a zero checksum field means the sender computed none; that verifies.
  bool verify_checksum(Ipv4Addr src, Ipv4Addr dst) const;

 private:
  explicit UdpView(std::span<const uint8_t> b) : b_(b) {}
  std::span<const uint8_t> b_;
};

// Parses a UDP datagram (the IPv4 payload); the Repr's payload points into it.
// Refuses: short input or length field beyond it (kTruncated), length field < 8
// (kBadLength), bad nonzero checksum when `verify_checksum` (kBadChecksum).
std::optional<UdpRepr> parse_udp(std::span<const uint8_t> datagram, Ipv4Addr src, Ipv4Addr dst,
                                 bool verify_checksum, ParseError* err = nullptr);

// Writes header + payload (not copied when already in place right after the header).
// With `fill_checksum` false the checksum field is zero ("no checksum", RFC 768).
// Returns 8 + payload size, or 0 when `out` is too short or the datagram exceeds 65535.
size_t emit_udp(const UdpRepr& repr, Ipv4Addr src, Ipv4Addr dst, std::span<uint8_t> out,
                bool fill_checksum = true);

}  // namespace utcp
