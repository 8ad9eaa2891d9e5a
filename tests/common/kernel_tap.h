// kernel_tap.h - for tests against the real Linux stack: a TAP interface in a private
// network namespace, with the kernel's side addressed and up.
#pragma once

#include <arpa/inet.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "device/tap.h"
#include "wire/types.h"

namespace utcp::test {

// A kernel file descriptor, closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

inline sockaddr_in sin_of(Ipv4Addr a, uint16_t port) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_addr.s_addr = htonl(a.v);
  s.sin_port = htons(port);
  return s;
}

// Moves this process into a namespace of its own (the interface, addresses and sockets
// vanish with it) and opens TAP `name` there with the kernel at kernel_ip/24. Returns
// nullptr with `skip` saying why when namespaces or TAP are unavailable.
inline std::unique_ptr<TapDevice> open_kernel_tap(const char* name, Ipv4Addr kernel_ip, MacAddr* kernel_mac,
                                                  std::string* skip) {
  if (::unshare(CLONE_NEWNET) != 0) {
    *skip = std::string("cannot create a network namespace: ") + std::strerror(errno);
    return nullptr;
  }
  std::string err;
  auto tap = TapDevice::open(name, &err);
  if (!tap || tap->set_kernel_address(kernel_ip, 24, &err) < 0 || tap->set_up(&err) < 0 ||
      tap->kernel_mac(kernel_mac, &err) < 0) {
    *skip = "TAP unavailable: " + err;
    return nullptr;
  }
  return tap;
}

// The stack answers no ARP (the registry supplies neighbours): gives the kernel a
// permanent neighbour entry for `ip` at `mac` on the TAP instead. False with `skip` set.
inline bool add_kernel_neighbor(const TapDevice& tap, Ipv4Addr ip, MacAddr mac, std::string* skip) {
  int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  arpreq req{};
  sockaddr_in pa = sin_of(ip, 0);
  std::memcpy(&req.arp_pa, &pa, sizeof pa);
  req.arp_ha.sa_family = ARPHRD_ETHER;
  std::memcpy(req.arp_ha.sa_data, mac.b.data(), 6);
  req.arp_flags = ATF_PERM | ATF_COM;
  std::strncpy(req.arp_dev, tap.name().c_str(), sizeof req.arp_dev - 1);
  bool ok = s >= 0 && ::ioctl(s, SIOCSARP, &req) == 0;
  if (!ok) *skip = std::string("SIOCSARP: ") + std::strerror(errno);
  if (s >= 0) ::close(s);
  return ok;
}

}  // namespace utcp::test
