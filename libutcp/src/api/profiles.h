// profiles.h - named per-socket TCP profiles (the paper's §5: protocols specialised per
// application): one setsockopt picks a coherent set of knobs instead of many.
//
//   default  Linux-like: Nagle, 40 ms delayed ACKs every 2nd segment, 1 MiB buffers, CUBIC.
//   latency  no Nagle, every segment ACKed at once, 256 KiB buffers, blocking calls
//            busy-poll 50 µs before sleeping: small request/response traffic.
//   rpc      no Nagle, ACKs delayed 1 ms at most (a reply usually carries them), 256 KiB
//            buffers: request/response where the reply follows quickly.
//   bulk     Nagle, stretch ACKs (every 4th full segment, 40 ms bound), 4 MiB buffers,
//            CUBIC: long transfers over long fat paths, fewer ACKs to process.
// bench/profile_bench measures each on the in-memory link (docs/profiles.md).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/time.h"

namespace utcp {

struct Profile {
  std::string_view name;
  bool nodelay;
  Duration delayed_ack;
  uint32_t ack_every;  // full-sized segments per ACK
  uint32_t rcvbuf, sndbuf;
  std::string_view congestion;
  Duration busy_poll;  // blocking calls spin this long before sleeping (C API)
};

// The profile called `name`, or nullptr.
const Profile* find_profile(std::string_view name);
std::span<const Profile> all_profiles();

}  // namespace utcp
