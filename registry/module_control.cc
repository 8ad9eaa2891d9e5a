// module_control.cc - the control file of /dev/utcp and the classifier's maps.
#include "module_control.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "device/module.h"

namespace utcp::registry {

ModuleControl::~ModuleControl() {
  if (fd_ >= 0) ::close(fd_);  // detaches the device and every endpoint of this control file
  if (obj_) bpf_object__close(obj_);
}

int ModuleControl::open(std::string* err) {
  ModuleInfo info;
  int fd = open_module(err, &info);
  if (fd < 0) return fd;
  fd_ = fd;
  abi_ = info.abi;
  return 0;
}

int ModuleControl::attach(int ifindex, std::string* err) {
  utcp_attach a{};
  a.ifindex = ifindex;
  if (::ioctl(fd_, UTCP_IOC_ATTACH, &a) < 0) {
    int e = errno;
    if (e == EPERM)
      *err = "attaching needs CAP_NET_ADMIN: run utcpd as root";
    else if (e == EBUSY)
      *err = "the interface already has a receive handler (bridge, bond, or another utcpd?)";
    else if (e == ENODEV)
      *err = "no such interface in this network namespace";
    else
      *err = std::string("attach failed: ") + std::strerror(e);
    return -e;
  }
  return 0;
}

int ModuleControl::load_classifier(const std::string& object_path, std::string* err) {
  obj_ = bpf_object__open_file(object_path.c_str(), nullptr);
  if (!obj_ || libbpf_get_error(obj_)) {
    obj_ = nullptr;
    *err = "cannot open classifier object " + object_path + " (build it, or pass --classifier)";
    return -ENOENT;
  }
  if (int rc = bpf_object__load(obj_); rc < 0) {
    *err = "the kernel refused the classifier program: " + std::string(std::strerror(-rc));
    return rc;
  }
  bpf_program* prog = bpf_object__find_program_by_name(obj_, UTCP_CLASSIFIER_PROG);
  bpf_map* flows = bpf_object__find_map_by_name(obj_, UTCP_FLOW_MAP_NAME);
  bpf_map* listeners = bpf_object__find_map_by_name(obj_, UTCP_LISTEN_MAP_NAME);
  if (!prog || !flows || !listeners) {
    *err = object_path + " lacks the program " UTCP_CLASSIFIER_PROG " or its maps";
    return -EINVAL;
  }
  flow_map_fd_ = bpf_map__fd(flows);
  listen_map_fd_ = bpf_map__fd(listeners);
  utcp_classifier c{};
  c.prog_fd = bpf_program__fd(prog);
  if (::ioctl(fd_, UTCP_IOC_SET_CLASSIFIER, &c) < 0) {
    int e = errno;
    *err = std::string("module refused the classifier: ") + std::strerror(e);
    return -e;
  }
  return 0;
}

int ModuleControl::create_endpoint(const utcp_template& tmpl, uint32_t rx_entries, uint32_t tx_entries,
                                   uint32_t slot_size, Endpoint* out, std::string* err) {
  utcp_endpoint_create c{};
  c.rx_entries = rx_entries;
  c.tx_entries = tx_entries;
  c.slot_size = slot_size;
  c.tmpl = tmpl;
  if (::ioctl(fd_, UTCP_IOC_ENDPOINT_CREATE, &c) < 0) {
    int e = errno;
    *err = std::string("endpoint creation failed: ") + std::strerror(e);
    return -e;
  }
  out->id = c.id;
  out->fd = c.fd;
  out->layout = c.layout;
  return 0;
}

int ModuleControl::destroy_endpoint(uint32_t id) {
  utcp_endpoint_id e{};
  e.id = id;
  return ::ioctl(fd_, UTCP_IOC_ENDPOINT_DESTROY, &e) < 0 ? -errno : 0;
}

int ModuleControl::global_stats(utcp_global_stats* out) {
  return ::ioctl(fd_, UTCP_IOC_GLOBAL_STATS, out) < 0 ? -errno : 0;
}

int ModuleControl::add_flow(const utcp_flow_key& key, uint32_t id) {
  return bpf_map_update_elem(flow_map_fd_, &key, &id, BPF_NOEXIST) < 0 ? -errno : 0;
}

int ModuleControl::del_flow(const utcp_flow_key& key) {
  return bpf_map_delete_elem(flow_map_fd_, &key) < 0 ? -errno : 0;
}

int ModuleControl::add_listener(const utcp_listen_key& key, uint32_t id) {
  return bpf_map_update_elem(listen_map_fd_, &key, &id, BPF_NOEXIST) < 0 ? -errno : 0;
}

int ModuleControl::del_listener(const utcp_listen_key& key) {
  return bpf_map_delete_elem(listen_map_fd_, &key) < 0 ? -errno : 0;
}

}  // namespace utcp::registry
