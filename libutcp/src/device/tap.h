// tap.h - TapDevice: a Linux TAP interface as a Device, so utcp can exchange frames with the kernel's own stack without the module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "device/device.h"
#include "device/link.h"
#include "wire/types.h"

namespace utcp {

// Frames written here enter the kernel as if received on interface `name`; frames the
// kernel sends out of `name` are read here. No offloads are negotiated, so the kernel
// hands over complete frames with final checksums, each at most mtu + 14 bytes.
class TapDevice final : public Device {
 public:
  // Creates (or attaches to) TAP interface `name`, non-blocking, close-on-exec. Returns
  // nullptr with `error` saying what to do (CAP_NET_ADMIN, the tun module, ...).
  static std::unique_ptr<TapDevice> open(const std::string& name, std::string* error);
  ~TapDevice() override;
  TapDevice(const TapDevice&) = delete;
  TapDevice& operator=(const TapDevice&) = delete;

  // Kernel-side configuration of the interface (needs CAP_NET_ADMIN). Each returns 0
  // or -errno with `error` set.
  int set_kernel_address(Ipv4Addr addr, uint8_t prefix_len, std::string* error);
  int set_mtu(uint32_t mtu, std::string* error);
  int set_up(std::string* error);
  // The kernel side's MAC address (the one its frames carry as source).
  int kernel_mac(MacAddr* out, std::string* error) const;

  const std::string& name() const { return name_; }
  int fd() const { return fd_; }  // readable when receive() has frames: for poll/epoll
  int wait_fd() const override { return fd_; }

  DeviceCaps caps() const override;
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                 size_t max = 64) override;
  std::span<uint8_t> tx_buffer(size_t len) override { return staged_.buffer(len); }
  void tx_commit(size_t len) override { staged_.commit(len); }
  // Writes every committed frame. A frame the kernel refuses is dropped and counted.
  void flush(Instant now) override;

  uint64_t tx_errors() const { return tx_errors_; }
  int last_tx_errno() const { return last_tx_errno_; }

 private:
  TapDevice(int fd, std::string name);
  int ifreq_ioctl(unsigned long req, void* ifr, const char* what, std::string* error) const;

  int fd_;
  std::string name_;
  uint32_t mtu_ = 1500;
  TxStaging staged_{256};
  std::vector<uint8_t> rx_buf_;
  uint64_t tx_errors_ = 0;
  int last_tx_errno_ = 0;
};

}  // namespace utcp
