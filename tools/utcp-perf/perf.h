// perf.h - utcp-perf's shared parts: the wire protocol between client and server, the
// transport interface both client stacks (kernel sockets, libutcp) implement, and results.
//
// Every connection opens with a 24-byte request header from the client telling the
// server what to do with it (sink, source or echo); nothing else is ever negotiated, so
// a kernel-TCP server answers kernel and utcp clients alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace utcp::perf {

// ------------------------------------------------------------------ wire protocol

inline constexpr uint32_t kMagic = 0x55504631;  // "UPF1"

enum class ServeMode : uint8_t {
  kSink = 1,    // read to end of stream, then answer the byte count (8 bytes, big endian), close
  kSource = 2,  // send `bytes` (0: until the client closes) in `msg_size` writes, then FIN
  kEcho = 3,    // send back every byte read, until end of stream
};

// The request header, big endian on the wire.
struct Request {
  ServeMode mode = ServeMode::kSink;
  uint32_t msg_size = 0;  // source: write size; echo: unused
  uint64_t bytes = 0;     // source: how much to send
  static constexpr size_t kLen = 24;
  void encode(uint8_t out[kLen]) const;
  // False when the bytes are not a request this version understands.
  bool decode(const uint8_t in[kLen]);
};

// ------------------------------------------------------------------ transports

// One client-side connection; what it is depends on the transport.
struct Conn {
  virtual ~Conn() = default;
  // Set by the driver: the connection's flow wants to read / write (kernel poll events).
  bool want_read = false, want_write = false;
};

// A client TCP stack as the benchmarks see it: blocking opens, non-blocking I/O, and a
// progress call that runs the stack and sleeps until something can happen.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual const char* name() const = 0;
  // Opens a connection to the server and waits until it is established; `setup_us`
  // receives the time from the request to established. Returns nullptr with `error` set.
  virtual std::unique_ptr<Conn> open(double* setup_us, std::string* error) = 0;
  // Non-blocking; bytes moved, 0 on end of stream (recv), -EAGAIN, or -errno.
  virtual int64_t send(Conn& c, std::span<const uint8_t> data) = 0;
  virtual int64_t recv(Conn& c, std::span<uint8_t> out) = 0;
  virtual int shutdown_write(Conn& c) = 0;
  // Graceful close; returns at once, like close(2). The closing handshake goes on in
  // progress() and drain(), which free what the connection held (utcp: the endpoint).
  virtual void close(std::unique_ptr<Conn> c) = 0;
  // Waits (bounded) until every closed connection has finished closing.
  virtual void drain() {}
  // Runs the stack for `conns`; sleeps (at most `max_wait_us`) only when `busy` is false
  // and nothing is pending. Connections say what they wait for in want_read/want_write.
  virtual void progress(std::span<Conn* const> conns, bool busy, int64_t max_wait_us) = 0;
  // Where the setup time of the opens so far went, as (name, mean microseconds) pairs;
  // empty when the transport does not break it down.
  virtual std::vector<std::pair<std::string, double>> setup_parts() const { return {}; }
  // --counters: what the stack counted for `c` (and the transport while driving it), as
  // (name, value) pairs, read before it is closed; empty when the transport has none.
  virtual std::vector<std::pair<std::string, double>> counters(Conn&) const { return {}; }
  // --counters asked: also count what costs time to count (utcp: clock reads around
  // each write). Off by default, so the clock is read as often on both stacks.
  virtual void set_counting(bool) {}
};

struct Target {
  std::string host;  // dotted IPv4
  uint16_t port = 5201;
};

std::unique_ptr<Transport> make_kernel_transport(const Target& t, bool nodelay, std::string* error);
// Who runs the three-way handshake: utcpd (paper §3.4), or the library over an endpoint
// asked for when connecting, or over one utcpd granted ahead (registry/prefetch.h).
enum class Handshake { kRegistry, kLibrary, kPrefetch };
const char* handshake_name(Handshake h);
// `rings`: the endpoint rings each connection asks utcpd for (rx entries, tx entries, slot
// size; 0 = utcpd's default).
struct RingAsk {
  uint32_t rx_entries = 0, tx_entries = 0, slot_size = 0;
};
std::unique_ptr<Transport> make_utcp_transport(const Target& t, bool nodelay, Handshake handshake,
                                               const RingAsk& rings, bool tx_wait, bool reuse, std::string* error);

// utcp-sps's client (the single protocol server, tools/utcp-sps): the TCP runs in that
// server, reached over a Unix socket at `socket_path` (empty: its default).
std::unique_ptr<Transport> make_sps_transport(const Target& t, bool nodelay, const std::string& socket_path,
                                              std::string* error);

// The kernel-TCP server: serves every mode on `port` until killed. Returns an exit status.
int run_server(const std::string& bind_addr, uint16_t port, bool verbose);

// ------------------------------------------------------------------ helpers

int64_t now_us();
// Raises RLIMIT_NOFILE's soft limit to the hard limit (1,000 connections need > 1,024 fds).
void raise_fd_limit();

// Memory as the system sees it, for per-connection costs.
struct MemSample {
  int64_t rss_kib = 0;      // this process's resident set (/proc/self/status VmRSS)
  // Its private part (RssAnon); mapped endpoint rings count in RssFile, not here, so
  // the rings are counted once, in rings_kib.
  int64_t rss_anon_kib = 0;
  int64_t slab_kib = 0;     // /proc/meminfo Slab
  int64_t vmalloc_kib = 0;  // /proc/meminfo VmallocUsed
  // Endpoint ring memory the module has allocated, all endpoints (live_ring_bytes of
  // UTCP_IOC_GLOBAL_STATS): slot pages are allocated on first use, outside vmalloc. 0
  // without the module (or without the right to ask it: CAP_NET_ADMIN).
  int64_t rings_kib = 0;
};
MemSample sample_memory();

}  // namespace utcp::perf
