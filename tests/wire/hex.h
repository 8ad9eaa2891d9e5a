// hex.h - test helper: byte vectors from hex strings (spaces ignored).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace utcp::test {

inline std::vector<uint8_t> hex(std::string_view s) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::invalid_argument("bad hex digit");
  };
  std::vector<uint8_t> out;
  int hi = -1;
  for (char c : s) {
    if (c == ' ' || c == '\n') continue;
    if (hi < 0) {
      hi = nib(c);
    } else {
      out.push_back(uint8_t(hi << 4 | nib(c)));
      hi = -1;
    }
  }
  if (hi >= 0) throw std::invalid_argument("odd number of hex digits");
  return out;
}

}  // namespace utcp::test
