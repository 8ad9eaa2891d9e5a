// ports.h - local port allocation shared with the kernel's own stack.
//
// Every port utcp uses is reserved in the kernel by binding a kernel socket of the same
// protocol to it, held for as long as utcp owns the port: the kernel then neither hands
// it out as an ephemeral port nor lets another program bind it, and utcp refuses ports the
// kernel already uses. Ephemeral ports come from the kernel's own range.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "wire/types.h"

namespace utcp::registry {

class PortReservation {
 public:
  PortReservation() = default;
  PortReservation(int fd, uint16_t port) : fd_(fd), port_(port) {}
  PortReservation(PortReservation&& o) noexcept : fd_(std::exchange(o.fd_, -1)), port_(o.port_) {}
  PortReservation& operator=(PortReservation&& o) noexcept;
  ~PortReservation();
  bool valid() const { return fd_ >= 0; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class PortAllocator {
 public:
  // `proto` is IPPROTO_TCP or IPPROTO_UDP.
  explicit PortAllocator(int proto);

  // Reserves `port` on `addr` (0 = any address). `privileged`: the requester may use
  // ports below 1024. Returns an invalid reservation and sets `err` (-EADDRINUSE, -EACCES).
  PortReservation reserve(Ipv4Addr addr, uint16_t port, bool privileged, int* err);
  // Reserves some port of the kernel's ephemeral range.
  PortReservation reserve_ephemeral(Ipv4Addr addr, int* err);

  std::pair<uint16_t, uint16_t> ephemeral_range() const { return range_; }

 private:
  int proto_;
  std::pair<uint16_t, uint16_t> range_{32768, 60999};
  uint32_t next_ = 0;
};

}  // namespace utcp::registry
