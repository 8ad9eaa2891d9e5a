// raw_device.h - a Device for the raw-packet API: IPv4 packets in and out, Ethernet added/removed.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "device/device.h"
#include "wire/types.h"

namespace utcp {

class RawDevice final : public Device {
 public:
  // `stack_mac` is put as destination on injected packets, `peer_mac` as source.
  RawDevice(uint32_t mtu, MacAddr stack_mac, MacAddr peer_mac);

  DeviceCaps caps() const override;
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                 size_t max) override;
  std::span<uint8_t> tx_buffer(size_t len) override;
  void tx_commit(size_t len) override;
  void flush(Instant) override {}

  // Queues an IPv4 packet for the stack; false when longer than the MTU or empty.
  bool inject(std::span<const uint8_t> ipv4_packet);
  // The oldest IPv4 packet sent by the stack (empty if none) and its removal.
  std::span<const uint8_t> front() const;
  void pop();
  size_t pending_out() const { return out_.size(); }

 private:
  uint32_t mtu_;
  MacAddr stack_mac_, peer_mac_;
  std::deque<std::vector<uint8_t>> in_, out_;
  std::vector<uint8_t> tx_;  // the frame being built
};

}  // namespace utcp
