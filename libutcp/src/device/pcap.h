// pcap.h - PcapWriter (classic libpcap format, Ethernet) and PcapTap, a Device wrapper that records both directions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/time.h"
#include "device/device.h"
#include "device/link.h"

namespace utcp {

// Writes the classic pcap format (magic 0xa1b2c3d4, version 2.4, LINKTYPE_ETHERNET,
// microsecond timestamps taken from the Instants passed in). Fields are written
// little-endian whatever the host, so files are byte-identical everywhere; readers
// detect the order from the magic.
class PcapWriter {
 public:
  using Sink = std::function<void(std::span<const uint8_t>)>;
  static constexpr uint32_t kLinktypeEthernet = 1;

  // Writes the global header to `sink` at once. Frames longer than `snaplen` are cut.
  explicit PcapWriter(Sink sink, uint32_t snaplen = 65535);
  // Creates (truncates) `path`; nullptr with `error` set when it cannot.
  static std::unique_ptr<PcapWriter> open(const std::string& path, std::string* error,
                                          uint32_t snaplen = 65535);

  void write(Instant ts, std::span<const uint8_t> frame);
  uint64_t frames() const { return frames_; }

 private:
  Sink sink_;
  uint32_t snaplen_;
  uint64_t frames_ = 0;
};

// Records every frame received from and transmitted to the inner device. Transmitted
// frames are stamped with the Instant of the flush() that sends them.
class PcapTap final : public Device {
 public:
  PcapTap(Device& inner, PcapWriter& writer) : inner_(inner), writer_(writer) {}

  DeviceCaps caps() const override { return inner_.caps(); }
  bool rx_frame_checksum_ok() const override { return inner_.rx_frame_checksum_ok(); }
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                 size_t max = 64) override;
  std::span<uint8_t> tx_buffer(size_t len) override;
  void tx_commit(size_t len) override;
  void flush(Instant now) override;
  Instant poll_at() const override { return inner_.poll_at(); }
  int wait_fd() const override { return inner_.wait_fd(); }
  utcp_app_info* app_info_area() override { return inner_.app_info_area(); }

 private:
  Device& inner_;
  PcapWriter& writer_;
  std::span<uint8_t> last_buffer_;
  // Copies of committed frames until flush() stamps them; unbounded, since the inner
  // device's own tx_buffer() is what pushes back.
  TxStaging pending_{SIZE_MAX};
};

}  // namespace utcp
