// gso.h - SoftGso: segmentation offload in software over a device that takes only
// MTU-sized frames.
//
// Claims what the kernel module offers (DeviceCaps::gso(), tx_tcp_checksum_offload):
// a TCP frame may be longer than the MTU and carry only the pseudo-header sum in its
// checksum. Each committed TCP frame is cut as Linux's GSO cuts one (tcp_gso_segment,
// inet_gso_segment): segments of MTU - IP header - TCP header payload bytes, each with
// a copy of the headers, the sequence number advanced, FIN and PSH only on the last,
// CWR only on the first, IPv4 ident counting up, every checksum completed; the pieces
// go to the inner device (queued while it is full: tx_buffer() then pushes back). Other
// frames pass unchanged. The in-memory link with a
// SoftGso in front of each end is the test bed for the stack's TSO sends; on a TAP
// device it saves the stack's per-segment header work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "device/device.h"

namespace utcp {

struct SoftGsoStats {
  uint64_t frames = 0;     // committed to us
  uint64_t gso_frames = 0; // of those, cut into more than one segment
  uint64_t segments = 0;   // handed to the inner device
  uint64_t dropped = 0;    // malformed, or too long for the inner device
};

class SoftGso final : public Device {
 public:
  // `max_frame`: the largest frame accepted (at most 14 + 65535). `payload_area`: bytes
  // of memory offered as tx_payload_area() (split frames are joined at commit).
  explicit SoftGso(Device& inner, size_t max_frame = 14 + 65535, size_t payload_area = 0);

  DeviceCaps caps() const override;
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                 size_t max = 64) override {
    return inner_.receive(now, fn, max);
  }
  bool rx_frame_checksum_ok() const override { return inner_.rx_frame_checksum_ok(); }
  std::span<uint8_t> tx_buffer(size_t len) override;
  void tx_commit(size_t len) override;
  std::span<uint8_t> tx_payload_area(size_t min_size) override {
    return area_.size() >= min_size ? std::span<uint8_t>(area_) : std::span<uint8_t>();
  }
  void tx_commit_split(size_t hdr_len, std::span<const uint8_t> payload) override;
  void flush(Instant now) override;
  Instant poll_at() const override { return inner_.poll_at(); }
  int wait_fd() const override { return inner_.wait_fd(); }
  utcp_app_info* app_info_area() override { return inner_.app_info_area(); }

  const SoftGsoStats& stats() const { return stats_; }

 private:
  // Hands one finished frame to the inner device, or queues it while the device is full.
  void emit(std::span<const uint8_t> frame);
  // Moves queued segments to the inner device while it takes them; true when none is left.
  bool drain();

  Device& inner_;
  std::vector<uint8_t> buf_;  // the frame being built (one at a time, as tx_buffer allows)
  std::vector<uint8_t> seg_;  // one segment being cut
  std::vector<uint8_t> area_;  // tx_payload_area()
  // Segments the inner device had no room for, in order; the buffers are reused.
  std::vector<std::vector<uint8_t>> pending_;
  size_t pending_head_ = 0, pending_n_ = 0;
  SoftGsoStats stats_;
};

}  // namespace utcp
