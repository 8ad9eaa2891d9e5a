// checksum.cc - the Internet checksum over a byte span, 8 bytes per step.
#include "wire/checksum.h"

#include <bit>
#include <cstring>

namespace utcp {

namespace {

// Adds with end-around carry into a 64-bit accumulator; the ones'-complement sum of
// 64-bit words folds down to the same 16-bit sum (RFC 1071 §2(C), "parallel summation").
inline uint64_t add_carry(uint64_t acc, uint64_t w) {
  uint64_t r = acc + w;
  return r + (r < w);
}

inline uint64_t load64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

}  // namespace

uint32_t checksum_add(std::span<const uint8_t> data, uint32_t sum) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  uint64_t acc = 0;
  // Four independent 8-byte words per iteration keep the adder busy.
  while (n >= 32) {
    acc = add_carry(acc, load64(p));
    acc = add_carry(acc, load64(p + 8));
    acc = add_carry(acc, load64(p + 16));
    acc = add_carry(acc, load64(p + 24));
    p += 32;
    n -= 32;
  }
  while (n >= 8) {
    acc = add_carry(acc, load64(p));
    p += 8;
    n -= 8;
  }
  // Tail: gather the remaining 0..7 bytes into one zero-padded word, in memory order, so
  // an odd last byte is the high byte of its big-endian word (RFC 1071 §4.1).
  if (n > 0) {
    uint8_t tail[8] = {};
    std::memcpy(tail, p, n);
    acc = add_carry(acc, load64(tail));
  }
  // Fold 64 → 16 bits with end-around carries.
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  auto s16 = uint16_t(acc);
  // The words were loaded in host order; RFC 1071 §2(B): the sum is byte-order
  // independent up to a final swap.
  if constexpr (std::endian::native == std::endian::little) s16 = uint16_t(s16 << 8 | s16 >> 8);
  return checksum_combine(sum, s16);
}

}  // namespace utcp
