// kmod_device.h - a utcp::Device over an endpoint file of the utcp kernel module.
//
// The endpoint's RX/TX rings are mmap'd; receive() consumes RX descriptors in place,
// tx_buffer()/tx_commit() build frames directly in TX slots, flush() publishes them
// and sends the whole batch with one UTCP_IOC_TX. wait() sleeps in poll();
// flush_and_wait() sends and sleeps in one UTCP_IOC_TX_WAIT.
//
// Frames up to MTU + 14 bytes leave as built, so their checksums must be complete --
// unless the module says it completes TCP checksums (UTCP_ABI_F_TX_TCP_CSUM; caps()
// then offers tx_tcp_checksum_offload). A TCP frame longer than that (up to the slot
// size, at most 14 + 65535) leaves as one GSO frame: the module writes the
// pseudo-header sum and the stack or NIC segments it by the template's mss (or MTU -
// headers) and fills every checksum; caps().gso() says so. Received frames may be
// longer than the MTU (GRO) up to the slot size; those flagged UTCP_RXF_CSUM_OK need
// no checksum verification (rx_frame_checksum_ok()).
#pragma once

#include <linux/utcp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "device/device.h"

namespace utcp {

class KmodDevice final : public Device {
 public:
  // Takes ownership of `endpoint_fd` (also on failure). Reads the endpoint's layout
  // with UTCP_IOC_EP_INFO and maps its rings. `mtu` is the attached link's IP MTU.
  // Returns nullptr with `error` set when the fd is not a usable endpoint.
  static std::unique_ptr<KmodDevice> open(int endpoint_fd, uint32_t mtu, std::string* error);
  ~KmodDevice() override;
  KmodDevice(const KmodDevice&) = delete;
  KmodDevice& operator=(const KmodDevice&) = delete;

  DeviceCaps caps() const override;
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                 size_t max = 64) override;
  std::span<uint8_t> tx_buffer(size_t len) override;
  void tx_commit(size_t len) override;
  // With UTCP_ABI_F_TX_SPLIT, at least 4 TX slots and kMinPayloadArea bytes in half of
  // them: the upper half of the TX slots (frames are then built in the lower half
  // only), sent from with UTCP_TXF_SPLIT descriptors.
  std::span<uint8_t> tx_payload_area(size_t min_size) override;
  void tx_commit_split(size_t hdr_len, std::span<const uint8_t> payload) override;
  void flush(Instant now) override;
  bool rx_frame_checksum_ok() const override { return rx_csum_ok_; }

  // Sleeps until the RX ring has a frame or `timeout` passes (negative: forever).
  // Returns 1 when frames are there, 0 on timeout, -errno on error (-EPIPE when the
  // endpoint was destroyed or its control file closed).
  int wait(Duration timeout);
  // flush() and then wait(timeout), in one UTCP_IOC_TX_WAIT when the module offers it
  // (UTCP_ABI_F_TX_WAIT): a request and the sleep until its answer arrives cost one
  // system call instead of the transmit ioctl and poll(2). Returns like wait(). When the
  // module refuses the batch (rate limit, device down, a frame refused), it did not
  // sleep: this then sleeps in poll(2), as flush() and wait() would have. With
  // `data_only` (uapi UTCP_TXW_DATA) bare TCP ACKs do not end the sleep: for a caller
  // that waits to read and has nothing left to send.
  int flush_and_wait(Instant now, Duration timeout, bool data_only = false);
  bool has_tx_wait() const { return (abi_flags_ & UTCP_ABI_F_TX_WAIT) != 0; }

  int fd() const { return fd_; }
  int wait_fd() const override { return fd_; }
  utcp_app_info* app_info_area() override {
    return reinterpret_cast<utcp_app_info*>(map_ + info_.layout.header_off + UTCP_APP_INFO_OFF);
  }
  const utcp_endpoint_info& info() const { return info_; }
  // The result of the last UTCP_IOC_TX and its return value (frames sent or -errno).
  const utcp_tx_result& last_tx() const { return last_tx_; }
  int last_tx_rc() const { return last_tx_rc_; }
  // Frames committed but not yet accepted by the module (unflushed or rate-limited).
  uint32_t tx_queued() const;
  int stats(utcp_endpoint_stats* out) const;
  // Below this, half the TX slots are kept for frames rather than a send buffer too
  // small for any default (e.g. the small rings of a many-connection client).
  static constexpr uint64_t kMinPayloadArea = 256 * 1024;

 private:
  KmodDevice(int fd, const utcp_endpoint_info& info, uint8_t* map);
  uint32_t* index(utcp_ring_index& i) { return &i.value; }

  int fd_;
  utcp_endpoint_info info_;
  uint8_t* map_;
  utcp_ring_header* hdr_;
  utcp_desc* rx_desc_;
  utcp_desc* tx_desc_;
  uint32_t mtu_ = 1500;
  uint32_t abi_flags_ = 0;    // UTCP_ABI_F_* of the module
  bool rx_csum_ok_ = false;   // the frame receive() is handing over has UTCP_RXF_CSUM_OK
  uint32_t rx_cons_ = 0;      // our copy of rx_cons (we are its only writer)
  uint32_t tx_prod_ = 0;      // committed, possibly not yet published
  uint32_t tx_cons_seen_ = 0; // last tx_cons read from the kernel
  uint32_t frame_slots_ = 0;  // TX slots frames are built in (all, or half with the area)
  // Frame tx_base_ went into frame slot 0: reset whenever the module has sent everything
  // (tx_cons == tx_prod), so a connection that is not queueing reuses its first slots'
  // pages (already backed, mapped and in cache) instead of walking the whole TX ring.
  // Unknown (false) while rings taken over from another process still hold its frames.
  uint32_t tx_base_ = 0;
  bool tx_base_known_ = false;
  uint32_t frame_slot(uint32_t i) const { return info_.layout.rx_entries + ((i - tx_base_) & (frame_slots_ - 1)); }
  std::span<uint8_t> area_;   // tx_payload_area(): the other half, or none
  utcp_tx_result last_tx_{};
  int last_tx_rc_ = 0;
};

}  // namespace utcp
