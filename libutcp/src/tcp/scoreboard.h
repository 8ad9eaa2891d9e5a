// scoreboard.h - the SACK sender's scoreboard (RFC 6675 §3): SACKed ranges above SND.UNA;
// and the per-segment transmission log RACK-TLP needs (RFC 8985 §5.2).
//
// The scoreboard is bounded (kMaxRanges disjoint, sorted ranges) and allocation-free.
// When full, the highest range is forgotten: that only makes the sender more conservative
// (the data counts as in flight and may be retransmitted, RFC 2018 §8 allows reneging).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "base/time.h"
#include "wire/seq.h"

namespace utcp {

class Scoreboard {
 public:
  static constexpr size_t kMaxRanges = 64;
  struct Range {
    SeqNum left, right;  // [left, right)
  };
  // A stretch of un-SACKed sequence space and what RFC 6675 says of it.
  struct Hole {
    SeqNum left, right;
    bool lost;  // IsLost() of every octet in it (constant across a hole)
  };

  bool empty() const { return n_ == 0; }
  size_t ranges() const { return n_; }
  const Range& range(size_t i) const { return r_[i]; }
  void clear() { n_ = 0; }
  // Highest SACKed sequence number + 1 (only when !empty()).
  SeqNum high() const { return r_[n_ - 1].right; }

  // Records [left, right); returns the number of octets newly SACKed.
  uint32_t add(SeqNum left, SeqNum right) {
    if (!(left < right)) return 0;
    size_t i = 0;
    while (i < n_ && r_[i].right < left) ++i;
    size_t j = i;
    uint32_t covered = 0;  // octets of [left, right) already SACKed
    SeqNum l = left, r = right;
    while (j < n_ && r_[j].left <= right) {
      const SeqNum ol = max(r_[j].left, left), orr = min(r_[j].right, right);
      if (ol < orr) covered += uint32_t(orr - ol);
      l = min(l, r_[j].left);
      r = max(r, r_[j].right);
      ++j;
    }
    const size_t merged = j - i;
    if (merged == 0) {
      if (n_ == kMaxRanges) {
        if (i == n_) return 0;  // above everything kept: forget it
        --n_;                   // forget the highest range to make room
      }
      for (size_t k = n_; k > i; --k) r_[k] = r_[k - 1];
      ++n_;
    } else if (merged > 1) {
      for (size_t k = j; k < n_; ++k) r_[k - merged + 1] = r_[k];
      n_ -= merged - 1;
    }
    r_[i] = {l, r};
    return uint32_t(right - left) - covered;
  }

  // SND.UNA moved to `una`: drops what it covers.
  void advance(SeqNum una) {
    size_t w = 0;
    for (size_t k = 0; k < n_; ++k) {
      if (r_[k].right <= una) continue;
      r_[w++] = {max(r_[k].left, una), r_[k].right};
    }
    n_ = w;
  }

  // The end of the SACKed range holding `s`, or `s` itself when it is not SACKed.
  SeqNum sacked_end(SeqNum s) const {
    for (size_t k = 0; k < n_; ++k)
      if (r_[k].left <= s && s < r_[k].right) return r_[k].right;
    return s;
  }
  // Octets from `s` up to the next SACKed range (or `limit`).
  uint32_t unsacked_run(SeqNum s, SeqNum limit) const {
    for (size_t k = 0; k < n_; ++k)
      if (s < r_[k].left) return uint32_t(min(r_[k].left, limit) - s);
    return s < limit ? uint32_t(limit - s) : 0;
  }

  bool is_sacked(SeqNum s) const {
    for (size_t k = 0; k < n_; ++k)
      if (r_[k].left <= s && s < r_[k].right) return true;
    return false;
  }

  // RFC 6675 §4 IsLost(seq): "DupThresh discontiguous SACKed sequences have arrived above
  // 'SeqNum' or more than (DupThresh - 1) * SMSS bytes with sequence numbers greater than
  // 'SeqNum' have been SACKed."
  bool is_lost(SeqNum s, uint32_t smss, uint32_t dupthresh = 3) const {
    uint32_t count = 0, bytes = 0;
    for (size_t k = n_; k-- > 0;) {
      if (r_[k].right <= s) break;
      ++count;
      bytes += uint32_t(r_[k].right - max(r_[k].left, s + 1));
      if (count >= dupthresh || bytes > (dupthresh - 1) * smss) return true;
    }
    return false;
  }

  // Calls f(Hole) for each un-SACKed stretch of [una, max_sent), lowest first, until f
  // returns false.
  template <class F>
  void for_each_hole(SeqNum una, SeqNum max_sent, uint32_t smss, F&& f) const {
    SeqNum at = una;
    size_t k = 0;
    for (;;) {
      while (k < n_ && r_[k].left <= at) at = max(at, r_[k++].right);
      if (!(at < max_sent)) return;
      const SeqNum end = k < n_ ? min(r_[k].left, max_sent) : max_sent;
      if (!f(Hole{at, end, is_lost(at, smss)})) return;
      at = end;
    }
  }

 private:
  static SeqNum min(SeqNum a, SeqNum b) { return a < b ? a : b; }
  static SeqNum max(SeqNum a, SeqNum b) { return a < b ? b : a; }
  std::array<Range, kMaxRanges> r_{};
  size_t n_ = 0;
};

// RFC 8985 §5.2 "per-segment variables": each segment sent and not yet cumulatively
// acknowledged, in sequence order, contiguous from SND.UNA to SND.MAX. The vector grows
// to the largest flight seen and is then reused (no allocation in the steady state).
class SentLog {
 public:
  struct Seg {
    SeqNum start, end;  // [start, end); our FIN counts one
    Instant xmit;       // latest transmission (RFC 8985 Segment.xmit_ts)
    bool retransmitted = false;
    bool delivered = false;  // SACKed (cumulatively acknowledged ones are dropped)
    bool lost = false;       // RACK or a timeout marked it lost; cleared when resent
  };

  bool empty() const { return head_ == v_.size(); }
  size_t size() const { return v_.size() - head_; }
  Seg& operator[](size_t i) { return v_[head_ + i]; }
  const Seg& operator[](size_t i) const { return v_[head_ + i]; }
  const Seg& back() const { return v_.back(); }
  void clear() {
    v_.clear();
    head_ = 0;
  }

  // A transmission of [s, e): appended when new, else the segments it covers take the
  // new time (split where the range cuts one).
  void on_send(SeqNum s, SeqNum e, Instant now, bool retransmission) {
    if (!(s < e)) return;
    if (empty() || s >= v_.back().end) {
      v_.push_back(Seg{s, e, now, retransmission});
      return;
    }
    size_t i = index_after(s);
    if (i < size() && (*this)[i].start < s) split(i++, s);
    for (; i < size() && (*this)[i].start < e; ++i) {
      if (e < (*this)[i].end) split(i, e);
      Seg& g = (*this)[i];
      g.xmit = now;
      g.retransmitted = true;
      g.lost = false;
    }
    if (v_.back().end < e) v_.push_back(Seg{v_.back().end, e, now, retransmission});
  }

  // SND.UNA moved to `una`: drops what it covers.
  void advance(SeqNum una) {
    while (!empty() && v_[head_].end <= una) ++head_;
    if (!empty() && v_[head_].start < una) v_[head_].start = una;
    if (empty()) {
      clear();
    } else if (head_ > 64 && head_ > v_.size() / 2) {
      v_.erase(v_.begin(), v_.begin() + ptrdiff_t(head_));  // shifts; keeps the capacity
      head_ = 0;
    }
  }

  // The first segment whose end lies above `s` (size() when none).
  size_t index_after(SeqNum s) const {
    auto it = std::upper_bound(v_.begin() + ptrdiff_t(head_), v_.end(), s,
                               [](SeqNum x, const Seg& g) { return x < g.end; });
    return size_t(it - v_.begin()) - head_;
  }

 private:
  void split(size_t i, SeqNum at) {
    Seg tail = (*this)[i];
    tail.start = at;
    (*this)[i].end = at;
    v_.insert(v_.begin() + ptrdiff_t(head_ + i + 1), tail);
  }
  std::vector<Seg> v_;
  size_t head_ = 0;
};

}  // namespace utcp
