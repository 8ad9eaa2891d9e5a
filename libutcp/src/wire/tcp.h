// tcp.h - TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018): view, parse, emit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "wire/bytes.h"
#include "wire/types.h"

namespace utcp {

// TCP option kinds (IANA "TCP Option Kind Numbers").
namespace tcp_option {
inline constexpr uint8_t kEol = 0, kNop = 1, kMss = 2, kWindowScale = 3, kSackPermitted = 4,
                         kSack = 5, kTimestamps = 8;
}

// A view over a TCP segment whose data offset lies in 5..15 words and within the bytes
// present. The segment is the IP payload (already trimmed to the IP total length).
class TcpView {
 public:
  static std::optional<TcpView> parse(std::span<const uint8_t> segment, ParseError* err = nullptr);

  uint16_t src_port() const { return wire::load_be16(b_.data()); }
  uint16_t dst_port() const { return wire::load_be16(b_.data() + 2); }
  uint32_t seq() const { return wire::load_be32(b_.data() + 4); }
  uint32_t ack() const { return wire::load_be32(b_.data() + 8); }
  size_t header_len() const { return size_t(b_[12] >> 4) * 4; }
  uint8_t flags() const { return b_[13]; }
  uint16_t window() const { return wire::load_be16(b_.data() + 14); }
  uint16_t checksum() const { return wire::load_be16(b_.data() + 16); }
  uint16_t urgent() const { return wire::load_be16(b_.data() + 18); }
  std::span<const uint8_t> options() const { return b_.subspan(20, header_len() - 20); }
  std::span<const uint8_t> payload() const { return b_.subspan(header_len()); }
  std::span<const uint8_t> bytes() const { return b_; }
  // RFC 9293 §3.1: the checksum covers the pseudo-header, the header and the data.
  bool verify_checksum(Ipv4Addr src, Ipv4Addr dst) const;

 private:
  explicit TcpView(std::span<const uint8_t> b) : b_(b) {}
  std::span<const uint8_t> b_;
};

// Parses the option bytes of a TCP header into `out`. Returns false (kBadOption) for a
// length byte missing, < 2, or running past the end. Unknown kinds are skipped by their
// length; known kinds with a wrong length are ignored, as Linux does.
bool parse_tcp_options(std::span<const uint8_t> opts, TcpOptions* out, ParseError* err = nullptr);

// Parses a TCP segment (the IPv4 payload) from `src` to `dst`. The Repr's payload points
// into `segment`. Refuses: fewer than 20 bytes (kTruncated), data offset < 5 or past
// the segment (kBadHeaderLen), bad checksum when `verify_checksum` (kBadChecksum),
// malformed options (kBadOption).
std::optional<TcpRepr> parse_tcp(std::span<const uint8_t> segment, Ipv4Addr src, Ipv4Addr dst,
                                 bool verify_checksum, ParseError* err = nullptr);

// The same, filling `*out` in place (its options are reset first); false on refusal.
bool parse_tcp_into(std::span<const uint8_t> segment, Ipv4Addr src, Ipv4Addr dst,
                    bool verify_checksum, TcpRepr* out, ParseError* err = nullptr);

// Option bytes emit_tcp will write for `opts`, padded to a multiple of 4. The layout is
// Linux's, so captures look conventional: MSS; SACK-permitted + timestamps (or NOP NOP
// + timestamps, or NOP NOP + SACK-permitted); NOP + window scale; NOP NOP + SACK blocks.
// SACK blocks that do not fit in the 40 option bytes are left out (RFC 2018 §3: at most
// 3 blocks fit beside timestamps).
size_t tcp_options_len(const TcpOptions& opts);
// Number of SACK blocks that will actually be emitted for `opts`.
size_t tcp_sack_blocks_emitted(const TcpOptions& opts);
// 20 + tcp_options_len(repr.options).
size_t tcp_header_len(const TcpRepr& repr);

// Writes header + payload into `out` and returns the segment length (header + payload),
// or 0 when `out` is too short or the segment exceeds 65535 bytes. The payload is not
// copied when repr.payload.data() == out.data() + tcp_header_len(repr) (built in place).
// With `fill_checksum` false the checksum field gets the folded pseudo-header sum, not
// complemented: what a checksum-offloading device expects (Linux CHECKSUM_PARTIAL).
size_t emit_tcp(const TcpRepr& repr, Ipv4Addr src, Ipv4Addr dst, std::span<uint8_t> out,
                bool fill_checksum = true);

// Writes only the header into `out` for a payload of `payload_len` bytes that follows it
// (already in place, not touched), whose partial sum the caller computed with
// checksum_add as `payload_sum`. Returns the header length, or 0 when `out` is too short
// or the segment exceeds 65535 bytes. repr.payload is ignored.
size_t emit_tcp_header(const TcpRepr& repr, Ipv4Addr src, Ipv4Addr dst, std::span<uint8_t> out,
                       size_t payload_len, uint32_t payload_sum, bool fill_checksum = true);

}  // namespace utcp
