// device.h - what the stack needs from a link: frames in, frames out, batched.
//
// Implementations: the in-memory link pair for tests (device/link.h), the kmod endpoint
// rings (device/kmod_device.h), wrappers (fault injector, pcap tap). Devices never read a
// clock: time is passed in, so a virtual clock drives tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <functional>
#include <span>

#include "base/time.h"

struct utcp_app_info;

namespace utcp {

struct DeviceCaps {
  uint32_t mtu = 1500;            // IP MTU of the link
  uint32_t max_tx_frame = 1514;   // largest frame transmit() accepts (>mtu+14 means GSO)
  uint32_t max_rx_frame = 1514;   // largest frame receive() may hand over (>mtu+14 means GRO)
  bool tx_checksum_offload = false;  // device fills the TCP/UDP checksum
  bool tx_tcp_checksum_offload = false;  // device fills the TCP checksum (not UDP's)
  bool rx_checksum_verified = false; // device vouches for every received checksum
  // TSO: a TCP frame may carry several segments; the device cuts it into segments of
  // MTU - IP header - TCP header payload bytes, each with a copy of the header (seq
  // advanced, PSH/FIN only on the last, IPv4 ident counting up) and completes every
  // checksum, as Linux's GSO does (the frame's TCP checksum may be the pseudo sum only).
  bool gso() const { return max_tx_frame > mtu + 14; }
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceCaps caps() const = 0;

  // Hands each received frame (Ethernet header first) to `fn`, at most `max` of them;
  // the span is valid only during the call. Returns how many frames were handed over.
  virtual size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                         size_t max = 64) = 0;

  // Transmit in two steps so frames are built in place: tx_buffer returns writable space
  // of at least `len` bytes (empty when the device is full: back-pressure), tx_commit
  // queues the first `len` bytes of it. flush() pushes queued frames out in one batch.
  virtual std::span<uint8_t> tx_buffer(size_t len) = 0;
  virtual void tx_commit(size_t len) = 0;
  virtual void flush(Instant now) = 0;

  // Device memory a send buffer may live in, so that frames can take their payload
  // from it in place (tx_commit_split) instead of having it copied behind their headers;
  // empty when the device has none. The Stack lends it to one connection at a time.
  // Empty too when it is smaller than `min_size`.
  virtual std::span<uint8_t> tx_payload_area(size_t min_size) {
    (void)min_size;
    return {};
  }
  // Queues a frame made of the first `hdr_len` bytes of the last tx_buffer() followed by
  // `payload`, which lies in tx_payload_area(). The device reads the payload when it
  // sends the frame, by the end of the flush() that sends it; until then the payload
  // must not change (a frame held back past a flush, e.g. by the module's rate limit,
  // may carry what the bytes hold when it leaves: the stack only rewrites bytes the
  // peer acknowledged, so such a frame is a harmless duplicate). Only called on a
  // device whose tx_payload_area() is not empty.
  virtual void tx_commit_split(size_t hdr_len, std::span<const uint8_t> payload) {
    (void)hdr_len;
    (void)payload;
    std::abort();  // a device without tx_payload_area() never gets split frames
  }

  // Convenience: copy a built frame. Returns false when the device is full.
  bool transmit(std::span<const uint8_t> frame) {
    auto buf = tx_buffer(frame.size());
    if (buf.size() < frame.size()) return false;
    std::copy(frame.begin(), frame.end(), buf.begin());
    tx_commit(frame.size());
    return true;
  }

  // During receive()'s callback: whether the device vouches for the checksums of the
  // frame being handed over (e.g. the kernel module's UTCP_RXF_CSUM_OK), so the stack
  // need not verify them. By default what caps() says for every frame.
  virtual bool rx_frame_checksum_ok() const { return caps().rx_checksum_verified; }

  // When this device next has something to do on its own (e.g. a delayed frame of the
  // in-memory link becomes deliverable); kInstantNever if nothing.
  virtual Instant poll_at() const { return kInstantNever; }

  // A file descriptor that poll(2) reports readable when receive() has frames (and
  // POLLHUP/POLLERR when the device is gone), so callers can sleep on it; -1 when the
  // device has none (in-memory devices, which run on a virtual clock).
  virtual int wait_fd() const { return -1; }

  // Where a stack on this device publishes its connection's state for observers (uapi
  // utcp_app_info, in a module endpoint's header page); nullptr when nobody can look.
  virtual utcp_app_info* app_info_area() { return nullptr; }
};

}  // namespace utcp
