// isn.h - initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret), F = SipHash-2-4.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/time.h"
#include "wire/seq.h"
#include "wire/types.h"

namespace utcp {

// SipHash-2-4 (Aumasson & Bernstein) of `data` under a 128-bit key.
uint64_t siphash24(const std::array<uint8_t, 16>& key, std::span<const uint8_t> data);

class IsnGenerator {
 public:
  // A per-stack secret; RFC 6528 §3 asks for a random one (see random_key()).
  explicit IsnGenerator(const std::array<uint8_t, 16>& key) : key_(key) {}
  static std::array<uint8_t, 16> random_key();

  // RFC 6528 §3: M is a timer ticking every 4 microseconds.
  SeqNum isn(Instant now, Ipv4Addr local_ip, uint16_t local_port, Ipv4Addr remote_ip,
             uint16_t remote_port) const;

 private:
  std::array<uint8_t, 16> key_;
};

}  // namespace utcp
