// module.cc - opening /dev/utcp, checking the ABI, control-ioctl and test-frame helpers.
#include "device/module.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

namespace utcp {

int query_abi(int fd, utcp_abi_info* out) {
  utcp_abi_info info{};
  info.size = sizeof(info);
  if (::ioctl(fd, UTCP_IOC_ABI_INFO, &info) < 0) return -errno;
  *out = info;
  return 0;
}

std::string module_open_error(int err, const char* path) {
  std::string p(path);
  if (err == ENOENT || err == ENXIO || err == ENODEV)
    return p + " not found: the utcp kernel module is not loaded; load it with `modprobe utcp` "
               "(installed with DKMS) or `insmod utcp.ko` (from a build tree)";
  if (err == EACCES || err == EPERM)
    return "permission denied opening " + p + ": run as root or as a member of the group the udev rule "
           "60-utcp.rules gives the device (applications need no access: they get endpoints from utcpd)";
  return "cannot open " + p + ": " + std::strerror(err);
}

int check_abi(const utcp_abi_info& abi, std::string* error) {
  if (abi.abi_version == UTCP_ABI_VERSION) return 0;
  *error = "utcp ABI mismatch: the loaded module speaks version " + std::to_string(abi.abi_version) +
           ", this library version " + std::to_string(UTCP_ABI_VERSION) +
           "; load the utcp.ko built with this library (`rmmod utcp` then `modprobe utcp` after installing "
           "it, or `dkms install utcp/VERSION`), or rebuild the program against the installed libutcp";
  return -EPROTO;
}

int open_module(std::string* error, ModuleInfo* info, const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    *error = module_open_error(err, path);
    return -err;
  }
  utcp_abi_info abi{};
  if (int rc = query_abi(fd, &abi); rc < 0) {
    *error = std::string(path) + " does not answer the utcp ABI query (" + std::strerror(-rc) +
             "): it is not the utcp module's device (check `ls -l " + path + "` and `lsmod | grep utcp`)";
    ::close(fd);
    return rc;
  }
  if (int rc = check_abi(abi, error); rc < 0) {
    ::close(fd);
    return rc;
  }
  if (info) info->abi = abi;
  return fd;
}

}  // namespace utcp

// ---- control-file and frame helpers ----

namespace utcp {

namespace {
int ioctl_rc(int rc) { return rc < 0 ? -errno : rc; }
}  // namespace

int ctl_attach(int ctl_fd, int ifindex) {
  utcp_attach a{};
  a.ifindex = ifindex;
  return ioctl_rc(::ioctl(ctl_fd, UTCP_IOC_ATTACH, &a));
}

int ctl_set_classifier(int ctl_fd, int prog_fd) {
  utcp_classifier c{};
  c.prog_fd = prog_fd;
  return ioctl_rc(::ioctl(ctl_fd, UTCP_IOC_SET_CLASSIFIER, &c));
}

int ctl_create_endpoint(int ctl_fd, const utcp_template& t, uint32_t rx_entries, uint32_t tx_entries,
                        uint32_t slot_size, EndpointHandle* out) {
  utcp_endpoint_create c{};
  c.rx_entries = rx_entries;
  c.tx_entries = tx_entries;
  c.slot_size = slot_size;
  c.tmpl = t;
  if (::ioctl(ctl_fd, UTCP_IOC_ENDPOINT_CREATE, &c) < 0) return -errno;
  out->fd = c.fd;
  out->id = c.id;
  out->layout = c.layout;
  return c.fd;
}

int ctl_destroy_endpoint(int ctl_fd, uint32_t id) {
  utcp_endpoint_id e{};
  e.id = id;
  return ioctl_rc(::ioctl(ctl_fd, UTCP_IOC_ENDPOINT_DESTROY, &e));
}

int ctl_global_stats(int ctl_fd, utcp_global_stats* out) {
  return ioctl_rc(::ioctl(ctl_fd, UTCP_IOC_GLOBAL_STATS, out));
}

utcp_template make_template(MacAddr src_mac, uint8_t proto, Ipv4Addr local_ip, uint16_t local_port,
                            Ipv4Addr remote_ip, uint16_t remote_port, bool listener) {
  utcp_template t{};
  std::memcpy(t.src_mac, src_mac.b.data(), 6);
  t.proto = proto;
  t.flags = listener ? UTCP_TMPL_F_LISTENER : 0;
  t.local_ip = htonl(local_ip.v);
  t.local_port = htons(local_port);
  t.remote_ip = htonl(remote_ip.v);
  t.remote_port = htons(remote_port);
  return t;
}

bool is_listener(const utcp_template& t) { return t.flags & UTCP_TMPL_F_LISTENER; }

utcp_flow_key flow_key_for(const utcp_template& t) {
  utcp_flow_key k{};
  k.local_ip = t.local_ip;
  k.remote_ip = t.remote_ip;
  k.local_port = t.local_port;
  k.remote_port = t.remote_port;
  k.proto = t.proto;
  return k;
}

utcp_listen_key listen_key_for(const utcp_template& t) {
  utcp_listen_key k{};
  k.local_ip = t.local_ip;
  k.local_port = t.local_port;
  k.proto = t.proto;
  return k;
}

FrameSpec frame_for_template(const utcp_template& t, MacAddr dst_mac) {
  FrameSpec f;
  std::memcpy(f.src_mac.b.data(), t.src_mac, 6);
  f.dst_mac = dst_mac;
  f.src_ip = {ntohl(t.local_ip)};
  f.dst_ip = {ntohl(t.remote_ip)};
  f.proto = t.proto;
  f.src_port = ntohs(t.local_port);
  f.dst_port = ntohs(t.remote_port);
  return f;
}

size_t build_frame(const FrameSpec& f, std::span<uint8_t> out) {
  size_t l4 = f.proto == 6 ? TcpRepr::kMinHeaderLen + f.payload.size() : UdpRepr::kHeaderLen + f.payload.size();
  size_t total = EthernetRepr::kHeaderLen + Ipv4Repr::kHeaderLen + l4;
  if (out.size() < total || l4 > 65535 - Ipv4Repr::kHeaderLen) return 0;
  EthernetRepr eth{f.dst_mac, f.src_mac, uint16_t(EtherType::kIpv4)};
  emit_ethernet(eth, out);
  Ipv4Repr ip;
  ip.src = f.src_ip;
  ip.dst = f.dst_ip;
  ip.protocol = f.proto;
  ip.payload_len = uint16_t(l4);
  auto ip_out = out.subspan(EthernetRepr::kHeaderLen);
  emit_ipv4(ip, ip_out);
  auto l4_out = ip_out.subspan(Ipv4Repr::kHeaderLen, l4);
  if (f.proto == 6) {
    TcpRepr t;
    t.src_port = f.src_port;
    t.dst_port = f.dst_port;
    t.seq = SeqNum(f.seq);
    t.ack = SeqNum(f.ack);
    t.flags = f.tcp_flags;
    t.window = 65535;
    t.payload = f.payload;
    if (emit_tcp(t, f.src_ip, f.dst_ip, l4_out) == 0) return 0;
  } else {
    UdpRepr u;
    u.src_port = f.src_port;
    u.dst_port = f.dst_port;
    u.payload = f.payload;
    if (emit_udp(u, f.src_ip, f.dst_ip, l4_out) == 0) return 0;
  }
  return total;
}

}  // namespace utcp
