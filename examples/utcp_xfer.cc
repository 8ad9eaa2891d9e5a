// utcp_xfer.cc - moves a byte stream between this process's utcp TCP stack and any TCP
// peer: like `nc`, but the TCP runs here, in the library, over a utcp.ko endpoint.
//
//   utcp-xfer connect IP PORT [--local-handshake] [--bulk | --rings RX,TX,SLOT]
//                         [--send-seeded SEED:BYTES] [--hash-received] [--fin-after-peer]
//                         stdin -> connection -> stdout, then close
//   utcp-xfer listen PORT [--count N] [--bulk | --rings RX,TX,SLOT] [...the same]
//                         accept through utcpd, then the same
//
// --send-seeded sends a generated stream (seeded_stream.h) instead of stdin and
// --hash-received hashes what arrives instead of writing it: each prints the byte count
// and SHA-256, so gigabytes can be checked against utcp-stream or sha256sum on the peer.
//
// By default utcpd runs the three-way handshake and hands over the established
// connection's state with the endpoint (paper §3.4); --local-handshake runs it here.
// In listen mode utcpd listens on PORT and runs the handshakes; each accepted connection
// arrives with its own endpoint and state. With --count N, N connections are served one
// after another: stdin goes to the first, what each sends goes to stdout in turn.
// Endpoints get utcpd's default rings (64 RX, 32 TX slots of 64 KiB) unless --bulk (the
// bulk profile's: 256 RX, 64 TX) or --rings asks for others.
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
#include <memory>
#include <string>
#include <vector>

#include "api/stack.h"
#include "device/kmod_device.h"
#include "registry/client.h"
#include "seeded_stream.h"

using namespace utcp;
using utcp::examples::SeededStream;
using utcp::examples::Sha256;

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

std::string ip_str(Ipv4Addr a) {
  char b[16];
  std::snprintf(b, sizeof b, "%u.%u.%u.%u", a.v >> 24, (a.v >> 16) & 255, (a.v >> 8) & 255, a.v & 255);
  return b;
}

std::string mac_str(const MacAddr& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3], m.b[4], m.b[5]);
  return b;
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

// The library's side of a grant: the endpoint's rings and a stack whose frames go to
// the next hop the registry named.
struct Session {
  std::unique_ptr<KmodDevice> dev;
  std::unique_ptr<Stack> stack;
};

bool open_session(const registry::Grant& g, Session* s, std::string* err) {
  s->dev = KmodDevice::open(g.endpoint_fd, g.mtu, err);
  if (!s->dev) return false;
  StackConfig cfg;
  cfg.ip = g.local_ip;
  cfg.mac = g.local_mac;
  s->stack = std::make_unique<Stack>(s->dev.get(), cfg);
  s->stack->add_neighbor(g.remote_ip, g.next_hop_mac);
  return true;
}

// Moves stdin (unless `use_stdin` is false) into connection `h` and what it receives to
// stdout, until both directions have ended. Returns 0, or 1 after saying why.
struct CopyResult {
  uint64_t sent = 0, received = 0;
  Instant established{}, end{};
};

// Where the bytes to send come from and where received ones go: stdin and stdout unless
// a seeded stream replaces stdin (gen) or a hash replaces stdout (sink).
struct CopyEnds {
  SeededStream* gen = nullptr;
  Sha256* gen_hash = nullptr;  // what gen produced
  Sha256* sink = nullptr;      // what arrived
  bool fin_after_peer = false;  // our FIN only after the peer's (nc stops at the first)
};

int copy_loop(Stack& stack, KmodDevice& dev, int h, bool use_stdin, const CopyEnds& ends, CopyResult* res) {
  std::vector<uint8_t> inbuf(256 * 1024), outbuf(256 * 1024);
  size_t in_len = 0, in_off = 0;
  bool stdin_eof = !use_stdin, shut_sent = false, peer_eof = false;
  SeededStream* gen = use_stdin ? ends.gen : nullptr;
  if (use_stdin && !gen) ::fcntl(0, F_SETFL, ::fcntl(0, F_GETFL) | O_NONBLOCK);
  for (;;) {
    Instant now = Clock::now();
    stack.poll(now);
    int ev = stack.events(h);
    if (ev < 0) return die("connection handle lost");
    if (res->established == Instant{} && (ev & kEventOut)) res->established = now;
    // Fill from stdin, then push into the connection until it pushes back.
    if (!stdin_eof && in_off == in_len && gen) {
      in_len = gen->read(inbuf.data(), inbuf.size());
      in_off = 0;
      if (in_len == 0) stdin_eof = true;
      else if (ends.gen_hash) ends.gen_hash->update(inbuf.data(), in_len);
    } else if (!stdin_eof && in_off == in_len) {
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
      res->sent += uint64_t(w);
    }
    if (stdin_eof && in_off == in_len && !shut_sent && (ev & kEventOut) && (peer_eof || !ends.fin_after_peer)) {
      stack.shutdown(h, 1);  // our FIN: the peer sees end of stream
      shut_sent = true;
    }
    for (;;) {
      int64_t r = stack.read(h, outbuf);
      if (r > 0) {
        if (ends.sink) ends.sink->update(outbuf.data(), size_t(r));
        else if (!write_all(1, outbuf.data(), size_t(r))) return die("stdout closed");
        res->received += uint64_t(r);
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
    Instant next = stack.poll_at();
    now = Clock::now();
    Duration wait = next <= now ? Duration(0) : std::min<Duration>(next - now, Duration(10'000));
    if (!stdin_eof && in_off == in_len && !gen) {
      // Sleep on both the endpoint and stdin.
      pollfd pf[2] = {{dev.fd(), POLLIN, 0}, {0, POLLIN, 0}};
      ::poll(pf, 2, int(wait.count() / 1000));
    } else if (wait.count() > 0) {
      dev.wait(wait);
    }
  }
  res->end = Clock::now();
  stack.close(h);
  // Let the FIN/ACK exchange finish; TIME-WAIT is the registry's to wait out (§3.4).
  for (int i = 0; i < 200 && stack.connection_count() > 0; ++i) {
    stack.poll(Clock::now());
    dev.wait(Duration(5'000));
  }
  return 0;
}

void summary(const CopyResult& r, Instant start, const char* how) {
  Instant from = r.established == Instant{} ? start : r.established;
  double secs = std::chrono::duration<double>(r.end - from).count();
  double setup_ms = std::chrono::duration<double, std::milli>((r.established == Instant{} ? r.end : r.established) - start).count();
  std::fprintf(stderr, "utcp-xfer: sent %llu bytes, received %llu bytes in %.3f s (%.1f Mbit/s); setup %.1f ms (%s)\n",
               (unsigned long long)r.sent, (unsigned long long)r.received, secs,
               secs > 0 ? double(r.sent + r.received) * 8 / secs / 1e6 : 0.0, setup_ms, how);
}

int usage(FILE* out) {
  std::fprintf(out,
               "usage: utcp-xfer connect IP PORT [--local-handshake] [--bulk | --rings RX,TX,SLOT]\n"
               "                 [--send-seeded SEED:BYTES] [--hash-received] [--fin-after-peer]\n"
               "       utcp-xfer listen PORT [--count N] [--bulk | --rings RX,TX,SLOT] [...the same]\n"
               "\n"
               "Copies stdin to a TCP connection and the connection to stdout, like nc, but the\n"
               "TCP runs in this process (libutcp) over an endpoint of the utcp kernel module\n"
               "granted by utcpd. The connection closes after end of input and the peer's end\n"
               "of stream; a summary (bytes, rate, setup time) goes to stderr.\n"
               "\n"
               "  connect IP PORT    a connection to IP:PORT\n"
               "  --local-handshake  run the three-way handshake here; by default utcpd runs it\n"
               "                     and hands over the established connection (paper section 3.4)\n"
               "  listen PORT        utcpd listens on PORT and runs the handshakes; each accepted\n"
               "                     connection comes with its own endpoint and state\n"
               "  --count N          serve N connections one after another: stdin goes to the\n"
               "                     first, what each sends goes to stdout in turn\n"
               "  --bulk             ask utcpd for the bulk profile's endpoint rings (256 RX and\n"
               "                     64 TX slots of 64 KiB) instead of its default (64 and 32)\n"
               "  --rings RX,TX,SLOT ask for these rings (descriptors, powers of two; slot bytes)\n"
               "  --send-seeded SEED:BYTES  send BYTES of utcp-stream's deterministic stream made\n"
               "                     from SEED instead of stdin; then \"sent BYTES SHA256\" on stderr\n"
               "  --hash-received    hash what arrives instead of writing it to stdout; then\n"
               "                     \"received BYTES SHA256\" on stderr\n"
               "  --fin-after-peer   end our direction only after the peer ended its own (for\n"
               "                     peers such as nc that stop at the first end of stream)\n"
               "\n"
               "Needs utcpd running; UTCP_REGISTRY names its socket if not /run/utcp/utcpd.sock.\n"
               "Exit status 0 on success, 1 with a message saying what to do, 2 for a usage error.\n"
               "\n"
               "example:  utcp-xfer connect 192.0.2.7 5001 < file > reply\n"
               "          utcp-xfer listen 5001 > received\n"
               "See utcpd(8), libutcp(3).\n");
  return out == stdout ? 0 : 2;
}

// listen mode: utcpd listens and runs the handshakes (paper §3.4); each connection is
// taken with an Accept sent ahead and its reply awaited on the registry socket, as an
// event loop would.
int serve_listen(uint16_t port, int count, const registry::RingSize& rings, const CopyEnds& ends) {
  std::string err;
  registry::RegistryClient reg;
  if (reg.connect(&err) < 0) return die(err);
  reg.set_rings(rings);
  registry::Grant lg;
  if (reg.listen(port, 16, &lg, &err) < 0) return die(err);
  std::fprintf(stderr, "utcp-xfer: listening on %s:%u through utcpd (listen %u)\n", ip_str(lg.local_ip).c_str(),
               lg.local_port, lg.endpoint_id);
  for (int i = 0; i < count; ++i) {
    if (reg.send_accept(lg.endpoint_id, true, &err) < 0) return die(err);
    pollfd pf{reg.fd(), POLLIN, 0};
    while (::poll(&pf, 1, -1) < 0 && errno == EINTR) {}
    Instant replied = Clock::now();
    registry::Grant grant;
    std::vector<uint8_t> state;
    if (reg.receive_accept(&grant, &state, &err) < 0) return die(err);
    Session ses;
    if (!open_session(grant, &ses, &err)) return die(err);
    int h = ses.stack->import_connection(state, Clock::now());
    if (h < 0) return die(std::string("importing the registry's connection: ") + std::strerror(-h));
    double handover_ms = std::chrono::duration<double, std::milli>(Clock::now() - replied).count();
    std::fprintf(stderr, "utcp-xfer: accepted %s:%u on endpoint %u, next hop %s, %zu bytes of state, imported in %.1f ms\n",
                 ip_str(grant.remote_ip).c_str(), grant.remote_port, grant.endpoint_id,
                 mac_str(grant.next_hop_mac).c_str(), state.size(), handover_ms);
    CopyResult res;
    if (copy_loop(*ses.stack, *ses.dev, h, i == 0, ends, &res)) return 1;
    summary(res, replied, "registry accept");
  }
  if (reg.release(lg.endpoint_id, &err) < 0) return die(err);
  return 0;
}

// After --send-seeded / --hash-received: "sent|received BYTES SHA256" lines on stderr.
// A seeded stream cut short (the connection ended before all of it went) is an error.
int report_hashes(const CopyEnds& ends) {
  if (ends.gen) {
    std::fprintf(stderr, "utcp-xfer: sent %llu %s\n", (unsigned long long)ends.gen_hash->bytes(),
                 ends.gen_hash->hex().c_str());
    if (ends.gen->left() != 0) return die(std::to_string(ends.gen->left()) + " bytes of the seeded stream were not sent");
  }
  if (ends.sink)
    std::fprintf(stderr, "utcp-xfer: received %llu %s\n", (unsigned long long)ends.sink->bytes(), ends.sink->hex().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0)) return usage(stdout);
  if (argc < 3) return usage(stderr);
  const bool listen = std::strcmp(argv[1], "listen") == 0;
  if (!listen && std::strcmp(argv[1], "connect") != 0) return usage(stderr);
  const int npos = listen ? 3 : 4;  // positional arguments, the command included
  if (argc < npos) return usage(stderr);
  int count = 1;
  bool local_handshake = false;
  std::unique_ptr<SeededStream> gen;
  Sha256 gen_hash, sink;
  CopyEnds ends;
  registry::RingSize rings;
  for (int i = npos; i < argc; ++i) {
    std::string a = argv[i];
    if (listen && a == "--count" && i + 1 < argc) count = std::atoi(argv[++i]);
    else if (!listen && a == "--local-handshake") local_handshake = true;
    else if (a == "--send-seeded" && i + 1 < argc) {
      unsigned long long seed = 0, bytes = 0;
      char tail = 0;
      if (std::sscanf(argv[++i], "%llu:%llu%c", &seed, &bytes, &tail) != 2 || argv[i][0] == '-') return usage(stderr);
      gen = std::make_unique<SeededStream>(seed, bytes);
      ends.gen = gen.get();
      ends.gen_hash = &gen_hash;
    } else if (a == "--hash-received") ends.sink = &sink;
    else if (a == "--fin-after-peer") ends.fin_after_peer = true;
    else if (a == "--bulk") rings = registry::rings_for_profile("bulk");
    else if (a == "--rings" && i + 1 < argc) {
      unsigned rx = 0, tx = 0, slot = 0;
      char tail = 0;
      if (std::sscanf(argv[++i], "%u,%u,%u%c", &rx, &tx, &slot, &tail) != 3 || rx > 4096 || tx > 4096 ||
          slot > registry::kMaxRingSlot)
        return usage(stderr);
      rings = registry::RingSize{uint16_t(rx), uint16_t(tx), slot};
    } else {
      return usage(stderr);
    }
  }
  if (listen) {
    int port = std::atoi(argv[2]);
    if (port <= 0 || port > 65535 || count <= 0) return usage(stderr);
    if (serve_listen(uint16_t(port), count, rings, ends)) return 1;
    return report_hashes(ends);
  }
  Ipv4Addr remote{};
  uint16_t port = uint16_t(std::atoi(argv[3]));
  if (!parse_ip(argv[2], &remote)) return die(std::string("bad address ") + argv[2]);

  std::string err;
  registry::RegistryClient reg;
  registry::Grant grant;
  if (reg.connect(&err) < 0) return die(err);
  reg.set_rings(rings);
  std::vector<uint8_t> state;
  Instant start = Clock::now();
  int rc = reg.connect_endpoint(remote, port, 0, &grant, &err, local_handshake ? nullptr : &state);
  if (rc < 0) return die(err);
  Session ses;
  if (!open_session(grant, &ses, &err)) return die(err);
  Stack& stack = *ses.stack;

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
  CopyResult res;
  if (copy_loop(stack, *ses.dev, h, true, ends, &res)) return 1;
  summary(res, start, state.empty() ? "library handshake" : "registry handshake");
  return report_hashes(ends);
}
