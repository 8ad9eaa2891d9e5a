// ipv4.h - IPv4 header (RFC 791): checked view, parse to Ipv4Repr, emit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "wire/bytes.h"
#include "wire/types.h"

namespace utcp {

// A view over an IPv4 packet whose version is 4, whose header length (IHL) lies in
// 5..15 words and within the bytes present, and whose total length covers the header
// and does not exceed the bytes present. Checksum and fragmentation are not checked
// here (see parse_ipv4): the view only guarantees that every accessor stays in bounds.
class Ipv4View {
 public:
  static std::optional<Ipv4View> parse(std::span<const uint8_t> packet, ParseError* err = nullptr);

  uint8_t version() const { return b_[0] >> 4; }
  size_t header_len() const { return size_t(b_[0] & 0x0f) * 4; }
  uint8_t dscp_ecn() const { return b_[1]; }
  uint16_t total_len() const { return wire::load_be16(b_.data() + 2); }
  uint16_t ident() const { return wire::load_be16(b_.data() + 4); }
  bool dont_fragment() const { return (b_[6] & 0x40) != 0; }
  bool more_fragments() const { return (b_[6] & 0x20) != 0; }
  uint16_t frag_offset() const { return wire::load_be16(b_.data() + 6) & 0x1fff; }  // 8-byte units
  uint8_t ttl() const { return b_[8]; }
  uint8_t protocol() const { return b_[9]; }
  uint16_t checksum() const { return wire::load_be16(b_.data() + 10); }
  Ipv4Addr src() const { return {wire::load_be32(b_.data() + 12)}; }
  Ipv4Addr dst() const { return {wire::load_be32(b_.data() + 16)}; }
  std::span<const uint8_t> header() const { return b_.first(header_len()); }
  std::span<const uint8_t> options() const { return b_.subspan(20, header_len() - 20); }
  // The bytes between the header and the total length: link padding is not included.
  std::span<const uint8_t> payload() const {
    return b_.subspan(header_len(), total_len() - header_len());
  }
  bool verify_checksum() const;

 private:
  explicit Ipv4View(std::span<const uint8_t> b) : b_(b) {}
  std::span<const uint8_t> b_;
};

// Parses an IPv4 packet into a Repr; `payload` (if given) receives the bytes after the
// header up to the total length. Refuses (with `err` set): short input or total length
// beyond the input (kTruncated), version != 4 (kBadVersion), IHL < 5 or past the input
// (kBadHeaderLen), total length < header length (kBadLength), a wrong header checksum
// when `verify_checksum` (kBadChecksum), and fragments (kFragment). IP options are
// skipped.
std::optional<Ipv4Repr> parse_ipv4(std::span<const uint8_t> packet,
                                   std::span<const uint8_t>* payload, bool verify_checksum,
                                   ParseError* err = nullptr);

// The same, filling `*out` in place; false on refusal.
bool parse_ipv4_into(std::span<const uint8_t> packet, Ipv4Repr* out,
                     std::span<const uint8_t>* payload, bool verify_checksum,
                     ParseError* err = nullptr);

// Writes a 20-byte header (no options) with total length 20 + repr.payload_len and the
// checksum filled. Returns 20, or 0 when `out` is too short or the total exceeds 65535.
size_t emit_ipv4(const Ipv4Repr& repr, std::span<uint8_t> out);

}  // namespace utcp
