// utcp-perf - an iperf-like measuring tool for libutcp and the kernel's TCP.
//
// The client side runs either stack (--stack utcp|kernel); the server side is always
// kernel TCP (`utcp-perf server`), serving every mode. Measures stream throughput by
// write size, request/response round trips, connection setup time, connections per
// second and N concurrent streams; prints a human summary or one JSON object.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "perf.h"

using namespace utcp::perf;

namespace {

int usage(FILE* out) {
  std::fprintf(out,
      "usage: utcp-perf server [--bind ADDR] [--port P] [-v]\n"
      "       utcp-perf --stack utcp|kernel|sps --client ADDR [--port P] [MODE] [--json]\n"
      "\n"
      "The server is kernel TCP and serves every mode; the client runs the chosen stack\n"
      "(utcp: this process's libutcp over endpoints granted by utcpd, at $UTCP_REGISTRY or\n"
      "/run/utcp/utcpd.sock; sps: the same TCP code in the single protocol server utcp-sps,\n"
      "reached over a Unix socket, --sps-socket PATH, default /run/utcp/sps.sock).\n"
      "\n"
      "modes (stream is the default):\n"
      "  stream        --write-size N (16384), --bytes N (default 10M) or --time SEC,\n"
      "                --reverse (the server sends), --parallel N (N concurrent streams)\n"
      "  --rr SIZE     request/response of SIZE bytes each way on one connection,\n"
      "                --iterations N (1000); mean/p50/p99 round trip in microseconds\n"
      "  --connect N   N connections one after another: connect -> established time\n"
      "  --crr SIZE    connections per second: connect, one SIZE request/response, close;\n"
      "                --iterations N (200) or --time SEC\n"
      "\n"
      "options:\n"
      "  --handshake registry|library|prefetch  utcp: who runs the three-way handshake: utcpd\n"
      "                (default), the library, or the library over an endpoint utcpd granted\n"
      "                ahead of the connect (asked for per destination, registry/prefetch.h)\n"
      "  --rings RX,TX,SLOT  utcp: endpoint rings to ask utcpd for (descriptor counts, powers\n"
      "                of two; slot bytes, a multiple of 64 from 1536); 0 = utcpd's default\n"
      "  --no-reuse    utcp, --handshake prefetch: give each closed connection's endpoint back\n"
      "                to utcpd (by default it is moved to the next connection: kConnectReuse)\n"
      "  --tx-wait     utcp, one connection: send and sleep for the answer in one ioctl\n"
      "                (UTCP_IOC_TX_WAIT) instead of UTCP_IOC_TX, then epoll\n"
      "  --busy-poll US  every stack: after data last moved, look again at once (spin) for\n"
      "                US microseconds before sleeping on the sockets/endpoints\n"
      "  --json        one JSON object on stdout instead of the human summary\n"
      "  --quiet       no progress line on stderr\n"
      "  --counters    stream, rr, crr: a connection's counters (utcp: stack, TCP, endpoint,\n"
      "                writes refused, time asleep) in the output\n"
      "  --phases      crr: each connection's open, exchange and close calls timed apart;\n"
      "                rr: each round trip split in two -- the send call (for both stacks it\n"
      "                includes the transmit and, over veth, the peer's receive processing)\n"
      "                and the rest (waiting, waking, receiving); one more clock read each\n"
      "Sizes take K/M/G suffixes (powers of 1024).\n");
  return out == stdout ? 0 : 2;
}

bool parse_size(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || end == s || *s == '-') return false;
  uint64_t mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1ull << 10, ++end;
  else if (*end == 'M' || *end == 'm') mul = 1ull << 20, ++end;
  else if (*end == 'G' || *end == 'g') mul = 1ull << 30, ++end;
  if (*end) return false;
  if (v > UINT64_MAX / mul) return false;
  *out = v * mul;
  return true;
}

enum class Mode { kStream, kRr, kConnect, kCrr };

struct Options {
  std::string stack;
  std::string sps_socket;  // --stack sps: utcp-sps's socket (empty: its default)
  Target target;
  Handshake handshake = Handshake::kRegistry;
  RingAsk rings;
  Mode mode = Mode::kStream;
  uint64_t write_size = 16384;
  uint64_t bytes = 10ull << 20;
  double time_s = 0;  // > 0: time-limited instead of --bytes
  bool reverse = false;
  uint64_t parallel = 1;
  uint64_t msg_size = 1;
  uint64_t iterations = 0;  // 0: the mode's default
  bool json = false;
  bool quiet = false;
  int64_t busy_poll_us = 0;  // > 0: spin this long after the last movement before sleeping
  bool counters = false;     // stream, rr, crr: a connection's counters in the output (crr: the last)
  bool phases = false;       // rr: the send call apart from the rest; crr: open, exchange, close apart
  bool tx_wait = false;      // utcp: send and sleep in one UTCP_IOC_TX_WAIT (one connection)
  bool reuse = true;         // utcp, --handshake prefetch: closed connections' endpoints go to the next
};

struct Summary {
  double mean = 0, p50 = 0, p99 = 0, min = 0, max = 0;
};

Summary summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  auto pct = [&](double p) {  // nearest rank
    size_t rank = size_t(std::ceil(p * double(v.size())));
    return v[std::min(v.size() - 1, rank > 0 ? rank - 1 : 0)];
  };
  s.p50 = pct(0.50);
  s.p99 = pct(0.99);
  s.min = v.front();
  s.max = v.back();
  return s;
}

std::string json_summary(const Summary& s) {
  char b[256];
  std::snprintf(b, sizeof b, "{\"mean\": %.1f, \"p50\": %.1f, \"p99\": %.1f, \"min\": %.1f, \"max\": %.1f}", s.mean,
                s.p50, s.p99, s.min, s.max);
  return b;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "utcp-perf: %s\n", msg.c_str());
  return 1;
}

// ------------------------------------------------------------------ flows

// One connection's part of a benchmark, stepped without blocking. step() moves what it
// can and says whether anything moved; it keeps conn->want_read/want_write current.
struct Flow {
  virtual ~Flow() = default;
  virtual bool step(Transport& tr) = 0;
  bool done = false;
  std::string error;  // set (and done) when the connection failed
  std::unique_ptr<Conn> conn;

 protected:
  // Ends the flow with an error (rc: -errno, or 0 when `what` says it all).
  bool fail_with(const char* what, int64_t rc) {
    error = rc ? std::string(what) + ": " + std::strerror(int(-rc)) : std::string(what);
    done = true;
    return true;
  }
};

// Sends the request header, then the stream (forward) or reads it (reverse); a forward
// stream ends with the server's byte count, a reverse one with the server's FIN.
struct StreamFlow : Flow {
  StreamFlow(const Request& req, uint64_t to_send, int64_t deadline_us, std::span<const uint8_t> wbuf)
      : to_send(to_send), deadline_us(deadline_us), wbuf(wbuf) {
    req.encode(hdr);
    reverse = req.mode == ServeMode::kSource;
  }
  uint8_t hdr[Request::kLen];
  size_t hdr_sent = 0;
  bool reverse;
  uint64_t to_send;      // forward: bytes to send (time-limited: until deadline)
  int64_t deadline_us;   // 0: none
  std::span<const uint8_t> wbuf;
  uint64_t sent = 0, received = 0;
  bool shut = false;
  uint8_t count[8];
  size_t count_len = 0;
  uint64_t server_count = 0;
  // Received stream bytes are dropped here; one buffer for all flows, so per-connection
  // memory counts the stacks, not this tool.
  static inline uint8_t rbuf[256 * 1024];

  bool step(Transport& tr) override {
    bool moved = false;
    while (hdr_sent < Request::kLen) {
      int64_t w = tr.send(*conn, {hdr + hdr_sent, Request::kLen - hdr_sent});
      if (w == -EAGAIN) {
        conn->want_write = true;
        return moved;
      }
      if (w <= 0) return fail_with("send", w);
      hdr_sent += size_t(w);
      moved = true;
    }
    return reverse ? step_reverse(tr, moved) : step_forward(tr, moved);
  }

  bool step_forward(Transport& tr, bool moved) {
    conn->want_write = conn->want_read = false;
    while (!shut) {
      bool more = deadline_us ? now_us() < deadline_us : sent < to_send;
      if (!more) {
        int rc = tr.shutdown_write(*conn);
        if (rc < 0) return fail_with("shutdown", rc);
        shut = true;
        moved = true;
        break;
      }
      size_t n = wbuf.size();
      if (!deadline_us) n = size_t(std::min<uint64_t>(n, to_send - sent));
      int64_t w = tr.send(*conn, wbuf.first(n));
      if (w == -EAGAIN) {
        conn->want_write = true;
        return moved;
      }
      if (w <= 0) return fail_with("send", w);
      sent += uint64_t(w);
      moved = true;
    }
    // The server's count of what it received, then its FIN.
    for (;;) {
      int64_t r = count_len < 8 ? tr.recv(*conn, {count + count_len, 8 - count_len}) : tr.recv(*conn, rbuf);
      if (r == -EAGAIN) {
        conn->want_read = true;
        return moved;
      }
      if (r < 0) return fail_with("recv", r);
      if (r == 0) {
        if (count_len < 8) return fail_with("server closed before its byte count", 0);
        done = true;
        return true;
      }
      moved = true;
      if (count_len < 8) {
        count_len += size_t(r);
        if (count_len == 8) {
          for (uint8_t b : count) server_count = (server_count << 8) | b;
          if (server_count != sent) {
            error = "server counted " + std::to_string(server_count) + " bytes, we sent " + std::to_string(sent);
            done = true;
            return true;
          }
        }
      }
    }
  }

  bool step_reverse(Transport& tr, bool moved) {
    conn->want_write = false;
    for (;;) {
      if (deadline_us && now_us() >= deadline_us) {
        done = true;  // time is up: the close resets the server's unlimited stream
        return true;
      }
      int64_t r = tr.recv(*conn, rbuf);
      if (r == -EAGAIN) {
        conn->want_read = true;
        return moved;
      }
      if (r < 0) return fail_with("recv", r);
      if (r == 0) {
        done = true;
        return true;
      }
      received += uint64_t(r);
      moved = true;
    }
  }
};

// Request/response on one connection: send `msg` bytes, read `msg` bytes back, repeat.
struct EchoFlow : Flow {
  EchoFlow(uint64_t msg, uint64_t iterations, bool send_header) : msg(msg), iterations(iterations) {
    out.resize(msg + (send_header ? Request::kLen : 0));
    for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(i * 7 + 1);
    header = send_header ? Request::kLen : 0;
    if (send_header) {
      Request r;
      r.mode = ServeMode::kEcho;
      r.encode(out.data());
    }
    in.resize(std::max<uint64_t>(msg, 1));
  }
  uint64_t msg, iterations;
  size_t header;  // bytes of header still at the front of `out` for the first request
  std::vector<uint8_t> out, in;
  size_t off = 0, got = 0;
  bool sending = true;
  int64_t t0 = 0;
  std::vector<double> rtt_us;
  bool phases = false;          // --phases: also time the send call of each round trip
  std::vector<double> send_us;  // with phases: t0 to the request fully accepted by send

  bool step(Transport& tr) override {
    bool moved = false;
    conn->want_read = conn->want_write = false;
    for (;;) {
      if (sending) {
        if (off == 0 && t0 == 0) t0 = now_us();
        const size_t total = header + msg;
        int64_t w = tr.send(*conn, {out.data() + off, total - off});
        if (w == -EAGAIN) {
          conn->want_write = true;
          return moved;
        }
        if (w <= 0) return fail_with("send", w);
        off += size_t(w);
        moved = true;
        if (off == total) {
          sending = false;
          got = 0;
          if (phases) send_us.push_back(double(now_us() - t0));
        }
        continue;
      }
      int64_t r = tr.recv(*conn, {in.data(), size_t(msg - got)});
      if (r == -EAGAIN) {
        conn->want_read = true;
        return moved;
      }
      if (r < 0) return fail_with("recv", r);
      if (r == 0) return fail_with("server closed mid-exchange", 0);
      got += size_t(r);
      moved = true;
      if (got < msg) continue;
      rtt_us.push_back(double(now_us() - t0));
      t0 = 0;
      if (header) {
        // Later requests carry no header: shift the message to the front.
        out.erase(out.begin(), out.begin() + long(header));
        header = 0;
      }
      off = 0;
      sending = true;
      if (rtt_us.size() == iterations) {
        done = true;
        return true;
      }
    }
  }
};

// Steps every flow and the stack until all are done; a progress line every 2 s.
void drive(Transport& tr, std::vector<Flow*>& flows, const Options& o) {
  std::vector<Conn*> conns;
  for (Flow* f : flows) conns.push_back(f->conn.get());
  const int64_t start = now_us();
  int64_t next_report = start + 2'000'000;
  int64_t last_moved = start;
  for (;;) {
    bool moved = false, busy = false, all_done = true;
    for (Flow* f : flows) {
      if (f->done) continue;
      const bool m = f->step(tr);
      moved |= m;
      if (!f->done) all_done = false;
      // A flow that moved and then found its connection blocked (it says what it waits
      // for) would only find it blocked again at once: no reason to step before sleeping.
      busy |= m && !f->done && !f->conn->want_read && !f->conn->want_write;
    }
    if (all_done) break;
    // --busy-poll: the same for every stack — keep stepping without sleeping for a while
    // after the last movement (the application spins; the kernel's sockets and utcp's
    // rings are both looked at again at once) instead of sleeping on the files.
    if (o.busy_poll_us > 0) {
      const int64_t t = now_us();
      if (moved) last_moved = t;
      busy = busy || t - last_moved < o.busy_poll_us;
    }
    tr.progress(conns, busy, 100'000);
    if (!o.quiet) {
      int64_t t = now_us();
      if (t >= next_report) {
        size_t finished = 0;
        for (Flow* f : flows) finished += f->done;
        std::fprintf(stderr, "utcp-perf: %s %.0f s, %zu/%zu connections finished\n", tr.name(),
                     double(t - start) / 1e6, finished, flows.size());
        next_report = t + 2'000'000;
      }
    }
  }
}

// ------------------------------------------------------------------ modes

struct Output {
  std::string json;  // fields, comma-separated, without braces
  std::string human;
  void field(const char* k, const std::string& v) {
    if (!json.empty()) json += ", ";
    json += "\"" + std::string(k) + "\": " + v;
  }
  void num(const char* k, double v) {
    char b[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(b, sizeof b, "%.0f", v);
    else std::snprintf(b, sizeof b, "%.3f", v);
    field(k, b);
  }
  void str(const char* k, const std::string& v) { field(k, "\"" + v + "\""); }
};

// --counters: the transport's counters of one connection, in both outputs.
void add_counters(const std::vector<std::pair<std::string, double>>& counters, Output* out) {
  if (counters.empty()) return;
  std::string j = "{";
  out->human += "counters:";
  for (auto& [k, v] : counters) {
    char b[128];
    std::snprintf(b, sizeof b, "%s\"%s\": %.0f", j.size() > 1 ? ", " : "", k.c_str(), v);
    j += b;
    std::snprintf(b, sizeof b, " %s %.0f", k.c_str(), v);
    out->human += b;
  }
  out->field("counters", j + "}");
  out->human += "\n";
}

int run_stream(Transport& tr, const Options& o, Output* out) {
  const size_t n = size_t(o.parallel);
  std::vector<uint8_t> wbuf(size_t(o.write_size));
  for (size_t i = 0; i < wbuf.size(); ++i) wbuf[i] = uint8_t(i * 131 + 7);
  const MemSample m0 = sample_memory();
  std::vector<std::unique_ptr<StreamFlow>> flows;
  std::vector<double> setup;
  const uint64_t per_conn = o.bytes / n, extra = o.bytes % n;
  for (size_t i = 0; i < n; ++i) {
    double us = 0;
    std::string err;
    auto c = tr.open(&us, &err);
    if (!c) return fail("connection " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + err);
    setup.push_back(us);
    Request req;
    req.mode = o.reverse ? ServeMode::kSource : ServeMode::kSink;
    req.msg_size = uint32_t(o.write_size);
    const uint64_t mine = per_conn + (i < extra ? 1 : 0);
    req.bytes = o.reverse && o.time_s <= 0 ? mine : 0;
    flows.push_back(std::make_unique<StreamFlow>(req, mine, 0, wbuf));
    flows.back()->conn = std::move(c);
    if (!o.quiet && n >= 50 && (i + 1) % 100 == 0)
      std::fprintf(stderr, "utcp-perf: %s %zu/%zu connections open\n", tr.name(), i + 1, n);
  }
  const MemSample m1 = sample_memory();
  const int64_t start = now_us();
  std::vector<Flow*> fl;
  for (auto& f : flows) {
    if (o.time_s > 0) f->deadline_us = start + int64_t(o.time_s * 1e6);
    fl.push_back(f.get());
  }
  drive(tr, fl, o);
  const int64_t end = now_us();
  const MemSample m2 = sample_memory();
  uint64_t total = 0;
  for (auto& f : flows) {
    if (!f->error.empty()) return fail(std::string(tr.name()) + " stream: " + f->error);
    total += o.reverse ? f->received : f->server_count;
  }
  std::vector<std::pair<std::string, double>> counters;
  if (o.counters && !flows.empty()) counters = tr.counters(*flows.front()->conn);
  for (auto& f : flows) tr.close(std::move(f->conn));
  tr.drain();
  const double secs = double(end - start) / 1e6;
  const double mbps = secs > 0 ? double(total) * 8 / secs / 1e6 : 0;
  out->str("mode", "stream");
  out->str("direction", o.reverse ? "receive" : "send");
  out->num("write_size", double(o.write_size));
  out->num("streams", double(n));
  out->num("bytes", double(total));
  out->num("seconds", secs);
  out->num("mbit_per_s", mbps);
  out->field("setup_us", json_summary(summarize(setup)));
  auto per = [&](int64_t a, int64_t b) { return double(b - a) / double(n); };
  auto mem_json = [&](const MemSample& a, const MemSample& b) {
    char m[320];
    std::snprintf(m, sizeof m,
                  "{\"rss_kib\": %.2f, \"rss_anon_kib\": %.2f, \"slab_kib\": %.2f, \"vmalloc_kib\": %.2f, "
                  "\"rings_kib\": %.2f}",
                  per(a.rss_kib, b.rss_kib), per(a.rss_anon_kib, b.rss_anon_kib), per(a.slab_kib, b.slab_kib),
                  per(a.vmalloc_kib, b.vmalloc_kib), per(a.rings_kib, b.rings_kib));
    return std::string(m);
  };
  const std::string mem =
      "{\"established\": " + mem_json(m0, m1) + ", \"after_transfer\": " + mem_json(m0, m2) + "}";
  out->field("memory_per_connection", mem);
  char h[512];
  std::snprintf(h, sizeof h,
                "%s stream %s, write %" PRIu64 " B, %zu stream(s): %" PRIu64 " B in %.3f s = %.1f Mbit/s\n"
                "  memory per connection (established): rss %+.1f KiB (private %+.1f KiB), slab %+.1f KiB, "
                "vmalloc %+.1f KiB, endpoint rings %+.1f KiB\n",
                tr.name(), o.reverse ? "receive" : "send", o.write_size, n, total, secs, mbps,
                per(m0.rss_kib, m1.rss_kib), per(m0.rss_anon_kib, m1.rss_anon_kib), per(m0.slab_kib, m1.slab_kib),
                per(m0.vmalloc_kib, m1.vmalloc_kib), per(m0.rings_kib, m1.rings_kib));
  out->human = h;
  add_counters(counters, out);
  return total > 0 ? 0 : fail("no bytes moved");
}

int run_rr(Transport& tr, const Options& o, Output* out) {
  double setup_us = 0;
  std::string err;
  auto c = tr.open(&setup_us, &err);
  if (!c) return fail(err);
  const uint64_t iters = o.iterations ? o.iterations : 1000;
  EchoFlow f(o.msg_size, iters, true);
  f.phases = o.phases;
  f.conn = std::move(c);
  std::vector<Flow*> fl{&f};
  drive(tr, fl, o);
  if (!f.error.empty()) return fail(std::string(tr.name()) + " rr: " + f.error);
  std::vector<std::pair<std::string, double>> counters;
  if (o.counters) counters = tr.counters(*f.conn);
  tr.close(std::move(f.conn));
  tr.drain();
  // The first exchange carries the request header; it is measured like the rest.
  Summary s = summarize(f.rtt_us);
  out->str("mode", "rr");
  out->num("msg_size", double(o.msg_size));
  out->num("iterations", double(f.rtt_us.size()));
  out->field("rtt_us", json_summary(s));
  out->num("setup_us", setup_us);
  char h[256];
  std::snprintf(h, sizeof h, "%s rr %" PRIu64 " B x %zu: round trip mean %.1f us, p50 %.1f us, p99 %.1f us\n",
                tr.name(), o.msg_size, f.rtt_us.size(), s.mean, s.p50, s.p99);
  out->human = h;
  if (o.phases && f.send_us.size() == f.rtt_us.size()) {
    std::vector<double> rest(f.rtt_us.size());
    for (size_t i = 0; i < rest.size(); ++i) rest[i] = f.rtt_us[i] - f.send_us[i];
    const Summary ss = summarize(f.send_us), rs = summarize(rest);
    out->field("send_us", json_summary(ss));
    out->field("rest_us", json_summary(rs));
    std::snprintf(h, sizeof h, "  send call mean %.1f us (p50 %.1f), the rest mean %.1f us (p50 %.1f)\n", ss.mean,
                  ss.p50, rs.mean, rs.p50);
    out->human += h;
  }
  add_counters(counters, out);
  return 0;
}

int run_connect(Transport& tr, const Options& o, Output* out) {
  const uint64_t n = o.iterations ? o.iterations : 20;
  std::vector<double> setup;
  for (uint64_t i = 0; i < n; ++i) {
    double us = 0;
    std::string err;
    auto c = tr.open(&us, &err);
    if (!c) return fail("connection " + std::to_string(i + 1) + ": " + err);
    setup.push_back(us);
    tr.close(std::move(c));  // the server sees end of stream before any request: it closes
  }
  tr.drain();
  Summary s = summarize(setup);
  out->str("mode", "connect");
  out->num("connections", double(n));
  out->field("setup_us", json_summary(s));
  // The first connect of a process pays for what is cold in it (for either stack: code
  // not yet run or translated, pages not yet touched; for utcp also the first grant,
  // which no prefetch can have asked for): reported apart, and the rest on their own.
  out->num("first_us", setup.front());
  if (n >= 2) out->field("warm_us", json_summary(summarize(std::vector<double>(setup.begin() + 1, setup.end()))));
  char h[256];
  std::snprintf(h, sizeof h, "%s connect x %" PRIu64 ": connect -> established mean %.1f us, p50 %.1f us, p99 %.1f us\n",
                tr.name(), n, s.mean, s.p50, s.p99);
  out->human = h;
  return 0;
}

int run_crr(Transport& tr, const Options& o, Output* out) {
  const uint64_t n = o.iterations ? o.iterations : (o.time_s > 0 ? UINT64_MAX : 200);
  const int64_t start = now_us(), deadline = o.time_s > 0 ? start + int64_t(o.time_s * 1e6) : 0;
  std::vector<double> conn_us, setup;
  std::vector<double> open_us, exchange_us, close_us;  // --phases
  std::vector<std::pair<std::string, double>> counters;
  int64_t next_report = start + 2'000'000;
  // One clock read per connection besides the transport's (two with --phases): the end
  // of one connection is the start of the next.
  int64_t t = start;
  for (uint64_t i = 0; i < n && (!deadline || t < deadline); ++i) {
    const int64_t t0 = t;
    double us = 0;
    std::string err;
    auto c = tr.open(&us, &err);
    if (!c) return fail("connection " + std::to_string(i + 1) + ": " + err);
    setup.push_back(us);
    EchoFlow f(o.msg_size, 1, true);
    f.conn = std::move(c);
    std::vector<Flow*> fl{&f};
    const int64_t t1 = o.phases ? now_us() : 0;
    drive(tr, fl, o);
    if (!f.error.empty()) return fail(std::string(tr.name()) + " crr: " + f.error);
    const int64_t t2 = o.phases ? now_us() : 0;
    if (o.counters) counters = tr.counters(*f.conn);  // the last connection's
    tr.close(std::move(f.conn));
    t = now_us();
    conn_us.push_back(double(t - t0));
    if (o.phases) {
      open_us.push_back(double(t1 - t0));
      exchange_us.push_back(double(t2 - t1));
      close_us.push_back(double(t - t2));
    }
    if (!o.quiet && t >= next_report) {
      std::fprintf(stderr, "utcp-perf: %s crr %zu connections\n", tr.name(), conn_us.size());
      next_report = t + 2'000'000;
    }
  }
  tr.drain();
  const double secs = double(now_us() - start) / 1e6;
  const double cps = secs > 0 ? double(conn_us.size()) / secs : 0;
  Summary s = summarize(conn_us);
  out->str("mode", "crr");
  out->num("msg_size", double(o.msg_size));
  out->num("connections", double(conn_us.size()));
  out->num("seconds", secs);
  out->num("connections_per_s", cps);
  out->field("connection_us", json_summary(s));
  out->field("setup_us", json_summary(summarize(setup)));
  char h[256];
  std::snprintf(h, sizeof h, "%s crr %" PRIu64 " B: %zu connections in %.3f s = %.1f connections/s (each mean %.1f us)\n",
                tr.name(), o.msg_size, conn_us.size(), secs, cps, s.mean);
  out->human = h;
  if (o.phases && !open_us.empty()) {
    // Each connection's time in the open call, the exchange and the close call; what
    // happens in between (the transport finishing earlier closes) falls in the next open.
    const Summary so = summarize(open_us), se = summarize(exchange_us), sc = summarize(close_us);
    out->field("open_us", json_summary(so));
    out->field("exchange_us", json_summary(se));
    out->field("close_us", json_summary(sc));
    std::snprintf(h, sizeof h, "  open mean %.1f us, exchange %.1f us, close %.1f us\n", so.mean, se.mean, sc.mean);
    out->human += h;
  }
  add_counters(counters, out);
  return conn_us.empty() ? fail("no connection completed") : 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && std::strcmp(argv[1], "server") == 0) {
    std::string bind = "0.0.0.0";
    uint64_t port = 5201;
    bool verbose = false;
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--bind" && i + 1 < argc) bind = argv[++i];
      else if (a == "--port" && i + 1 < argc && parse_size(argv[i + 1], &port) && port > 0 && port < 65536) ++i;
      else if (a == "-v" || a == "--verbose") verbose = true;
      else if (a == "-h" || a == "--help") return usage(stdout);
      else return usage(stderr);
    }
    return run_server(bind, uint16_t(port), verbose);
  }

  Options o;
  int modes = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "utcp-perf: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto size = [&](uint64_t lo, uint64_t hi) {
      const char* v = value();
      uint64_t x = 0;
      if (!parse_size(v, &x) || x < lo || x > hi) {
        std::fprintf(stderr, "utcp-perf: %s: '%s' is not a size from %" PRIu64 " to %" PRIu64 "\n", a.c_str(), v, lo, hi);
        std::exit(2);
      }
      return x;
    };
    if (a == "-h" || a == "--help") return usage(stdout);
    else if (a == "--stack") o.stack = value();
    else if (a == "--sps-socket") o.sps_socket = value();
    else if (a == "-c" || a == "--client") o.target.host = value();
    else if (a == "--port") o.target.port = uint16_t(size(1, 65535));
    else if (a == "--handshake") {
      std::string h = value();
      if (h == "registry") o.handshake = Handshake::kRegistry;
      else if (h == "library") o.handshake = Handshake::kLibrary;
      else if (h == "prefetch") o.handshake = Handshake::kPrefetch;
      else return usage(stderr);
    } else if (a == "--rings") {
      const char* v = value();
      unsigned rx = 0, tx = 0, slot = 0;
      char tail = 0;
      if (std::sscanf(v, "%u,%u,%u%c", &rx, &tx, &slot, &tail) != 3 || rx > 4096 || tx > 4096 || slot > 65792)
        return fail(std::string("--rings: want RX,TX,SLOT (e.g. 64,64,2048), got ") + v), 2;
      o.rings = RingAsk{rx, tx, slot};
    } else if (a == "--write-size") o.write_size = size(1, 16 << 20);
    else if (a == "--bytes") o.bytes = size(1, 1ull << 40);
    else if (a == "--time") {
      const char* v = value();
      char* end = nullptr;
      o.time_s = std::strtod(v, &end);
      if (*end || !(o.time_s > 0 && o.time_s < 86400)) return fail(std::string("--time: bad seconds ") + v), 2;
    } else if (a == "--reverse") o.reverse = true;
    else if (a == "--parallel") o.parallel = size(1, 4096);
    else if (a == "--rr") o.mode = Mode::kRr, o.msg_size = size(1, 1 << 20), ++modes;
    else if (a == "--crr") o.mode = Mode::kCrr, o.msg_size = size(1, 1 << 20), ++modes;
    else if (a == "--connect") o.mode = Mode::kConnect, o.iterations = size(1, 1 << 20), ++modes;
    else if (a == "--iterations") o.iterations = size(1, 1ull << 32);
    else if (a == "--json") o.json = true;
    else if (a == "--quiet") o.quiet = true;
    else if (a == "--counters") o.counters = true;
    else if (a == "--phases") o.phases = true;
    else if (a == "--tx-wait") o.tx_wait = true;
    else if (a == "--no-reuse") o.reuse = false;
    else if (a == "--busy-poll") o.busy_poll_us = int64_t(size(1, 10'000'000));
    else {
      std::fprintf(stderr, "utcp-perf: unknown option %s\n", a.c_str());
      return usage(stderr);
    }
  }
  if (modes > 1) return fail("choose one of --rr, --crr, --connect"), 2;
  if (o.target.host.empty() || (o.stack != "utcp" && o.stack != "kernel" && o.stack != "sps")) return usage(stderr);
  if (o.parallel > 1 && o.mode != Mode::kStream) return fail("--parallel applies to streams only"), 2;
  if (o.bytes < o.parallel && o.time_s <= 0) return fail("--bytes must give each stream at least one byte"), 2;
  raise_fd_limit();

  // Round trips and connection churn want each message out at once (TCP_NODELAY on
  // both stacks); streams keep Nagle, as iperf does.
  const bool nodelay = o.mode != Mode::kStream;
  std::string err;
  std::unique_ptr<Transport> tr = o.stack == "utcp"  ? make_utcp_transport(o.target, nodelay, o.handshake, o.rings, o.tx_wait, o.reuse, &err)
                                  : o.stack == "sps" ? make_sps_transport(o.target, nodelay, o.sps_socket, &err)
                                                     : make_kernel_transport(o.target, nodelay, &err);
  if (!tr) return fail(err);
  tr->set_counting(o.counters);
  Output out;
  out.str("stack", o.stack);
  if (o.stack == "utcp") out.str("handshake", handshake_name(o.handshake));
  if (o.busy_poll_us > 0) out.num("busy_poll_us", double(o.busy_poll_us));
  if (o.tx_wait) out.str("tx_wait", "on");
  if (o.stack == "utcp" && o.handshake == Handshake::kPrefetch) out.str("reuse", o.reuse ? "on" : "off");
  int rc = 1;
  switch (o.mode) {
    case Mode::kStream: rc = run_stream(*tr, o, &out); break;
    case Mode::kRr: rc = run_rr(*tr, o, &out); break;
    case Mode::kConnect: rc = run_connect(*tr, o, &out); break;
    case Mode::kCrr: rc = run_crr(*tr, o, &out); break;
  }
  if (rc != 0) return rc;
  if (auto parts = tr->setup_parts(); !parts.empty()) {
    std::string j = "{", h = "setup by part (mean us):";
    for (auto& [k, v] : parts) {
      char b[96];
      std::snprintf(b, sizeof b, "%s\"%s\": %.1f", j.size() > 1 ? ", " : "", k.c_str(), v);
      j += b;
      std::snprintf(b, sizeof b, " %s %.1f", k.c_str(), v);
      h += b;
    }
    out.field("setup_parts_us", j + "}");
    out.human += h + "\n";
  }
  if (o.json) std::printf("{%s}\n", out.json.c_str());
  else std::fputs(out.human.c_str(), stdout);
  return 0;
}
