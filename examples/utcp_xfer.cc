// utcp_xfer.cc - moves a byte stream between this process's utcp TCP stack and any TCP
// peer: like `nc`, but the TCP runs here, in the library, over a utcp.ko endpoint.
//
//   utcp-xfer connect IP PORT [--local-handshake]    stdin -> connection -> stdout, then close
//
// By default utcpd runs the three-way handshake and hands over the established
// connection's state with the endpoint (paper §3.4); --local-handshake runs it here.
//
// Setup goes through utcpd (the registry); afterwards every frame moves between this
// process and the module's rings, with no daemon on the path. A summary goes to stderr.
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "api/stack.h"
#include "device/kmod_device.h"
#include "registry/client.h"

using namespace utcp;

namespace {

int die(const std::string& msg) {
  std::fprintf(stderr, "utcp-xfer: %s\n", msg.c_str());
  return 1;
}

bool parse_ip(const char* s, Ipv4Addr* out) {
  in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) return false;
  out->v = ntohl(a.s_addr);
  return true;
}

// Writes all of `data` to fd, retrying short writes.
bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool help = argc == 2 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0);
  bool local_handshake = argc == 5 && std::strcmp(argv[4], "--local-handshake") == 0;
  if (help || (argc != 4 && !local_handshake) || std::strcmp(argv[1], "connect") != 0) {
    std::fprintf(help ? stdout : stderr,
                 "usage: utcp-xfer connect IP PORT [--local-handshake]\n"
                 "\n"
                 "Copies stdin to a TCP connection to IP:PORT and the connection to stdout, like\n"
                 "nc, but the TCP runs in this process (libutcp) over an endpoint of the utcp\n"
                 "kernel module granted by utcpd. The connection closes after end of input and\n"
                 "the peer's end of stream; a summary (bytes, rate, setup time) goes to stderr.\n"
                 "\n"
                 "  --local-handshake  run the three-way handshake here; by default utcpd runs it\n"
                 "                     and hands over the established connection (paper section 3.4)\n"
                 "\n"
                 "Needs utcpd running; UTCP_REGISTRY names its socket if not /run/utcp/utcpd.sock.\n"
                 "Exit status 0 on success, 1 with a message saying what to do, 2 for a usage error.\n"
                 "\n"
                 "example:  utcp-xfer connect 192.0.2.7 5001 < file > reply\n"
                 "See utcpd(8), libutcp(3).\n");
    return help ? 0 : 2;
  }
  Ipv4Addr remote{};
  uint16_t port = uint16_t(std::atoi(argv[3]));
  if (!parse_ip(argv[2], &remote)) return die(std::string("bad address ") + argv[2]);

  std::string err;
  registry::RegistryClient reg;
  registry::Grant grant;
  if (reg.connect(&err) < 0) return die(err);
  std::vector<uint8_t> state;
  Instant start = Clock::now();
  int rc = reg.connect_endpoint(remote, port, 0, &grant, &err, local_handshake ? nullptr : &state);
  if (rc < 0) return die(err);
  auto dev = KmodDevice::open(grant.endpoint_fd, grant.mtu, &err);
  if (!dev) return die(err);

  StackConfig cfg;
  cfg.ip = grant.local_ip;
  cfg.mac = grant.local_mac;
  Stack stack(dev.get(), cfg);
  stack.add_neighbor(grant.remote_ip, grant.next_hop_mac);

  int h;
  if (!state.empty()) {
    // The registry completed the handshake: continue its connection here.
    h = stack.import_connection(state, Clock::now());
    if (h < 0) return die(std::string("importing the registry's connection: ") + std::strerror(-h));
  } else {
    h = stack.socket();
    if ((rc = stack.bind(h, grant.local_port)) < 0) return die(std::string("bind: ") + std::strerror(-rc));
    rc = stack.connect(h, remote, port, Clock::now());
    if (rc < 0 && rc != -EINPROGRESS) return die(std::string("connect: ") + std::strerror(-rc));
  }

  std::vector<uint8_t> inbuf(256 * 1024), outbuf(256 * 1024);
  size_t in_len = 0, in_off = 0;
  bool stdin_eof = false, shut_sent = false, peer_eof = false;
  uint64_t sent = 0, received = 0;
  ::fcntl(0, F_SETFL, ::fcntl(0, F_GETFL) | O_NONBLOCK);
  Instant established{};

  for (;;) {
    Instant now = Clock::now();
    stack.poll(now);
    {
      int ev = stack.events(h);
      if (ev < 0) return die("connection handle lost");
      if (established == Instant{} && (ev & kEventOut)) established = now;
      // Fill from stdin, then push into the connection until it pushes back.
      if (!stdin_eof && in_off == in_len) {
        ssize_t r = ::read(0, inbuf.data(), inbuf.size());
        if (r > 0) {
          in_len = size_t(r);
          in_off = 0;
        } else if (r == 0) {
          stdin_eof = true;
        }
      }
      while (in_off < in_len) {
        int64_t w = stack.write(h, std::span<const uint8_t>(inbuf.data() + in_off, in_len - in_off));
        if (w == -EAGAIN || w == -ENOTCONN || w == 0) break;
        if (w < 0) return die(std::string("write: ") + std::strerror(int(-w)));
        in_off += size_t(w);
        sent += uint64_t(w);
      }
      if (stdin_eof && in_off == in_len && !shut_sent && (ev & kEventOut)) {
        stack.shutdown(h, 1);  // our FIN: the peer sees end of stream
        shut_sent = true;
      }
      for (;;) {
        int64_t r = stack.read(h, outbuf);
        if (r > 0) {
          if (!write_all(1, outbuf.data(), size_t(r))) return die("stdout closed");
          received += uint64_t(r);
          continue;
        }
        if (r == 0) peer_eof = true;
        else if (r != -EAGAIN) {
          if (r == -ENOTCONN && !(ev & (kEventErr | kEventHup))) break;  // still opening
          return die(std::string("read: ") + std::strerror(int(-r)));
        }
        break;
      }
      if (peer_eof && shut_sent) break;
    }
    Instant next = stack.poll_at();
    now = Clock::now();
    Duration wait = next <= now ? Duration(0) : std::min<Duration>(next - now, Duration(10'000));
    if (!stdin_eof && in_off == in_len) {
      // Sleep on both the endpoint and stdin.
      pollfd pf[2] = {{dev->fd(), POLLIN, 0}, {0, POLLIN, 0}};
      ::poll(pf, 2, int(wait.count() / 1000));
    } else if (wait.count() > 0) {
      dev->wait(wait);
    }
  }
  Instant end = Clock::now();
  stack.close(h);
  // Let the FIN/ACK exchange finish; TIME-WAIT is the registry's to wait out (§3.4).
  for (int i = 0; i < 200 && stack.connection_count() > 0; ++i) {
    stack.poll(Clock::now());
    dev->wait(Duration(5'000));
  }
  double secs = std::chrono::duration<double>(end - (established == Instant{} ? start : established)).count();
  double setup_ms = std::chrono::duration<double, std::milli>((established == Instant{} ? end : established) - start).count();
  std::fprintf(stderr, "utcp-xfer: sent %llu bytes, received %llu bytes in %.3f s (%.1f Mbit/s); setup %.1f ms (%s handshake)\n",
               (unsigned long long)sent, (unsigned long long)received, secs,
               secs > 0 ? double(sent + received) * 8 / secs / 1e6 : 0.0, setup_ms,
               state.empty() ? "library" : "registry");
  return 0;
}
