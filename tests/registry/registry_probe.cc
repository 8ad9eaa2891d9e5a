// registry_probe.cc - a test client of utcpd for the VM tests: asks for grants, checks
// what arrives, and plays the hostile client.
//
//   registry_probe hello
//   registry_probe connect IP PORT [LOCAL_PORT] [--hold SECONDS]
//   registry_probe listen PORT
//   registry_probe accept LISTEN_ID [--wait]   an Accept on someone's listen: prints the answer
//   registry_probe reuse IP PORT ROUNDS BYTES  one endpoint for ROUNDS connections to an echo
//                                      server (kConnectReuse between them): BYTES echoed each
//   registry_probe garbage COUNT       send COUNT hostile messages, then check utcpd still answers
//   registry_probe live-endpoints      print the module's live endpoint count
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/utcp.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "api/stack.h"
#include "device/kmod_device.h"
#include "registry/client.h"

using namespace utcp;
using namespace utcp::registry;

namespace {

std::string ip_str(Ipv4Addr a) {
  return std::to_string(a.v >> 24) + "." + std::to_string((a.v >> 16) & 255) + "." + std::to_string((a.v >> 8) & 255) +
         "." + std::to_string(a.v & 255);
}

std::string mac_str(const MacAddr& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3], m.b[4], m.b[5]);
  return b;
}

int print_grant(const Grant& g) {
  utcp_endpoint_stats st{};
  bool is_endpoint = ::ioctl(g.endpoint_fd, UTCP_IOC_EP_STATS, &st) == 0;
  std::printf("endpoint_id %u\nlocal %s:%u\nremote %s:%u\nlocal_mac %s\nnext_hop_mac %s\nmtu %u\nendpoint_file %s\n",
              g.endpoint_id, ip_str(g.local_ip).c_str(), g.local_port, ip_str(g.remote_ip).c_str(), g.remote_port,
              mac_str(g.local_mac).c_str(), mac_str(g.next_hop_mac).c_str(), g.mtu, is_endpoint ? "yes" : "no");
  std::fflush(stdout);
  return is_endpoint ? 0 : 1;
}

int garbage(int count) {
  std::mt19937_64 rng(1234);
  const char* path = std::getenv("UTCP_REGISTRY");
  if (!path) path = kDefaultSocketPath;
  for (int i = 0; i < count; ++i) {
    int fd = ::socket(AF_UNIX, (i % 3 == 0 ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      ::close(fd);
      continue;  // a stream socket cannot connect to a seqpacket listener: also fine
    }
    std::vector<uint8_t> msg(rng() % 200);
    for (auto& b : msg) b = uint8_t(rng());
    if (msg.size() >= sizeof(RegHeader) && i % 2) {
      RegHeader h{};
      h.type = uint16_t(rng() % 6);
      h.length = uint32_t(i % 4 ? msg.size() : rng());
      std::memcpy(msg.data(), &h, sizeof h);
    }
    ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (i % 5 == 0) {  // sometimes pass descriptors the registry did not ask for
      int pass = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      msghdr mh{};
      char one = 0;
      iovec iov{&one, 1};
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
      mh.msg_control = ctl;
      mh.msg_controllen = sizeof ctl;
      cmsghdr* cm = CMSG_FIRSTHDR(&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cm), &pass, sizeof pass);
      ::sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(pass);
    }
    if (i % 7 != 0) ::close(fd);  // and sometimes vanish without reading the reply
    else {
      char buf[256];
      ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      ::close(fd);
    }
  }
  RegistryClient c;
  std::string err;
  HelloReply h{};
  if (c.connect(&err) < 0 || c.hello(&h, &err) < 0) {
    std::fprintf(stderr, "registry_probe: utcpd no longer answers: %s\n", err.c_str());
    return 1;
  }
  std::printf("utcpd still answers after %d hostile messages\n", count);
  return 0;
}

// One connection on `dev` through a fresh Stack: handshake, BYTES of a pattern seeded by
// `round` written and read back from the echo server, then closed until TIME-WAIT or gone.
// 0, or a message on stderr and 1.
int echo_round(KmodDevice* dev, const Grant& g, int round, size_t bytes) {
  StackConfig cfg;
  cfg.ip = g.local_ip;
  cfg.mac = g.local_mac;
  Stack s(dev, cfg);
  s.add_neighbor(g.remote_ip, g.next_hop_mac);
  const Instant deadline = Clock::now() + Duration(20'000'000);
  int h = s.socket();
  int rc = s.bind(h, g.local_port);
  if (rc == 0) rc = s.connect(h, g.remote_ip, g.remote_port, Clock::now());
  if (rc < 0 && rc != -EINPROGRESS) {
    std::fprintf(stderr, "registry_probe: round %d: connect: %s\n", round, std::strerror(-rc));
    return 1;
  }
  std::vector<uint8_t> out(bytes), in;
  std::mt19937 rng(uint32_t(round) * 7919u + 1);
  for (auto& b : out) b = uint8_t(rng());
  size_t sent = 0;
  bool shut = false, closed = false;
  const Connection* closing = nullptr;
  for (;;) {
    const Instant now = Clock::now();
    if (now > deadline) {
      std::fprintf(stderr, "registry_probe: round %d: timed out (sent %zu, echoed %zu of %zu)\n", round, sent,
                   in.size(), bytes);
      return 1;
    }
    s.poll(now);
    const int ev = s.events(h);
    if (!closed && (ev & kEventErr)) {
      std::fprintf(stderr, "registry_probe: round %d: connection failed\n", round);
      return 1;
    }
    if (!closed && (ev & kEventOut) && sent < bytes) {
      int64_t w = s.write(h, std::span(out).subspan(sent));
      if (w > 0) sent += size_t(w);
    }
    if (!closed && sent == bytes && !shut) shut = s.shutdown(h, 1) == 0;
    if (!closed) {
      uint8_t buf[4096];
      int64_t r;
      while ((r = s.read(h, buf, now)) > 0) in.insert(in.end(), buf, buf + r);
      if (r == 0 && in.size() >= bytes) {  // the echo ended: the server closed its side
        if (in.size() != bytes || in != out) {
          std::fprintf(stderr, "registry_probe: round %d: the echo differs (%zu bytes back)\n", round, in.size());
          return 1;
        }
        // The stack holds only this connection: its entry outlives the handle while it lives.
        closing = s.connection(h);
        s.close(h);
        closed = true;
      }
    }
    if (closed) {
      s.poll(Clock::now());
      if (s.connection_count() == 0 || !closing || closing->state() == TcpState::kTimeWait) break;
    }
    Instant next = std::min(s.poll_at(), Clock::now() + Duration(10'000));
    Instant t = Clock::now();
    if (next > t) dev->wait(next - t);
  }
  std::printf("round %d port %u echoed %zu\n", round, g.local_port, bytes);
  std::fflush(stdout);
  return 0;
}

int reuse(RegistryClient& c, Ipv4Addr ip, uint16_t port, int rounds, size_t bytes) {
  std::string err;
  Grant g;
  if (int rc = c.connect_endpoint(ip, port, 0, &g, &err); rc < 0) {
    std::fprintf(stderr, "registry_probe: %s\n", err.c_str());
    return 1;
  }
  const uint32_t id = g.endpoint_id;
  auto dev = KmodDevice::open(g.endpoint_fd, g.mtu, &err);
  if (!dev) {
    std::fprintf(stderr, "registry_probe: %s\n", err.c_str());
    return 1;
  }
  for (int round = 0; round < rounds; ++round) {
    if (round > 0) {
      const uint16_t before = g.local_port;
      uint32_t seq = 0;
      Grant n;
      int rc = c.send_connect(ip, port, &seq, &err, id);
      if (rc == 0) rc = c.receive_connect(true, &seq, &n, &err);
      if (rc < 0) {
        std::fprintf(stderr, "registry_probe: reuse of endpoint %u refused: %s\n", id, err.c_str());
        return 1;
      }
      utcp_endpoint_stats st{};
      ::ioctl(dev->fd(), UTCP_IOC_EP_STATS, &st);
      std::printf("reused endpoint %u file %s port %u -> %u tracking %s\n", n.endpoint_id,
                  n.endpoint_fd < 0 ? "none" : "sent", before, n.local_port, st.tcp_flags ? "kept" : "afresh");
      if (n.endpoint_fd >= 0) ::close(n.endpoint_fd);
      g = n;
      // What the connection before left in the RX ring is not this one's.
      dev->receive(Clock::now(), [](std::span<const uint8_t>) {}, SIZE_MAX);
    }
    if (echo_round(dev.get(), g, round, bytes)) return 1;
  }
  // Hostile: an endpoint id that is not this client's, from this client and another.
  uint32_t seq = 0;
  Grant n;
  int rc = c.send_connect(ip, port, &seq, &err, id + 1000);
  if (rc == 0) rc = c.receive_connect(true, &seq, &n, &err);
  std::printf("reuse of an unknown endpoint: %s\n", rc == -ENOENT ? "ENOENT" : std::to_string(rc).c_str());
  RegistryClient other;
  rc = other.connect(&err);
  if (rc == 0) rc = other.send_connect(ip, port, &seq, &err, id);
  if (rc == 0) rc = other.receive_connect(true, &seq, &n, &err);
  std::printf("reuse of another client's endpoint: %s (%s)\n", rc == -ENOENT ? "ENOENT" : std::to_string(rc).c_str(),
              err.c_str());
  std::printf("reuse done %d rounds\n", rounds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: registry_probe hello|connect|listen|accept|reuse|garbage|live-endpoints|kernel-bind ...\n");
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "garbage") return garbage(argc > 2 ? std::atoi(argv[2]) : 1000);
  if (cmd == "kernel-bind" && argc == 4) {
    // Would a kernel socket get IP:PORT now? A plain bind, no SO_REUSEADDR (which nc
    // sets): a port utcpd reserves for utcp must refuse it. Prints "bound" or
    // "refused ERRNO"; fast to start, unlike python in a slow guest.
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(std::atoi(argv[3])));
    if (::inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1) return 2;
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 1;
    if (::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) std::printf("bound\n");
    else std::printf("refused %d\n", errno);
    ::close(s);
    return 0;
  }
  if (cmd == "live-endpoints") {
    int fd = ::open(UTCP_DEVICE_PATH, O_RDWR | O_CLOEXEC);
    utcp_global_stats gs{};
    if (fd < 0 || ::ioctl(fd, UTCP_IOC_GLOBAL_STATS, &gs) < 0) {
      std::perror("registry_probe: global stats");
      return 1;
    }
    std::printf("%llu\n", (unsigned long long)gs.live_endpoints);
    return 0;
  }
  RegistryClient c;
  std::string err;
  if (int rc = c.connect(&err); rc < 0) {
    std::fprintf(stderr, "registry_probe: %s\n", err.c_str());
    return 3;
  }
  if (cmd == "hello") {
    HelloReply h{};
    if (c.hello(&h, &err) < 0) {
      std::fprintf(stderr, "registry_probe: %s\n", err.c_str());
      return 1;
    }
    std::printf("module_abi %u\nifindex %u\nmtu %u\n", h.module_abi, h.ifindex, h.mtu);
    return 0;
  }
  Grant g;
  int rc;
  int hold = 0;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--hold") hold = std::atoi(argv[i + 1]);
  if (cmd == "reuse" && argc == 6) {
    unsigned a, b, cc, d;
    if (std::sscanf(argv[2], "%u.%u.%u.%u", &a, &b, &cc, &d) != 4) return 2;
    return reuse(c, Ipv4Addr::of(uint8_t(a), uint8_t(b), uint8_t(cc), uint8_t(d)), uint16_t(std::atoi(argv[3])),
                 std::atoi(argv[4]), size_t(std::atol(argv[5])));
  }
  if (cmd == "connect" && argc >= 4) {
    Ipv4Addr ip{};
    unsigned a, b, cc, d;
    if (std::sscanf(argv[2], "%u.%u.%u.%u", &a, &b, &cc, &d) != 4) return 2;
    ip = Ipv4Addr::of(uint8_t(a), uint8_t(b), uint8_t(cc), uint8_t(d));
    uint16_t lport = argc >= 5 && argv[4][0] != '-' ? uint16_t(std::atoi(argv[4])) : 0;
    rc = c.connect_endpoint(ip, uint16_t(std::atoi(argv[3])), lport, &g, &err);
  } else if (cmd == "accept" && argc >= 3) {
    std::vector<uint8_t> state;
    bool wait = argc >= 4 && std::string(argv[3]) == "--wait";
    rc = c.accept(uint32_t(std::strtoul(argv[2], nullptr, 10)), wait, &g, &state, &err);
    if (rc == 0) std::printf("state_bytes %zu\n", state.size());
  } else if (cmd == "listen" && argc >= 3) {
    rc = c.listen_endpoint(uint16_t(std::atoi(argv[2])), 16, &g, &err);
  } else {
    std::fprintf(stderr, "registry_probe: bad command\n");
    return 2;
  }
  if (rc < 0) {
    std::fprintf(stderr, "registry_probe: %s\n", err.c_str());
    return -rc > 0 && -rc < 100 ? 100 + (-rc % 100) : 1;
  }
  int status = print_grant(g);
  std::fflush(stdout);  // a test waiting on this output sees it before the hold ends
  if (hold > 0) ::sleep(unsigned(hold));
  return status;
}
