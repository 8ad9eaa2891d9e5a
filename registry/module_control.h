// module_control.h - the registry's hold on /dev/utcp: the control file, the classifier
// program and its maps, endpoint creation and destruction.
#pragma once

#include <linux/utcp.h>

#include <cstdint>
#include <string>

struct bpf_object;

namespace utcp::registry {

struct Endpoint {
  uint32_t id = 0;
  int fd = -1;  // the endpoint file (the capability); the caller owns it
  utcp_ring_layout layout{};
};

class ModuleControl {
 public:
  ModuleControl() = default;
  ~ModuleControl();
  ModuleControl(const ModuleControl&) = delete;
  ModuleControl& operator=(const ModuleControl&) = delete;

  // Each returns 0 or -errno, with `err` saying what to do about it.
  int open(std::string* err);
  int attach(int ifindex, std::string* err);
  // Loads the classifier object with libbpf and installs its program in the module.
  int load_classifier(const std::string& object_path, std::string* err);

  int create_endpoint(const utcp_template& tmpl, uint32_t rx_entries, uint32_t tx_entries,
                      uint32_t slot_size, Endpoint* out, std::string* err);
  int destroy_endpoint(uint32_t id);
  int global_stats(utcp_global_stats* out);

  int add_flow(const utcp_flow_key& key, uint32_t id);
  int del_flow(const utcp_flow_key& key);
  int add_listener(const utcp_listen_key& key, uint32_t id);
  int del_listener(const utcp_listen_key& key);

  uint32_t abi_version() const { return abi_.abi_version; }

 private:
  int fd_ = -1;
  utcp_abi_info abi_{};
  bpf_object* obj_ = nullptr;
  int flow_map_fd_ = -1;
  int listen_map_fd_ = -1;
};

}  // namespace utcp::registry
