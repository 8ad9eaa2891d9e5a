// seeded_stream.h - a deterministic byte stream from a seed, and SHA-256 (FIPS 180-4), for
// checking long transfers end to end without files: the sender generates the stream and
// hashes what it sent, the receiver hashes what it got, and the two digests must be equal.
// The generator is splitmix64 (cheap: one multiply-xorshift round per 8 bytes), so an
// emulated guest spends its time on TCP and hashing rather than on making data. Used by
// utcp-xfer (--send-seeded, --hash-received) and utcp-stream; header-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace utcp::examples {

// SHA-256 over a stream of update() calls; hex() ends it and returns the digest.
class Sha256 {
 public:
  Sha256() { reset(); }

  void reset() {
    static constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                          0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::memcpy(h_, kInit, sizeof h_);
    total_ = 0;
    fill_ = 0;
  }

  void update(const uint8_t* p, size_t n) {
    total_ += n;
    if (fill_ > 0) {
      size_t take = n < 64 - fill_ ? n : 64 - fill_;
      std::memcpy(buf_ + fill_, p, take);
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ < 64) return;
      block(buf_);
      fill_ = 0;
    }
    for (; n >= 64; p += 64, n -= 64) block(p);
    std::memcpy(buf_, p, n);
    fill_ = n;
  }

  // The digest as 64 lower-case hex digits (as sha256sum prints it). Ends the hash: call
  // reset() before hashing anything else.
  std::string hex() {
    const uint64_t hashed = total_;
    uint64_t bits = total_ * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (fill_ < 56 ? 56 : 120) - fill_;
    update(pad, padlen);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (56 - 8 * i));
    update(len, 8);
    char out[65];
    for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h_[i]);
    total_ = hashed;  // bytes() stays what was hashed, not the padding
    return std::string(out, 64);
  }

  uint64_t bytes() const { return total_; }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void block(const uint8_t* p) {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
    h_[5] += f;
    h_[6] += g;
    h_[7] += h;
  }

  uint32_t h_[8];
  uint64_t total_;
  uint8_t buf_[64];
  size_t fill_;
};

// `limit` bytes of splitmix64 output from `seed`, little-endian words; the stream does
// not depend on how it is cut into read() calls.
class SeededStream {
 public:
  SeededStream(uint64_t seed, uint64_t limit) : state_(seed), left_(limit) {}

  // Fills up to n bytes; returns how many (0 at the end).
  size_t read(uint8_t* out, size_t n) {
    if (n > left_) n = size_t(left_);
    size_t done = 0;
    while (done < n) {
      if (have_ == 0 && n - done >= 8) {  // whole words straight into out
        uint64_t z = next();
        for (int i = 0; i < 8; ++i) out[done + i] = uint8_t(z >> (8 * i));
        done += 8;
        continue;
      }
      if (have_ == 0) {
        uint64_t z = next();
        for (int i = 0; i < 8; ++i) word_[i] = uint8_t(z >> (8 * i));
        have_ = 8;
      }
      size_t take = n - done < have_ ? n - done : have_;
      std::memcpy(out + done, word_ + (8 - have_), take);
      have_ -= take;
      done += take;
    }
    left_ -= n;
    return n;
  }

  uint64_t left() const { return left_; }

 private:
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  uint64_t state_;
  uint64_t left_;
  uint8_t word_[8] = {};
  size_t have_ = 0;
};

}  // namespace utcp::examples
