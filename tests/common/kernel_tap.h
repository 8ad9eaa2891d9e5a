// kernel_tap.h - for tests against the real Linux stack: a TAP interface in a private
// network namespace, with the kernel's side addressed and up.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "device/tap.h"
#include "wire/types.h"

namespace utcp::test {

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

}  // namespace utcp::test
