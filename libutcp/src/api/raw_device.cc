// raw_device.cc - RawDevice: wraps injected IPv4 in Ethernet, unwraps what the stack sends.
#include "api/raw_device.h"

#include <algorithm>

#include "wire/ethernet.h"

namespace utcp {

RawDevice::RawDevice(uint32_t mtu, MacAddr stack_mac, MacAddr peer_mac)
    : mtu_(mtu), stack_mac_(stack_mac), peer_mac_(peer_mac) {}

DeviceCaps RawDevice::caps() const {
  DeviceCaps c;
  c.mtu = mtu_;
  c.max_tx_frame = c.max_rx_frame = mtu_ + uint32_t(EthernetRepr::kHeaderLen);
  return c;
}

size_t RawDevice::receive(Instant, const std::function<void(std::span<const uint8_t>)>& fn,
                          size_t max) {
  size_t n = 0;
  while (n < max && !in_.empty()) {
    // Take the frame out first: fn may inject more (it does not here, but stay safe).
    std::vector<uint8_t> f = std::move(in_.front());
    in_.pop_front();
    fn(f);
    ++n;
  }
  return n;
}

std::span<uint8_t> RawDevice::tx_buffer(size_t len) {
  if (len > mtu_ + EthernetRepr::kHeaderLen) return {};
  tx_.resize(len);
  return tx_;
}

void RawDevice::tx_commit(size_t len) {
  if (len < EthernetRepr::kHeaderLen || len > tx_.size()) return;
  out_.emplace_back(tx_.begin() + EthernetRepr::kHeaderLen, tx_.begin() + len);
}

bool RawDevice::inject(std::span<const uint8_t> pkt) {
  if (pkt.empty() || pkt.size() > mtu_) return false;
  std::vector<uint8_t> f(EthernetRepr::kHeaderLen + pkt.size());
  EthernetRepr eth{stack_mac_, peer_mac_, uint16_t(EtherType::kIpv4)};
  emit_ethernet(eth, f);
  std::copy(pkt.begin(), pkt.end(), f.begin() + EthernetRepr::kHeaderLen);
  in_.push_back(std::move(f));
  return true;
}

std::span<const uint8_t> RawDevice::front() const {
  if (out_.empty()) return {};
  return out_.front();
}

void RawDevice::pop() {
  if (!out_.empty()) out_.pop_front();
}

}  // namespace utcp
