// utcpctl - ioctl-level command-line tool for /dev/utcp, for tests and debugging.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <unistd.h>

#include "device/module.h"

namespace {

int usage(FILE* out) {
  std::fprintf(out,
               "usage: utcpctl [--device PATH] COMMAND\n"
               "\n"
               "commands:\n"
               "  abi        print the module's ABI answer and check it matches this tool\n"
               "\n"
               "Exit status 0 on success; otherwise 1 with a message saying what to do.\n");
  return out == stdout ? 0 : 2;
}

int cmd_abi(const char* device) {
  std::string error;
  utcp::ModuleInfo info;
  int fd = utcp::open_module(&error, &info, device);
  if (fd < 0) {
    std::fprintf(stderr, "utcpctl: %s\n", error.c_str());
    return 1;
  }
  ::close(fd);
  std::printf("abi_version %u\nmax_endpoints %u\nmax_ring_entries %u\nmax_frame_len %u\nflags 0x%x\n",
              info.abi.abi_version, info.abi.max_endpoints, info.abi.max_ring_entries,
              info.abi.max_frame_len, info.abi.flags);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* device = UTCP_DEVICE_PATH;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") return usage(stdout);
    if (a == "--device" && i + 1 < argc) {
      device = argv[++i];
      continue;
    }
    break;
  }
  if (i >= argc) return usage(stderr);
  std::string_view cmd = argv[i];
  if (cmd == "abi") return cmd_abi(device);
  std::fprintf(stderr, "utcpctl: unknown command '%s' (see --help)\n", argv[i]);
  return 2;
}
