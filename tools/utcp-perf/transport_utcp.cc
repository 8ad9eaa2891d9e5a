// transport_utcp.cc - utcp-perf's libutcp client: the TCP runs in this process.
//
// Each connection is what utcpd grants today: one endpoint (its own rings, its own file)
// driven by one Stack. All of them share one epoll set over the endpoint files, so N
// connections are served by one thread, sleeping only when no stack has work before its
// next timer (poll_at). No sleeps on the data path: the wait is the endpoint's wake-up.
//
// With --tx-wait, a round trip of --rr on one connection costs one system call where the
// module offers UTCP_IOC_TX_WAIT: the stack defers its flush (Stack::set_defer_flush), and
// the request leaves in the call that sleeps until the response is in the ring (by
// default UTCP_IOC_TX, then epoll: measured faster in the TCG guest). The clock
// (a system call too where the clock source has no vDSO, e.g. HPET in a TCG guest) is
// read once per progress() and once after each sleep; sends and reads in between use
// that time.
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "api/stack.h"
#include "device/kmod_device.h"
#include "perf.h"
#include "registry/client.h"
#include "registry/prefetch.h"

namespace utcp::perf {

namespace {

struct UtcpConn : Conn {
  registry::Grant grant;
  std::unique_ptr<KmodDevice> dev;
  std::unique_ptr<Stack> stack;
  int h = -1;
  const Connection* closing = nullptr;  // after close(): the connection finishing its close
  Instant close_deadline;
  // --counters: writes asked of the stack and those refused (send buffer full).
  uint64_t writes = 0, writes_refused = 0, write_us = 0;
};

class UtcpTransport final : public Transport {
 public:
  UtcpTransport(Ipv4Addr remote, uint16_t port, bool nodelay, Handshake handshake, const RingAsk& rings,
                bool tx_wait, bool reuse)
      : remote_(remote), port_(port), nodelay_(nodelay), handshake_(handshake), tx_wait_(tx_wait),
        reuse_(reuse && handshake == Handshake::kPrefetch) {
    registry::RingSize r;
    r.rx_entries = uint16_t(rings.rx_entries);
    r.tx_entries = uint16_t(rings.tx_entries);
    r.slot_size = rings.slot_size;
    reg_.set_rings(r);
    prefetch_.set_rings(r);
  }
  ~UtcpTransport() override {
    if (ep_ >= 0) ::close(ep_);
  }

  int start(std::string* error) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      *error = std::string("epoll_create1: ") + std::strerror(errno);
      return -errno;
    }
    if (handshake_ == Handshake::kPrefetch)
      if (int rc = prefetch_.start(error); rc < 0) return rc;
    return reg_.connect(error);
  }

  const char* name() const override { return "utcp"; }

  std::unique_ptr<Conn> open(double* setup_us, std::string* error) override {
    if (!closing_.empty()) reap(Clock::now());
    auto c = std::make_unique<UtcpConn>();
    std::vector<uint8_t> state;
    const Instant t0 = Clock::now();
    const bool registry_handshake = handshake_ == Handshake::kRegistry;
    int rc = handshake_ == Handshake::kPrefetch
                 ? prefetch_.take(remote_, port_, &c->grant, error)
                 : reg_.connect_endpoint(remote_, port_, 0, &c->grant, error, registry_handshake ? &state : nullptr);
    if (rc < 0) return nullptr;
    for (uint32_t id : prefetch_.given_back()) parked_.erase(id);  // unmapped and closed
    const Instant t1 = Clock::now();
    if (c->grant.endpoint_fd < 0) {
      // A recycled endpoint (kConnectReuse): ours, mapped since its first connection.
      auto it = parked_.find(c->grant.endpoint_id);
      if (it == parked_.end()) {
        *error = "the prefetcher handed out endpoint " + std::to_string(c->grant.endpoint_id) + ", which is not ours";
        release(*c);  // no device: given back to utcpd, as on the other failures
        return nullptr;
      }
      c->dev = std::move(it->second);
      parked_.erase(it);
      // What the connection before left in the RX ring is not this one's.
      c->dev->receive(t1, [](std::span<const uint8_t>) {}, SIZE_MAX);
    } else {
      c->dev = KmodDevice::open(c->grant.endpoint_fd, c->grant.mtu, error);
    }
    const Instant t2 = Clock::now();
    if (!c->dev) {
      release(*c);
      return nullptr;
    }
    StackConfig cfg;
    cfg.ip = c->grant.local_ip;
    cfg.mac = c->grant.local_mac;
    c->stack = std::make_unique<Stack>(c->dev.get(), cfg);
    c->stack->add_neighbor(c->grant.remote_ip, c->grant.next_hop_mac);
    Stack& s = *c->stack;
    // Clock reads are few on purpose: each is a system call in the TCG guest (HPET).
    const Instant t_stack = Clock::now();  // the stack is built; the rest is import or handshake
    if (registry_handshake) {
      c->h = s.import_connection(state, t_stack);
      if (c->h < 0) {
        *error = std::string("importing the registry's connection: ") + std::strerror(-c->h);
        release(*c);
        return nullptr;
      }
    } else {
      c->h = s.socket();
      rc = s.bind(c->h, c->grant.local_port);
      if (rc < 0 || ((rc = s.connect(c->h, remote_, port_, t_stack)) < 0 && rc != -EINPROGRESS)) {
        *error = std::string("connect: ") + std::strerror(-rc);
        release(*c);
        return nullptr;
      }
      // The handshake in this process: run the stack until the connection is writable.
      bool syn_out = false;
      Instant now = t_stack;
      for (;;) {
        s.poll(now);
        now = Clock::now();
        if (!syn_out) {
          syn_out = true;
          syn_us_ += double((now - t_stack).count());
        }
        int ev = s.events(c->h);
        if (ev & kEventErr) {
          int err = 0;
          size_t len = sizeof err;
          s.getsockopt(c->h, SockOpt::kError, &err, &len);
          *error = std::string("connect: ") + std::strerror(err ? err : ECONNREFUSED);
          release(*c);
          return nullptr;
        }
        if (ev & kEventOut) break;
        const Instant next = s.poll_at();
        if (next > now) {
          c->dev->wait(next - now);
          const Instant woke = Clock::now();
          wait_us_ += double((woke - now).count());
          now = woke;
        }
      }
    }
    const Instant t3 = Clock::now();
    *setup_us = double((t3 - t0).count());
    ++opens_;
    registry_us_ += double((t1 - t0).count());
    map_us_ += double((t2 - t1).count());
    stack_us_ += double((t_stack - t2).count());
    handshake_us_ += double((t3 - t_stack).count());
    if (nodelay_) {
      int one = 1;
      s.setsockopt(c->h, SockOpt::kNoDelay, &one, sizeof one, t3);
    }
    // With --tx-wait, progress() sends what the stack queued: before it returns, or in
    // the call it sleeps in. Without it each poll sends its own frames, as it always did.
    s.set_defer_flush(tx_wait_ && c->dev->has_tx_wait());
    now_ = t3;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c.get();
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c->dev->fd(), &ev) < 0) {
      *error = std::string("epoll_ctl: ") + std::strerror(errno);
      release(*c);
      return nullptr;
    }
    return c;
  }

  int64_t send(Conn& c, std::span<const uint8_t> data) override {
    auto& u = static_cast<UtcpConn&>(c);
    int64_t w;
    {
      Timer t(counting_, &u.write_us);
      w = u.stack->write(u.h, data);
    }
    ++u.writes;
    if (w == -EAGAIN) ++u.writes_refused;
    return w == -ENOTCONN ? -EAGAIN : w;
  }
  int64_t recv(Conn& c, std::span<uint8_t> out) override {
    auto& u = static_cast<UtcpConn&>(c);
    // With nothing buffered, the read polls with `out` posted: in-order data is copied
    // from the RX slots straight into it (Stack::read with a time).
    Timer t(counting_, &read_us_);
    return u.stack->read(u.h, out, now_);
  }
  int shutdown_write(Conn& c) override {
    auto& u = static_cast<UtcpConn&>(c);
    return u.stack->shutdown(u.h, 1);
  }

  // Like the kernel's close(2), this returns at once: the closing handshake goes on in
  // progress()/drain(), and the endpoint goes back to utcpd when it is done.
  void close(std::unique_ptr<Conn> base) override {
    auto c = std::unique_ptr<UtcpConn>(static_cast<UtcpConn*>(base.release()));
    Stack& s = *c->stack;
    s.set_defer_flush(false);  // the close goes on in reap(), which sleeps on epoll
    // The stack holds only this connection: while its table is not empty, the entry (and
    // this pointer) stays valid after the handle is closed.
    c->closing = s.connection(c->h);
    s.close(c->h);
    c->h = -1;
    const Instant now = Clock::now();
    s.poll(now);
    c->close_deadline = now + Duration(2'000'000);
    closing_.push_back(std::move(c));
  }

  std::vector<std::pair<std::string, double>> setup_parts() const override {
    if (!opens_) return {};
    const double n = double(opens_);
    const bool registry = handshake_ == Handshake::kRegistry;
    std::vector<std::pair<std::string, double>> parts = {{"registry", registry_us_ / n},
                                                         {"map", map_us_ / n},
                                                         {"stack", stack_us_ / n},
                                                         {registry ? "import" : "handshake", handshake_us_ / n}};
    if (!registry) {
      // Of the handshake: building and sending the SYN, and asleep for the SYN-ACK.
      parts.emplace_back("handshake_syn", syn_us_ / n);
      parts.emplace_back("handshake_wait", wait_us_ / n);
    }
    return parts;
  }

  std::vector<std::pair<std::string, double>> counters(Conn& base) const override {
    auto& c = static_cast<UtcpConn&>(base);
    std::vector<std::pair<std::string, double>> v;
    auto add = [&](const char* k, uint64_t x) { v.emplace_back(k, double(x)); };
    add("writes", c.writes);
    add("writes_refused", c.writes_refused);
    add("write_us", c.write_us);
    add("progress_calls", progress_calls_);
    add("sleeps", sleeps_);
    add("asleep_us", asleep_us_);
    add("flush_us", flush_us_);
    add("poll_us", poll_us_);
    add("read_us", read_us_);
    add("reap_us", reap_us_);
    add("release_us", release_us_);
    const StackStats& s = c.stack->stats();
    add("frames_in", s.frames_in);
    add("frames_out", s.frames_out);
    add("tx_full", s.tx_full);
    add("gso_frames", s.gso_frames);
    add("gso_segments", s.gso_segments);
    add("split_frames", s.split_frames);
    add("split_bytes", s.split_bytes);
    if (const Connection* k = c.stack->connection(c.h)) {
      const Connection::Stats t = k->stats();
      add("segs_in", t.segs_in);
      add("segs_out", t.segs_out);
      add("retransmits", t.retransmits);
      add("fast_retransmits", t.fast_retransmits);
      add("timeouts", t.timeouts);
      add("dupacks", t.dupacks);
      add("zero_windows", t.zero_windows);
      add("ooo_segments", t.ooo_segments);
      add("sack_recoveries", t.sack_recoveries);
      add("tlp_probes", t.tlp_probes);
      add("cwnd", t.cc.cwnd);
      add("ssthresh", t.cc.ssthresh);
      add("snd_wnd", k->snd_wnd());
    }
    utcp_endpoint_stats e{};
    if (c.dev->stats(&e) == 0) {
      add("ep_rx_frames", e.rx_frames);
      add("ep_rx_drops_full", e.rx_drops_full);
      add("ep_rx_drops_too_big", e.rx_drops_too_big);
      add("ep_tx_frames", e.tx_frames);
      add("ep_tx_bytes", e.tx_bytes);
      add("ep_tx_rate_limited", e.tx_rate_limited);
      add("ep_tx_dev_errors", e.tx_dev_errors);
    }
    return v;
  }

  void drain() override {
    while (!closing_.empty()) {
      reap(Clock::now());
      if (closing_.empty()) break;
      Instant next = kInstantNever;
      for (auto& c : closing_) next = std::min({next, c->stack->poll_at(), c->close_deadline});
      wait_until(next, Clock::now());
    }
  }

  void set_counting(bool on) override { counting_ = on; }

  void progress(std::span<Conn* const> conns, bool busy, int64_t max_wait_us) override {
    const Instant now = now_ = Clock::now();
    ++progress_calls_;
    if (!closing_.empty()) {
      Timer t(counting_, &reap_us_);
      reap(now);
    }
    bool got = false;
    {
      Timer t(counting_, &poll_us_);
      for (Conn* b : conns) {
        auto* c = static_cast<UtcpConn*>(b);
        const uint64_t before = c->stack->stats().frames_in;
        c->stack->poll(now);
        got |= c->stack->stats().frames_in != before;
      }
    }
    Instant next = now + Duration(max_wait_us);
    for (Conn* b : conns) next = std::min(next, static_cast<UtcpConn*>(b)->stack->poll_at());
    for (auto& c : closing_) next = std::min({next, c->stack->poll_at(), c->close_deadline});
    if (busy || got || next <= now) {
      flush_all(conns, now);
      return;
    }
    ++sleeps_;
    if (tx_wait_ && conns.size() == 1 && closing_.empty()) {
      // One endpoint to sleep on: send the stack's queued frames and sleep in one call.
      auto* c = static_cast<UtcpConn*>(conns[0]);
      c->dev->flush_and_wait(now, next - now, waits_for_data_only(*c));
      now_ = Clock::now();
      asleep_us_ += uint64_t((now_ - now).count());
      return;
    }
    flush_all(conns, now);
    wait_until(next, now);
    asleep_us_ += uint64_t((now_ - now).count());
  }

 private:
  // --counters: adds the microseconds from its construction to its end to *acc (two
  // clock reads); without, reads no clock at all.
  class Timer {
   public:
    Timer(bool on, uint64_t* acc) : acc_(on ? acc : nullptr), t0_(on ? Clock::now() : Instant{}) {}
    ~Timer() {
      if (acc_) *acc_ += uint64_t((Clock::now() - t0_).count());
    }
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

   private:
    uint64_t* acc_;
    Instant t0_;
  };

  // Sends what the stacks queued (one UTCP_IOC_TX each); with --counters, timed.
  void flush_all(std::span<Conn* const> conns, Instant now) {
    Timer t(counting_, &flush_us_);
    for (Conn* b : conns) static_cast<UtcpConn*>(b)->stack->flush(now);
  }

  // Whether only data (or a SYN, FIN, RST) from the peer can move `c` on: it waits to
  // read and everything it queued has been sent, so a bare ACK is no reason to wake --
  // as the kernel wakes a reader for data, not for the ACK of its request. The timers
  // (an RTO, a delayed ACK) end the sleep by its timeout.
  static bool waits_for_data_only(const UtcpConn& c) {
    if (!c.want_read || c.want_write) return false;
    const Connection* k = c.stack->connection(c.h);
    return k && k->send_queued() <= size_t(uint32_t(k->snd_nxt() - k->snd_una()));
  }

  // Sleeps on every endpoint file until a frame arrives or `next` comes.
  void wait_until(Instant next, Instant now) {
    if (next <= now) return;
    const int64_t us = std::min<int64_t>((next - now).count(), 1'000'000);
    timespec ts{time_t(us / 1'000'000), long(us % 1'000'000) * 1000};
    epoll_event evs[64];
    ::epoll_pwait2(ep_, evs, 64, &ts, nullptr);
    now_ = Clock::now();
  }

  // Runs closing connections; those done (TIME-WAIT, gone, or out of time) are released.
  void reap(Instant now) {
    for (size_t i = 0; i < closing_.size();) {
      UtcpConn& c = *closing_[i];
      c.stack->poll(now);
      const bool done = c.stack->connection_count() == 0 || now >= c.close_deadline ||
                        c.closing->state() == TcpState::kTimeWait;
      if (!done) {
        ++i;
        continue;
      }
      {
        Timer t(counting_, &release_us_);
        ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.dev->fd(), nullptr);
        release(c);
      }
      closing_[i] = std::move(closing_.back());
      closing_.pop_back();
    }
  }

  void release(UtcpConn& c) {
    const uint32_t id = c.grant.endpoint_id;
    std::string err;
    c.stack.reset();
    // Prefetched grants: the endpoint goes to the next connection to the same server
    // (utcpd moves it to a new 4-tuple), its file and our mapping of its rings kept.
    if (reuse_ && id && c.dev) {
      if (prefetch_.recycle(id, remote_, port_, &err) == 0) {
        parked_[id] = std::move(c.dev);
        return;
      }
      std::fprintf(stderr, "utcp-perf: recycling endpoint %u: %s\n", id, err.c_str());
    }
    c.dev.reset();  // unmaps and closes the endpoint file (KmodDevice::open closes it on failure)
    // No reply awaited (kReleaseNoReply): closing costs no round trip to utcpd.
    // A grant is given back on the registry connection that asked for it.
    if (id && (handshake_ == Handshake::kPrefetch ? prefetch_.release(id, &err) : reg_.release(id, &err, false)) < 0)
      std::fprintf(stderr, "utcp-perf: releasing endpoint %u: %s\n", id, err.c_str());
  }

  registry::RegistryClient reg_;
  Ipv4Addr remote_;
  uint16_t port_;
  bool nodelay_;
  Handshake handshake_;
  // --tx-wait: with one connection, send and sleep in one UTCP_IOC_TX_WAIT. Off by
  // default: in the TCG guest it made round trips slower, not faster (1460 B p50
  // 660-771 us against 526-681 us with UTCP_IOC_TX + epoll, three runs in one boot).
  bool tx_wait_ = false;
  registry::GrantPrefetcher prefetch_;
  // Endpoints of closed connections, recycled (GrantPrefetcher::recycle), by id: kept
  // mapped until take() hands them out again or the prefetcher gives them back.
  bool reuse_ = false;
  std::map<uint32_t, std::unique_ptr<KmodDevice>> parked_;
  int ep_ = -1;
  // The time stacks are driven at between clock reads: progress()'s, or the end of its sleep.
  Instant now_ = kInstantZero;
  std::vector<std::unique_ptr<UtcpConn>> closing_;
  // Setup time by part, summed over opens_: the request to utcpd (with its handshake),
  // mapping the rings, building the stack (and its socket), and importing the connection
  // (or the handshake in this process).
  uint64_t opens_ = 0;
  double registry_us_ = 0, map_us_ = 0, stack_us_ = 0, handshake_us_ = 0, syn_us_ = 0, wait_us_ = 0;
  // --counters: progress() calls, sleeps on the endpoint files and the time they took.
  uint64_t progress_calls_ = 0, sleeps_ = 0, asleep_us_ = 0;
  bool counting_ = false;  // --counters: time each write, read, poll and flush (two clock reads each)
  uint64_t flush_us_ = 0, poll_us_ = 0, read_us_ = 0, reap_us_ = 0, release_us_ = 0;
};

}  // namespace

const char* handshake_name(Handshake h) {
  switch (h) {
    case Handshake::kRegistry: return "registry";
    case Handshake::kLibrary: return "library";
    case Handshake::kPrefetch: return "prefetch";
  }
  return "?";
}

std::unique_ptr<Transport> make_utcp_transport(const Target& t, bool nodelay, Handshake handshake,
                                               const RingAsk& rings, bool tx_wait, bool reuse, std::string* error) {
  in_addr a;
  if (inet_pton(AF_INET, t.host.c_str(), &a) != 1) {
    *error = "bad server address " + t.host + " (an IPv4 address is needed)";
    return nullptr;
  }
  Ipv4Addr remote{};
  remote.v = ntohl(a.s_addr);
  auto tr = std::make_unique<UtcpTransport>(remote, t.port, nodelay, handshake, rings, tx_wait, reuse);
  if (tr->start(error) < 0) return nullptr;
  return tr;
}

}  // namespace utcp::perf
