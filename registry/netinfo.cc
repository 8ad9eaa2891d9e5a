// netinfo.cc - network facts from the kernel over rtnetlink (libnl).
#include "netinfo.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>

namespace utcp::registry {
namespace {

struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using Cache = std::unique_ptr<nl_cache, CacheDeleter>;

struct AddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using Addr = std::unique_ptr<nl_addr, AddrDeleter>;

Addr make_addr(Ipv4Addr ip) {
  uint32_t be = htonl(ip.v);
  return Addr(nl_addr_build(AF_INET, &be, 4));
}

std::optional<Ipv4Addr> addr_v4(nl_addr* a) {
  if (!a || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4) return std::nullopt;
  uint32_t be;
  std::memcpy(&be, nl_addr_get_binary_addr(a), 4);
  return Ipv4Addr{ntohl(be)};
}

}  // namespace

std::string to_string(Ipv4Addr a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a.v >> 24, (a.v >> 16) & 255, (a.v >> 8) & 255, a.v & 255);
  return buf;
}

std::string to_string(const MacAddr& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3], m.b[4], m.b[5]);
  return buf;
}

std::optional<Ipv4Addr> parse_ipv4_addr(const std::string& s) {
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return Ipv4Addr{ntohl(a.s_addr)};
}

NetInfo::NetInfo() {
  sock_ = nl_socket_alloc();
  if (!sock_) {
    error_ = "out of memory allocating a netlink socket";
    return;
  }
  if (int err = nl_connect(sock_, NETLINK_ROUTE); err < 0) {
    error_ = std::string("cannot open rtnetlink: ") + nl_geterror(err);
    nl_socket_free(sock_);
    sock_ = nullptr;
  }
}

NetInfo::~NetInfo() {
  if (sock_) nl_socket_free(sock_);
}

bool NetInfo::ok(std::string* error) const {
  if (sock_) return true;
  *error = error_;
  return false;
}

std::optional<Interface> NetInfo::interface_by_index(int ifindex) {
  if (!sock_ || ifindex <= 0) return std::nullopt;
  nl_cache* raw = nullptr;
  if (rtnl_link_alloc_cache(sock_, AF_UNSPEC, &raw) < 0) return std::nullopt;
  Cache links(raw);
  rtnl_link* link = rtnl_link_get(links.get(), ifindex);
  if (!link) return std::nullopt;
  Interface ifc;
  ifc.ifindex = ifindex;
  ifc.name = rtnl_link_get_name(link) ? rtnl_link_get_name(link) : "";
  ifc.mtu = rtnl_link_get_mtu(link);
  nl_addr* ll = rtnl_link_get_addr(link);
  if (ll && nl_addr_get_len(ll) == 6) std::memcpy(ifc.mac.b.data(), nl_addr_get_binary_addr(ll), 6);
  rtnl_link_put(link);

  raw = nullptr;
  if (rtnl_addr_alloc_cache(sock_, &raw) < 0) return ifc;
  Cache addrs(raw);
  for (nl_object* o = nl_cache_get_first(addrs.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET) continue;
    if (auto ip = addr_v4(rtnl_addr_get_local(a))) {
      ifc.addr = *ip;
      ifc.prefix_len = uint8_t(rtnl_addr_get_prefixlen(a));
      break;
    }
  }
  return ifc;
}

std::optional<Interface> NetInfo::interface_by_name(const std::string& name) {
  if (!sock_) return std::nullopt;
  nl_cache* raw = nullptr;
  if (rtnl_link_alloc_cache(sock_, AF_UNSPEC, &raw) < 0) return std::nullopt;
  Cache links(raw);
  int ifindex = rtnl_link_name2i(links.get(), name.c_str());
  if (ifindex <= 0) return std::nullopt;
  return interface_by_index(ifindex);
}

std::optional<Route> NetInfo::route_to(Ipv4Addr dst) {
  if (!sock_) return std::nullopt;
  nl_cache* raw = nullptr;
  if (rtnl_route_alloc_cache(sock_, AF_INET, 0, &raw) < 0) return std::nullopt;
  Cache routes(raw);
  int best_len = -1;
  Route best;
  for (nl_object* o = nl_cache_get_first(routes.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST) continue;
    nl_addr* d = rtnl_route_get_dst(r);
    int len = d ? int(nl_addr_get_prefixlen(d)) : 0;
    uint32_t net = 0;
    if (d && len > 0) {
      auto ip = addr_v4(d);
      if (!ip) continue;
      net = ip->v;
    }
    uint32_t mask = len == 0 ? 0 : ~uint32_t(0) << (32 - len);
    if ((dst.v & mask) != (net & mask) || len <= best_len) continue;
    if (rtnl_route_get_nnexthops(r) < 1) continue;
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    Route cand;
    cand.ifindex = rtnl_route_nh_get_ifindex(nh);
    auto gw = addr_v4(rtnl_route_nh_get_gateway(nh));
    cand.next_hop = gw ? *gw : dst;
    if (auto src = addr_v4(rtnl_route_get_pref_src(r))) cand.src = *src;
    uint32_t mtu = 0;
    if (rtnl_route_get_metric(r, RTAX_MTU, &mtu) == 0) cand.mtu = mtu;
    best = cand;
    best_len = len;
  }
  if (best_len < 0) return std::nullopt;
  auto ifc = interface_by_index(best.ifindex);
  if (!ifc) return std::nullopt;
  if (best.src.v == 0) best.src = ifc->addr;
  if (best.mtu == 0) best.mtu = ifc->mtu;
  return best;
}

std::optional<MacAddr> NetInfo::neighbour(int ifindex, Ipv4Addr ip, int timeout_ms) {
  if (!sock_) return std::nullopt;
  Addr dst = make_addr(ip);
  bool asked = false;
  for (int waited = 0;; waited += 20) {
    nl_cache* raw = nullptr;
    if (rtnl_neigh_alloc_cache(sock_, &raw) < 0) return std::nullopt;
    Cache neigh(raw);
    if (rtnl_neigh* n = rtnl_neigh_get(neigh.get(), ifindex, dst.get())) {
      int state = rtnl_neigh_get_state(n);
      nl_addr* ll = rtnl_neigh_get_lladdr(n);
      std::optional<MacAddr> mac;
      if ((state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)) && ll &&
          nl_addr_get_len(ll) == 6) {
        MacAddr m;
        std::memcpy(m.b.data(), nl_addr_get_binary_addr(ll), 6);
        mac = m;
      }
      rtnl_neigh_put(n);
      if (mac) return mac;
    }
    if (!asked) {
      // Like a kernel socket's first packet would: NTF_USE makes neigh_event_send() start
      // resolution for an entry it creates in NUD_NONE.
      rtnl_neigh* req = rtnl_neigh_alloc();
      rtnl_neigh_set_ifindex(req, ifindex);
      rtnl_neigh_set_dst(req, dst.get());
      rtnl_neigh_set_family(req, AF_INET);
      rtnl_neigh_set_state(req, NUD_NONE);
      rtnl_neigh_set_flags(req, NTF_USE);
      rtnl_neigh_add(sock_, req, NLM_F_CREATE | NLM_F_REPLACE);
      rtnl_neigh_put(req);
      asked = true;
    }
    if (waited >= timeout_ms) return std::nullopt;
    usleep(20 * 1000);
  }
}

}  // namespace utcp::registry
