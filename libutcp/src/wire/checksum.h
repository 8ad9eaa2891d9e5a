// checksum.h - the Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// Byte-order convention: the data is summed as a sequence of big-endian 16-bit words,
// exactly as it sits on the wire, and every 16-bit value these functions take or return
// is the host-order value of such a big-endian field (what load_be16 would read). So
// `store_be16(hdr + 10, checksum_fold(sum))` writes a correct checksum, and a received
// header verifies when `checksum_fold(checksum_add(header)) == 0`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "wire/types.h"

namespace utcp {

// Adds `data` to a ones'-complement partial sum and returns the new partial sum (not
// complemented, not necessarily folded to 16 bits). Partial sums chain: sum the pieces
// of a message in order, passing each result on. Every piece but the last must have an
// even length, since a piece starting at an odd offset would pair its bytes differently.
// Loads 8 bytes at a time into four independent 64-bit accumulators (no carry chain).
uint32_t checksum_add(std::span<const uint8_t> data, uint32_t sum = 0);

// Adds two partial sums (ones'-complement addition, RFC 1071 §2(A): commutative and
// associative, so sums of separate pieces can be combined in any order).
constexpr uint32_t checksum_combine(uint32_t a, uint32_t b) {
  uint64_t s = uint64_t(a) + b;
  return uint32_t((s & 0xffffffff) + (s >> 32));
}

// Folds a partial sum to 16 bits with end-around carry and complements it: the value to
// store in a checksum field (host order of the big-endian field).
constexpr uint16_t checksum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum & 0xffff);
}

// Partial sum of the TCP/UDP pseudo-header (RFC 9293 §3.1, RFC 768): source and
// destination address, zero byte + protocol, and `len` = header + data length.
constexpr uint32_t pseudo_header_sum(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, uint16_t len) {
  return (src.v >> 16) + (src.v & 0xffff) + (dst.v >> 16) + (dst.v & 0xffff) + proto + len;
}

// RFC 1624 §3 eqn. 3: HC' = ~(~HC + ~m + m'), the checksum after one 16-bit field of the
// covered data changes from `old_val` to `new_val`, without summing the data again.
constexpr uint16_t checksum_update16(uint16_t old_cksum, uint16_t old_val, uint16_t new_val) {
  uint32_t sum = uint32_t(uint16_t(~old_cksum)) + uint16_t(~old_val) + new_val;
  return checksum_fold(sum);
}

// The same for an aligned 32-bit field (e.g. an address or a sequence number): two
// 16-bit updates in one.
constexpr uint16_t checksum_update32(uint16_t old_cksum, uint32_t old_val, uint32_t new_val) {
  uint32_t sum = uint32_t(uint16_t(~old_cksum)) + uint16_t(~(old_val >> 16)) +
                 uint16_t(~old_val & 0xffff) + (new_val >> 16) + (new_val & 0xffff);
  return checksum_fold(sum);
}

}  // namespace utcp
