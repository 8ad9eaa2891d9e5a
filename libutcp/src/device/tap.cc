// tap.cc - the TAP Device: /dev/net/tun with IFF_TAP | IFF_NO_PI, plus kernel-side interface setup.
#include "device/tap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace utcp {

namespace {

std::string errno_message(const char* what, int err) {
  std::string m = std::string(what) + ": " + std::strerror(err);
  if (err == EPERM || err == EACCES) m += " (needs CAP_NET_ADMIN: run as root or grant cap_net_admin)";
  if (err == ENOENT || err == ENODEV) m += " (is the tun module loaded? try: modprobe tun)";
  return m;
}

void fill_name(ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof *ifr);
  std::strncpy(ifr->ifr_name, name.c_str(), IFNAMSIZ - 1);
}

sockaddr_in inet_of(Ipv4Addr a) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(a.v);
  return sin;
}

}  // namespace

std::unique_ptr<TapDevice> TapDevice::open(const std::string& name, std::string* error) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    if (error) *error = "TAP interface name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
    return nullptr;
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = errno_message("open /dev/net/tun", errno);
    return nullptr;
  }
  ifreq ifr;
  fill_name(&ifr, name);
  // No packet-information header: read() and write() carry the bare Ethernet frame.
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    ::close(fd);
    if (error) *error = errno_message(("TUNSETIFF " + name).c_str(), e);
    return nullptr;
  }
  return std::unique_ptr<TapDevice>(new TapDevice(fd, ifr.ifr_name));
}

TapDevice::TapDevice(int fd, std::string name) : fd_(fd), name_(std::move(name)), rx_buf_(65536) {}

TapDevice::~TapDevice() { ::close(fd_); }

int TapDevice::ifreq_ioctl(unsigned long req, void* ifr, const char* what, std::string* error) const {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    int e = errno;
    if (error) *error = errno_message("socket(AF_INET)", e);
    return -e;
  }
  int rc = ioctl(s, req, ifr);
  int e = errno;
  ::close(s);
  if (rc < 0) {
    if (error) *error = errno_message((std::string(what) + " " + name_).c_str(), e);
    return -e;
  }
  return 0;
}

int TapDevice::set_kernel_address(Ipv4Addr addr, uint8_t prefix_len, std::string* error) {
  if (prefix_len > 32) {
    if (error) *error = "prefix length must be 0..32";
    return -EINVAL;
  }
  ifreq ifr;
  fill_name(&ifr, name_);
  sockaddr_in a = inet_of(addr);
  std::memcpy(&ifr.ifr_addr, &a, sizeof a);
  if (int rc = ifreq_ioctl(SIOCSIFADDR, &ifr, "SIOCSIFADDR", error); rc < 0) return rc;
  fill_name(&ifr, name_);
  sockaddr_in m = inet_of({prefix_len == 0 ? 0 : ~uint32_t(0) << (32 - prefix_len)});
  std::memcpy(&ifr.ifr_netmask, &m, sizeof m);
  return ifreq_ioctl(SIOCSIFNETMASK, &ifr, "SIOCSIFNETMASK", error);
}

int TapDevice::set_mtu(uint32_t mtu, std::string* error) {
  ifreq ifr;
  fill_name(&ifr, name_);
  ifr.ifr_mtu = int(mtu);
  if (int rc = ifreq_ioctl(SIOCSIFMTU, &ifr, "SIOCSIFMTU", error); rc < 0) return rc;
  mtu_ = mtu;
  return 0;
}

int TapDevice::set_up(std::string* error) {
  ifreq ifr;
  fill_name(&ifr, name_);
  if (int rc = ifreq_ioctl(SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS", error); rc < 0) return rc;
  ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
  return ifreq_ioctl(SIOCSIFFLAGS, &ifr, "SIOCSIFFLAGS", error);
}

int TapDevice::kernel_mac(MacAddr* out, std::string* error) const {
  ifreq ifr;
  fill_name(&ifr, name_);
  if (int rc = ifreq_ioctl(SIOCGIFHWADDR, &ifr, "SIOCGIFHWADDR", error); rc < 0) return rc;
  std::memcpy(out->b.data(), ifr.ifr_hwaddr.sa_data, 6);
  return 0;
}

DeviceCaps TapDevice::caps() const {
  DeviceCaps c;
  c.mtu = mtu_;
  c.max_tx_frame = mtu_ + 14;
  c.max_rx_frame = mtu_ + 14;
  return c;
}

size_t TapDevice::receive(Instant, const std::function<void(std::span<const uint8_t>)>& fn,
                          size_t max) {
  size_t n = 0;
  while (n < max) {
    ssize_t r = ::read(fd_, rx_buf_.data(), rx_buf_.size());
    if (r <= 0) break;  // EAGAIN: nothing more now; other errors surface on the next call
    fn(std::span<const uint8_t>(rx_buf_.data(), size_t(r)));
    ++n;
  }
  return n;
}

void TapDevice::flush(Instant) {
  staged_.drain([&](std::span<const uint8_t> f) {
    // One write() is one frame. The kernel takes it into its receive path at once, so a
    // refusal (EINVAL for a runt, EIO when the interface is down) is final: count it.
    if (::write(fd_, f.data(), f.size()) != ssize_t(f.size())) {
      ++tx_errors_;
      last_tx_errno_ = errno;
    }
  });
}

}  // namespace utcp
