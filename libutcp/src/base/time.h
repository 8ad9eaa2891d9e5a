// time.h - the library's notion of time: a monotonic microsecond clock that callers pass in.
//
// Protocol code never reads a clock (STYLE.md: sockets read no clock); the socket layer
// or a test passes `Instant`s in, so tests run on a virtual clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace utcp {

struct Clock {
  using rep = int64_t;
  using period = std::micro;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<Clock>;
  static constexpr bool is_steady = true;
  // The real monotonic clock, for the socket layer; protocol code must not call it.
  static time_point now() noexcept;
};

using Duration = Clock::duration;
using Instant = Clock::time_point;

inline constexpr Instant kInstantZero{};
inline constexpr Instant kInstantNever{Duration::max()};

}  // namespace utcp
