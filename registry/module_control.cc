// module_control.cc - the control file of /dev/utcp and the classifier's maps.
#include "module_control.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "device/module.h"

namespace utcp::registry {

ModuleControl::~ModuleControl() {
  // Detaches the device and every endpoint of this control file, or parks them all when
  // it is persistent (set_persist).
  if (fd_ >= 0) ::close(fd_);
  if (obj_) bpf_object__close(obj_);
  if (!obj_) {  // adopted maps are our own fds; a loaded object's belong to it
    if (flow_map_fd_ >= 0) ::close(flow_map_fd_);
    if (listen_map_fd_ >= 0) ::close(listen_map_fd_);
  }
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

int ModuleControl::set_persist(bool on, std::string* err) {
  utcp_persist p{};
  p.persist = on ? 1 : 0;
  if (::ioctl(fd_, UTCP_IOC_SET_PERSIST, &p) < 0) {
    int e = errno;
    *err = std::string("cannot make the attachment persistent (a module older than ABI 3?): ") + std::strerror(e);
    return -e;
  }
  return 0;
}

int ModuleControl::adopt(int ifindex, utcp_adopt* out, std::string* err) {
  utcp_adopt a{};
  a.ifindex = ifindex;
  if (::ioctl(fd_, UTCP_IOC_ADOPT, &a) < 0) {
    int e = errno;
    if (e == EPERM) *err = "adopting the parked attachment needs CAP_NET_ADMIN: run utcpd as root";
    else if (e != ENOENT) *err = std::string("adopting the parked attachment failed: ") + std::strerror(e);
    return -e;
  }
  *out = a;
  if (a.prog_id == 0) return 0;  // its classifier was removed: the caller loads one
  return use_classifier_maps(a.prog_id, err);
}

int ModuleControl::discard_parked(int ifindex, std::string* err) {
  std::string why;
  int fd = open_module(&why);
  if (fd < 0) {
    *err = why;
    return fd;
  }
  utcp_adopt a{};
  a.ifindex = ifindex;
  int rc = ::ioctl(fd, UTCP_IOC_ADOPT, &a) < 0 ? -errno : 0;
  if (rc < 0 && rc != -ENOENT) *err = std::string("cannot take over the parked attachment: ") + std::strerror(-rc);
  if (rc == 0) {
    // The adopted attachment is still persistent: closing it as it is would park it
    // again. Not persistent, the close detaches it and all its endpoints.
    utcp_persist p{};
    if (::ioctl(fd, UTCP_IOC_SET_PERSIST, &p) < 0) {
      rc = -errno;
      *err = std::string("cannot release the parked attachment: ") + std::strerror(-rc);
    }
  }
  ::close(fd);
  return rc;
}

// The maps come from the program the module runs (its BPF id → map ids), not from pins
// in bpffs: nothing to mount or clean up, and they are by construction the maps the
// running classifier reads, whatever object file is installed now.
int ModuleControl::use_classifier_maps(uint32_t prog_id, std::string* err) {
  int prog_fd = bpf_prog_get_fd_by_id(prog_id);
  if (prog_fd < 0) {
    *err = "cannot open the parked classifier program (BPF id " + std::to_string(prog_id) +
           "): " + std::strerror(errno) + " (needs CAP_SYS_ADMIN)";
    return -errno;
  }
  uint32_t ids[8] = {};
  bpf_prog_info info{};
  info.nr_map_ids = 8;
  info.map_ids = reinterpret_cast<uint64_t>(ids);
  uint32_t len = sizeof info;
  int rc = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
  int e = errno;
  ::close(prog_fd);
  if (rc < 0) {
    *err = std::string("cannot read the classifier program's maps: ") + std::strerror(e);
    return -e;
  }
  for (uint32_t i = 0; i < std::min<uint32_t>(info.nr_map_ids, 8); ++i) {
    int mfd = bpf_map_get_fd_by_id(ids[i]);
    if (mfd < 0) continue;
    bpf_map_info mi{};
    uint32_t mlen = sizeof mi;
    bool keep = false;
    if (bpf_obj_get_info_by_fd(mfd, &mi, &mlen) == 0 && mi.value_size == sizeof(uint32_t)) {
      if (std::strcmp(mi.name, UTCP_FLOW_MAP_NAME) == 0 && mi.key_size == sizeof(utcp_flow_key) &&
          flow_map_fd_ < 0) {
        flow_map_fd_ = mfd;
        keep = true;
      } else if (std::strcmp(mi.name, UTCP_LISTEN_MAP_NAME) == 0 && mi.key_size == sizeof(utcp_listen_key) &&
                 listen_map_fd_ < 0) {
        listen_map_fd_ = mfd;
        keep = true;
      }
    }
    if (!keep) ::close(mfd);
  }
  if (flow_map_fd_ < 0 || listen_map_fd_ < 0) {
    *err = "the parked classifier program lacks the maps " UTCP_FLOW_MAP_NAME " and " UTCP_LISTEN_MAP_NAME;
    return -EINVAL;
  }
  return 0;
}

int ModuleControl::list_endpoints(std::vector<utcp_endpoint_entry>* out, std::string* err) {
  // The table may grow between the count and the fetch: ask again with what it needs.
  uint32_t want = 64;
  for (int tries = 0; tries < 8; ++tries) {
    out->assign(want, utcp_endpoint_entry{});
    utcp_endpoint_list l{};
    l.entries = reinterpret_cast<uint64_t>(out->data());
    l.capacity = want;
    if (::ioctl(fd_, UTCP_IOC_ENDPOINT_LIST, &l) == 0) {
      out->resize(l.count);
      return 0;
    }
    if (errno != ENOSPC) {
      int e = errno;
      *err = std::string("cannot list the module's endpoints: ") + std::strerror(e);
      out->clear();
      return -e;
    }
    want = l.count + 16;
  }
  *err = "the endpoint table keeps growing while it is listed";
  out->clear();
  return -EAGAIN;
}

int ModuleControl::open_endpoint(uint32_t id, int* fd, uint32_t* other_refs) {
  utcp_endpoint_open o{};
  o.id = id;
  if (::ioctl(fd_, UTCP_IOC_ENDPOINT_OPEN, &o) < 0) return -errno;
  *fd = o.fd;
  *other_refs = o.file_refs;
  return 0;
}

namespace {
// Every (key, endpoint id) of one classifier map.
template <typename Key>
std::vector<std::pair<Key, uint32_t>> map_entries(int map_fd) {
  std::vector<std::pair<Key, uint32_t>> out;
  Key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
    uint32_t id = 0;
    if (bpf_map_lookup_elem(map_fd, &next, &id) == 0) out.emplace_back(next, id);
    key = next;
    prev = &key;
  }
  return out;
}
}  // namespace

std::vector<std::pair<utcp_flow_key, uint32_t>> ModuleControl::flows() const {
  return map_entries<utcp_flow_key>(flow_map_fd_);
}

std::vector<std::pair<utcp_listen_key, uint32_t>> ModuleControl::listeners() const {
  return map_entries<utcp_listen_key>(listen_map_fd_);
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

int ModuleControl::set_template(uint32_t id, const utcp_template& tmpl) {
  utcp_endpoint_template t{};
  t.id = id;
  t.tmpl = tmpl;
  return ::ioctl(fd_, UTCP_IOC_SET_TEMPLATE, &t) < 0 ? -errno : 0;
}

int ModuleControl::del_listener(const utcp_listen_key& key) {
  return bpf_map_delete_elem(listen_map_fd_, &key) < 0 ? -errno : 0;
}

}  // namespace utcp::registry
