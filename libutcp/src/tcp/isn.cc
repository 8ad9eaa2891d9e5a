// isn.cc - SipHash-2-4 and the RFC 6528 ISN generator.
#include "tcp/isn.h"

#include <sys/random.h>

#include <cerrno>
#include <random>

namespace utcp {
namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct SipState {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
};

}  // namespace

uint64_t siphash24(const std::array<uint8_t, 16>& key, std::span<const uint8_t> data) {
  const uint64_t k0 = load_le64(key.data()), k1 = load_le64(key.data() + 8);
  SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
             k1 ^ 0x7465646279746573ULL};
  const size_t n = data.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t m = load_le64(data.data() + i);
    s.v3 ^= m;
    s.round();
    s.round();
    s.v0 ^= m;
  }
  uint64_t b = uint64_t(n) << 56;
  for (size_t j = 0; i + j < n; ++j) b |= uint64_t(data[i + j]) << (8 * j);
  s.v3 ^= b;
  s.round();
  s.round();
  s.v0 ^= b;
  s.v2 ^= 0xff;
  for (int r = 0; r < 4; ++r) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

std::array<uint8_t, 16> IsnGenerator::random_key() {
  // getrandom(2): the kernel's CSPRNG in one system call. std::random_device is the
  // fallback only: constructing one probes the CPU (cpuid, rdrand), which costs tens of
  // microseconds where cpuid traps to a hypervisor, and a Stack takes two keys.
  std::array<uint8_t, 16> k;
  size_t got = 0;
  while (got < k.size()) {
    ssize_t n = ::getrandom(k.data() + got, k.size() - got, 0);
    if (n > 0) got += size_t(n);
    else if (n < 0 && errno != EINTR) break;
  }
  if (got == k.size()) return k;
  std::random_device rd;
  for (size_t i = 0; i < k.size(); i += 4) {
    uint32_t r = rd();
    for (int j = 0; j < 4; ++j) k[i + j] = uint8_t(r >> (8 * j));
  }
  return k;
}

SeqNum IsnGenerator::isn(Instant now, Ipv4Addr local_ip, uint16_t local_port, Ipv4Addr remote_ip,
                         uint16_t remote_port) const {
  uint8_t buf[12];
  auto put32 = [&](size_t off, uint32_t v) {
    for (int j = 0; j < 4; ++j) buf[off + j] = uint8_t(v >> (24 - 8 * j));
  };
  put32(0, local_ip.v);
  put32(4, remote_ip.v);
  put32(8, uint32_t(local_port) << 16 | remote_port);
  const uint32_t f = uint32_t(siphash24(key_, buf));
  const uint32_t m = uint32_t(uint64_t(now.time_since_epoch().count()) / 4);
  return SeqNum(m + f);
}

}  // namespace utcp
