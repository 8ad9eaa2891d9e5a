// kmod_test_util.h - shared pieces of the module's VM tests: PASS/FAIL reporting,
// network namespaces, a control file attached with the classifier, packet capture.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "device/kmod_device.h"
#include "device/module.h"

namespace kt {

// One line per check, as the VM test runner expects.
struct Report {
  int passed = 0, failed = 0;
  void check(bool ok, const char* name) { check(ok, name, "%s", "failed"); }
  void check(bool ok, const char* name, const char* fmt, ...) __attribute__((format(printf, 4, 5))) {
    if (ok) {
      ++passed;
      std::printf("PASS: %s\n", name);
    } else {
      ++failed;
      char why[512];
      va_list ap;
      va_start(ap, fmt);
      std::vsnprintf(why, sizeof(why), fmt, ap);
      va_end(ap);
      std::printf("FAIL: %s %s\n", name, why);
    }
    std::fflush(stdout);
  }
  int exit_code() const { return failed ? 1 : 0; }
};

inline std::string env(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

// Enters the named network namespace (ip netns) for everything created from now on.
inline bool enter_netns(const std::string& name) {
  std::string path = "/run/netns/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return ok;
}

// The device's MAC in the current network namespace (sysfs would show the namespace
// that mounted it, not the one this thread entered).
inline utcp::MacAddr read_mac(const std::string& ifname) {
  utcp::MacAddr m;
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname.c_str());
  if (fd >= 0 && ::ioctl(fd, SIOCGIFHWADDR, &ifr) == 0) std::memcpy(m.b.data(), ifr.ifr_hwaddr.sa_data, 6);
  if (fd >= 0) ::close(fd);
  return m;
}

inline utcp::Ipv4Addr ip(const std::string& s) {
  in_addr a{};
  inet_pton(AF_INET, s.c_str(), &a);
  return {ntohl(a.s_addr)};
}

// A control file in one namespace, attached to its veth end, with the classifier.
struct Side {
  std::string ns, ifname;
  utcp::MacAddr mac;
  utcp::Ipv4Addr addr;
  int ctl = -1;
  bpf_object* bpf = nullptr;
  int flow_map = -1, listen_map = -1;

  ~Side() {
    if (bpf) bpf_object__close(bpf);
    if (ctl >= 0) ::close(ctl);
  }

  // Opens the control file inside `ns` and attaches; loads the classifier if asked.
  bool setup(const std::string& ns_name, const std::string& ifn, const std::string& ip_str, bool classifier,
             std::string* err) {
    ns = ns_name;
    ifname = ifn;
    if (!enter_netns(ns)) return *err = "cannot enter netns " + ns, false;
    mac = read_mac(ifname);
    if (mac == utcp::MacAddr{}) return *err = "no MAC for " + ifname + " in " + ns, false;
    addr = ip(ip_str);
    ctl = utcp::open_module(err);
    if (ctl < 0) return false;
    if (int rc = utcp::ctl_attach(ctl, int(if_nametoindex(ifname.c_str()))); rc < 0)
      return *err = std::string("attach: ") + std::strerror(-rc), false;
    if (!classifier) return true;
    std::string obj = env("UTCP_BUILD", "build") + "/kmod/utcp_classifier.bpf.o";
    bpf = bpf_object__open_file(obj.c_str(), nullptr);
    if (!bpf || libbpf_get_error(bpf)) return bpf = nullptr, *err = "cannot open " + obj, false;
    if (int rc = bpf_object__load(bpf); rc < 0) return *err = std::string("bpf load: ") + std::strerror(-rc), false;
    int prog = bpf_program__fd(bpf_object__find_program_by_name(bpf, UTCP_CLASSIFIER_PROG));
    flow_map = bpf_map__fd(bpf_object__find_map_by_name(bpf, UTCP_FLOW_MAP_NAME));
    listen_map = bpf_map__fd(bpf_object__find_map_by_name(bpf, UTCP_LISTEN_MAP_NAME));
    if (int rc = utcp::ctl_set_classifier(ctl, prog); rc < 0)
      return *err = std::string("set classifier: ") + std::strerror(-rc), false;
    return true;
  }

  // Creates an endpoint, maps it, and routes its template's flow to it.
  std::unique_ptr<utcp::KmodDevice> endpoint(const utcp_template& t, uint32_t* id = nullptr,
                                             uint32_t slot = 2048, uint32_t entries = 64) {
    utcp::EndpointHandle h;
    if (utcp::ctl_create_endpoint(ctl, t, entries, entries, slot, &h) < 0) return nullptr;
    std::string err;
    auto dev = utcp::KmodDevice::open(h.fd, 1500, &err);
    if (!dev) return nullptr;
    if (id) *id = h.id;
    if (flow_map >= 0) {
      if (utcp::is_listener(t)) {
        utcp_listen_key k = utcp::listen_key_for(t);
        bpf_map_update_elem(listen_map, &k, &h.id, BPF_ANY);
      } else {
        utcp_flow_key k = utcp::flow_key_for(t);
        bpf_map_update_elem(flow_map, &k, &h.id, BPF_ANY);
      }
    }
    return dev;
  }
};

// An AF_PACKET socket on one device (in the current netns): the peer-side capture of
// frames arriving from the link.
struct Capture {
  int fd = -1;
  explicit Capture(const std::string& ifname) {
    fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) return;
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = int(if_nametoindex(ifname.c_str()));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) < 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ~Capture() {
    if (fd >= 0) ::close(fd);
  }
  // Frames seen within `ms` (stops early after `max`).
  std::vector<std::vector<uint8_t>> collect(int ms, size_t max = 1000) {
    std::vector<std::vector<uint8_t>> out;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (out.size() < max) {
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
      if (left <= 0) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) break;
      std::vector<uint8_t> buf(70000);
      sockaddr_ll from{};
      socklen_t fromlen = sizeof(from);
      ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fromlen);
      // Only what arrives from the link: the peer's own replies (e.g. ICMP quoting a
      // datagram) leave through the same device and would count twice.
      if (n > 0 && from.sll_pkttype != PACKET_OUTGOING) {
        buf.resize(size_t(n));
        out.push_back(std::move(buf));
      }
    }
    return out;
  }
  void drain() { collect(0); }
};

// Builds a frame and sends it through `dev` in its own batch; returns the TX ioctl's rc.
inline int send_frame(utcp::KmodDevice& dev, const utcp::FrameSpec& f) {
  std::vector<uint8_t> frame(14 + 20 + 20 + f.payload.size());
  size_t n = utcp::build_frame(f, frame);
  frame.resize(n);
  if (!n || !dev.transmit(frame)) return -ENOSPC;
  dev.flush(utcp::kInstantZero);
  return dev.last_tx_rc();
}

inline bool contains(const std::vector<uint8_t>& hay, const std::string& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

// Receives up to `max` frames within `ms`.
inline std::vector<std::vector<uint8_t>> recv_frames(utcp::KmodDevice& dev, int ms, size_t max = 1000) {
  std::vector<std::vector<uint8_t>> out;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (out.size() < max) {
    dev.receive(utcp::kInstantZero, [&](std::span<const uint8_t> f) { out.emplace_back(f.begin(), f.end()); },
                max - out.size());
    if (out.size() >= max) break;
    auto left = std::chrono::duration_cast<utcp::Duration>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (dev.wait(left) < 0) break;
  }
  return out;
}

}  // namespace kt
