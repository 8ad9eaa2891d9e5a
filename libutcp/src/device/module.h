// module.h - opening /dev/utcp, checking the ABI, control-ioctl and test-frame helpers.
#pragma once

#include <linux/utcp.h>

#include <cstdint>
#include <span>
#include <string>

#include "wire/types.h"

namespace utcp {

// The module's answer to UTCP_IOC_ABI_INFO.
struct ModuleInfo {
  utcp_abi_info abi{};
};

// Opens /dev/utcp (or `path`) read-write, close-on-exec, and checks the ABI version.
// Returns the fd, or -errno with `error` set to a message that says what to do:
// ENOENT (module not loaded), EACCES (permission), EPROTO (ABI version mismatch).
int open_module(std::string* error, ModuleInfo* info = nullptr,
                const char* path = UTCP_DEVICE_PATH);

// Asks an open /dev/utcp file (control or endpoint) for its ABI. Returns 0 or -errno.
int query_abi(int fd, utcp_abi_info* out);

// 0 when the module's answer is the ABI this library was built for; otherwise -EPROTO
// and `error` says what to do.
int check_abi(const utcp_abi_info& abi, std::string* error);

// What to tell the user when opening the device `path` failed with errno `err`.
std::string module_open_error(int err, const char* path);

}  // namespace utcp

// ---- control-file and frame helpers (for utcpctl, utcpd and the module tests) ----

namespace utcp {

// An endpoint as UTCP_IOC_ENDPOINT_CREATE returns it.
struct EndpointHandle {
  int fd = -1;
  uint32_t id = 0;
  utcp_ring_layout layout{};
};

// Thin wrappers over the control ioctls; each returns 0 (or the fd) or -errno.
int ctl_attach(int ctl_fd, int ifindex);
int ctl_set_classifier(int ctl_fd, int prog_fd);
int ctl_create_endpoint(int ctl_fd, const utcp_template& t, uint32_t rx_entries,
                        uint32_t tx_entries, uint32_t slot_size, EndpointHandle* out);
int ctl_destroy_endpoint(int ctl_fd, uint32_t id);
int ctl_global_stats(int ctl_fd, utcp_global_stats* out);

// A template in host-order types (addresses, ports) converted to the uapi struct.
utcp_template make_template(MacAddr src_mac, uint8_t proto, Ipv4Addr local_ip, uint16_t local_port,
                            Ipv4Addr remote_ip, uint16_t remote_port, bool listener = false);

// The classifier-map key that routes received frames of template `t`'s flow to its
// endpoint: a listener template goes to the listener map, any other to the flow map.
bool is_listener(const utcp_template& t);
utcp_flow_key flow_key_for(const utcp_template& t);
utcp_listen_key listen_key_for(const utcp_template& t);

// One Ethernet/IPv4/UDP-or-TCP frame, host byte order; checksums are filled.
struct FrameSpec {
  MacAddr src_mac, dst_mac;
  Ipv4Addr src_ip, dst_ip;
  uint8_t proto = 17;
  uint16_t src_port = 0, dst_port = 0;
  uint8_t tcp_flags = 0x18;  // PSH|ACK
  uint32_t seq = 1, ack = 1;
  std::span<const uint8_t> payload;
};
// The frame an endpoint with template `t` may send to `dst_mac`.
FrameSpec frame_for_template(const utcp_template& t, MacAddr dst_mac);
// Writes the frame into `out`; returns its length, or 0 when `out` is too small.
size_t build_frame(const FrameSpec& f, std::span<uint8_t> out);

}  // namespace utcp
