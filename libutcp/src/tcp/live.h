// live.h - global counters of live library objects, for leak checks at test teardown.
#pragma once

#include <atomic>
#include <cstdint>

namespace utcp {

enum class LiveKind : int { kConnection = 0, kBuffer, kStack, kSocket, kCount };

inline std::atomic<int64_t>& live_counter(LiveKind k) {
  static std::atomic<int64_t> counters[int(LiveKind::kCount)];
  return counters[int(k)];
}
inline int64_t live_count(LiveKind k) { return live_counter(k).load(std::memory_order_relaxed); }

// A member that counts its owner: construct/copy increments, destroy decrements.
template <LiveKind K>
struct LiveToken {
  LiveToken() { live_counter(K).fetch_add(1, std::memory_order_relaxed); }
  LiveToken(const LiveToken&) : LiveToken() {}
  LiveToken& operator=(const LiveToken&) { return *this; }
  ~LiveToken() { live_counter(K).fetch_sub(1, std::memory_order_relaxed); }
};

}  // namespace utcp
