// profiles.cc - the table of profiles.h.
#include "api/profiles.h"

#include <array>

namespace utcp {

namespace {
constexpr uint32_t kKiB = 1024;
const std::array<Profile, 4> kProfiles = {{
    {"default", false, Duration(40'000), 2, 1024 * kKiB, 1024 * kKiB, "cubic", Duration(0)},
    {"latency", true, Duration(0), 1, 256 * kKiB, 256 * kKiB, "cubic", Duration(50)},
    {"rpc", true, Duration(1'000), 2, 256 * kKiB, 256 * kKiB, "cubic", Duration(0)},
    {"bulk", false, Duration(40'000), 4, 4096 * kKiB, 4096 * kKiB, "cubic", Duration(0)},
}};
}  // namespace

const Profile* find_profile(std::string_view name) {
  for (const Profile& p : kProfiles)
    if (p.name == name) return &p;
  return nullptr;
}

std::span<const Profile> all_profiles() { return kProfiles; }

}  // namespace utcp
