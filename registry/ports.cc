// ports.cc - local ports reserved in the kernel by binding kernel sockets.
#include "ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>

namespace utcp::registry {

PortReservation& PortReservation::operator=(PortReservation&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    port_ = o.port_;
  }
  return *this;
}

PortReservation::~PortReservation() {
  if (fd_ >= 0) ::close(fd_);
}

PortAllocator::PortAllocator(int proto) : proto_(proto) {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned lo = 0, hi = 0;
  if (f >> lo >> hi && lo > 0 && lo <= hi && hi <= 65535) range_ = {uint16_t(lo), uint16_t(hi)};
  next_ = std::random_device{}();
}

PortReservation PortAllocator::reserve(Ipv4Addr addr, uint16_t port, bool privileged, int* err) {
  if (port == 0) return reserve_ephemeral(addr, err);
  if (port < 1024 && !privileged) {
    *err = -EACCES;
    return {};
  }
  int fd = ::socket(AF_INET, (proto_ == IPPROTO_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, proto_);
  if (fd < 0) {
    *err = -errno;
    return {};
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(addr.v);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    *err = -errno;
    ::close(fd);
    return {};
  }
  *err = 0;
  return PortReservation(fd, port);
}

PortReservation PortAllocator::reserve_ephemeral(Ipv4Addr addr, int* err) {
  uint32_t span = uint32_t(range_.second) - range_.first + 1;
  for (uint32_t i = 0; i < span; ++i) {
    uint16_t port = uint16_t(range_.first + (next_++ % span));
    PortReservation r = reserve(addr, port, true, err);
    if (r.valid()) return r;
    if (*err != -EADDRINUSE) return r;
  }
  *err = -EADDRNOTAVAIL;
  return {};
}

}  // namespace utcp::registry
