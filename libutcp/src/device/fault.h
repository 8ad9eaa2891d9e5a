// fault.h - FaultInjector: wraps any Device and loses, corrupts, duplicates, delays and reorders frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "device/device.h"
#include "device/link.h"

namespace utcp {

// Received frames pass through an rx DelayLine before the stack sees them; transmitted
// frames through a tx DelayLine before the inner device gets them. Delayed transmit
// frames go to the inner device at the first receive() or flush() at or after their
// due time (poll_at() says when). Both lines draw from their own seeded PRNG streams.
class FaultInjector final : public Device {
 public:
  FaultInjector(Device& inner, const FaultConfig& rx, const FaultConfig& tx);
  // The same knobs both ways (separate PRNG streams).
  FaultInjector(Device& inner, const FaultConfig& both);

  DeviceCaps caps() const override;
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                 size_t max = 64) override;
  std::span<uint8_t> tx_buffer(size_t len) override;
  void tx_commit(size_t len) override;
  void flush(Instant now) override;
  Instant poll_at() const override;
  // Delayed frames are due at poll_at(); the inner device signals arrivals.
  int wait_fd() const override { return inner_.wait_fd(); }
  utcp_app_info* app_info_area() override { return inner_.app_info_area(); }

  const LinkStats& rx_stats() const { return rx_.stats(); }
  const LinkStats& tx_stats() const { return tx_.stats(); }

 private:
  // Moves due transmit frames to the inner device; stops when it pushes back.
  void drain_tx(Instant now);

  Device& inner_;
  DelayLine rx_, tx_;
  TxStaging staged_;  // committed since the last flush()
};

}  // namespace utcp
