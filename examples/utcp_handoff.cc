// utcp_handoff.cc - one process opens a utcp connection, sends part of a file, and hands
// the live connection to another process, which sends the rest: the inetd case of the
// paper (§3.2), with no registry involved in the handoff.
//
//   utcp-handoff IP PORT FILE [SPLIT]
//
// The first process gets the connection through utcpd (which runs the handshake), sends
// FILE's first SPLIT bytes (default: half) with blocking calls, exports the connection,
// starts a second process (this program again, with a socket it shares), passes it the
// endpoint file and the TCP state (api/handoff.h), and exits. The second process imports
// the connection into its own stack and sends the rest, closes, and waits for the peer's
// end of stream. The peer sees one unbroken byte stream.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "api/handoff.h"
#include "device/kmod_device.h"
#include "registry/client.h"
#include "utcp/utcp.h"
#include "utcp/utcp.hpp"

using namespace utcp;

namespace {

int die(const char* who, const std::string& msg) {
  std::fprintf(stderr, "utcp-handoff (%s): %s\n", who, msg.c_str());
  return 1;
}

std::vector<uint8_t> read_file(const char* path) {
  std::vector<uint8_t> out;
  FILE* f = std::fopen(path, "rb");
  if (!f) return out;
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  std::fclose(f);
  return out;
}

// A real-clock C API stack over the endpoint `dev`, continuing connection `state`, with
// its socket in blocking mode. Returns the socket or -errno.
int adopt(KmodDevice& dev, const HandoffInfo& info, const std::vector<uint8_t>& state, api::StackHandle* stack) {
  utcp_stack_config cfg{};
  cfg.ip = info.local_ip.v;
  std::memcpy(cfg.mac, info.local_mac.b.data(), 6);
  cfg.clock = UTCP_CLOCK_REAL;
  *stack = api::StackHandle(cfg, api::c_device(dev));
  utcp_stack_add_neighbor(stack->get(), info.remote_ip.v, info.next_hop.b.data());
  int sock = utcp_import(stack->get(), state.data(), state.size());
  if (sock < 0) return sock;
  return utcp_set_blocking(stack->get(), sock, 1) < 0 ? -EOPNOTSUPP : sock;
}

// Second process: receive the connection on `chan`, send data[from...], close cleanly.
int continue_connection(int chan, const std::vector<uint8_t>& data, size_t from) {
  int epfd;
  HandoffInfo info;
  std::vector<uint8_t> state;
  std::string err;
  if (int rc = recv_connection(chan, &epfd, &info, &state, &err); rc < 0) return die("receiver", err);
  ::close(chan);
  auto dev = KmodDevice::open(epfd, info.mtu, &err);
  if (!dev) return die("receiver", err);
  api::StackHandle stack;
  int sock = adopt(*dev, info, state, &stack);
  if (sock < 0) return die("receiver", std::string("import: ") + utcp_strerror(sock));
  utcp_stack* s = stack.get();
  ssize_t w = utcp_write(s, sock, data.data() + from, data.size() - from);
  if (w != ssize_t(data.size() - from)) return die("receiver", std::string("write: ") + utcp_strerror(int(w)));
  utcp_shutdown(s, sock, UTCP_SHUT_WR);
  char c;
  ssize_t r;
  while ((r = utcp_read(s, sock, &c, 1)) > 0) {
  }
  if (r < 0) return die("receiver", std::string("waiting for the peer's end of stream: ") + utcp_strerror(int(r)));
  utcp_linger lg{1, 5};
  utcp_setsockopt(s, sock, UTCP_SO_LINGER, &lg, sizeof lg);
  utcp_close(s, sock);
  std::fprintf(stderr, "utcp-handoff (receiver, pid %d): sent bytes %zu..%zu, closed\n", int(::getpid()), from,
               data.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "--continue") == 0) {
    // --continue CHANNEL-FD FILE FROM (started by the first process)
    std::vector<uint8_t> data = read_file(argv[3]);
    return continue_connection(std::atoi(argv[2]), data, size_t(std::strtoull(argv[4], nullptr, 10)));
  }
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr,
                 "usage: utcp-handoff IP PORT FILE [SPLIT]\n"
                 "Sends FILE to IP:PORT over utcp; after SPLIT bytes (default half) the live\n"
                 "connection moves to a second process, which sends the rest. Needs utcpd.\n");
    return 2;
  }
  in_addr a;
  if (inet_pton(AF_INET, argv[1], &a) != 1) return die("sender", std::string("bad address ") + argv[1]);
  Ipv4Addr remote{ntohl(a.s_addr)};
  uint16_t port = uint16_t(std::atoi(argv[2]));
  std::vector<uint8_t> data = read_file(argv[3]);
  if (data.empty()) return die("sender", std::string("cannot read ") + argv[3] + " (or it is empty)");
  size_t split = argc == 5 ? size_t(std::strtoull(argv[4], nullptr, 10)) : data.size() / 2;
  if (split > data.size()) split = data.size();

  std::string err;
  registry::RegistryClient reg;
  registry::Grant grant;
  std::vector<uint8_t> state;
  if (reg.connect(&err) < 0) return die("sender", err);
  if (reg.connect_endpoint(remote, port, 0, &grant, &err, &state) < 0) return die("sender", err);
  auto dev = KmodDevice::open(::fcntl(grant.endpoint_fd, F_DUPFD_CLOEXEC, 0), grant.mtu, &err);
  if (!dev) return die("sender", err);
  HandoffInfo info{grant.local_ip, grant.remote_ip, grant.local_mac, grant.next_hop_mac, grant.mtu};
  api::StackHandle stack;
  int sock = adopt(*dev, info, state, &stack);
  if (sock < 0) return die("sender", std::string("import: ") + utcp_strerror(sock));
  if (split > 0) {
    ssize_t w = utcp_write(stack.get(), sock, data.data(), split);
    if (w != ssize_t(split)) return die("sender", std::string("write: ") + utcp_strerror(int(w)));
  }
  // The exported state carries every byte not yet acknowledged; let the peer acknowledge
  // what was sent so the state fits one handoff message (a few hundred bytes, then).
  for (int i = 0; i < 30000; ++i) {
    size_t need = 0;
    if (utcp_export(stack.get(), sock, nullptr, 0, &need) == -ENOSPC && need <= 4096) break;
    utcp_stack_wait(stack.get(), 10'000);
  }
  // Take the connection out of this stack: from here this process never touches it.
  std::vector<uint8_t> moved(kMaxHandoffState);
  size_t needed = 0;
  ssize_t n = utcp_export(stack.get(), sock, moved.data(), moved.size(), &needed);
  if (n < 0) return die("sender", std::string("export: ") + utcp_strerror(int(n)));
  moved.resize(size_t(n));

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return die("sender", std::strerror(errno));
  pid_t child = ::fork();
  if (child < 0) return die("sender", std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // A fresh program: only the channel survives exec (registry socket and endpoint are
    // close-on-exec), so the second process holds nothing but what it is handed.
    ::close(sv[0]);
    ::fcntl(sv[1], F_SETFD, 0);
    std::string fdarg = std::to_string(sv[1]), from = std::to_string(split);
    ::execl("/proc/self/exe", argv[0], "--continue", fdarg.c_str(), argv[3], from.c_str(), (char*)nullptr);
    _exit(127);
  }
  ::close(sv[1]);
  if (int rc = send_connection(sv[0], dev->fd(), info, moved, &err); rc < 0) return die("sender", err);
  std::fprintf(stderr, "utcp-handoff (sender, pid %d): sent bytes 0..%zu, handed the connection to pid %d\n",
               int(::getpid()), split, int(child));
  // Exit without waiting for the child: the connection is no longer ours. (A shell
  // waiting on this process sees it end here; the child finishes on its own.)
  return 0;
}
