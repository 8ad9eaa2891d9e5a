// preload.cc - libutcp-preload.so: unmodified programs' AF_INET stream sockets on utcp.
//
// Loaded with LD_PRELOAD, it interposes the socket API (dlsym(RTLD_NEXT) for libc's own
// functions). socket(AF_INET, SOCK_STREAM) makes a real kernel socket, the placeholder:
// until connect() or listen() decides, every call goes to it, so listens on ports not
// chosen and destinations utcp does not serve stay with the kernel's TCP unchanged. A
// connect() to a destination chosen by UTCP_PRELOAD_DESTS asks utcpd for an endpoint with
// the handshake done (paper §3.4), continues the connection in a Stack of its own, and
// dup3()s the endpoint file onto the placeholder's number: the program's descriptor stays
// a real file it can poll, pass and inspect. A listen() on a port chosen by
// UTCP_PRELOAD_LISTEN is utcpd's (passive open); the descriptor becomes the registry
// connection, readable when an accepted connection waits, and accept() imports each one
// like a client's. Progress happens inside the interposed calls, plus a
// helper thread that drives connections no call has touched for kIdle (docs/preload.md).
// Everything that is not one of these sockets passes to libc after one lock-free check.
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/stack.h"
#include "device/kmod_device.h"
#include "preload/config.h"
#include "preload/fd_table.h"
#include "registry/client.h"
#include "tcp/state_export.h"

namespace utcp::preload {
namespace {

// ---------------------------------------------------------------- libc's functions

#define REAL(fn)                                                                               \
  ([]() {                                                                                      \
    static auto p = reinterpret_cast<decltype(&::fn)>(::dlsym(RTLD_NEXT, #fn));                \
    return p;                                                                                  \
  }())

// A connection nobody has touched for this long is driven by the helper thread.
constexpr Duration kIdle = Duration(10'000);

int64_t now_us() { return Clock::now().time_since_epoch().count(); }

int ms_until(Instant at) {
  if (at == kInstantNever) return -1;
  Instant t = Clock::now();
  if (at <= t) return 0;
  return int(std::min<int64_t>(((at - t).count() + 999) / 1000, 1 << 30));
}

Instant deadline_after(Duration d) { return d.count() > 0 ? Clock::now() + d : kInstantNever; }

// ---------------------------------------------------------------- state

// Shared between the processes of a fork() (MAP_SHARED): which one holds the TCP state,
// and the state itself while it is handed from one to the other.
struct SharedConn {
  std::atomic<int32_t> owner;    // pid holding the live state; 0: handed over, in data[]
  std::atomic<int32_t> holders;  // processes with a copy of the socket
  std::atomic<uint32_t> ready;   // data[] holds len bytes of exported state
  uint32_t len;
  uint64_t cap;
  uint8_t data[];
};
static_assert(std::atomic<int32_t>::is_always_lock_free);

// Options as the program set them: applied when the connection is imported, read back
// by getsockopt.
struct Opts {
  int nodelay = 0, keepalive = 0, keepidle = 7200, keepintvl = 75, keepcnt = 9;
  int rcvbuf = 1 << 20, sndbuf = 1 << 20;
  bool rcvbuf_set = false, sndbuf_set = false;
  linger lg{0, 0};
  int reuseaddr = 0, reuseport = 0, tos = 0, priority = 0, maxseg = 0, rcvlowat = 1, oobinline = 0;
  Duration rcvtimeo{0}, sndtimeo{0};
  std::string congestion;
};

struct Conn {
  std::unique_ptr<KmodDevice> dev;
  std::unique_ptr<Stack> stack;
  int h = -1;
  registry::Grant grant;  // addresses and link facts; endpoint_fd belongs to dev
  FourTuple tuple;
  bool dead = false;
  int dead_err = 0;
  // A fork() child's copy whose rings could not be mapped again at their address (see
  // remap_rings_in_child): `dev` must not unmap what is not its mapping in this process.
  bool unmapped = false;
};

enum class St { kFresh, kConnecting, kUtcp, kFailed, kClosed, kListening };

// A listen taken through utcpd's passive open (paper §3.4): utcpd owns the port and runs
// the handshakes; the program's descriptor is a duplicate of the registry connection, with
// one Accept always sent ahead, so it is readable (for the kernel's poll, select and epoll
// alike) exactly when an accepted connection (or an error) waits in the reply.
struct Listener {
  registry::RegistryClient reg;
  registry::Grant grant;  // listen id, local address and port; no endpoint file
  int owner_pid = 0;      // the process that listened: only it accepts and closes the listen
};

struct Sock {
  std::mutex mu;
  St st = St::kFresh;
  bool nonblock = false;
  bool bound_specific = false;  // bound to a particular address: the kernel's
  uint32_t bound_ip = 0;        // host byte order
  uint16_t bound_port = 0;
  bool bound_parked = false;    // "bound" to the port of a parked listen: the kernel socket is not
  int so_error = 0;
  Opts opts;
  sockaddr_in peer{};
  std::unique_ptr<Conn> conn;
  std::unique_ptr<Listener> lsn;  // kListening
  std::vector<uint8_t> peeked;  // MSG_PEEK'd, not yet read
  int connect_evfd = -1;        // readable once an asynchronous connect finished
  SharedConn* shared = nullptr;
  size_t shared_size = 0;
  std::atomic<int64_t> touched_us{0};
  std::atomic<int> waiters{0};
  uint64_t gen = 0;  // bumped when frames were processed (edge-triggered epoll)
  bool orphan = false;  // closed by the program, still delivering (FIN, data)
  Instant orphan_deadline{};

  ~Sock() {
    if (connect_evfd >= 0) REAL(close)(connect_evfd);
    if (shared) ::munmap(shared, shared_size);
  }
};

struct Interest {
  uint32_t events = 0;
  epoll_data_t data{};
  std::shared_ptr<Sock> sock;
  uint64_t last_gen = ~uint64_t(0);
  uint32_t last_mask = 0;
};
struct EpollSet {
  std::mutex mu;
  std::map<int, Interest> utcp;  // fd -> interest, for sockets the kernel epoll cannot see
};

// Leaked on purpose: atexit handlers and other libraries' destructors may still call in.
FdTable<Sock>& fds() {
  static auto* t = new FdTable<Sock>();
  return *t;
}
FdTable<EpollSet>& epolls() {
  static auto* t = new FdTable<EpollSet>();
  return *t;
}
std::mutex& live_mu() {
  static auto* m = new std::mutex();
  return *m;
}
std::vector<std::shared_ptr<Sock>>& live() {  // connections and orphans of this process
  static auto* v = new std::vector<std::shared_ptr<Sock>>();
  return *v;
}

std::atomic<int> g_pid{0};
int my_pid() {
  int p = g_pid.load(std::memory_order_relaxed);
  if (!p) g_pid.store(p = int(::getpid()));
  return p;
}

const Config& config() {
  static Config* c = [] {
    std::string err;
    auto* cfg = new Config(load_config(&err));
    if (!err.empty()) std::fprintf(stderr, "utcp-preload: %s\n", err.c_str());
    return cfg;
  }();
  return *c;
}

void logf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logf(const char* fmt, ...) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, "utcp-preload[%d]: ", my_pid());
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(buf + n, sizeof buf - size_t(n) - 1, fmt, ap);
  va_end(ap);
  size_t len = std::min(sizeof buf - 2, size_t(n) + size_t(std::max(m, 0)));
  buf[len++] = '\n';
  ssize_t w = REAL(write)(2, buf, len);
  (void)w;
}

int fail(int err) {
  errno = err;
  return -1;
}

// ---------------------------------------------------------------- helper thread

std::mutex& helper_mu() {
  static auto* m = new std::mutex();
  return *m;
}
int g_helper_wake = -1;
bool g_helper_running = false;
void helper_main();

void wake_helper() {
  std::lock_guard<std::mutex> g(helper_mu());
  if (!g_helper_running) {
    if (g_helper_wake < 0) g_helper_wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g_helper_wake < 0) return;
    g_helper_running = true;
    // Signals go to the program's threads, not to this one.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread(helper_main).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  uint64_t one = 1;
  ssize_t w = REAL(write)(g_helper_wake, &one, sizeof one);
  (void)w;
}

void add_live(const std::shared_ptr<Sock>& s) {
  {
    std::lock_guard<std::mutex> g(live_mu());
    live().push_back(s);
  }
  wake_helper();
}
void remove_live(const Sock* s) {
  std::lock_guard<std::mutex> g(live_mu());
  auto& v = live();
  v.erase(std::remove_if(v.begin(), v.end(), [&](auto& p) { return p.get() == s; }), v.end());
}

// ---------------------------------------------------------------- connections

void apply_opts(Sock& s) {
  Conn& c = *s.conn;
  Instant t = Clock::now();
  Stack& st = *c.stack;
  st.setsockopt(c.h, SockOpt::kNoDelay, &s.opts.nodelay, sizeof(int), t);
  st.setsockopt(c.h, SockOpt::kKeepIdle, &s.opts.keepidle, sizeof(int), t);
  st.setsockopt(c.h, SockOpt::kKeepIntvl, &s.opts.keepintvl, sizeof(int), t);
  st.setsockopt(c.h, SockOpt::kKeepCnt, &s.opts.keepcnt, sizeof(int), t);
  st.setsockopt(c.h, SockOpt::kKeepAlive, &s.opts.keepalive, sizeof(int), t);
  LingerOpt lg{s.opts.lg.l_onoff, s.opts.lg.l_linger};
  st.setsockopt(c.h, SockOpt::kLinger, &lg, sizeof lg, t);
  // The registry negotiated the window with its defaults: buffers set before connect
  // apply where the connection still allows it (the stack refuses a shrink below what
  // was advertised; that refusal is not the program's error).
  if (s.opts.rcvbuf_set) st.setsockopt(c.h, SockOpt::kRcvBuf, &s.opts.rcvbuf, sizeof(int), t);
  if (s.opts.sndbuf_set) st.setsockopt(c.h, SockOpt::kSndBuf, &s.opts.sndbuf, sizeof(int), t);
}

// A Stack continuing `state` on endpoint `dev`.
std::unique_ptr<Conn> make_conn(std::unique_ptr<KmodDevice> dev, const registry::Grant& g,
                                std::span<const uint8_t> state, std::string* err) {
  auto c = std::make_unique<Conn>();
  c->grant = g;
  c->grant.endpoint_fd = -1;
  c->dev = std::move(dev);
  StackConfig cfg;
  cfg.ip = g.local_ip;
  cfg.mac = g.local_mac;
  c->stack = std::make_unique<Stack>(c->dev.get(), cfg);
  c->stack->add_neighbor(g.remote_ip, g.next_hop_mac);
  c->h = c->stack->import_connection(state, Clock::now());
  if (c->h < 0) {
    *err = std::string("importing the registry's connection: ") + std::strerror(-c->h);
    return nullptr;
  }
  c->tuple = c->stack->connection(c->h)->tuple();
  return c;
}

// Progress: frames in, timers, frames out. Sock locked; the caller owns the connection.
void progress(Sock& s) {
  Conn* c = s.conn.get();
  if (!c || c->dead) return;
  uint64_t before = c->stack->stats().frames_in;
  c->stack->poll(Clock::now());
  if (c->stack->stats().frames_in != before) ++s.gen;
}

void destroy_conn(Sock& s) {
  if (!s.conn) return;
  s.conn->stack.reset();  // sends nothing
  if (s.conn->unmapped) {
    // Its destructor would munmap an address range that is not the rings in this process
    // (maybe someone else's memory by now): close the file, leave the small object.
    REAL(close)(s.conn->dev->fd());
    (void)s.conn->dev.release();
  }
  s.conn->dev.reset();  // unmaps, closes our endpoint file: utcpd inherits what is left
  s.conn.reset();
}

// In a fork() child: the module maps an endpoint's rings VM_DONTCOPY, so the child has the
// parent's KmodDevice objects but not their mappings — the address range is free in the
// child, and the next mmap (the child's own one, taking the connection over) may land
// exactly there; destroying the stale copy afterwards then unmapped the new rings (the
// worker child's SIGSEGV in KmodDevice::receive). Maps the same rings again at the same
// address, so the child's copy is what it claims to be until it is destroyed or replaced.
// Called in the child right after the fork, before anything else can take the range.
void remap_rings_in_child(Conn& c) {
  KmodDevice& d = *c.dev;
  const utcp_ring_layout& l = d.info().layout;
  // The mapping's base, from the one accessor that exposes it (no dereference).
  uint8_t* base = reinterpret_cast<uint8_t*>(d.app_info_area()) - l.header_off - UTCP_APP_INFO_OFF;
  void* p = ::mmap(base, l.map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, d.fd(), 0);
  if (p == base) return;
  int e = errno;
  if (p != MAP_FAILED) ::munmap(p, l.map_size);  // a kernel without MAP_FIXED_NOREPLACE put it elsewhere
  c.unmapped = true;
  logf("fork: cannot map a connection's rings again in the child (%s); it can still take the connection over",
       p == MAP_FAILED ? std::strerror(e) : "mapped at another address");
}

// Whether this process holds the connection's TCP state (always, unless a fork() gave
// copies to several processes: then the one the state was last handed to). Takes it over
// when it was handed over and nobody has claimed it yet. Sock locked.
bool own(Sock& s) {
  if (!s.shared) return true;
  int32_t o = s.shared->owner.load(std::memory_order_acquire);
  if (o == my_pid()) return true;
  if (o != 0 || !s.shared->ready.load(std::memory_order_acquire) || !s.conn) return false;
  if (!s.shared->owner.compare_exchange_strong(o, my_pid())) return false;
  std::string err;
  int dupfd = REAL(fcntl)(s.conn->dev->fd(), F_DUPFD_CLOEXEC, 0);
  auto dev = dupfd >= 0 ? KmodDevice::open(dupfd, s.conn->grant.mtu, &err) : nullptr;
  registry::Grant g = s.conn->grant;
  std::vector<uint8_t> bytes(s.shared->data, s.shared->data + s.shared->len);
  s.shared->ready.store(0, std::memory_order_release);
  destroy_conn(s);  // the copy from before the fork is stale
  std::unique_ptr<Conn> c = dev ? make_conn(std::move(dev), g, bytes, &err) : nullptr;
  if (!c) {
    logf("taking over a connection after fork: %s", err.c_str());
    s.so_error = EIO;
    return false;
  }
  s.conn = std::move(c);
  apply_opts(s);
  if (config().verbose) logf("took over the connection to port %u from the process it was shared with", s.conn->tuple.remote_port);
  return true;
}

// Hands the connection's state to the other holders (fork). Sock locked, owned.
void hand_over(Sock& s) {
  std::vector<uint8_t> bytes;
  int r = s.conn->stack->export_connection(s.conn->h, Clock::now(), &bytes);
  if (r < 0 || bytes.size() > s.shared->cap) {
    logf("cannot hand the connection over to the process sharing it (%s): it is lost to that process",
         r < 0 ? std::strerror(-r) : "state larger than the shared area");
  } else {
    std::memcpy(s.shared->data, bytes.data(), bytes.size());
    s.shared->len = uint32_t(bytes.size());
    s.shared->ready.store(1, std::memory_order_release);
  }
  s.shared->owner.store(0, std::memory_order_release);
}

bool orphan_done(Sock& s) {
  if (!s.conn || s.conn->dead) return true;
  const Connection* k = s.conn->stack->find(s.conn->tuple);
  if (!k) return true;
  TcpState t = k->state();
  // Our data and FIN are acknowledged: utcpd finishes the rest (TIME-WAIT, paper §3.4).
  return t == TcpState::kFinWait2 || t == TcpState::kTimeWait || t == TcpState::kClosed;
}

// The program let go of its last descriptor of a connected socket (or exits, or execs).
// Sock locked.
void release_conn(const std::shared_ptr<Sock>& sp) {
  Sock& s = *sp;
  if (!s.conn) return;
  if (s.shared) {
    int left = s.shared->holders.fetch_sub(1) - 1;
    if (left > 0) {
      if (s.shared->owner.load() == my_pid() && !s.conn->dead) hand_over(s);
      destroy_conn(s);
      remove_live(&s);
      return;
    }
    if (!own(s)) {  // last holder, but the state never came back: nothing to finish
      destroy_conn(s);
      remove_live(&s);
      return;
    }
  }
  if (s.conn->dead) {
    destroy_conn(s);
    remove_live(&s);
    return;
  }
  s.conn->stack->close(s.conn->h);  // graceful: data, then FIN (RST with unread data or linger {1,0})
  progress(s);
  if (orphan_done(s)) {
    destroy_conn(s);
    remove_live(&s);
    return;
  }
  s.orphan = true;
  s.orphan_deadline = Clock::now() + Duration(int64_t(config().linger_ms) * 1000);
  wake_helper();
}

// Drives closed connections until their data and FIN are acknowledged, for at most
// `limit` (at exit and exec, where nobody else will).
void drain_orphans(Duration limit) {
  Instant end = Clock::now() + limit;
  for (;;) {
    std::vector<std::shared_ptr<Sock>> v;
    {
      std::lock_guard<std::mutex> g(live_mu());
      for (auto& s : live())
        if (s->orphan) v.push_back(s);
    }
    if (v.empty() || Clock::now() >= end) return;
    std::vector<pollfd> pf;
    Instant next = end;
    for (auto& s : v) {
      std::lock_guard<std::mutex> g(s->mu);
      progress(*s);
      if (orphan_done(*s) || Clock::now() >= s->orphan_deadline) {
        destroy_conn(*s);
        s->orphan = false;
        remove_live(s.get());
        continue;
      }
      pf.push_back({s->conn->dev->fd(), POLLIN, 0});
      next = std::min(next, s->conn->stack->poll_at());
    }
    if (!pf.empty()) REAL(poll)(pf.data(), pf.size(), std::min(ms_until(next), 10));
  }
}

Instant reap_parked();

void helper_main() {
  int wake;
  {
    std::lock_guard<std::mutex> g(helper_mu());
    wake = g_helper_wake;
  }
  for (;;) {
    std::vector<std::shared_ptr<Sock>> v;
    {
      std::lock_guard<std::mutex> g(live_mu());
      v = live();
    }
    std::vector<pollfd> pf{{wake, POLLIN, 0}};
    std::vector<Sock*> of{nullptr};
    Instant next = reap_parked();
    int64_t t = now_us();
    for (auto& sp : v) {
      Sock& s = *sp;
      if (!s.mu.try_lock()) {
        next = std::min(next, Clock::now() + kIdle);
        continue;
      }
      std::lock_guard<std::mutex> g(s.mu, std::adopt_lock);
      if (!s.conn || s.conn->dead) continue;
      const bool waited_on = s.waiters.load() != 0;
      bool idle = !waited_on && t - s.touched_us.load() >= kIdle.count();
      if (!s.orphan && !idle) {
        // A program thread sleeping on it drives it (its timers too); look again in a
        // while, not at touched + kIdle — long past while it sleeps, that made this loop spin.
        next = std::min(next, waited_on ? Clock::now() + kIdle : Instant(Duration(s.touched_us.load())) + kIdle);
        continue;
      }
      if (s.shared && !(s.shared->holders.load() == 1 && own(s))) {
        if (s.shared->owner.load() != my_pid()) continue;  // another process drives it
      }
      progress(s);
      if (s.orphan && (orphan_done(s) || Clock::now() >= s.orphan_deadline)) {
        destroy_conn(s);
        s.orphan = false;
        remove_live(&s);
        continue;
      }
      pf.push_back({s.conn->dev->fd(), POLLIN, 0});
      of.push_back(&s);
      next = std::min(next, s.conn->stack->poll_at());
    }
    REAL(poll)(pf.data(), pf.size(), ms_until(next));
    if (pf[0].revents & POLLIN) {
      uint64_t x;
      ssize_t r = REAL(read)(wake, &x, sizeof x);
      (void)r;
    }
    for (size_t i = 1; i < pf.size(); ++i) {
      if (!(pf[i].revents & (POLLHUP | POLLERR | POLLNVAL))) continue;
      // The endpoint is gone (utcpd destroyed it): stop driving it.
      for (auto& sp : v)
        if (sp.get() == of[i]) {
          std::lock_guard<std::mutex> g(sp->mu);
          if (sp->conn) {
            sp->conn->dead = true;
            sp->conn->dead_err = ECONNRESET;
          }
        }
    }
  }
}

// ---------------------------------------------------------------- connect

struct Outcome {
  int rc = 0;
  bool no_registry = false;  // utcpd could not be reached at all (its -ECONNREFUSED is not the peer's)
  std::string err;
  registry::Grant grant;
  std::vector<uint8_t> state;
};

Outcome ask_registry(Ipv4Addr ip, uint16_t port, uint16_t local_port) {
  Outcome o;
  registry::RegistryClient reg;  // closed on return: utcpd holds the grant until our endpoint file goes
  o.rc = reg.connect(&o.err);
  o.no_registry = o.rc < 0;
  if (o.rc == 0) o.rc = reg.connect_endpoint(ip, port, local_port, &o.grant, &o.err, &o.state);
  return o;
}

bool registry_unavailable(const Outcome& o) {
  // A peer's answer (refused, silent, reset) is the connection's outcome; anything else
  // means utcp could not serve this destination (no utcpd — a registry socket nobody
  // listens on refuses too —, no route, no ARP, port taken).
  if (o.no_registry) return true;
  return o.rc != -ECONNREFUSED && o.rc != -ETIMEDOUT && o.rc != -ECONNRESET && o.rc != -EINTR;
}

void forget_epoll_interest(const Sock* s);

// Listens the program closed, kept for kListenPark in case it listens on the same port
// again: the connections it accepted still hold the port in utcpd (TIME-WAIT), so a new
// listen would find it taken where the kernel, with SO_REUSEADDR, allows it — iperf3 -s
// closes and reopens its listener for every test. Then released by the helper thread.
constexpr Duration kListenPark = Duration(2'000'000);
struct Parked {
  std::unique_ptr<Listener> lsn;
  Instant until;
};
std::mutex& parked_mu() {
  static auto* m = new std::mutex();
  return *m;
}
std::vector<Parked>& parked() {
  static auto* v = new std::vector<Parked>();
  return *v;
}

void release_listener(std::unique_ptr<Listener> l) {
  if (!l) return;
  if (l->owner_pid == my_pid()) {
    std::string err;
    if (l->reg.release_listen(l->grant.endpoint_id, &err) < 0 && config().verbose)
      logf("closing the listen on port %u: %s", l->grant.local_port, err.c_str());
  }
  // A forked child's copy just goes: closes this process's copy of the registry connection.
}

// The parked listen of this process on `port`, if any.
std::unique_ptr<Listener> unpark_listener(uint16_t port) {
  std::lock_guard<std::mutex> g(parked_mu());
  auto& v = parked();
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it->lsn->grant.local_port == port && it->lsn->owner_pid == my_pid()) {
      auto l = std::move(it->lsn);
      v.erase(it);
      return l;
    }
  return nullptr;
}

// Whether this process has a parked listen on `port`.
bool parked_on(uint16_t port) {
  std::lock_guard<std::mutex> g(parked_mu());
  for (auto& p : parked())
    if (p.lsn->grant.local_port == port && p.lsn->owner_pid == my_pid()) return true;
  return false;
}

// Releases the parked listens whose time is up; returns when the next one is due.
Instant reap_parked() {
  std::vector<std::unique_ptr<Listener>> due;
  Instant next = kInstantNever, t = Clock::now();
  {
    std::lock_guard<std::mutex> g(parked_mu());
    auto& v = parked();
    for (auto it = v.begin(); it != v.end();) {
      if (it->until <= t) {
        due.push_back(std::move(it->lsn));
        it = v.erase(it);
      } else {
        next = std::min(next, it->until);
        ++it;
      }
    }
  }
  for (auto& l : due) release_listener(std::move(l));
  return next;
}

void wake_helper();

// The program let go of its last descriptor of a listening socket. Sock locked.
void close_listener(Sock& s) {
  if (!s.lsn) return;
  if (s.lsn->owner_pid == my_pid()) {
    if (config().verbose) logf("closed the listen on port %u (kept by utcpd for a listen again)", s.lsn->grant.local_port);
    std::lock_guard<std::mutex> g(parked_mu());
    parked().push_back({std::move(s.lsn), Clock::now() + kListenPark});
  }
  s.lsn.reset();
  s.st = St::kClosed;
  wake_helper();
}

// The connect's outcome is in; Sock locked. Returns 0, or -errno for the caller.
int finish_connect(const std::shared_ptr<Sock>& sp, int fd, Outcome o, bool* to_kernel) {
  Sock& s = *sp;
  *to_kernel = false;
  if (s.st != St::kConnecting) {  // closed meanwhile
    if (o.grant.endpoint_fd >= 0) REAL(close)(o.grant.endpoint_fd);
    return -EBADF;
  }
  Ipv4Addr rip{ntohl(s.peer.sin_addr.s_addr)};
  char ipbuf[16];
  std::snprintf(ipbuf, sizeof ipbuf, "%u.%u.%u.%u", rip.v >> 24, (rip.v >> 16) & 255, (rip.v >> 8) & 255, rip.v & 255);
  if (o.rc == 0) {
    std::string err;
    auto dev = KmodDevice::open(o.grant.endpoint_fd, o.grant.mtu, &err);
    std::unique_ptr<Conn> c = dev ? make_conn(std::move(dev), o.grant, o.state, &err) : nullptr;
    if (!c) {
      o.rc = -EIO;
      o.err = err;
    } else {
      s.conn = std::move(c);
      apply_opts(s);
      int epfd = s.conn->dev->fd();
      for (int afd : fds().fds_of(&s)) {
        int fdflags = REAL(fcntl)(afd, F_GETFD);
        if (REAL(dup3)(epfd, afd, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0)
          logf("fd %d: cannot put the endpoint on it: %s", afd, std::strerror(errno));
      }
      int fl = REAL(fcntl)(epfd, F_GETFL);
      if (fl >= 0) REAL(fcntl)(epfd, F_SETFL, s.nonblock ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
      s.st = St::kUtcp;
      s.touched_us = now_us();
      if (config().verbose)
        logf("fd %d: connected to %s:%u through utcp (endpoint %u, local port %u)", fd, ipbuf,
             ntohs(s.peer.sin_port), o.grant.endpoint_id, o.grant.local_port);
      add_live(sp);
      return 0;
    }
  }
  if (config().fallback && registry_unavailable(o)) {
    static std::atomic<bool> told{false};
    if (config().verbose || !told.exchange(true))
      logf("%s:%u: %s; using the kernel's TCP (UTCP_PRELOAD_FALLBACK=1)", ipbuf, ntohs(s.peer.sin_port), o.err.c_str());
    *to_kernel = true;
    return 0;
  }
  logf("%s:%u: %s", ipbuf, ntohs(s.peer.sin_port), o.err.c_str());
  int e = registry_unavailable(o) ? ECONNREFUSED : -o.rc;
  s.st = St::kFailed;
  s.so_error = e;
  return -e;
}

// The socket becomes an ordinary kernel socket: forget it.
void hand_to_kernel(const std::shared_ptr<Sock>& sp) {
  for (int afd : fds().fds_of(sp.get())) fds().erase(afd);
  forget_epoll_interest(sp.get());
}

void signal_connect_done(Sock& s) {
  if (s.connect_evfd >= 0) {
    uint64_t one = 1;
    ssize_t w = REAL(write)(s.connect_evfd, &one, sizeof one);
    (void)w;
  }
}

// Fallback: connect the placeholder with the kernel. Sock locked, already forgotten.
int kernel_connect(Sock& s, int fd) {
  if (s.bound_port) {  // it was unbound so that utcpd could take the port; bind it again
    sockaddr_in b{};
    b.sin_family = AF_INET;
    b.sin_port = htons(s.bound_port);
    REAL(bind)(fd, reinterpret_cast<sockaddr*>(&b), sizeof b);
  }
  return REAL(connect)(fd, reinterpret_cast<const sockaddr*>(&s.peer), sizeof s.peer);
}

void connect_thread(std::shared_ptr<Sock> sp, int fd, Ipv4Addr ip, uint16_t port, uint16_t local_port) {
  Outcome o = ask_registry(ip, port, local_port);
  std::lock_guard<std::mutex> g(sp->mu);
  bool to_kernel;
  finish_connect(sp, fd, std::move(o), &to_kernel);
  if (to_kernel) {
    bool still_open = !fds().fds_of(sp.get()).empty();
    hand_to_kernel(sp);
    sp->st = St::kClosed;
    // The program's next look at fd sees a kernel socket, connecting (EINPROGRESS) or failed.
    if (still_open && kernel_connect(*sp, fd) < 0 && errno != EINPROGRESS)
      logf("fd %d: kernel connect after fallback: %s", fd, std::strerror(errno));
  }
  signal_connect_done(*sp);
}

int do_connect(const std::shared_ptr<Sock>& sp, int fd, const sockaddr* addr, socklen_t len) {
  std::unique_lock<std::mutex> lk(sp->mu);
  Sock& s = *sp;
  switch (s.st) {
    case St::kConnecting:
      return fail(s.nonblock ? EALREADY : EALREADY);
    case St::kUtcp:
      return fail(EISCONN);
    case St::kFailed:
    case St::kFresh:
      break;
    case St::kClosed:
      return fail(EBADF);
    case St::kListening:
      return fail(EINVAL);
  }
  if (!addr || len < sizeof(sockaddr_in) || addr->sa_family != AF_INET) {
    lk.unlock();
    return REAL(connect)(fd, addr, len);
  }
  sockaddr_in to;
  std::memcpy(&to, addr, sizeof to);
  Ipv4Addr ip{ntohl(to.sin_addr.s_addr)};
  uint16_t port = ntohs(to.sin_port);
  if (s.bound_specific || port == 0 || !wants_utcp(config(), ip.v, port)) {
    hand_to_kernel(sp);
    s.st = St::kClosed;
    lk.unlock();
    return REAL(connect)(fd, addr, len);
  }
  s.peer = to;
  s.so_error = 0;
  s.st = St::kConnecting;
  if (s.bound_port) {
    // utcpd reserves the port by binding a kernel socket to it: free the placeholder's.
    int fresh = REAL(socket)(AF_INET, SOCK_STREAM | (s.nonblock ? SOCK_NONBLOCK : 0), 0);
    int fdflags = REAL(fcntl)(fd, F_GETFD);
    if (fresh >= 0) {
      REAL(dup3)(fresh, fd, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0);
      REAL(close)(fresh);
    }
  }
  if (s.nonblock) {
    if (s.connect_evfd < 0) s.connect_evfd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s.connect_evfd < 0) {
      s.st = St::kFresh;
      return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread(connect_thread, sp, fd, ip, port, s.bound_port).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return fail(EINPROGRESS);
  }
  uint16_t local_port = s.bound_port;
  lk.unlock();
  Outcome o = ask_registry(ip, port, local_port);
  lk.lock();
  bool to_kernel;
  int r = finish_connect(sp, fd, std::move(o), &to_kernel);
  if (to_kernel) {
    hand_to_kernel(sp);
    s.st = St::kClosed;
    lk.unlock();
    return kernel_connect(s, fd);
  }
  return r < 0 ? fail(-r) : 0;
}

// ---------------------------------------------------------------- listen, accept

std::string ip_str(uint32_t ip) {
  char b[16];
  std::snprintf(b, sizeof b, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
  return b;
}

// Puts a fresh, unbound kernel socket on `fd` (keeping FD_CLOEXEC): frees the port the
// placeholder was bound to, for utcpd to reserve.
void unbind_placeholder(Sock& s, int fd) {
  int fresh = REAL(socket)(AF_INET, SOCK_STREAM | (s.nonblock ? SOCK_NONBLOCK : 0), 0);
  int fdflags = REAL(fcntl)(fd, F_GETFD);
  if (fresh >= 0) {
    REAL(dup3)(fresh, fd, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0);
    REAL(close)(fresh);
  }
}

// Binds the placeholder again as the program had bound it (after unbind_placeholder).
int rebind_placeholder(Sock& s, int fd) {
  if (!s.bound_port) return 0;  // not unbound
  if (s.opts.reuseaddr) REAL(setsockopt)(fd, SOL_SOCKET, SO_REUSEADDR, &s.opts.reuseaddr, sizeof(int));
  if (s.opts.reuseport) REAL(setsockopt)(fd, SOL_SOCKET, SO_REUSEPORT, &s.opts.reuseport, sizeof(int));
  sockaddr_in b{};
  b.sin_family = AF_INET;
  b.sin_addr.s_addr = htonl(s.bound_ip);
  b.sin_port = htons(s.bound_port);
  return REAL(bind)(fd, reinterpret_cast<sockaddr*>(&b), sizeof b);
}

// epoll interests the layer kept for `s` while it was a placeholder go to the kernel's
// epoll, which from now on watches the descriptor itself (a listening socket's). Sock locked.
void epoll_interests_to_kernel(const Sock* s) {
  for (auto& set : epolls().entries()) {
    std::vector<std::pair<int, epoll_event>> moved;
    {
      std::lock_guard<std::mutex> g(set->mu);
      for (auto it = set->utcp.begin(); it != set->utcp.end();) {
        if (it->second.sock.get() != s) {
          ++it;
          continue;
        }
        epoll_event ev{};
        ev.events = it->second.events;
        ev.data = it->second.data;
        moved.emplace_back(it->first, ev);
        it = set->utcp.erase(it);
      }
    }
    for (int epfd : epolls().fds_of(set.get()))
      for (auto& [fd, ev] : moved) REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

// listen() on a socket the layer still holds as a placeholder. A port chosen by
// UTCP_PRELOAD_LISTEN is listened on by utcpd, which runs the handshakes (with SYN
// cookies) and hands each connection over through the registry connection; the program's
// descriptor becomes that connection's duplicate (see Listener). Everything else, and
// with UTCP_PRELOAD_FALLBACK=1 a listen utcpd cannot take, is the kernel's.
int do_listen(const std::shared_ptr<Sock>& sp, int fd, int backlog) {
  std::unique_lock<std::mutex> lk(sp->mu);
  Sock& s = *sp;
  if (s.st == St::kListening) return 0;  // listen() again: Linux adjusts the backlog; utcpd's stays
  if (s.st != St::kFresh) return fail(s.st == St::kUtcp ? EINVAL : EISCONN);
  bool loopback = (s.bound_ip >> 24) == 127;
  if (loopback || !wants_utcp_listen(config(), s.bound_port)) {
    hand_to_kernel(sp);
    s.st = St::kClosed;
    lk.unlock();
    return REAL(listen)(fd, backlog);
  }
  std::string where = ip_str(s.bound_ip) + ":" + std::to_string(s.bound_port);
  if (s.bound_port) unbind_placeholder(s, fd);
  std::unique_ptr<Listener> l = s.bound_port ? unpark_listener(s.bound_port) : nullptr;
  bool reused = l != nullptr;
  if (!l) l = std::make_unique<Listener>();
  std::string err;
  bool other_address = false;
  int rc = 0;
  if (!reused) {
    rc = l->reg.connect(&err);
    if (rc == 0)
      rc = l->reg.listen(s.bound_port, uint16_t(std::clamp(backlog, 0, 65535)), &l->grant, &err, s.opts.reuseaddr != 0);
  }
  if (rc == 0 && s.bound_ip && s.bound_ip != l->grant.local_ip.v) {
    std::string ignored;
    l->reg.release_listen(l->grant.endpoint_id, &ignored);
    rc = -EADDRNOTAVAIL;
    err = "bound to an address utcpd does not serve (it serves " + ip_str(l->grant.local_ip.v) + ")";
    other_address = true;
  }
  if (rc == 0 && !l->reg.accept_pending()) rc = l->reg.send_accept(l->grant.endpoint_id, true, &err);
  if (rc == 0) {
    int fdflags = REAL(fcntl)(fd, F_GETFD);
    if (REAL(dup3)(l->reg.fd(), fd, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
      rc = -errno;
      err = std::string("cannot put the registry connection on the descriptor: ") + std::strerror(errno);
      std::string ignored;
      l->reg.release_listen(l->grant.endpoint_id, &ignored);
    }
  }
  if (rc == 0) {
    l->owner_pid = my_pid();
    s.lsn = std::move(l);
    s.st = St::kListening;
    epoll_interests_to_kernel(&s);
    if (config().verbose)
      logf("fd %d: listening on %s:%u through utcp (listen %u%s)", fd, ip_str(s.lsn->grant.local_ip.v).c_str(),
           s.lsn->grant.local_port, s.lsn->grant.endpoint_id, reused ? ", the one closed before" : "");
    return 0;
  }
  // utcp does not take this listen: the placeholder, bound again, is the kernel's.
  if (other_address || config().fallback) {
    if (!other_address || config().verbose)
      logf("listen on %s: %s; using the kernel's TCP%s", where.c_str(), err.c_str(),
           other_address ? "" : " (UTCP_PRELOAD_FALLBACK=1)");
    hand_to_kernel(sp);
    s.st = St::kClosed;
    if (rebind_placeholder(s, fd) < 0) return -1;
    lk.unlock();
    return REAL(listen)(fd, backlog);
  }
  logf("listen on %s: %s", where.c_str(), err.c_str());
  rebind_placeholder(s, fd);  // as it was before listen(); still the layer's placeholder
  return fail(rc == -EADDRINUSE ? EADDRINUSE : EADDRNOTAVAIL);
}

// accept()/accept4() on a utcp listening socket: the reply to the Accept sent ahead
// carries the connection's endpoint and TCP state; the program gets a new descriptor (a
// duplicate of the endpoint file) and the next Accept goes out at once.
int do_accept(const std::shared_ptr<Sock>& sp, sockaddr* addr, socklen_t* len, int flags) {
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return fail(EINVAL);
  std::unique_lock<std::mutex> lk(sp->mu);
  Sock& s = *sp;
  Instant deadline = deadline_after(s.opts.rcvtimeo);
  for (;;) {
    if (s.st != St::kListening || !s.lsn) return fail(EINVAL);
    Listener& l = *s.lsn;
    if (l.owner_pid != my_pid()) {
      static std::atomic<bool> told{false};
      if (!told.exchange(true))
        logf("accept on port %u in a process forked from the one that listened: not supported on utcp",
             l.grant.local_port);
      return fail(EOPNOTSUPP);
    }
    std::string err;
    if (!l.reg.accept_pending() && l.reg.send_accept(l.grant.endpoint_id, true, &err) < 0) {
      logf("accept on port %u: %s", l.grant.local_port, err.c_str());
      return fail(ECONNABORTED);
    }
    pollfd p{l.reg.fd(), POLLIN, 0};
    if (REAL(poll)(&p, 1, 0) > 0) break;
    if (s.nonblock) return fail(EAGAIN);
    s.waiters.fetch_add(1);
    lk.unlock();
    int rc = REAL(poll)(&p, 1, ms_until(deadline));
    int e = errno;
    lk.lock();
    s.waiters.fetch_sub(1);
    if (rc < 0 && e == EINTR) return fail(EINTR);
    if (rc == 0 && Clock::now() >= deadline) return fail(EAGAIN);
  }
  Listener& l = *s.lsn;
  registry::Grant g;
  std::vector<uint8_t> state;
  std::string err, ignored;
  int rc = l.reg.receive_accept(&g, &state, &err);
  l.reg.send_accept(l.grant.endpoint_id, true, &ignored);  // the next one; a failure shows at the next accept
  if (rc < 0) {
    logf("accept on port %u: %s", l.grant.local_port, err.c_str());
    return fail(ECONNABORTED);
  }
  auto dev = KmodDevice::open(g.endpoint_fd, g.mtu, &err);
  std::unique_ptr<Conn> c = dev ? make_conn(std::move(dev), g, state, &err) : nullptr;
  if (!c) {
    logf("accept on port %u: %s", l.grant.local_port, err.c_str());
    return fail(ECONNABORTED);
  }
  int nfd = REAL(fcntl)(c->dev->fd(), (flags & SOCK_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
  if (nfd < 0) return -1;  // EMFILE: the connection goes with c (utcpd inherits it)
  int fl = REAL(fcntl)(nfd, F_GETFL);
  if (fl >= 0) REAL(fcntl)(nfd, F_SETFL, (flags & SOCK_NONBLOCK) ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
  auto ns = std::make_shared<Sock>();
  ns->st = St::kUtcp;
  ns->nonblock = flags & SOCK_NONBLOCK;
  ns->opts = s.opts;  // options set on the listening socket are inherited, as in Linux
  ns->peer.sin_family = AF_INET;
  ns->peer.sin_addr.s_addr = htonl(c->tuple.remote_ip.v);
  ns->peer.sin_port = htons(c->tuple.remote_port);
  ns->conn = std::move(c);
  apply_opts(*ns);
  ns->touched_us = now_us();
  if (!fds().set(nfd, ns)) {
    REAL(close)(nfd);
    return fail(EMFILE);
  }
  if (config().verbose)
    logf("fd %d: accepted %s:%u through utcp (endpoint %u, local port %u)", nfd,
         ip_str(ns->conn->tuple.remote_ip.v).c_str(), ns->conn->tuple.remote_port, g.endpoint_id,
         ns->conn->tuple.local_port);
  add_live(ns);
  if (addr && len) {
    std::memcpy(addr, &ns->peer, std::min<size_t>(*len, sizeof ns->peer));
    *len = sizeof ns->peer;
  }
  return nfd;
}

// ---------------------------------------------------------------- data

// Waits for the connection (frames, its next timer, or `deadline`). Sock locked via lk.
// 0: go on; -EINTR; -EAGAIN at the deadline.
int wait_conn(Sock& s, std::unique_lock<std::mutex>& lk, Instant deadline) {
  if (Clock::now() >= deadline) return -EAGAIN;
  pollfd p{-1, POLLIN, 0};
  Instant at = deadline;
  if (s.st == St::kConnecting) {
    p.fd = s.connect_evfd;
  } else if (s.conn && !s.conn->dead && own(s)) {
    p.fd = s.conn->dev->fd();
    at = std::min(at, s.conn->stack->poll_at());
  }
  // Nothing to sleep on (another process holds the connection after a fork, or another
  // thread's blocking connect is under way): look again soon.
  if (p.fd < 0) at = std::min(at, Clock::now() + Duration(10'000));
  s.waiters.fetch_add(1);
  lk.unlock();
  int rc = REAL(poll)(&p, 1, ms_until(at));
  int e = errno;
  lk.lock();
  s.waiters.fetch_sub(1);
  s.touched_us = now_us();
  if (rc < 0 && e == EINTR) return -EINTR;
  if (rc > 0 && p.fd >= 0 && s.conn && p.fd == s.conn->dev->fd() && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
    s.conn->dead = true;
    s.conn->dead_err = ECONNRESET;
  }
  return 0;
}

// Makes the connection usable for a data call: waits out a connect in progress (blocking
// sockets), takes it over after a fork when handed over. 0, or -errno.
int usable(Sock& s, std::unique_lock<std::mutex>& lk, bool nb, Instant deadline) {
  for (;;) {
    s.touched_us = now_us();
    switch (s.st) {
      case St::kFresh:
        return -ENOTCONN;
      case St::kFailed:
        return s.so_error ? -s.so_error : -ENOTCONN;
      case St::kClosed:
        return -EBADF;
      case St::kListening:
        return -ENOTCONN;
      case St::kConnecting:
        if (nb) return -EAGAIN;
        break;
      case St::kUtcp:
        if (!s.conn) return s.so_error ? -s.so_error : -EIO;
        if (s.conn->dead) return -(s.conn->dead_err ? s.conn->dead_err : EPIPE);
        if (own(s)) return 0;
        if (s.so_error) return -s.so_error;
        if (nb) return -EAGAIN;
        break;
    }
    int w = wait_conn(s, lk, deadline);
    if (w < 0) return w;
  }
}

// The posted read (Stack::read with the time): what the connection has buffered, or else
// one poll with `out` posted, which copies in-order data from the frames it takes in
// straight into `out` (not through the receive buffer: one copy a byte). Sock locked.
int64_t posted_read(Sock& s, std::span<uint8_t> out) {
  Conn& c = *s.conn;
  uint64_t before = c.stack->stats().frames_in;
  int64_t r = c.stack->read(c.h, out, Clock::now());
  if (c.stack->stats().frames_in != before) ++s.gen;  // as progress(): edge-triggered epoll
  return r;
}

int64_t read_some(Sock& s, uint8_t* p, size_t n, bool peek) {
  if (peek) {
    if (s.peeked.empty()) {
      s.peeked.resize(std::max<size_t>(n, 1));
      int64_t r = posted_read(s, s.peeked);
      s.peeked.resize(r > 0 ? size_t(r) : 0);
      if (r <= 0) return r;
    }
    size_t k = std::min(n, s.peeked.size());
    std::memcpy(p, s.peeked.data(), k);
    return int64_t(k);
  }
  if (!s.peeked.empty()) {
    size_t k = std::min(n, s.peeked.size());
    std::memcpy(p, s.peeked.data(), k);
    s.peeked.erase(s.peeked.begin(), s.peeked.begin() + long(k));
    return int64_t(k);
  }
  return posted_read(s, {p, n});
}

// read/recv/readv/recvmsg: into the caller's buffers `iov` (each one posted in turn: no
// buffer of the layer's in between), with recv(2)'s semantics: blocking until something
// arrived (MSG_WAITALL: until all of it, the end of the stream, an error or a signal),
// partial counts, 0 at the end of the stream, MSG_PEEK (one buffer; vec_recv gathers).
ssize_t sock_recvv(const std::shared_ptr<Sock>& sp, const iovec* iov, int cnt, int flags) {
  Sock& s = *sp;
  std::unique_lock<std::mutex> lk(s.mu);
  if (flags & MSG_OOB) return fail(EINVAL);
  size_t len = 0;
  for (int i = 0; i < cnt; ++i) {
    if (!iov[i].iov_base && iov[i].iov_len) return fail(EFAULT);
    len += iov[i].iov_len;
  }
  bool nb = s.nonblock || (flags & MSG_DONTWAIT);
  bool peek = flags & MSG_PEEK;
  bool waitall = (flags & MSG_WAITALL) && !peek;
  Instant deadline = deadline_after(s.opts.rcvtimeo);
  size_t got = 0, off = 0;  // in all, and in iov[i]
  int i = 0;
  for (;;) {
    int u = usable(s, lk, nb, deadline);
    if (u < 0) return got ? ssize_t(got) : fail(-u);
    while (i < cnt && off == iov[i].iov_len) ++i, off = 0;
    int64_t r = i < cnt ? read_some(s, static_cast<uint8_t*>(iov[i].iov_base) + off, iov[i].iov_len - off, peek) : 0;
    if (r > 0) {
      got += size_t(r);
      off += size_t(r);
      if (got == len || peek) break;
      continue;  // the next buffer, or (MSG_WAITALL) the rest of this one
    }
    if (r == 0 || len == 0) break;  // end of stream
    if (r != -EAGAIN) {
      if (got) break;
      return fail(int(-r));
    }
    if (got && !waitall) break;  // nothing more for now
    if (nb) {
      if (got) break;
      return fail(EAGAIN);
    }
    int w = wait_conn(s, lk, deadline);
    if (w < 0) {
      if (got) break;
      return fail(-w);
    }
  }
  // The window update (or ACK) that reading made due, if any; frames beyond it wait for
  // the next read, which can take them into its buffer directly.
  if (s.conn && !s.conn->dead && s.conn->stack->poll_at() <= Clock::now()) progress(s);
  return ssize_t(got);
}

ssize_t sock_recv(const std::shared_ptr<Sock>& sp, void* buf, size_t len, int flags) {
  iovec v{buf, len};
  return sock_recvv(sp, &v, 1, flags);
}

ssize_t sock_send(const std::shared_ptr<Sock>& sp, const void* buf, size_t len, int flags) {
  Sock& s = *sp;
  std::unique_lock<std::mutex> lk(s.mu);
  if (flags & MSG_OOB) return fail(EOPNOTSUPP);
  if (!buf && len) return fail(EFAULT);
  bool nb = s.nonblock || (flags & MSG_DONTWAIT);
  Instant deadline = deadline_after(s.opts.sndtimeo);
  const uint8_t* p = static_cast<const uint8_t*>(buf);
  size_t done = 0;
  for (;;) {
    int u = usable(s, lk, nb, deadline);
    int64_t r = u;
    if (u == 0) {
      // Frames in first: the ACKs that woke a blocked sender are what frees send-buffer
      // space. (Without this a blocking send on a full buffer never took them in: its wait
      // returned at once on the readable endpoint and the write failed again, forever —
      // python's http.server, whose sendall blocks, stalled that way; select-driven
      // senders took them in through poll.)
      progress(s);
      r = s.conn->stack->write(s.conn->h, {p + done, len - done});
    }
    if (r > 0) {
      done += size_t(r);
      progress(s);
      if (done == len) break;
      continue;
    }
    if (r == 0 && len == 0) break;
    if (r != 0 && r != -EAGAIN) {
      if (done) break;
      if (r == -ENOTCONN && s.st == St::kUtcp) r = -EPIPE;
      if (r == -EPIPE && !(flags & MSG_NOSIGNAL)) ::pthread_kill(::pthread_self(), SIGPIPE);
      return fail(int(-r));
    }
    if (nb) {
      if (done) break;
      return fail(EAGAIN);
    }
    if (u == 0) {
      int w = wait_conn(s, lk, deadline);
      if (w < 0) {
        if (done) break;
        return fail(-w);
      }
    }
  }
  return ssize_t(done);
}

// ---------------------------------------------------------------- readiness

// poll(2) events of a utcp socket, after progress. Sock locked.
short revents_of(Sock& s, short want) {
  short ev = 0;
  switch (s.st) {
    case St::kFresh:
    case St::kClosed:
    case St::kConnecting:
    case St::kListening:  // the kernel answers for its descriptor (the registry connection)
      return 0;
    case St::kFailed:
      ev = POLLOUT | POLLERR | POLLHUP;
      break;
    case St::kUtcp: {
      if (!s.conn) {
        ev = POLLERR | POLLHUP;
        break;
      }
      if (s.conn->dead) {
        ev = POLLIN | POLLERR | POLLHUP;
        break;
      }
      if (!own(s)) return 0;
      progress(s);
      int e = s.conn->stack->events(s.conn->h);
      if (e < 0) return POLLNVAL;
      if (e & kEventIn) ev |= POLLIN | POLLRDNORM;
      if (e & kEventOut) ev |= POLLOUT | POLLWRNORM;
      if (e & kEventErr) ev |= POLLERR;
      if (e & kEventHup) ev |= POLLHUP;
      if (!s.peeked.empty()) ev |= POLLIN | POLLRDNORM;
      const Connection* c = s.conn->stack->connection(s.conn->h);
      if (c && c->at_eof()) ev |= POLLRDHUP;
      break;
    }
  }
  return short(ev & (want | POLLERR | POLLHUP | POLLNVAL));
}

// What to sleep on for a utcp socket (its endpoint, or the connect's eventfd), and when
// its next timer is due. Sock locked.
int wait_fd_of(Sock& s, Instant* next) {
  if (s.st == St::kConnecting) return s.connect_evfd;
  if (s.st != St::kUtcp || !s.conn || s.conn->dead) return -1;
  if (!own(s)) {
    *next = std::min(*next, Clock::now() + Duration(10'000));
    return -1;
  }
  *next = std::min(*next, s.conn->stack->poll_at());
  return s.conn->dev->fd();
}

// A utcp socket for a data call or a wait: not in kFresh or kClosed (those are the
// kernel's, as is). A listening socket is one for data calls (they fail with ENOTCONN:
// its descriptor's file is the registry connection, not for the program to read), but
// not for waits (`for_wait`): the kernel reports its readiness itself.
std::shared_ptr<Sock> waitable(int fd, bool for_wait = false) {
  auto s = fds().get(fd);
  if (!s) return nullptr;
  std::lock_guard<std::mutex> g(s->mu);
  if (s->st == St::kFresh || s->st == St::kClosed) return nullptr;
  if (for_wait && s->st == St::kListening) return nullptr;
  return s;
}

// Marks sockets as waited on by the program for as long as one poll/epoll round sleeps
// on their endpoints. The helper thread drives only sockets nobody waits on: had it taken
// a frame in after the round looked at the socket and before the round went to sleep,
// the ring the round sleeps on would be empty and the data already buffered — a lost
// wake-up (iperf3's select on its control connection slept forever with a byte unread).
struct WaitMarks {
  std::vector<Sock*> socks;
  WaitMarks() = default;
  WaitMarks(const WaitMarks&) = delete;
  WaitMarks& operator=(const WaitMarks&) = delete;
  ~WaitMarks() {
    for (Sock* s : socks) s->waiters.fetch_sub(1);
  }
  void add(Sock& s) {  // Sock locked
    s.waiters.fetch_add(1);
    socks.push_back(&s);
  }
};

int poll_impl(pollfd* fds_in, nfds_t n, Instant deadline, const sigset_t* mask, bool use_mask) {
  std::vector<std::shared_ptr<Sock>> socks(n);
  bool any = false;
  for (nfds_t i = 0; i < n; ++i)
    if (fds().maybe(fds_in[i].fd) && (socks[i] = waitable(fds_in[i].fd, true))) any = true;
  if (!any) {
    int ms = ms_until(deadline);
    if (use_mask) {
      timespec ts{ms / 1000, (ms % 1000) * 1000000L};
      return REAL(ppoll)(fds_in, n, ms < 0 ? nullptr : &ts, mask);
    }
    return REAL(poll)(fds_in, n, ms);
  }
  std::vector<pollfd> k;
  for (;;) {
    int ready = 0;
    Instant next = deadline;
    WaitMarks marks;
    k.assign(fds_in, fds_in + n);
    for (nfds_t i = 0; i < n; ++i) {
      if (!socks[i]) continue;
      Sock& s = *socks[i];
      std::lock_guard<std::mutex> g(s.mu);
      if (s.st == St::kClosed && !fds().get(fds_in[i].fd)) {  // became a kernel socket (fallback)
        socks[i].reset();
        continue;
      }
      fds_in[i].revents = revents_of(s, fds_in[i].events);
      if (fds_in[i].revents) ++ready;
      k[i].fd = -1;
      int wfd = wait_fd_of(s, &next);
      if (wfd >= 0) {
        k.push_back({wfd, POLLIN, 0});
        marks.add(s);
      }
    }
    int ms = ready ? 0 : ms_until(next);
    int rc;
    if (use_mask) {
      timespec ts{ms / 1000, (ms % 1000) * 1000000L};
      rc = REAL(ppoll)(k.data(), k.size(), ms < 0 ? nullptr : &ts, mask);
    } else {
      rc = REAL(poll)(k.data(), k.size(), ms);
    }
    if (rc < 0) {
      if (ready) rc = 0;
      else return -1;
    }
    int kready = 0;
    for (nfds_t i = 0; i < n; ++i) {
      if (socks[i]) continue;
      fds_in[i].revents = k[i].revents;
      if (k[i].revents) ++kready;
    }
    if (ready + kready > 0) return ready + kready;
    if (Clock::now() >= deadline) return 0;
    for (auto& s : socks)
      if (s) s->touched_us = now_us();
  }
}

Instant deadline_ms(int timeout) {
  return timeout < 0 ? kInstantNever : Clock::now() + Duration(int64_t(timeout) * 1000);
}
Instant deadline_ts(const timespec* ts) {
  if (!ts) return kInstantNever;
  return Clock::now() + Duration(int64_t(ts->tv_sec) * 1'000'000 + ts->tv_nsec / 1000);
}

int select_impl(int nfds, fd_set* r, fd_set* w, fd_set* e, Instant deadline, const sigset_t* mask, bool use_mask,
                timeval* tv_out) {
  if (nfds < 0 || nfds > FD_SETSIZE) return fail(EINVAL);
  std::vector<pollfd> pf;
  for (int fd = 0; fd < nfds; ++fd) {
    short ev = 0;
    if (r && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (e && FD_ISSET(fd, e)) ev |= POLLPRI;
    if (ev) pf.push_back({fd, ev, 0});
  }
  int rc = poll_impl(pf.data(), pf.size(), deadline, mask, use_mask);
  if (rc < 0) return -1;
  if (r) FD_ZERO(r);
  if (w) FD_ZERO(w);
  if (e) FD_ZERO(e);
  int count = 0;
  for (auto& p : pf) {
    if (p.revents & POLLNVAL) return fail(EBADF);
    if (r && (p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) FD_SET(p.fd, r), ++count;
    if (w && (p.events & POLLOUT) && (p.revents & (POLLOUT | POLLERR))) FD_SET(p.fd, w), ++count;
    if (e && (p.events & POLLPRI) && (p.revents & POLLPRI)) FD_SET(p.fd, e), ++count;
  }
  if (tv_out) {  // Linux updates the timeout to what is left
    int64_t left = deadline == kInstantNever ? 0 : std::max<int64_t>(0, (deadline - Clock::now()).count());
    tv_out->tv_sec = left / 1'000'000;
    tv_out->tv_usec = left % 1'000'000;
  }
  return count;
}

void forget_epoll_interest(const Sock* s) {
  for (auto& set : epolls().entries()) {
    std::lock_guard<std::mutex> g(set->mu);
    for (auto it = set->utcp.begin(); it != set->utcp.end();)
      it = it->second.sock.get() == s ? set->utcp.erase(it) : std::next(it);
  }
}

int epoll_impl(int epfd, epoll_event* evs, int max, Instant deadline, const sigset_t* mask, bool use_mask) {
  auto set = epolls().get(epfd);
  bool any = false;
  if (set) {
    std::lock_guard<std::mutex> g(set->mu);
    any = !set->utcp.empty();
  }
  if (!any || max <= 0) {
    int ms = ms_until(deadline);
    return use_mask ? REAL(epoll_pwait)(epfd, evs, max, ms, mask) : REAL(epoll_wait)(epfd, evs, max, ms);
  }
  for (;;) {
    int n = 0;
    Instant next = deadline;
    std::vector<pollfd> pf{{epfd, POLLIN, 0}};
    // The set's lock is never held while a socket's is taken (close() takes them the
    // other way round): work on a copy, then write back what was reported.
    std::vector<std::pair<int, Interest>> snap;
    {
      std::lock_guard<std::mutex> g(set->mu);
      snap.assign(set->utcp.begin(), set->utcp.end());
    }
    std::vector<std::pair<int, Interest>> reported;
    WaitMarks marks;  // after snap: released before the sockets it holds
    for (auto& [fd, in] : snap) {
      Sock& s = *in.sock;
      std::lock_guard<std::mutex> g2(s.mu);
      if (s.st == St::kFresh || s.st == St::kClosed || s.st == St::kListening) continue;  // the kernel's epoll has it
      if (in.events == 0) continue;                              // EPOLLONESHOT fired
      short want = short(in.events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLRDNORM | EPOLLWRNORM));
      short m = revents_of(s, want);
      int wfd = wait_fd_of(s, &next);
      if (wfd >= 0) {
        pf.push_back({wfd, POLLIN, 0});
        marks.add(s);
      }
      if (!m || n >= max) continue;
      if ((in.events & EPOLLET) && in.last_gen == s.gen && in.last_mask == uint32_t(uint16_t(m))) continue;
      in.last_gen = s.gen;
      in.last_mask = uint32_t(uint16_t(m));
      evs[n].events = uint32_t(uint16_t(m));
      evs[n].data = in.data;
      ++n;
      if (in.events & EPOLLONESHOT) in.events = 0;
      reported.emplace_back(fd, in);
    }
    if (!reported.empty()) {
      std::lock_guard<std::mutex> g(set->mu);
      for (auto& [fd, in] : reported) {
        auto it = set->utcp.find(fd);
        if (it == set->utcp.end() || it->second.sock != in.sock) continue;
        it->second.last_gen = in.last_gen;
        it->second.last_mask = in.last_mask;
        if (in.events == 0) it->second.events = 0;
      }
    }
    if (n > 0) {
      int rc = REAL(epoll_wait)(epfd, evs + n, max - n, 0);
      return n + std::max(rc, 0);
    }
    int ms = ms_until(next);
    int rc;
    if (use_mask) {
      timespec ts{ms / 1000, (ms % 1000) * 1000000L};
      rc = REAL(ppoll)(pf.data(), pf.size(), ms < 0 ? nullptr : &ts, mask);
    } else {
      rc = REAL(poll)(pf.data(), pf.size(), ms);
    }
    if (rc < 0) return -1;
    if (pf[0].revents & POLLIN) {
      int k = REAL(epoll_wait)(epfd, evs, max, 0);
      if (k != 0) return k;
    }
    if (Clock::now() >= deadline) return 0;
  }
}

// ---------------------------------------------------------------- descriptors

// The program closed `fd`, one of a socket's descriptors (already erased from the table).
void drop_fd(const std::shared_ptr<Sock>& sp) {
  std::lock_guard<std::mutex> g(sp->mu);
  if (!fds().fds_of(sp.get()).empty()) return;  // other descriptors still open
  forget_epoll_interest(sp.get());
  switch (sp->st) {
    case St::kConnecting:
      sp->st = St::kClosed;  // the connect thread releases what it gets
      break;
    case St::kUtcp:
      release_conn(sp);
      break;
    case St::kListening:
      close_listener(*sp);
      break;
    default:
      break;
  }
}

int dup_to(const std::shared_ptr<Sock>& sp, int nfd) {
  if (nfd >= 0 && !fds().set(nfd, sp)) {
    logf("fd %d is beyond the descriptors utcp tracks; the duplicate is not usable", nfd);
  }
  return nfd;
}

// Handles a utcp socket's option. Sock locked. 1: handled (r set); 0: not ours.
int sockopt_set(Sock& s, int level, int name, const void* val, socklen_t len, int* r) {
  auto get_int = [&](int* out) {
    if (!val || len < sizeof(int)) return false;
    std::memcpy(out, val, sizeof(int));
    return true;
  };
  Conn* c = s.st == St::kUtcp && s.conn && !s.conn->dead && own(s) ? s.conn.get() : nullptr;
  Instant t = Clock::now();
  int v = 0;
  *r = 0;
  auto stack_int = [&](SockOpt o, int* field) {
    if (!get_int(&v)) return *r = -EINVAL, 1;
    if (c) {
      int rr = c->stack->setsockopt(c->h, o, &v, sizeof v, t);
      if (rr < 0) return *r = rr, 1;
    }
    *field = v;
    return 1;
  };
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_KEEPALIVE: return stack_int(SockOpt::kKeepAlive, &s.opts.keepalive);
      case SO_RCVBUF:
      case SO_SNDBUF: {
        if (!get_int(&v)) return *r = -EINVAL, 1;
        v = std::clamp(v, 2048, int(ConnectionState::kMaxBuffer / 2)) * 2;  // Linux doubles it
        SockOpt o = name == SO_RCVBUF ? SockOpt::kRcvBuf : SockOpt::kSndBuf;
        if (c) c->stack->setsockopt(c->h, o, &v, sizeof v, t);  // fixed once established: kept as asked
        (name == SO_RCVBUF ? s.opts.rcvbuf : s.opts.sndbuf) = v;
        (name == SO_RCVBUF ? s.opts.rcvbuf_set : s.opts.sndbuf_set) = true;
        return 1;
      }
      case SO_LINGER: {
        if (!val || len < sizeof(linger)) return *r = -EINVAL, 1;
        std::memcpy(&s.opts.lg, val, sizeof(linger));
        LingerOpt lg{s.opts.lg.l_onoff, std::max(0, s.opts.lg.l_linger)};
        if (c) c->stack->setsockopt(c->h, SockOpt::kLinger, &lg, sizeof lg, t);
        return 1;
      }
      case SO_REUSEADDR: return get_int(&s.opts.reuseaddr) ? 1 : (*r = -EINVAL, 1);
      case SO_REUSEPORT: return get_int(&s.opts.reuseport) ? 1 : (*r = -EINVAL, 1);
      case SO_PRIORITY: return get_int(&s.opts.priority) ? 1 : (*r = -EINVAL, 1);
      case SO_RCVLOWAT: return get_int(&s.opts.rcvlowat) ? 1 : (*r = -EINVAL, 1);
      case SO_OOBINLINE: return get_int(&s.opts.oobinline) ? 1 : (*r = -EINVAL, 1);
      case SO_RCVTIMEO:
      case SO_SNDTIMEO: {
        timeval tv;
        if (!val || len < sizeof tv) return *r = -EINVAL, 1;
        std::memcpy(&tv, val, sizeof tv);
        if (tv.tv_usec < 0 || tv.tv_usec >= 1000000) return *r = -EDOM, 1;
        Duration d(tv.tv_sec < 0 ? 0 : int64_t(tv.tv_sec) * 1'000'000 + tv.tv_usec);
        (name == SO_RCVTIMEO ? s.opts.rcvtimeo : s.opts.sndtimeo) = d;
        return 1;
      }
      default:
        return 0;
    }
  }
  if (level == IPPROTO_TCP) {
    switch (name) {
      case TCP_NODELAY: return stack_int(SockOpt::kNoDelay, &s.opts.nodelay);
      case TCP_KEEPIDLE: return stack_int(SockOpt::kKeepIdle, &s.opts.keepidle);
      case TCP_KEEPINTVL: return stack_int(SockOpt::kKeepIntvl, &s.opts.keepintvl);
      case TCP_KEEPCNT: return stack_int(SockOpt::kKeepCnt, &s.opts.keepcnt);
      case TCP_MAXSEG: return get_int(&s.opts.maxseg) ? 1 : (*r = -EINVAL, 1);
      case TCP_QUICKACK:
      case TCP_CORK:
      case TCP_USER_TIMEOUT:
      case TCP_NOTSENT_LOWAT:
        return get_int(&v) ? 1 : (*r = -EINVAL, 1);  // accepted; no effect on utcp (docs/preload.md)
      case TCP_CONGESTION: {
        if (!val || len == 0) return *r = -EINVAL, 1;
        std::string name_s(static_cast<const char*>(val), strnlen(static_cast<const char*>(val), len));
        if (c) {
          if (name_s == c->stack->connection(c->h)->congestion()) return 1;
          *r = c->stack->setsockopt(c->h, SockOpt::kCongestion, name_s.c_str(), name_s.size() + 1, t);
          return 1;
        }
        if (name_s != "cubic" && name_s != "newreno" && name_s != "reno") return *r = -ENOENT, 1;
        s.opts.congestion = name_s;
        return 1;
      }
      default:
        return 0;
    }
  }
  if (level == IPPROTO_IP && (name == IP_TOS || name == IP_TTL)) return get_int(&v) ? (s.opts.tos = v, 1) : (*r = -EINVAL, 1);
  return 0;
}

int tcp_state_linux(TcpState t) {
  switch (t) {
    case TcpState::kEstablished: return TCP_ESTABLISHED;
    case TcpState::kSynSent: return TCP_SYN_SENT;
    case TcpState::kSynReceived: return TCP_SYN_RECV;
    case TcpState::kFinWait1: return TCP_FIN_WAIT1;
    case TcpState::kFinWait2: return TCP_FIN_WAIT2;
    case TcpState::kTimeWait: return TCP_TIME_WAIT;
    case TcpState::kCloseWait: return TCP_CLOSE_WAIT;
    case TcpState::kLastAck: return TCP_LAST_ACK;
    case TcpState::kListen: return TCP_LISTEN;
    case TcpState::kClosing: return TCP_CLOSING;
    default: return TCP_CLOSE;
  }
}

int sockopt_get(Sock& s, int level, int name, void* val, socklen_t* len, int* r) {
  if (!val || !len) return *r = -EFAULT, 1;
  Conn* c = s.st == St::kUtcp && s.conn && !s.conn->dead && own(s) ? s.conn.get() : nullptr;
  const Connection* k = c ? c->stack->connection(c->h) : nullptr;
  *r = 0;
  auto put_int = [&](int v) {
    if (*len < sizeof(int)) return *r = -EINVAL, 1;
    std::memcpy(val, &v, sizeof v);
    *len = sizeof v;
    return 1;
  };
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_ERROR: {
        int e = s.so_error;
        s.so_error = 0;
        if (!e && s.st == St::kUtcp && s.conn && s.conn->dead) e = s.conn->dead_err;
        if (!e && k && k->error()) e = k->error();
        return put_int(e);
      }
      case SO_TYPE: return put_int(SOCK_STREAM);
      case SO_DOMAIN: return put_int(AF_INET);
      case SO_PROTOCOL: return put_int(IPPROTO_TCP);
      case SO_ACCEPTCONN: return put_int(s.st == St::kListening);
      case SO_KEEPALIVE: return put_int(s.opts.keepalive);
      case SO_RCVBUF: return put_int(s.opts.rcvbuf);
      case SO_SNDBUF: return put_int(s.opts.sndbuf);
      case SO_REUSEADDR: return put_int(s.opts.reuseaddr);
      case SO_REUSEPORT: return put_int(s.opts.reuseport);
      case SO_PRIORITY: return put_int(s.opts.priority);
      case SO_RCVLOWAT: return put_int(s.opts.rcvlowat);
      case SO_OOBINLINE: return put_int(s.opts.oobinline);
      case SO_LINGER:
        if (*len < sizeof(linger)) return *r = -EINVAL, 1;
        std::memcpy(val, &s.opts.lg, sizeof(linger));
        *len = sizeof(linger);
        return 1;
      case SO_RCVTIMEO:
      case SO_SNDTIMEO: {
        if (*len < sizeof(timeval)) return *r = -EINVAL, 1;
        int64_t us = (name == SO_RCVTIMEO ? s.opts.rcvtimeo : s.opts.sndtimeo).count();
        timeval tv{time_t(us / 1'000'000), suseconds_t(us % 1'000'000)};
        std::memcpy(val, &tv, sizeof tv);
        *len = sizeof tv;
        return 1;
      }
      default:
        return 0;
    }
  }
  if (level == IPPROTO_TCP) {
    switch (name) {
      case TCP_NODELAY: return put_int(s.opts.nodelay);
      case TCP_KEEPIDLE: return put_int(s.opts.keepidle);
      case TCP_KEEPINTVL: return put_int(s.opts.keepintvl);
      case TCP_KEEPCNT: return put_int(s.opts.keepcnt);
      case TCP_MAXSEG: return put_int(k ? k->seg_size() : (s.opts.maxseg ? s.opts.maxseg : 536));
      case TCP_CONGESTION: {
        std::string n = k ? std::string(k->congestion()) : (s.opts.congestion.empty() ? "cubic" : s.opts.congestion);
        size_t m = std::min<size_t>(*len, n.size() + 1);
        std::memset(val, 0, *len);
        std::memcpy(val, n.c_str(), std::min(m, n.size()));
        *len = socklen_t(m);
        return 1;
      }
      case TCP_INFO: {
        tcp_info ti{};
        if (k) {
          ti.tcpi_state = uint8_t(tcp_state_linux(k->state()));
          ti.tcpi_rto = uint32_t(k->rto().count());
          ti.tcpi_rtt = uint32_t(k->srtt().count());
          ti.tcpi_rttvar = uint32_t(k->rttvar().count());
          ti.tcpi_snd_mss = k->snd_mss();
          ti.tcpi_rcv_mss = k->rcv_mss();
          uint32_t mss = std::max<uint32_t>(1, k->seg_size());
          ti.tcpi_snd_cwnd = k->cwnd() / mss;
          ti.tcpi_snd_ssthresh = k->ssthresh() / mss;
          ti.tcpi_unacked = (k->snd_nxt() - k->snd_una()) / mss;
          ti.tcpi_total_retrans = k->retransmits();
          ti.tcpi_snd_wscale = k->snd_wnd_shift() & 15;
          ti.tcpi_rcv_wscale = k->rcv_wnd_shift() & 15;
          if (k->ts_enabled()) ti.tcpi_options |= TCPI_OPT_TIMESTAMPS;
          if (k->sack_enabled()) ti.tcpi_options |= TCPI_OPT_SACK;
          if (k->ws_enabled()) ti.tcpi_options |= TCPI_OPT_WSCALE;
          ti.tcpi_rcv_space = k->rcv_wnd();
        } else {
          ti.tcpi_state = s.st == St::kConnecting ? TCP_SYN_SENT : TCP_CLOSE;
        }
        socklen_t m = std::min<socklen_t>(*len, sizeof ti);
        std::memcpy(val, &ti, m);
        *len = m;
        return 1;
      }
      default:
        return 0;
    }
  }
  if (level == IPPROTO_IP && (name == IP_TOS || name == IP_TTL)) return put_int(name == IP_TOS ? s.opts.tos : 64);
  return 0;
}

// Records options set on a socket that is still the kernel's placeholder, so they follow
// it onto utcp.
void record_fresh_opt(Sock& s, int level, int name, const void* val, socklen_t len) {
  int r;
  sockopt_set(s, level, name, val, len, &r);
}

// exit/exec: finish this process's connections (or hand them to the process sharing them).
void finish_all(bool exec) {
  for (auto& sp : fds().entries()) {
    std::lock_guard<std::mutex> g(sp->mu);
    if (sp->st == St::kUtcp) release_conn(sp);
    sp->st = St::kClosed;
    if (exec) hand_to_kernel(sp);
  }
  drain_orphans(Duration(int64_t(config().linger_ms) * 1000));
}

std::atomic<bool> g_exiting{false};
__attribute__((destructor)) void at_exit() {
  if (g_exiting.exchange(true)) return;
  if (fds().size() == 0) {
    std::lock_guard<std::mutex> g(live_mu());
    if (live().empty()) return;
  }
  finish_all(false);
}

void before_exec() {
  if (int(::getpid()) != my_pid()) return;  // a vfork child: the memory is the parent's
  finish_all(true);
}

}  // namespace
}  // namespace utcp::preload

using namespace utcp;
using namespace utcp::preload;

// ---------------------------------------------------------------- the interposed API

extern "C" {

__attribute__((visibility("default"))) int socket(int domain, int type, int protocol) {
  int fd = REAL(socket)(domain, type, protocol);
  if (fd < 0 || domain != AF_INET || (type & 0xff) != SOCK_STREAM || (protocol != 0 && protocol != IPPROTO_TCP))
    return fd;
  if (!takes_any(config())) return fd;
  auto s = std::make_shared<Sock>();
  s->nonblock = type & SOCK_NONBLOCK;
  fds().set(fd, s);
  return fd;
}

__attribute__((visibility("default"))) int connect(int fd, const sockaddr* addr, socklen_t len) {
  auto s = fds().get(fd);
  if (!s) return REAL(connect)(fd, addr, len);
  return do_connect(s, fd, addr, len);
}

__attribute__((visibility("default"))) int bind(int fd, const sockaddr* addr, socklen_t len) {
  auto s = fds().get(fd);
  int r = REAL(bind)(fd, addr, len);
  if (!s) return r;
  bool v4 = addr && len >= sizeof(sockaddr_in) && addr->sa_family == AF_INET;
  const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
  bool parked_port = false;
  if (r < 0 && errno == EADDRINUSE && v4 && in->sin_port && in->sin_addr.s_addr != htonl(INADDR_LOOPBACK) &&
      wants_utcp_listen(config(), ntohs(in->sin_port))) {
    bool reuse;
    {
      std::lock_guard<std::mutex> g(s->mu);
      reuse = s->opts.reuseaddr != 0;
    }
    // utcpd holds the port for this process's closed listen, kept for a listen again
    // (close_listener), or — SO_REUSEADDR — maybe only for the connections of an earlier
    // listen (TIME-WAIT), which the kernel would let this socket bind: the placeholder
    // stays unbound; listen() takes the listen back, or asks utcpd with kListenReuseAddr
    // (which refuses the port, EADDRINUSE, when someone really listens on it).
    if (parked_on(ntohs(in->sin_port)) || reuse) {
      parked_port = true;
      r = 0;
    }
  }
  if (r < 0) return r;
  std::lock_guard<std::mutex> g(s->mu);
  s->bound_parked = parked_port;
  if (v4) {
    s->bound_specific = in->sin_addr.s_addr != htonl(INADDR_ANY);
    s->bound_ip = ntohl(in->sin_addr.s_addr);
    s->bound_port = ntohs(in->sin_port);
  }
  return r;
}

__attribute__((visibility("default"))) int listen(int fd, int backlog) {
  if (auto s = fds().get(fd)) return do_listen(s, fd, backlog);
  return REAL(listen)(fd, backlog);
}

__attribute__((visibility("default"))) int accept(int fd, sockaddr* addr, socklen_t* len) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return do_accept(s, addr, len, 0);
  return REAL(accept)(fd, addr, len);
}
__attribute__((visibility("default"))) int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return do_accept(s, addr, len, flags);
  return REAL(accept4)(fd, addr, len, flags);
}

__attribute__((visibility("default"))) ssize_t read(int fd, void* buf, size_t n) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return sock_recv(s, buf, n, 0);
  return REAL(read)(fd, buf, n);
}
__attribute__((visibility("default"))) ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) ::abort();
  return read(fd, buf, n);
}
__attribute__((visibility("default"))) ssize_t write(int fd, const void* buf, size_t n) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return sock_send(s, buf, n, 0);
  return REAL(write)(fd, buf, n);
}
__attribute__((visibility("default"))) ssize_t recv(int fd, void* buf, size_t n, int flags) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return sock_recv(s, buf, n, flags);
  return REAL(recv)(fd, buf, n, flags);
}
__attribute__((visibility("default"))) ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) ::abort();
  return recv(fd, buf, n, flags);
}
__attribute__((visibility("default"))) ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return sock_send(s, buf, n, flags);
  return REAL(send)(fd, buf, n, flags);
}

namespace {
void fill_peer(Sock& s, sockaddr* addr, socklen_t* len) {
  if (!addr || !len) return;
  sockaddr_in in{};
  {
    std::lock_guard<std::mutex> g(s.mu);
    in = s.peer;
  }
  std::memcpy(addr, &in, std::min<size_t>(*len, sizeof in));
  *len = sizeof in;
}
}  // namespace

__attribute__((visibility("default"))) ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr,
                                                        socklen_t* len) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) {
    ssize_t r = sock_recv(s, buf, n, flags);
    if (r >= 0) fill_peer(*s, addr, len);
    return r;
  }
  return REAL(recvfrom)(fd, buf, n, flags, addr, len);
}
__attribute__((visibility("default"))) ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags,
                                                              sockaddr* addr, socklen_t* len) {
  if (n > buflen) ::abort();
  return recvfrom(fd, buf, n, flags, addr, len);
}
__attribute__((visibility("default"))) ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr,
                                                      socklen_t len) {
  // A connected stream socket ignores the address, as Linux's TCP does.
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return sock_send(s, buf, n, flags);
  return REAL(sendto)(fd, buf, n, flags, addr, len);
}

namespace {
ssize_t vec_recv(const std::shared_ptr<Sock>& s, const iovec* iov, int cnt, int flags) {
  if (cnt < 0 || cnt > IOV_MAX) return fail(EINVAL);
  if (cnt > 0 && !iov) return fail(EFAULT);
  if (!(flags & MSG_PEEK)) return sock_recvv(s, iov, cnt, flags);
  // MSG_PEEK over several buffers: peeked into one, copied out to each.
  size_t total = 0;
  for (int i = 0; i < cnt; ++i) total += iov[i].iov_len;
  if (cnt == 1) return sock_recv(s, iov[0].iov_base, iov[0].iov_len, flags);
  std::vector<uint8_t> b(total);
  ssize_t r = sock_recv(s, b.data(), total, flags);
  if (r <= 0) return r;
  size_t off = 0;
  for (int i = 0; i < cnt && off < size_t(r); ++i) {
    size_t k = std::min(iov[i].iov_len, size_t(r) - off);
    std::memcpy(iov[i].iov_base, b.data() + off, k);
    off += k;
  }
  return r;
}
ssize_t vec_send(const std::shared_ptr<Sock>& s, const iovec* iov, int cnt, int flags) {
  if (cnt < 0 || cnt > IOV_MAX) return fail(EINVAL);
  if (cnt == 1) return sock_send(s, iov[0].iov_base, iov[0].iov_len, flags);
  std::vector<uint8_t> b;
  for (int i = 0; i < cnt; ++i) b.insert(b.end(), static_cast<const uint8_t*>(iov[i].iov_base),
                                         static_cast<const uint8_t*>(iov[i].iov_base) + iov[i].iov_len);
  return sock_send(s, b.data(), b.size(), flags);
}
}  // namespace

__attribute__((visibility("default"))) ssize_t readv(int fd, const iovec* iov, int cnt) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return vec_recv(s, iov, cnt, 0);
  return REAL(readv)(fd, iov, cnt);
}
__attribute__((visibility("default"))) ssize_t writev(int fd, const iovec* iov, int cnt) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) return vec_send(s, iov, cnt, 0);
  return REAL(writev)(fd, iov, cnt);
}
__attribute__((visibility("default"))) ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) {
    if (!msg) return fail(EFAULT);
    ssize_t r = vec_recv(s, msg->msg_iov, int(msg->msg_iovlen), flags);
    if (r >= 0) {
      fill_peer(*s, static_cast<sockaddr*>(msg->msg_name), &msg->msg_namelen);
      msg->msg_controllen = 0;
      msg->msg_flags = 0;
    }
    return r;
  }
  return REAL(recvmsg)(fd, msg, flags);
}
__attribute__((visibility("default"))) ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) {
    if (!msg) return fail(EFAULT);
    if (msg->msg_controllen) return fail(EINVAL);  // no ancillary data on TCP
    return vec_send(s, msg->msg_iov, int(msg->msg_iovlen), flags);
  }
  return REAL(sendmsg)(fd, msg, flags);
}
namespace {
// sendfile() to a utcp socket: read from the file (at *off, or at its offset), write through
// utcp, as one call (up to 256 KiB; a partial count like Linux's). Without `off` the file's
// offset ends just past what was sent (read with pread, then moved by what the socket took:
// bytes read but not sent are not lost, also on an error such as EAGAIN). The input must be
// seekable as Linux's needs it mmap-able: a pipe is EINVAL. A utcp socket as the input is
// not a file: EINVAL, as Linux says for a socket there.
ssize_t sendfile_utcp(const std::shared_ptr<Sock>& s, int in, off_t* off, size_t n) {
  if (fds().maybe(in) && waitable(in)) return fail(EINVAL);
  off_t pos = off ? *off : ::lseek(in, 0, SEEK_CUR);
  if (pos < 0) return fail(errno == ESPIPE ? EINVAL : errno);
  std::vector<uint8_t> b(std::min<size_t>(n, 256 * 1024));
  ssize_t r = ::pread(in, b.data(), b.size(), pos);
  if (r <= 0) return r;
  ssize_t w = sock_send(s, b.data(), size_t(r), MSG_NOSIGNAL);
  int e = errno;
  if (w > 0) {
    if (off) *off = pos + w;
    else ::lseek(in, pos + w, SEEK_SET);
  }
  if (w < 0 && e == EPIPE) ::pthread_kill(::pthread_self(), SIGPIPE);  // as Linux's sendfile
  errno = e;
  return w;
}
}  // namespace

__attribute__((visibility("default"))) ssize_t sendfile(int out, int in, off_t* off, size_t n) {
  if (auto s = fds().maybe(out) ? waitable(out) : nullptr) return sendfile_utcp(s, in, off, n);
  if (fds().maybe(in) && waitable(in)) return fail(EINVAL);
  return REAL(sendfile)(out, in, off, n);
}
// Programs built with _FILE_OFFSET_BITS=64 call this name (the same function on 64-bit).
__attribute__((visibility("default"))) ssize_t sendfile64(int out, int in, off64_t* off, size_t n) {
  static_assert(sizeof(off64_t) == sizeof(off_t));
  return sendfile(out, in, reinterpret_cast<off_t*>(off), n);
}

// splice() moves pages between kernel pipes and files; a utcp socket's bytes live in this
// process, not in a kernel socket buffer: EINVAL (logged once), where the kernel would
// otherwise splice to or from the endpoint file itself.
__attribute__((visibility("default"))) ssize_t splice(int in, loff_t* off_in, int out, loff_t* off_out, size_t n,
                                                      unsigned flags) {
  if ((fds().maybe(in) && waitable(in)) || (fds().maybe(out) && waitable(out))) {
    static std::atomic<bool> told{false};
    if (!told.exchange(true)) logf("splice() on a utcp socket is not supported (EINVAL); read and write work");
    return fail(EINVAL);
  }
  return REAL(splice)(in, off_in, out, off_out, n, flags);
}

__attribute__((visibility("default"))) int close(int fd) {
  if (fds().maybe(fd)) {
    if (auto s = fds().erase(fd)) {
      int r;
      {
        std::lock_guard<std::mutex> g(s->mu);  // not while the connect thread puts the endpoint on fd
        r = REAL(close)(fd);
      }
      drop_fd(s);
      return r;
    }
  }
  if (epolls().maybe(fd)) epolls().erase(fd);
  return REAL(close)(fd);
}

__attribute__((visibility("default"))) int close_range(unsigned first, unsigned last, int flags) {
  if (!(flags & CLOSE_RANGE_CLOEXEC)) {
    for (auto& sp : fds().entries())
      for (int fd : fds().fds_of(sp.get()))
        if (unsigned(fd) >= first && unsigned(fd) <= last) close(fd);
  }
  return REAL(close_range)(first, last, flags);
}

__attribute__((visibility("default"))) int shutdown(int fd, int how) {
  auto s = fds().maybe(fd) ? waitable(fd) : nullptr;
  if (!s) return REAL(shutdown)(fd, how);
  std::unique_lock<std::mutex> lk(s->mu);
  if (how < SHUT_RD || how > SHUT_RDWR) return fail(EINVAL);
  int u = usable(*s, lk, true, kInstantNever);
  if (u < 0) return fail(u == -EAGAIN ? ENOTCONN : -u);
  int r = s->conn->stack->shutdown(s->conn->h, how);
  progress(*s);
  return r < 0 ? fail(-r) : 0;
}

__attribute__((visibility("default"))) int getsockname(int fd, sockaddr* addr, socklen_t* len) {
  if (auto s = fds().get(fd)) {
    std::lock_guard<std::mutex> g(s->mu);
    if (s->st == St::kFresh && s->bound_parked) {  // bound (for the program) to a parked listen's port
      if (!addr || !len) return fail(EFAULT);
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(s->bound_ip);
      in.sin_port = htons(s->bound_port);
      std::memcpy(addr, &in, std::min<size_t>(*len, sizeof in));
      *len = sizeof in;
      return 0;
    }
    if (s->st == St::kUtcp && s->conn) {
      if (!addr || !len) return fail(EFAULT);
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(s->conn->tuple.local_ip.v);
      in.sin_port = htons(s->conn->tuple.local_port);
      std::memcpy(addr, &in, std::min<size_t>(*len, sizeof in));
      *len = sizeof in;
      return 0;
    }
    if (s->st == St::kListening && s->lsn) {  // the address as bound (0.0.0.0 when any)
      if (!addr || !len) return fail(EFAULT);
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(s->bound_ip);
      in.sin_port = htons(s->lsn->grant.local_port);
      std::memcpy(addr, &in, std::min<size_t>(*len, sizeof in));
      *len = sizeof in;
      return 0;
    }
  }
  return REAL(getsockname)(fd, addr, len);
}
__attribute__((visibility("default"))) int getpeername(int fd, sockaddr* addr, socklen_t* len) {
  if (auto s = fds().maybe(fd) ? waitable(fd) : nullptr) {
    {
      std::lock_guard<std::mutex> g(s->mu);
      if (s->st != St::kUtcp) return fail(ENOTCONN);
    }
    if (!addr || !len) return fail(EFAULT);
    fill_peer(*s, addr, len);
    return 0;
  }
  return REAL(getpeername)(fd, addr, len);
}

__attribute__((visibility("default"))) int setsockopt(int fd, int level, int name, const void* val, socklen_t len) {
  auto s = fds().get(fd);
  if (!s) return REAL(setsockopt)(fd, level, name, val, len);
  std::lock_guard<std::mutex> g(s->mu);
  if (s->st == St::kFresh || s->st == St::kClosed) {
    int r = REAL(setsockopt)(fd, level, name, val, len);
    if (r == 0 && s->st == St::kFresh) record_fresh_opt(*s, level, name, val, len);
    return r;
  }
  int r;
  if (!sockopt_set(*s, level, name, val, len, &r)) return fail(ENOPROTOOPT);
  return r < 0 ? fail(-r) : 0;
}
__attribute__((visibility("default"))) int getsockopt(int fd, int level, int name, void* val, socklen_t* len) {
  auto s = fds().get(fd);
  if (!s) return REAL(getsockopt)(fd, level, name, val, len);
  std::lock_guard<std::mutex> g(s->mu);
  if (s->st == St::kFresh || s->st == St::kClosed) return REAL(getsockopt)(fd, level, name, val, len);
  if (s->st == St::kUtcp) progress(*s);  // SO_ERROR/TCP_INFO as of now
  int r;
  if (!sockopt_get(*s, level, name, val, len, &r)) return fail(ENOPROTOOPT);
  return r < 0 ? fail(-r) : 0;
}

namespace {
int fcntl_impl(int fd, int cmd, void* arg, decltype(&::fcntl) real) {
  auto s = fds().get(fd);
  if (!s) return real(fd, cmd, arg);
  switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      std::lock_guard<std::mutex> g(s->mu);
      return dup_to(s, real(fd, cmd, arg));
    }
    case F_SETFL: {
      std::lock_guard<std::mutex> g(s->mu);
      // A listening socket's file is the registry connection, which stays blocking: the
      // layer keeps O_NONBLOCK for accept() itself.
      int r = real(fd, cmd, s->st == St::kListening ? reinterpret_cast<void*>(long(arg) & ~long(O_NONBLOCK)) : arg);
      if (r == 0) s->nonblock = (long(arg) & O_NONBLOCK) != 0;
      return r;
    }
    case F_GETFL: {
      std::lock_guard<std::mutex> g(s->mu);
      int r = real(fd, cmd, arg);
      if (r >= 0) r = s->nonblock ? (r | O_NONBLOCK) : (r & ~O_NONBLOCK);
      return r;
    }
    default:
      return real(fd, cmd, arg);
  }
}
}  // namespace

__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl_impl(fd, cmd, arg, REAL(fcntl));
}
__attribute__((visibility("default"))) int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  static auto real64 = reinterpret_cast<decltype(&::fcntl)>(::dlsym(RTLD_NEXT, "fcntl64"));
  return fcntl_impl(fd, cmd, arg, real64 ? real64 : REAL(fcntl));
}

__attribute__((visibility("default"))) int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  auto s = fds().get(fd);
  if (!s) return REAL(ioctl)(fd, req, arg);
  std::lock_guard<std::mutex> g(s->mu);
  if (req == FIONBIO) {
    if (!arg) return fail(EFAULT);
    int on;
    std::memcpy(&on, arg, sizeof on);
    s->nonblock = on != 0;
    if (s->st == St::kListening) return 0;  // see fcntl(F_SETFL)
    int fl = REAL(fcntl)(fd, F_GETFL);
    if (fl >= 0) REAL(fcntl)(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
    return 0;
  }
  if (s->st == St::kFresh || s->st == St::kClosed) return REAL(ioctl)(fd, req, arg);
  if (req == FIONREAD || req == TIOCOUTQ) {
    if (!arg) return fail(EFAULT);
    int v = 0;
    if (s->st == St::kUtcp && s->conn && !s->conn->dead && own(*s)) {
      progress(*s);
      const Connection* k = s->conn->stack->connection(s->conn->h);
      if (k) v = int(req == FIONREAD ? k->recv_queued() + s->peeked.size() : k->send_queued());
    }
    std::memcpy(arg, &v, sizeof v);
    return 0;
  }
  // The descriptor is the endpoint file: its own ioctls are not the program's business.
  return fail(ENOTTY);
}

__attribute__((visibility("default"))) int dup(int fd) {
  auto s = fds().get(fd);
  if (!s) return REAL(dup)(fd);
  std::lock_guard<std::mutex> g(s->mu);
  return dup_to(s, REAL(dup)(fd));
}

__attribute__((visibility("default"))) int dup3(int oldfd, int newfd, int flags) {
  if (oldfd == newfd) return fail(EINVAL);
  auto s = fds().get(oldfd);
  std::shared_ptr<Sock> gone = fds().maybe(newfd) ? fds().erase(newfd) : nullptr;
  if (epolls().maybe(newfd)) epolls().erase(newfd);
  int r;
  if (s) {
    std::lock_guard<std::mutex> g(s->mu);
    r = REAL(dup3)(oldfd, newfd, flags);
    if (r >= 0) dup_to(s, r);
  } else {
    r = REAL(dup3)(oldfd, newfd, flags);
  }
  if (gone) drop_fd(gone);
  return r;
}
__attribute__((visibility("default"))) int dup2(int oldfd, int newfd) {
  if (oldfd == newfd) return REAL(dup2)(oldfd, newfd);
  if (!fds().maybe(oldfd) && !fds().maybe(newfd) && !epolls().maybe(newfd)) return REAL(dup2)(oldfd, newfd);
  return dup3(oldfd, newfd, 0);
}

__attribute__((visibility("default"))) int poll(pollfd* pf, nfds_t n, int timeout) {
  return poll_impl(pf, n, deadline_ms(timeout), nullptr, false);
}
__attribute__((visibility("default"))) int __poll_chk(pollfd* pf, nfds_t n, int timeout, size_t len) {
  if (len / sizeof(pollfd) < n) ::abort();
  return poll(pf, n, timeout);
}
__attribute__((visibility("default"))) int ppoll(pollfd* pf, nfds_t n, const timespec* ts, const sigset_t* mask) {
  return poll_impl(pf, n, deadline_ts(ts), mask, true);
}
__attribute__((visibility("default"))) int __ppoll_chk(pollfd* pf, nfds_t n, const timespec* ts, const sigset_t* mask,
                                                       size_t len) {
  if (len / sizeof(pollfd) < n) ::abort();
  return ppoll(pf, n, ts, mask);
}

namespace {
bool any_ours(int nfds, fd_set* r, fd_set* w, fd_set* e) {
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd)
    if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) && fds().maybe(fd) &&
        waitable(fd, true))
      return true;
  return false;
}
}  // namespace

__attribute__((visibility("default"))) int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv) {
  if (!any_ours(nfds, r, w, e)) return REAL(select)(nfds, r, w, e, tv);
  if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0)) return fail(EINVAL);
  Instant d = tv ? Clock::now() + Duration(int64_t(tv->tv_sec) * 1'000'000 + tv->tv_usec) : kInstantNever;
  return select_impl(nfds, r, w, e, d, nullptr, false, tv);
}
__attribute__((visibility("default"))) int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* ts,
                                                   const sigset_t* mask) {
  if (!any_ours(nfds, r, w, e)) return REAL(pselect)(nfds, r, w, e, ts, mask);
  return select_impl(nfds, r, w, e, deadline_ts(ts), mask, true, nullptr);
}

__attribute__((visibility("default"))) int epoll_ctl(int epfd, int op, int fd, epoll_event* ev) {
  auto s = fds().get(fd);
  if (!s) {
    if (op == EPOLL_CTL_DEL && epolls().maybe(epfd))
      if (auto set = epolls().get(epfd)) {
        std::lock_guard<std::mutex> g(set->mu);
        set->utcp.erase(fd);
      }
    return REAL(epoll_ctl)(epfd, op, fd, ev);
  }
  bool fresh, listening;
  {
    std::lock_guard<std::mutex> g(s->mu);
    fresh = s->st == St::kFresh;
    listening = s->st == St::kListening;
  }
  if (listening) return REAL(epoll_ctl)(epfd, op, fd, ev);  // its descriptor is ready when it is
  if (op != EPOLL_CTL_DEL && !ev) return fail(EFAULT);
  if (fresh) {
    // The kernel's epoll watches the placeholder; we keep the interest too, for when
    // connect() moves the socket to utcp (the kernel then drops its entry with the file).
    int r = REAL(epoll_ctl)(epfd, op, fd, ev);
    if (r < 0) return r;
  }
  auto set = epolls().get(epfd);
  if (!set) {
    int t = REAL(fcntl)(epfd, F_GETFD);
    if (t < 0) return fail(EBADF);
    set = std::make_shared<EpollSet>();
    if (!epolls().set(epfd, set)) return fail(ENOMEM);
  }
  std::lock_guard<std::mutex> g(set->mu);
  auto it = set->utcp.find(fd);
  switch (op) {
    case EPOLL_CTL_ADD:
      if (it != set->utcp.end() && !fresh) return fail(EEXIST);
      set->utcp[fd] = Interest{ev->events, ev->data, s};
      return 0;
    case EPOLL_CTL_MOD:
      if (it == set->utcp.end()) return fail(ENOENT);
      it->second.events = ev->events;
      it->second.data = ev->data;
      it->second.last_gen = ~uint64_t(0);
      return 0;
    case EPOLL_CTL_DEL:
      if (it == set->utcp.end()) return fresh ? 0 : fail(ENOENT);
      set->utcp.erase(it);
      return 0;
    default:
      return fail(EINVAL);
  }
}
__attribute__((visibility("default"))) int epoll_wait(int epfd, epoll_event* evs, int max, int timeout) {
  if (!epolls().maybe(epfd)) return REAL(epoll_wait)(epfd, evs, max, timeout);
  return epoll_impl(epfd, evs, max, deadline_ms(timeout), nullptr, false);
}
__attribute__((visibility("default"))) int epoll_pwait(int epfd, epoll_event* evs, int max, int timeout,
                                                       const sigset_t* mask) {
  if (!epolls().maybe(epfd)) return REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
  return epoll_impl(epfd, evs, max, deadline_ms(timeout), mask, true);
}
__attribute__((visibility("default"))) int epoll_pwait2(int epfd, epoll_event* evs, int max, const timespec* ts,
                                                        const sigset_t* mask) {
  if (!epolls().maybe(epfd)) return REAL(epoll_pwait2)(epfd, evs, max, ts, mask);
  return epoll_impl(epfd, evs, max, deadline_ts(ts), mask, true);
}

// fork(): the child gets a copy of every socket. A connection's TCP state can live in
// only one process: the parent keeps it, and hands it over (through memory shared by the
// two) when it closes its copy while the child still holds one (docs/preload.md).
__attribute__((visibility("default"))) pid_t fork(void) {
  std::vector<std::shared_ptr<Sock>> v = fds().entries();
  {
    std::lock_guard<std::mutex> g(live_mu());
    for (auto& s : live())
      if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
  }
  for (auto& s : v) s->mu.lock();
  for (auto& s : v) {
    if (s->st != St::kUtcp || !s->conn) continue;
    if (!s->shared) {
      size_t cap = size_t(std::max(s->opts.rcvbuf, 1 << 20)) + size_t(std::max(s->opts.sndbuf, 1 << 20)) + (256 << 10);
      size_t size = sizeof(SharedConn) + cap;
      void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        logf("fork: no shared memory for a connection (%s): the child's copy will not be usable", std::strerror(errno));
        continue;
      }
      s->shared = new (p) SharedConn{};
      s->shared->owner.store(my_pid());
      s->shared->holders.store(1);
      s->shared->cap = cap;
      s->shared_size = size;
    }
    s->shared->holders.fetch_add(1);
  }
  // Every lock the child may need, held across the fork so its copies are consistent.
  std::unique_lock<std::mutex> l1(live_mu()), l2(helper_mu()), l3(fds().mutex()), l4(epolls().mutex()),
      l5(parked_mu());
  pid_t pid = REAL(fork)();
  if (pid == 0) parked().clear();  // the parent's listens: the child's copies of their connections go
  l5.unlock();
  l4.unlock();
  l3.unlock();
  l2.unlock();
  l1.unlock();
  if (pid == 0) {
    g_pid.store(int(::getpid()));
    for (auto& s : v)
      if (s->conn && s->conn->dev) remap_rings_in_child(*s->conn);
    // The helper thread stayed in the parent; the child starts its own when it needs one.
    g_helper_running = false;
    if (g_helper_wake >= 0) REAL(close)(g_helper_wake);
    g_helper_wake = -1;
    bool any = false;
    for (auto& s : v) any |= s->st == St::kUtcp || s->orphan;
    // Orphans (closed before the fork) are the parent's to finish.
    {
      std::lock_guard<std::mutex> g(live_mu());
      auto& l = live();
      l.erase(std::remove_if(l.begin(), l.end(), [](auto& s) { return s->orphan; }), l.end());
    }
    for (auto& s : v) s->mu.unlock();
    if (any) wake_helper();
    return 0;
  }
  if (pid < 0)
    for (auto& s : v)
      if (s->shared && s->st == St::kUtcp && s->conn) s->shared->holders.fetch_sub(1);
  for (auto& s : v) s->mu.unlock();
  return pid;
}

// exec: the TCP state lives in this process's memory and cannot follow (docs/preload.md).
__attribute__((visibility("default"))) int execve(const char* path, char* const argv[], char* const envp[]) {
  before_exec();
  return REAL(execve)(path, argv, envp);
}
__attribute__((visibility("default"))) int execv(const char* path, char* const argv[]) {
  before_exec();
  return REAL(execv)(path, argv);
}
__attribute__((visibility("default"))) int execvp(const char* file, char* const argv[]) {
  before_exec();
  return REAL(execvp)(file, argv);
}
__attribute__((visibility("default"))) int execvpe(const char* file, char* const argv[], char* const envp[]) {
  before_exec();
  return REAL(execvpe)(file, argv, envp);
}
__attribute__((visibility("default"))) int fexecve(int fd, char* const argv[], char* const envp[]) {
  before_exec();
  return REAL(fexecve)(fd, argv, envp);
}

namespace {
std::vector<char*> collect_args(const char* first, va_list ap, char*** envp) {
  std::vector<char*> a{const_cast<char*>(first)};
  while (char* p = va_arg(ap, char*)) a.push_back(p);
  a.push_back(nullptr);
  if (envp) *envp = va_arg(ap, char**);
  return a;
}
}  // namespace

__attribute__((visibility("default"))) int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  auto a = collect_args(arg, ap, nullptr);
  va_end(ap);
  return execv(path, a.data());
}
__attribute__((visibility("default"))) int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  auto a = collect_args(arg, ap, nullptr);
  va_end(ap);
  return execvp(file, a.data());
}
__attribute__((visibility("default"))) int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  char** envp;
  auto a = collect_args(arg, ap, &envp);
  va_end(ap);
  return execve(path, a.data(), envp);
}

}  // extern "C"
