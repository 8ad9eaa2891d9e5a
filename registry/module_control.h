// module_control.h - the registry's hold on /dev/utcp: the control file, the classifier
// program and its maps, endpoint creation and destruction, and taking all of them over
// from a registry that died.
#pragma once

#include <linux/utcp.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

  // ---- a restarted registry (uapi "Restarting the registry") ----
  // Keep the attachment and its endpoints when this process's control file closes.
  int set_persist(bool on, std::string* err);
  // Takes over the attachment a dead registry parked for `ifindex`, with its classifier
  // program, and finds that program's maps. -ENOENT: none parked. out->prog_id == 0:
  // adopted, but without a classifier (load one).
  int adopt(int ifindex, utcp_adopt* out, std::string* err);
  // Takes over and drops a parked attachment on a throwaway control file: its endpoints
  // are detached (their connections end). -ENOENT: none parked.
  int discard_parked(int ifindex, std::string* err);
  int list_endpoints(std::vector<utcp_endpoint_entry>* out, std::string* err);
  // A new fd on the endpoint's file; `other_refs`: the references others hold to it.
  int open_endpoint(uint32_t id, int* fd, uint32_t* other_refs);
  // What the classifier maps hold now (for pruning entries of endpoints that are gone).
  std::vector<std::pair<utcp_flow_key, uint32_t>> flows() const;
  std::vector<std::pair<utcp_listen_key, uint32_t>> listeners() const;

  int create_endpoint(const utcp_template& tmpl, uint32_t rx_entries, uint32_t tx_entries,
                      uint32_t slot_size, Endpoint* out, std::string* err);
  int destroy_endpoint(uint32_t id);
  int global_stats(utcp_global_stats* out);

  int add_flow(const utcp_flow_key& key, uint32_t id);
  int del_flow(const utcp_flow_key& key);
  int add_listener(const utcp_listen_key& key, uint32_t id);
  // Gives endpoint `id` a new template (UTCP_IOC_SET_TEMPLATE): a pooled endpoint
  // becomes a connection's.
  int set_template(uint32_t id, const utcp_template& tmpl);
  int del_listener(const utcp_listen_key& key);

  uint32_t abi_version() const { return abi_.abi_version; }

 private:
  // The flow and listener maps of the installed program with BPF id `prog_id`.
  int use_classifier_maps(uint32_t prog_id, std::string* err);

  int fd_ = -1;
  utcp_abi_info abi_{};
  bpf_object* obj_ = nullptr;
  int flow_map_fd_ = -1;
  int listen_map_fd_ = -1;
};

}  // namespace utcp::registry
