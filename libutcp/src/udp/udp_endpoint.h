// udp_endpoint.h - UDP over a device: the second protocol through the same module (paper
// §1.1: many protocols co-exist at user level, each its own library over the same
// kernel mechanism). It shares the wire layer and the Device with TCP; an endpoint with
// a UDP template carries it (utcpd grants one with kConnectUdp).
//
// One UdpEndpoint is one local port. Datagrams received are checked (IPv4 and UDP
// checksums, lengths, addresses) and queued up to a bound; receive() hands them to a
// callback straight from the device's buffer (no copy), recvfrom() copies one out.
// Datagrams leave built in place in the device's TX buffer.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/time.h"
#include "device/device.h"
#include "wire/types.h"

namespace utcp {

struct UdpStats {
  uint64_t tx_datagrams = 0, tx_full = 0, tx_no_neighbor = 0;
  uint64_t rx_datagrams = 0;     // accepted (queued or handed over)
  uint64_t rx_malformed = 0;     // failed a length or checksum check
  uint64_t rx_not_for_us = 0;    // another address, port or protocol
  uint64_t rx_queue_drops = 0;   // the receive queue was full
};

class UdpEndpoint {
 public:
  // `dev` is not owned. `local_port` is the port this endpoint sends from and accepts.
  UdpEndpoint(Device* dev, Ipv4Addr ip, MacAddr mac, uint16_t local_port, size_t queue_limit = 1024);

  void add_neighbor(Ipv4Addr ip, MacAddr mac) { neighbors_[ip.v] = mac; }
  uint16_t local_port() const { return port_; }
  size_t max_payload() const;  // the device's MTU less the IPv4 and UDP headers

  // Sends one datagram (flushed at once). Returns its length, or -EMSGSIZE (longer than
  // max_payload()), -EHOSTUNREACH (no link address for dst), -EAGAIN (device full),
  // -EINVAL (port 0 or address 0).
  int64_t sendto(Ipv4Addr dst, uint16_t dst_port, std::span<const uint8_t> data, Instant now);

  // Receives frames from the device into the queue (up to `max`). Returns how many
  // datagrams were accepted.
  size_t poll(Instant now, size_t max = 256);
  // Copies the oldest queued datagram into `buf` (polling first if none is queued).
  // Returns its full length (more than buf.size() means it was truncated, like
  // MSG_TRUNC), or -EAGAIN.
  int64_t recvfrom(std::span<uint8_t> buf, Ipv4Addr* src, uint16_t* src_port, Instant now);
  size_t queued() const { return queue_.size(); }

  const UdpStats& stats() const { return stats_; }
  int wait_fd() const { return dev_->wait_fd(); }

 private:
  struct Datagram {
    Ipv4Addr src;
    uint16_t src_port;
    std::vector<uint8_t> data;
  };
  void on_frame(std::span<const uint8_t> frame);

  Device* dev_;
  Ipv4Addr ip_;
  MacAddr mac_;
  uint16_t port_;
  size_t queue_limit_;
  uint16_t ident_ = 0;
  std::unordered_map<uint32_t, MacAddr> neighbors_;
  std::deque<Datagram> queue_;
  std::vector<std::vector<uint8_t>> spare_;  // buffers of delivered datagrams, reused
  UdpStats stats_;
};

}  // namespace utcp
