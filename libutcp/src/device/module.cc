// module.cc - opening /dev/utcp and checking that the module speaks our ABI.
#include "device/module.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace utcp {

int query_abi(int fd, utcp_abi_info* out) {
  utcp_abi_info info{};
  info.size = sizeof(info);
  if (::ioctl(fd, UTCP_IOC_ABI_INFO, &info) < 0) return -errno;
  *out = info;
  return 0;
}

int open_module(std::string* error, ModuleInfo* info, const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENXIO || err == ENODEV)
      *error = std::string(path) + " not found: the utcp kernel module is not loaded (load it with `insmod utcp.ko` or `modprobe utcp`)";
    else if (err == EACCES || err == EPERM)
      *error = std::string("permission denied opening ") + path + ": run as root or install the udev rule that grants access";
    else
      *error = std::string("cannot open ") + path + ": " + std::strerror(err);
    return -err;
  }
  utcp_abi_info abi{};
  if (int rc = query_abi(fd, &abi); rc < 0) {
    *error = std::string(path) + " does not answer the utcp ABI query (" + std::strerror(-rc) + "): is it the utcp module?";
    ::close(fd);
    return rc;
  }
  if (abi.abi_version != UTCP_ABI_VERSION) {
    *error = "utcp ABI mismatch: module speaks version " + std::to_string(abi.abi_version) +
             ", this library version " + std::to_string(UTCP_ABI_VERSION) +
             "; load the utcp.ko built with this library";
    ::close(fd);
    return -EPROTO;
  }
  if (info) info->abi = abi;
  return fd;
}

}  // namespace utcp
