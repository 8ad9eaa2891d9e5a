// assembler.h - bounded bookkeeping of out-of-order byte ranges past RCV.NXT.
//
// The bytes themselves live in the receive RingBuffer's free space; this only records
// which ranges (offsets relative to RCV.NXT) hold data. At most kMaxRanges holes are
// tracked: a segment that would need more is refused (the sender retransmits it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace utcp {

class Assembler {
 public:
  static constexpr size_t kMaxRanges = 32;
  struct Range {
    uint32_t start, end;  // [start, end) relative to RCV.NXT
  };

  bool empty() const { return n_ == 0; }
  size_t ranges() const { return n_; }
  const Range& range(size_t i) const { return r_[i]; }

  // Records [off, off+len). Returns false (nothing recorded) when it would need more
  // than kMaxRanges ranges.
  bool add(uint32_t off, uint32_t len) {
    if (len == 0) return true;
    uint32_t s = off, e = off + len;
    size_t i = 0;
    while (i < n_ && r_[i].end < s) ++i;  // first range that touches or follows [s, e)
    size_t j = i;
    while (j < n_ && r_[j].start <= e) {  // ranges merged into the new one
      s = min(s, r_[j].start);
      e = max(e, r_[j].end);
      ++j;
    }
    const size_t merged = j - i;
    if (merged == 0 && n_ == kMaxRanges) return false;
    // Replace r_[i, j) by one range.
    if (merged == 0) {
      for (size_t k = n_; k > i; --k) r_[k] = r_[k - 1];
      ++n_;
    } else if (merged > 1) {
      for (size_t k = j; k < n_; ++k) r_[k - merged + 1] = r_[k];
      n_ -= merged - 1;
    }
    r_[i] = {s, e};
    return true;
  }

  // If data now starts at offset 0, removes that range and returns its length (bytes
  // now contiguous at RCV.NXT), shifting the rest; 0 otherwise.
  uint32_t pop_front() {
    if (n_ == 0 || r_[0].start != 0) return 0;
    uint32_t len = r_[0].end;
    for (size_t k = 1; k < n_; ++k) r_[k - 1] = {r_[k].start - len, r_[k].end - len};
    --n_;
    return len;
  }

  // RCV.NXT advanced by `n` bytes that were not in any range (in-order arrival): drops
  // what is now behind it.
  void shift(uint32_t n) {
    size_t w = 0;
    for (size_t k = 0; k < n_; ++k) {
      if (r_[k].end <= n) continue;
      r_[w++] = {r_[k].start > n ? r_[k].start - n : 0, r_[k].end - n};
    }
    n_ = w;
  }

  void clear() { n_ = 0; }

 private:
  static uint32_t min(uint32_t a, uint32_t b) { return a < b ? a : b; }
  static uint32_t max(uint32_t a, uint32_t b) { return a < b ? b : a; }
  std::array<Range, kMaxRanges> r_{};
  size_t n_ = 0;
};

}  // namespace utcp
