// fault.cc - the FaultInjector Device wrapper.
#include "device/fault.h"

#include <algorithm>

namespace utcp {

namespace {
FaultConfig other_stream(FaultConfig c) {
  c.seed = ~c.seed * 0x9e3779b97f4a7c15ULL;
  return c;
}
// Frames the injector may hold before tx_buffer reports full.
constexpr size_t kMaxStaged = 256;
}  // namespace

FaultInjector::FaultInjector(Device& inner, const FaultConfig& rx, const FaultConfig& tx)
    : inner_(inner), rx_(rx), tx_(other_stream(tx)), staged_(kMaxStaged) {}

FaultInjector::FaultInjector(Device& inner, const FaultConfig& both)
    : FaultInjector(inner, both, both) {}

DeviceCaps FaultInjector::caps() const {
  DeviceCaps c = inner_.caps();
  // Corruption must be visible to the stack, and frames pass through our own buffers.
  c.rx_checksum_verified = false;
  c.tx_checksum_offload = false;
  c.tx_tcp_checksum_offload = false;
  return c;
}

size_t FaultInjector::receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                              size_t max) {
  drain_tx(now);
  // Everything the inner device has now enters the rx line; what is due comes out.
  while (inner_.receive(now, [&](std::span<const uint8_t> f) { rx_.push(now, f); }, 64) > 0) {
  }
  return rx_.pop_due(now, fn, max);
}

std::span<uint8_t> FaultInjector::tx_buffer(size_t len) { return staged_.buffer(len); }

void FaultInjector::tx_commit(size_t len) { staged_.commit(len); }

void FaultInjector::flush(Instant now) {
  staged_.drain([&](std::span<const uint8_t> f) { tx_.push(now, f); });
  drain_tx(now);
}

void FaultInjector::drain_tx(Instant now) {
  bool sent = false;
  for (auto f = tx_.front_due(now); !f.empty(); f = tx_.front_due(now)) {
    if (!inner_.transmit(f)) break;  // inner full: keep the frame, retry later
    tx_.pop();
    sent = true;
  }
  if (sent) inner_.flush(now);
}

Instant FaultInjector::poll_at() const {
  return std::min({inner_.poll_at(), rx_.next_at(), tx_.next_at()});
}

}  // namespace utcp
