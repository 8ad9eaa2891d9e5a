// checksum_test.cc - the fast checksum against a plain RFC 1071 reference; incremental updates; SeqNum.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/seq.h"

namespace utcp {
namespace {

// RFC 1071 §4.1, word by word, as plainly as possible.
uint16_t reference_checksum(const uint8_t* p, size_t n, uint32_t extra = 0) {
  uint64_t sum = extra;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n % 2 == 1) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// Ones'-complement values have two zeros; compare modulo that.
bool same_ones(uint16_t a, uint16_t b) { return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0); }

TEST(Checksum, MatchesReferenceForEveryLengthAndAlignment) {
  std::mt19937_64 rng(1);
  std::vector<uint8_t> buf(2000 + 16);
  for (auto& b : buf) b = uint8_t(rng());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t len = 0; len <= 2000; ++len) {
      const uint8_t* p = buf.data() + align;
      ASSERT_EQ(checksum_fold(checksum_add({p, len})), reference_checksum(p, len))
          << "len " << len << " align " << align;
    }
  }
}

TEST(Checksum, AllOnesDataDoesNotOverflow) {
  std::vector<uint8_t> ff(65536 * 4 + 7, 0xff);
  for (size_t len : {size_t(0), size_t(1), size_t(31), size_t(65535), ff.size()}) {
    EXPECT_EQ(checksum_fold(checksum_add({ff.data(), len})), reference_checksum(ff.data(), len)) << len;
  }
}

TEST(Checksum, PiecesChainAndCombine) {
  std::mt19937_64 rng(2);
  std::vector<uint8_t> buf(1501);
  for (auto& b : buf) b = uint8_t(rng());
  const uint16_t whole = reference_checksum(buf.data(), buf.size());
  for (size_t cut = 0; cut <= buf.size(); cut += 2) {
    std::span<const uint8_t> all(buf);
    uint32_t chained = checksum_add(all.subspan(cut), checksum_add(all.first(cut)));
    EXPECT_EQ(checksum_fold(chained), whole);
    uint32_t combined = checksum_combine(checksum_add(all.first(cut)), checksum_add(all.subspan(cut)));
    EXPECT_EQ(checksum_fold(combined), whole);
  }
  // Large incoming partial sums still fold correctly.
  EXPECT_EQ(checksum_fold(checksum_add(std::span(buf).first(2), 0xffffffff)),
            reference_checksum(buf.data(), 2, 0xffff + 0xffff));
}

TEST(Checksum, Rfc1071WorkedExample) {
  // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (before complement).
  const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(checksum_fold(checksum_add(d)), uint16_t(~0xddf2));
}

TEST(Checksum, PseudoHeader) {
  // 10.0.0.1 -> 10.0.0.2, TCP, length 40: 0a00+0001+0a00+0002+0006+0028.
  EXPECT_EQ(pseudo_header_sum(Ipv4Addr::of(10, 0, 0, 1), Ipv4Addr::of(10, 0, 0, 2), 6, 40),
            0x0a00u + 0x0001 + 0x0a00 + 0x0002 + 0x0006 + 0x0028);
}

TEST(Checksum, IncrementalUpdateMatchesRecompute) {
  std::mt19937_64 rng(3);
  for (int iter = 0; iter < 20000; ++iter) {
    uint8_t data[40];
    for (auto& b : data) b = uint8_t(rng());
    if (iter % 97 == 0) std::fill(std::begin(data), std::end(data), 0xff);
    const uint16_t before = checksum_fold(checksum_add(data));
    if (iter % 2 == 0) {
      const size_t off = 2 * (rng() % 20);
      const uint16_t old_val = wire::load_be16(data + off);
      const auto new_val = uint16_t(iter % 5 == 0 ? 0 : rng());
      wire::store_be16(data + off, new_val);
      const uint16_t after = checksum_fold(checksum_add(data));
      ASSERT_TRUE(same_ones(checksum_update16(before, old_val, new_val), after))
          << iter << ": " << checksum_update16(before, old_val, new_val) << " vs " << after;
    } else {
      const size_t off = 2 * (rng() % 19);
      const uint32_t old_val = wire::load_be32(data + off);
      const auto new_val = uint32_t(rng());
      wire::store_be32(data + off, new_val);
      const uint16_t after = checksum_fold(checksum_add(data));
      ASSERT_TRUE(same_ones(checksum_update32(before, old_val, new_val), after)) << iter;
    }
  }
}

TEST(Checksum, IncrementalUpdateKeepsHeaderValid) {
  // An updated checksum must still verify (sum to zero) - the property receivers check.
  uint8_t ip[20] = {0x45, 0, 0, 0x3c, 0x19, 0xd5, 0x40, 0, 0x40, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
  wire::store_be16(ip + 10, checksum_fold(checksum_add(ip)));
  for (uint8_t ttl = 64; ttl > 0; --ttl) {
    const uint16_t old_word = wire::load_be16(ip + 8);
    ip[8] = uint8_t(ttl - 1);
    wire::store_be16(ip + 10, checksum_update16(wire::load_be16(ip + 10), old_word, wire::load_be16(ip + 8)));
    ASSERT_EQ(checksum_fold(checksum_add(ip)), 0) << int(ttl);
  }
}

TEST(SeqNum, WrapAroundComparison) {
  const SeqNum top(0xfffffff0u);
  const SeqNum wrapped = top + 0x20;
  EXPECT_EQ(wrapped.raw(), 0x10u);
  EXPECT_LT(top, wrapped);
  EXPECT_GT(wrapped, top);
  EXPECT_EQ(wrapped - top, 0x20);
  EXPECT_EQ(top - wrapped, -0x20);
  EXPECT_EQ(max(top, wrapped), wrapped);
  EXPECT_EQ(min(top, wrapped), top);
  SeqNum s(5);
  s -= 10;
  EXPECT_EQ(s.raw(), 0xfffffffbu);
  s += 10;
  EXPECT_EQ(s, SeqNum(5));
  // RFC 9293 §3.4: comparisons hold within half the space either way.
  EXPECT_LT(SeqNum(0), SeqNum(0x7fffffffu));
  EXPECT_GT(SeqNum(0), SeqNum(0x80000001u));
}

}  // namespace
}  // namespace utcp
