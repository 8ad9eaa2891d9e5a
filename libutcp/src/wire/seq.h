// seq.h - TCP sequence numbers as a type with wrap-around comparison (RFC 9293 §3.4).
#pragma once

#include <compare>
#include <cstdint>

namespace utcp {

class SeqNum {
 public:
  constexpr SeqNum() = default;
  constexpr explicit SeqNum(uint32_t v) : v_(v) {}
  constexpr uint32_t raw() const { return v_; }

  constexpr SeqNum operator+(uint32_t n) const { return SeqNum(v_ + n); }
  constexpr SeqNum operator-(uint32_t n) const { return SeqNum(v_ - n); }
  constexpr SeqNum& operator+=(uint32_t n) { v_ += n; return *this; }
  constexpr SeqNum& operator-=(uint32_t n) { v_ -= n; return *this; }
  // Signed distance from `o` to this, valid while |distance| < 2^31.
  constexpr int32_t operator-(SeqNum o) const { return static_cast<int32_t>(v_ - o.v_); }

  constexpr bool operator==(const SeqNum&) const = default;
  // RFC 9293 §3.4: comparisons are modulo 2^32.
  constexpr std::strong_ordering operator<=>(SeqNum o) const { return (*this - o) <=> 0; }

 private:
  uint32_t v_ = 0;
};

inline constexpr SeqNum max(SeqNum a, SeqNum b) { return a < b ? b : a; }
inline constexpr SeqNum min(SeqNum a, SeqNum b) { return a < b ? a : b; }

}  // namespace utcp
