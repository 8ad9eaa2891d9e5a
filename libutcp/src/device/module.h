// module.h - opening /dev/utcp and checking that the module speaks our ABI.
#pragma once

#include <linux/utcp.h>

#include <string>

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

// Asks an open /dev/utcp file for its ABI. Returns 0 or -errno.
int query_abi(int fd, utcp_abi_info* out);

}  // namespace utcp
