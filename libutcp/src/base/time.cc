// time.cc - the real monotonic clock behind utcp::Clock::now().
#include "base/time.h"

#include <ctime>

namespace utcp {

Clock::time_point Clock::now() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return time_point(duration(int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000));
}

}  // namespace utcp
