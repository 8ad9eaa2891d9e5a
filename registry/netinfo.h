// netinfo.h - network facts from the kernel over rtnetlink (libnl): interfaces,
// addresses, routes, neighbours. The registry builds header templates from them.
#pragma once

#include <netlink/netlink.h>

#include <cstdint>
#include <optional>
#include <string>

#include "wire/types.h"

namespace utcp::registry {

struct Interface {
  int ifindex = 0;
  std::string name;
  MacAddr mac;
  uint32_t mtu = 0;
  Ipv4Addr addr;          // first IPv4 address on it (0 if none)
  uint8_t prefix_len = 0;
};

struct Route {
  int ifindex = 0;
  Ipv4Addr src;       // preferred source (route's, else the interface's address)
  Ipv4Addr next_hop;  // gateway, or the destination itself when on-link
  uint32_t mtu = 0;   // route MTU if set, else the interface's
};

class NetInfo {
 public:
  NetInfo();
  ~NetInfo();
  NetInfo(const NetInfo&) = delete;
  NetInfo& operator=(const NetInfo&) = delete;

  // False (with `error`) if rtnetlink cannot be reached.
  bool ok(std::string* error) const;

  std::optional<Interface> interface_by_name(const std::string& name);
  std::optional<Interface> interface_by_index(int ifindex);
  // Longest-prefix match in the main table, as the kernel would route `dst`.
  std::optional<Route> route_to(Ipv4Addr dst);
  // The link-layer address of `ip` on `ifindex` from the kernel's neighbour table. When
  // missing, asks the kernel to resolve it (RTM_NEWNEIGH with NTF_USE makes it send an
  // ARP request) and waits up to `timeout_ms` (0: one look, resolution started).
  std::optional<MacAddr> neighbour(int ifindex, Ipv4Addr ip, int timeout_ms = 3000);

 private:
  nl_sock* sock_ = nullptr;
  std::string error_;
};

std::string to_string(Ipv4Addr a);
std::string to_string(const MacAddr& m);
std::optional<Ipv4Addr> parse_ipv4_addr(const std::string& s);

}  // namespace utcp::registry
