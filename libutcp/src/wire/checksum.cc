// checksum.cc - the Internet checksum over a byte span, 32 bytes per step in four independent sums.
#include "wire/checksum.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace utcp {

namespace {

inline uint64_t load64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// A 64-bit word as the sum of its two 32-bit halves. RFC 1071 §2(C) ("deferred carries"):
// summing in a wider accumulator and folding the carries back at the end gives the same
// ones'-complement sum; without add-with-carry the four chains run in parallel.
inline uint64_t halves(uint64_t w) { return (w & 0xffffffff) + (w >> 32); }

// Each step adds < 2^33 per accumulator, so 2^30 bytes (2^25 steps) keep each below 2^58
// and their sum far from overflow.
constexpr size_t kChunk = size_t(1) << 30;

uint64_t sum_chunk(const uint8_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  while (n >= 32) {
    a0 += halves(load64(p));
    a1 += halves(load64(p + 8));
    a2 += halves(load64(p + 16));
    a3 += halves(load64(p + 24));
    p += 32;
    n -= 32;
  }
  uint64_t acc = a0 + a1 + a2 + a3;
  while (n >= 8) {
    acc += halves(load64(p));
    p += 8;
    n -= 8;
  }
  // Tail: the remaining 0..7 bytes as one zero-padded word, in memory order, so an odd
  // last byte is the high byte of its big-endian word (RFC 1071 §4.1).
  if (n > 0) {
    uint8_t tail[8] = {};
    std::memcpy(tail, p, n);
    acc += halves(load64(tail));
  }
  return acc;
}

inline uint64_t fold64to32(uint64_t x) {
  x = (x & 0xffffffff) + (x >> 32);
  return (x & 0xffffffff) + (x >> 32);
}

}  // namespace

uint32_t checksum_add(std::span<const uint8_t> data, uint32_t sum) {
  uint64_t acc = 0;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    // Chunks are even-sized, so every chunk starts on a 16-bit word boundary.
    acc = fold64to32(acc + fold64to32(sum_chunk(data.data() + off, std::min(kChunk, data.size() - off))));
  }
  // Fold 32 → 16 bits with end-around carries.
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  auto s16 = uint16_t(acc);
  // The words were loaded in host order; RFC 1071 §2(B): the sum is byte-order
  // independent up to a final swap.
  if constexpr (std::endian::native == std::endian::little) s16 = uint16_t(s16 << 8 | s16 >> 8);
  return checksum_combine(sum, s16);
}

}  // namespace utcp
