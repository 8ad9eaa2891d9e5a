// utcpd.cc - the registry (paper §3.1, §3.4): the one privileged part of utcp. It owns
// the control file of /dev/utcp, allocates ports, builds header templates from the
// kernel's network facts, creates endpoints and hands them to applications over a Unix
// socket. It is never on the data path.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <set>
#include <span>
#include <memory>
#include <string>
#include <vector>

#include "api/stack.h"
#include "tcp/state_export.h"
#include "device/kmod_device.h"
#include "device/module.h"
#include "module_control.h"
#include "netinfo.h"
#include "pool_filler.h"
#include "inherit.h"
#include "ports.h"
#include "registry/protocol.h"

#ifndef UTCP_CLASSIFIER_DEFAULT
#define UTCP_CLASSIFIER_DEFAULT "/usr/lib/utcp/utcp_classifier.bpf.o"
#endif

namespace utcp::registry {
namespace {

int g_log_level = 1;  // 0 error, 1 info, 2 debug

void logf(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// One write(2) per line: stderr is unbuffered, and three writes per line cost utcpd
// three system calls on every connection it serves (the endpoint pool's thread logs
// too, so whole lines also keep the two from interleaving mid-line).
void logf(int level, const char* fmt, ...) {
  if (level > g_log_level) return;
  static const char* names[] = {"error", "info", "debug"};
  char line[4096];
  int n = std::snprintf(line, sizeof line, "utcpd: %s: ", names[level]);
  va_list ap;
  va_start(ap, fmt);
  const int m = std::vsnprintf(line + n, sizeof line - size_t(n), fmt, ap);
  va_end(ap);
  n = m < 0 ? n : std::min<int>(n + m, int(sizeof line) - 2);  // a longer line is cut
  line[n++] = '\n';
  std::fwrite(line, 1, size_t(n), stderr);
}

struct Options {
  std::string interface;
  std::string socket_path = kDefaultSocketPath;
  std::string classifier = UTCP_CLASSIFIER_DEFAULT;
  // Rings of an endpoint whose request leaves them to utcpd (RingSize fields 0): 64 RX
  // and 32 TX slots of 64 KiB, 6 MiB of pinned memory (the module zeroes it before user
  // space sees it; creation time grows with it). The slots must hold a GRO/GSO frame:
  // the module drops a received frame larger than its slot, and a kernel peer's TSO
  // frames arrive whole (over veth, or merged by GRO on a NIC), so MTU-sized slots would
  // make receiving from such a peer crawl. 64 slots hold a 256 KiB window of 4 KiB frames;
  // a request may ask for more (the bulk profile), or for MTU-sized slots when it mostly
  // sends or holds many connections, within the max_* limits.
  uint32_t rx_entries = 64, tx_entries = 32, slot_size = 65536 + 256;
  uint32_t max_rx_entries = 1024, max_tx_entries = 1024, max_slot_size = 65536 + 256;
  // Endpoints with the default rings created ahead (on a worker thread, PoolFiller) while
  // utcpd has clients, so their next requests do not wait for the module to allocate and
  // zero rings (0: none).
  // The pool goes when the last client does: an idle registry holds no spare memory.
  uint32_t endpoint_pool = 8;
  // How long a Connect may wait, parked, for its next hop's link address (ARP).
  Duration neighbour_wait = Duration(3'000'000);
  InheritConfig inherit;
  bool recover = true;  // take over what a previous utcpd left in the module
};

// One endpoint the registry handed out, with what it must undo when it ends.
struct Grant {
  Endpoint ep;  // the registry keeps its own reference to the endpoint file
  PortReservation port;
  // A listen's port, shared with the connections accepted on it: the port stays reserved
  // in the kernel while any of them lives (as a kernel listener's accepted sockets do).
  std::shared_ptr<PortReservation> shared_port;
  bool listener = false;
  utcp_flow_key flow{};
  utcp_listen_key listen{};
  MacAddr next_hop;
  uint16_t remote_port = 0;
  Ipv4Addr remote_ip;
  // References to the endpoint file while only the registry holds it, as UTCP_IOC_EP_STATS
  // reads them with the pool's worker running (Registry::start).
  uint32_t base_refs = 0;
};

// A grant whose client is gone, kept until every other holder of its endpoint file let
// go (it may have been passed on: paper §3.2), then inherited (registry/inherit.h).
struct Held {
  pid_t pid = 0;
  uid_t uid = 0;
  Grant grant;
  std::unique_ptr<Orphan> orphan;  // set once inherited
  uint32_t refs_seen = 0;          // the endpoint file's reference count last read (for the debug log)
};
constexpr Duration kHeldRecheck = Duration(100'000);

struct Client {
  int fd = -1;
  ucred cred{};
  std::map<uint32_t, Grant> grants;  // by endpoint id
};

// A three-way handshake the registry runs on a new endpoint before handing it over
// (paper §3.4): a one-connection stack on the registry's own mapping of the rings.
struct Handshake {
  int client_fd = -1;
  RegHeader req{};
  uint32_t endpoint_id = 0;
  std::unique_ptr<KmodDevice> dev;
  std::unique_ptr<Stack> stack;
  int handle = -1;
  Instant deadline;
  // Where the setup time goes (logged at debug level): the request's arrival, then the
  // end of each step: route and next hop, port, endpoint and flow entry, SYN sent.
  std::array<Instant, 5> stamps{};
};
constexpr Duration kHandshakeTimeout = Duration(20'000'000);
constexpr Duration kNextHopTtl = Duration(1'000'000);
// How often the neighbour table is looked at while a Connect waits for its next hop's
// link address (Options::neighbour_wait).
constexpr Duration kNeighbourRetry = Duration(20'000);
constexpr size_t kMaxNextHops = 4096;

// A listen the registry accepts on for a client (paper §3.4: the registry runs the
// handshakes of passive opens too). The listener endpoint stays here: a Stack with one
// listening socket answers SYNs over it (SYN cookies when its SYN queue is full), and
// replies through the hop each SYN came from (StackConfig::learn_peer_mac). An Accept
// takes one established connection: it gets its own endpoint with the exact 4-tuple
// template and flow entry, the listener ring is drained once more into the stack (so
// what arrived before the flow entry is in the exported state), and the connection is
// exported and handed over.
struct Listening {
  int client_fd = -1;
  uint32_t listen_id = 0;  // the listener endpoint's id
  uint16_t port = 0;
  std::shared_ptr<PortReservation> port_ref;
  std::unique_ptr<KmodDevice> dev;
  std::unique_ptr<Stack> stack;
  int handle = -1;
  std::deque<AcceptRequest> waiting;  // Accepts with kAcceptWait, answered in order
  uint64_t accepted = 0;
};
// What an unclaimed connection may buffer in the registry: its exported state (with that
// data) must fit one reply (kMaxStateLen).
constexpr uint32_t kRegistryRcvBuf = 48 * 1024;

class Registry {
 public:
  Registry(Options opt) : opt_(std::move(opt)), tcp_ports_(IPPROTO_TCP), udp_ports_(IPPROTO_UDP) {}
  int start();
  int run();

 private:
  void accept_clients();
  void serve(Client& c);
  void drop(int fd);
  void release(Grant& g);
  // `pass_file` false: the reply carries no endpoint file (kConnectReuse: the client has it).
  void reply_endpoint(Client& c, const RegHeader& req, int error, const std::string& why, Grant* g,
                      std::span<const uint8_t> state = {}, bool pass_file = true);
  // `parked_until`: a retry of a Connect parked on its next hop until then (else {}).
  void handle_connect(Client& c, const ConnectRequest& r, Instant parked_until = {});
  // kConnectReuse, once the next hop is known: the grant's endpoint moves to the new 4-tuple.
  void reuse_endpoint(Client& c, const ConnectRequest& r, Grant& g, const MacAddr& next_hop);
  void start_handshake(Client& c, const ConnectRequest& r, Grant& g, const std::array<Instant, 5>& stamps);
  bool reserve_port(Client& c, const RegHeader& req, uint16_t port, Grant& g, bool udp = false);
  // `keep_map`: the registry maps the endpoint next (registry_map); else the mapping a
  // pooled endpoint came with is dropped at once.
  bool install_endpoint(Client& c, const RegHeader& req, const utcp_template& t, const RingSize& asked, Grant& g,
                        bool keep_map = false);
  utcp_template base_template(uint16_t local_port) const;
  void progress_handshakes();
  int handshake_timeout_ms() const;
  void handle_listen(Client& c, const ListenRequest& r);
  bool open_listener(Client& c, const ListenRequest& r, Grant& g);
  std::shared_ptr<PortReservation> reusable_port(uint16_t port) const;
  void handle_listen_accept(Client& c, const ListenRequest& r);
  void handle_accept(Client& c, const AcceptRequest& r);
  bool claim(Listening& l, const AcceptRequest& r);
  void progress_listens();
  Listening* find_listen(int client_fd, uint32_t listen_id);
  void close_listen(int device_fd, int reply_error);
  void close_listens(int client_fd);
  void progress_held();
  void handle_list(Client& c, const ListRequest& r);
  ListEntry list_entry(const Grant& g, pid_t pid, uid_t uid, bool show, ListRole role) const;
  int timeout_ms() const;
  int attach_or_adopt(std::string* err);
  int recover();

  Options opt_;
  NetInfo net_;
  ModuleControl module_;
  PortAllocator tcp_ports_, udp_ports_;
  Interface ifc_;
  int listen_fd_ = -1, epoll_fd_ = -1;
  std::map<int, std::unique_ptr<Client>> clients_;
  std::map<int, std::unique_ptr<Handshake>> handshakes_;  // by the registry's endpoint fd
  std::map<int, std::unique_ptr<Listening>> listens_;      // by the registry's endpoint fd
  std::vector<std::unique_ptr<Held>> held_;
  Instant held_check_ = kInstantNever;
  // Fresh endpoints with the default rings and a placeholder template (pool_template()):
  // never mapped, no classifier entry, so nothing ever reached their rings but the
  // module's zeroes. One is handed out per request for the default rings.
  std::vector<Endpoint> pool_;
  // The registry's own mapping of each pooled endpoint (by id), made ahead too: the
  // handshake sends its SYN through it without mapping the rings first.
  // It holds references to the endpoint file (the dup'd fd, the mapping): `refs` of them,
  // which install_endpoint leaves out of the grant's base_refs.
  struct PoolMap {
    std::unique_ptr<KmodDevice> dev;
    uint32_t refs = 0;
  };
  std::map<uint32_t, PoolMap> pool_maps_;
  // The registry's mapping of endpoint `ep`: the one made ahead for a pooled endpoint,
  // else a new one (nullptr with `why` on failure).
  std::unique_ptr<KmodDevice> registry_map(const Endpoint& ep, std::string* why);
  bool pool_failed_ = false;
  // Makes the pooled endpoints on its own thread (declared after module_, so it stops
  // before the control file goes); the event loop takes them from its eventfd.
  PoolFiller filler_{[this] { return make_pooled(); }};
  PoolFiller::Made make_pooled();  // on the filler's thread: reads only module_, ifc_, opt_
  void take_pool_made();
  // Route and next hop per destination, looked up at most once per kNextHopTtl: each
  // lookup is two rtnetlink dumps (routes, neighbours), the largest part of a request's
  // time in utcpd once the endpoint comes from the pool. A neighbour that changes its
  // address is seen within kNextHopTtl, as the kernel's own sockets keep a cached
  // neighbour until it is confirmed stale.
  struct NextHop {
    Route route;
    MacAddr mac;
    Instant at;
  };
  std::map<uint32_t, NextHop> next_hops_;
  // The route and next hop's address for `dst`; replies and returns nullopt if none.
  // With `unresolved`, a next hop whose link address is not known yet is not an error:
  // its resolution is started, *unresolved set, nothing replied (the caller parks).
  std::optional<NextHop> next_hop(Client& c, const RegHeader& req, Ipv4Addr dst, bool* unresolved = nullptr);
  // Connects waiting for ARP: the event loop goes on serving everyone else and looks
  // at the neighbour table every kNeighbourRetry until the address comes or the wait
  // ends (then the request gets EHOSTUNREACH, as before).
  struct ParkedConnect {
    int client_fd;
    ConnectRequest req;
    Instant until;
  };
  std::vector<ParkedConnect> parked_;
  Instant parked_retry_{};
  void progress_parked();
  void drain_pool();
  bool take_pooled(const utcp_template& t, Endpoint* out);
};

// The template of a pooled endpoint: a UDP "listener" on port 9 of the registry's
// address, which no request creates (UDP endpoints are connected), so recover() knows
// such an endpoint for what it is.
utcp_template pool_template(const Interface& ifc) {
  utcp_template t{};
  std::memcpy(t.src_mac, ifc.mac.b.data(), 6);
  t.proto = IPPROTO_UDP;
  t.flags = UTCP_TMPL_F_LISTENER;
  t.local_ip = htonl(ifc.addr.v);
  t.local_port = htons(9);
  return t;
}

bool is_pool_template(const utcp_template& t) {
  return t.proto == IPPROTO_UDP && (t.flags & UTCP_TMPL_F_LISTENER) && ntohs(t.local_port) == 9;
}

int Registry::start() {
  std::string err;
  if (!net_.ok(&err)) {
    logf(0, "%s", err.c_str());
    return 1;
  }
  auto ifc = net_.interface_by_name(opt_.interface);
  if (!ifc) {
    logf(0, "no interface '%s' in this network namespace (see `ip link`); pass --interface", opt_.interface.c_str());
    return 1;
  }
  if (ifc->addr.v == 0) {
    logf(0, "interface %s has no IPv4 address: give it one (`ip addr add ADDR/LEN dev %s`) or serve another",
         opt_.interface.c_str(), opt_.interface.c_str());
    return 1;
  }
  ifc_ = *ifc;
  // The pool's worker thread starts before any endpoint's reference count is read. An
  // ioctl on a file whose fd table is shared (more than one thread) holds a reference of
  // its own while it runs (the kernel's fdget), so UTCP_IOC_EP_STATS's file_refs is one
  // higher once the worker exists. A grant's base_refs and the count progress_held
  // compares it with must both be read with the worker running: recover() used to read
  // its bases before, and a recovered connection was never inherited (registry_restart).
  if (filler_.start(&err) < 0) {
    logf(0, "%s", err.c_str());
    return 1;
  }
  if (attach_or_adopt(&err) < 0) {
    logf(0, "%s", err.c_str());
    return 1;
  }

  std::string dir = opt_.socket_path.substr(0, opt_.socket_path.rfind('/'));
  if (!dir.empty()) ::mkdir(dir.c_str(), 0755);
  ::unlink(opt_.socket_path.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (opt_.socket_path.size() >= sizeof sa.sun_path) {
    logf(0, "socket path too long: %s", opt_.socket_path.c_str());
    return 1;
  }
  std::strcpy(sa.sun_path, opt_.socket_path.c_str());
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(listen_fd_, 128) < 0) {
    logf(0, "cannot listen on %s: %s", opt_.socket_path.c_str(), std::strerror(errno));
    return 1;
  }
  // Anyone may ask; what each may have is decided per request from its credentials.
  ::chmod(opt_.socket_path.c_str(), 0666);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.fd = filler_.fd();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, filler_.fd(), &ev);
  logf(1, "listening on %s", opt_.socket_path.c_str());
  return 0;
}

// The module keeps a persistent control file's attachment and endpoints when the
// registry dies or is restarted (uapi "Restarting the registry"): take them over if a
// previous utcpd left them, else attach afresh. Either way the attachment is made
// persistent, so no way of stopping utcpd (SIGTERM, kill -9, a crash) cuts connections.
int Registry::attach_or_adopt(std::string* err) {
  if (module_.open(err) < 0) return -1;
  utcp_adopt adopted{};
  int rc = -ENOENT;
  if (opt_.recover) {
    rc = module_.adopt(ifc_.ifindex, &adopted, err);
    if (rc < 0 && rc != -ENOENT) return rc;
  } else if (int d = module_.discard_parked(ifc_.ifindex, err); d == 0) {
    logf(1, "--no-recover: dropped the attachment a previous utcpd left on %s: its connections are cut",
         ifc_.name.c_str());
  } else if (d != -ENOENT) {
    return d;
  }
  if (rc == 0) {
    logf(1, "adopted the attachment a previous utcpd left on %s (ifindex %d): %u endpoints, classifier BPF id %u",
         ifc_.name.c_str(), ifc_.ifindex, adopted.endpoints, adopted.prog_id);
    if (adopted.prog_id == 0 && module_.load_classifier(opt_.classifier, err) < 0) return -1;
    if (recover() < 0) {
      *err = "recovery failed; the attachment stays parked for the next utcpd";
      return -1;
    }
  } else if (module_.attach(ifc_.ifindex, err) < 0 || module_.load_classifier(opt_.classifier, err) < 0) {
    return -1;
  }
  if (int p = module_.set_persist(true, err); p < 0) return p;
  logf(1, "attached to %s (ifindex %d, %s, %s, mtu %u), classifier %s", ifc_.name.c_str(), ifc_.ifindex,
       to_string(ifc_.addr).c_str(), to_string(ifc_.mac).c_str(), ifc_.mtu,
       rc == 0 && adopted.prog_id ? "adopted" : opt_.classifier.c_str());
  return 0;
}

// After adopting: every endpoint still in the module belongs to a running application
// (the ones only the dead registry held went with it). Each is opened again, so the
// registry again holds its own reference, its port is reserved in the kernel again, and
// it is held as a grant whose client is gone: progress_held inherits it once its
// application lets go, as for any client that left. The classifier's entries for
// endpoints that are gone are removed: their ids will be handed out again.
int Registry::recover() {
  std::string err;
  std::vector<utcp_endpoint_entry> eps;
  if (module_.list_endpoints(&eps, &err) < 0) {
    logf(0, "%s", err.c_str());
    return -1;
  }
  std::map<uint32_t, utcp_template> live;  // recovered endpoints by id
  std::map<uint16_t, int> ports;          // local port -> grants recovered on it
  unsigned conns = 0, listeners = 0;
  for (const utcp_endpoint_entry& e : eps) {
    if (is_pool_template(e.tmpl)) {  // a previous utcpd's spare: nobody else has it
      module_.destroy_endpoint(e.id);
      continue;
    }
    int fd = -1;
    uint32_t others = 0;
    if (int rc = module_.open_endpoint(e.id, &fd, &others); rc < 0) {
      logf(1, "endpoint %u went away while recovering it (%s)", e.id, std::strerror(-rc));
      continue;
    }
    auto h = std::make_unique<Held>();  // pid 0: its application is not known any more
    Grant& g = h->grant;
    g.ep.id = e.id;
    g.ep.fd = fd;
    utcp_endpoint_info info{};
    if (::ioctl(fd, UTCP_IOC_EP_INFO, &info) == 0) g.ep.layout = info.layout;
    // progress_held inherits when file_refs falls to base_refs: the count of the
    // registry's own references, as install_endpoint takes it on an endpoint only the
    // registry holds. Here the application's references were already there when the
    // registry opened its fd, so they are taken out: base = refs seen now - refs others
    // held at the open (the module counts those atomically with taking ours).
    utcp_endpoint_stats st{};
    uint32_t refs = ::ioctl(fd, UTCP_IOC_EP_STATS, &st) == 0 ? st.file_refs : others + 1;
    g.base_refs = refs > others ? refs - others : 1;
    logf(2, "endpoint %u: %u references to its file, %u of them others' when it was opened: inherited at %u",
         e.id, refs, others, g.base_refs);
    g.listener = e.tmpl.flags & UTCP_TMPL_F_LISTENER;
    uint16_t lport = ntohs(e.tmpl.local_port);
    if (g.listener) {
      g.listen = listen_key_for(e.tmpl);
    } else {
      g.flow = flow_key_for(e.tmpl);
      g.remote_ip = Ipv4Addr{ntohl(e.tmpl.remote_ip)};
      g.remote_port = ntohs(e.tmpl.remote_port);
      auto route = net_.route_to(g.remote_ip);
      auto mac = route ? net_.neighbour(ifc_.ifindex, route->next_hop) : std::nullopt;
      if (mac) g.next_hop = *mac;
      else logf(0, "endpoint %u: no next hop for %s now: if utcpd must finish its connection, its segments are lost",
                e.id, to_string(g.remote_ip).c_str());
    }
    int perr = 0;
    g.port = tcp_ports_.reserve(ifc_.addr, lport, true, &perr);
    if (!g.port.valid()) {
      // A listener and the connections accepted on it share their port: one holds it.
      if (!ports.count(lport))
        logf(0, "endpoint %u: cannot reserve port %u in the kernel again (%s): a kernel socket may take it meanwhile",
             e.id, lport, std::strerror(-perr));
      g.port = PortReservation(-1, lport);
    }
    ++ports[lport];
    live[e.id] = e.tmpl;
    if (g.listener) {
      ++listeners;
      logf(1, "recovered endpoint %u: listener on %s:%u, held until its application lets go", e.id,
           to_string(ifc_.addr).c_str(), lport);
    } else {
      ++conns;
      logf(1, "recovered endpoint %u: connection %s:%u -> %s:%u (%s), held until its application lets go", e.id,
           to_string(ifc_.addr).c_str(), lport, to_string(g.remote_ip).c_str(), g.remote_port,
           (e.tcp_flags & UTCP_EPT_FIN) ? "closing" : (e.tcp_flags & UTCP_EPT_SENT) ? "open" : "idle");
    }
    held_.push_back(std::move(h));
  }
  // Classifier entries: exactly one per recovered endpoint, nothing else.
  size_t stale = 0;
  for (auto& [k, id] : module_.flows()) {
    auto it = live.find(id);
    utcp_flow_key want = it != live.end() ? flow_key_for(it->second) : utcp_flow_key{};
    if (it == live.end() || is_listener(it->second) || std::memcmp(&want, &k, sizeof k) != 0) {
      module_.del_flow(k);
      ++stale;
    }
  }
  for (auto& [k, id] : module_.listeners()) {
    auto it = live.find(id);
    utcp_listen_key want = it != live.end() ? listen_key_for(it->second) : utcp_listen_key{};
    if (it == live.end() || !is_listener(it->second) || std::memcmp(&want, &k, sizeof k) != 0) {
      module_.del_listener(k);
      ++stale;
    }
  }
  for (auto& h : held_) {
    Grant& g = h->grant;
    int rc = g.listener ? module_.add_listener(g.listen, g.ep.id) : module_.add_flow(g.flow, g.ep.id);
    if (rc < 0 && rc != -EEXIST) logf(0, "endpoint %u: cannot restore its classifier entry: %s", g.ep.id, std::strerror(-rc));
  }
  held_check_ = Clock::now();
  logf(1, "recovered %u connections and %u listeners from the previous utcpd; %zu stale classifier entries removed",
       conns, listeners, stale);
  return 0;
}

int Registry::run() {
  std::vector<epoll_event> events(64);
  for (;;) {
    // The pool is topped up on the filler's thread, never in this loop.
    if (!clients_.empty() && !pool_failed_ && pool_.size() + filler_.pending() < opt_.endpoint_pool)
      filler_.request(opt_.endpoint_pool - pool_.size() - filler_.pending());
    int n = ::epoll_wait(epoll_fd_, events.data(), int(events.size()), timeout_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      logf(0, "epoll_wait: %s", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listen_fd_) {
        accept_clients();
        continue;
      }
      if (fd == filler_.fd()) {
        take_pool_made();
        continue;
      }
      if (handshakes_.count(fd) || listens_.count(fd)) continue;  // progressed below
      auto it = clients_.find(fd);
      if (it == clients_.end()) continue;  // an inherited connection's endpoint: below
      if (events[i].events & EPOLLIN) serve(*it->second);
      else if (events[i].events & (EPOLLHUP | EPOLLERR)) drop(fd);
    }
    progress_parked();
    progress_handshakes();
    progress_listens();
    progress_held();
  }
}

// Retries the parked Connects (their clients may have gone meanwhile: dropped then).
void Registry::progress_parked() {
  if (parked_.empty() || Clock::now() < parked_retry_) return;
  std::vector<ParkedConnect> retry;
  retry.swap(parked_);
  parked_retry_ = Clock::now() + kNeighbourRetry;
  for (const ParkedConnect& p : retry)
    if (auto it = clients_.find(p.client_fd); it != clients_.end()) handle_connect(*it->second, p.req, p.until);
}

int Registry::timeout_ms() const {
  int hs = handshake_timeout_ms();
  if (!parked_.empty()) {
    const Instant now = Clock::now();
    const int ms = parked_retry_ <= now ? 0 : int((parked_retry_ - now).count() / 1000 + 1);
    hs = hs < 0 ? ms : std::min(hs, ms);
  }
  if (held_.empty()) return hs;
  Instant now = Clock::now(), next = held_check_;
  for (auto& h : held_)
    if (h->orphan) next = std::min(next, h->orphan->poll_at());
  int ms = next <= now ? 0 : int(std::min<int64_t>((next - now).count() / 1000 + 1, 1000));
  return hs < 0 ? ms : std::min(hs, ms);
}

// Held grants: inherit each once nobody else holds its endpoint, run the inherited
// connections (TIME-WAIT, resets), release what is finished.
void Registry::progress_held() {
  if (held_.empty()) return;
  Instant now = Clock::now();
  bool recheck = now >= held_check_;
  for (auto it = held_.begin(); it != held_.end();) {
    Held& h = **it;
    Grant& g = h.grant;
    bool done = false;
    if (h.orphan) {
      done = !h.orphan->poll(now);
    } else if (recheck) {
      utcp_endpoint_stats st{};
      const bool read = ::ioctl(g.ep.fd, UTCP_IOC_EP_STATS, &st) == 0;
      if (read && st.file_refs != h.refs_seen) {
        logf(2, "endpoint %u: %u references to its file (inherited at %u)", g.ep.id, st.file_refs, g.base_refs);
        h.refs_seen = st.file_refs;
      }
      if (!read) {
        done = true;
      } else if (st.file_refs <= g.base_refs || (st.flags & UTCP_EPF_DETACHED)) {
        Orphan::Kind kind = Orphan::classify(st);
        std::string why;
        int dupfd = kind == Orphan::Kind::kRelease ? -1 : ::fcntl(g.ep.fd, F_DUPFD_CLOEXEC, 0);
        auto dev = dupfd >= 0 ? KmodDevice::open(dupfd, ifc_.mtu, &why) : nullptr;
        if (kind == Orphan::Kind::kRelease) {
          if (st.tcp_flags & UTCP_EPT_FIN)
            logf(1, "pid %d exited: endpoint %u port %u %s", h.pid, g.ep.id, ntohs(g.flow.local_port),
                 "closed after the peer, FIN acknowledged: released");
          done = true;
        } else if (!dev) {
          logf(0, "endpoint %u: cannot map it to finish its connection: %s", g.ep.id, why.c_str());
          done = true;
        } else {
          OrphanAddress a{ifc_.addr, g.remote_ip, ntohs(g.flow.local_port), g.remote_port, ifc_.mac, g.next_hop};
          h.orphan = std::make_unique<Orphan>(std::move(dev), a, st, kind, opt_.inherit, now);
          logf(1, "pid %d exited: endpoint %u port %u %s", h.pid, g.ep.id, ntohs(g.flow.local_port),
               Orphan::describe(kind));
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = h.orphan->fd();
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, h.orphan->fd(), &ev);
        }
      }
    }
    if (!done) {
      ++it;
      continue;
    }
    if (h.orphan) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, h.orphan->fd(), nullptr);
    logf(2, "endpoint %u port %u released", g.ep.id, ntohs(g.flow.local_port));
    h.orphan.reset();  // unmaps before the endpoint goes
    release(g);
    it = held_.erase(it);
  }
  if (recheck) held_check_ = now + kHeldRecheck;
}

int Registry::handshake_timeout_ms() const {
  if (handshakes_.empty() && listens_.empty()) return -1;
  Instant now = Clock::now(), next = kInstantNever;
  for (auto& [fd, hs] : handshakes_) next = std::min({next, hs->stack->poll_at(), hs->deadline});
  for (auto& [fd, l] : listens_) next = std::min(next, l->stack->poll_at());
  if (next == kInstantNever) return -1;
  if (next <= now) return 0;
  return int(std::min<int64_t>((next - now).count() / 1000 + 1, 1000));
}

void Registry::start_handshake(Client& c, const ConnectRequest& r, Grant& g, const std::array<Instant, 5>& stamps) {
  std::string why;
  std::unique_ptr<KmodDevice> dev = registry_map(g.ep, &why);
  if (!dev) {
    uint32_t id = g.ep.id;
    reply_endpoint(c, r.hdr, -ENOMEM, "cannot map the endpoint for the handshake: " + why, nullptr);
    release(c.grants[id]);
    c.grants.erase(id);
    return;
  }
  auto hs = std::make_unique<Handshake>();
  hs->client_fd = c.fd;
  hs->req = r.hdr;
  hs->endpoint_id = g.ep.id;
  StackConfig cfg;
  cfg.ip = ifc_.addr;
  cfg.mac = ifc_.mac;
  hs->stack = std::make_unique<Stack>(dev.get(), cfg);
  hs->stack->add_neighbor(Ipv4Addr{r.remote_ip}, g.next_hop);
  Instant now = Clock::now();
  hs->handle = hs->stack->socket();
  int rc = hs->stack->bind(hs->handle, g.port.port());
  if (rc == 0) rc = hs->stack->connect(hs->handle, Ipv4Addr{r.remote_ip}, r.remote_port, now);
  if (rc < 0 && rc != -EINPROGRESS) {
    uint32_t id = g.ep.id;
    reply_endpoint(c, r.hdr, rc, "handshake could not start", nullptr);
    release(c.grants[id]);
    c.grants.erase(id);
    return;
  }
  hs->stack->poll(now);  // the SYN leaves now; the rest of the reply waits for the SYN-ACK
  hs->stamps = stamps;
  hs->stamps[4] = Clock::now();
  hs->deadline = now + kHandshakeTimeout;
  hs->dev = std::move(dev);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = hs->dev->fd();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, hs->dev->fd(), &ev);
  handshakes_[hs->dev->fd()] = std::move(hs);
}

void Registry::progress_handshakes() {
  for (auto it = handshakes_.begin(); it != handshakes_.end();) {
    Handshake& hs = *it->second;
    Instant now = Clock::now();
    hs.stack->poll(now);
    const Instant polled = Clock::now();  // the SYN-ACK taken in, the ACK sent
    Instant exported = polled;
    int ev = hs.stack->events(hs.handle);
    auto cit = clients_.find(hs.client_fd);
    int error = 0;
    std::string why;
    std::vector<uint8_t> state;
    if (cit == clients_.end()) {
      error = -ECANCELED;  // the client left; drop() released its grants
    } else if (ev < 0 || (ev & (kEventErr | kEventHup))) {
      // Checked before kEventOut: a failed connection reports it too, as poll(2) does.
      int soerr = 0;
      size_t len = sizeof soerr;
      hs.stack->getsockopt(hs.handle, SockOpt::kError, &soerr, &len);
      error = soerr ? -std::abs(soerr) : -ECONNREFUSED;
      why = error == -ECONNREFUSED ? "the peer refused the connection"
                                   : std::string("the handshake failed: ") + std::strerror(-error);
    } else if (ev >= 0 && (ev & kEventOut)) {
      if (int rc = hs.stack->export_connection(hs.handle, now, &state); rc < 0 || state.size() > kMaxStateLen) {
        // Why, from the connection a failed export leaves in the stack (one export only
        // on the way that works).
        const char* invalid = nullptr;
        if (Connection* k = rc < 0 ? hs.stack->connection(hs.handle) : nullptr) invalid = k->export_state(now).validate();
        error = rc < 0 ? rc : -EMSGSIZE;
        why = std::string("cannot export the connection") + (invalid ? std::string(": ") + invalid : "");
        logf(0, "handshake on endpoint %u: %s", hs.endpoint_id, why.c_str());
      }
      exported = Clock::now();
    } else if (now >= hs.deadline) {
      error = -ETIMEDOUT;
      why = "no answer to the SYN";
    } else {
      ++it;
      continue;
    }
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->first, nullptr);
    if (cit != clients_.end()) {
      Client& c = *cit->second;
      auto git = c.grants.find(hs.endpoint_id);
      if (git != c.grants.end()) {
        if (error) {
          reply_endpoint(c, hs.req, error, why, nullptr);
          release(git->second);
          c.grants.erase(git);
        } else {
          reply_endpoint(c, hs.req, 0, "", &git->second, state);
          if (g_log_level >= 2) {
            const auto& t = hs.stamps;
            auto us = [](Instant a, Instant b) { return (long long)(b - a).count(); };
            logf(2,
                 "pid %d: handshake done on endpoint %u, %zu bytes of state; setup %lld us: route+neighbour %lld, "
                 "port %lld, endpoint+flow %lld, map+SYN %lld, SYN-ACK wait %lld, SYN-ACK+ACK %lld, export %lld, "
                 "reply %lld",
                 c.cred.pid, hs.endpoint_id, state.size(), us(t[0], Clock::now()), us(t[0], t[1]), us(t[1], t[2]),
                 us(t[2], t[3]), us(t[3], t[4]), us(t[4], now), us(now, polled), us(polled, exported),
                 us(exported, Clock::now()));
          }
        }
      }
    }
    it = handshakes_.erase(it);  // unmaps the registry's view; the endpoint lives on
  }
}

void Registry::accept_clients() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    auto c = std::make_unique<Client>();
    c->fd = fd;
    socklen_t len = sizeof c->cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
      ::close(fd);
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    logf(2, "client fd %d pid %d uid %d", fd, c->cred.pid, c->cred.uid);
    clients_[fd] = std::move(c);
  }
}

PoolFiller::Made Registry::make_pooled() {
  PoolFiller::Made m;
  m.error = module_.create_endpoint(pool_template(ifc_), opt_.rx_entries, opt_.tx_entries, opt_.slot_size, &m.ep, &m.why);
  if (m.error < 0) return m;
  // The registry's mapping, for the handshake; without it the endpoint is still pooled.
  utcp_endpoint_stats before{}, after{};
  ::ioctl(m.ep.fd, UTCP_IOC_EP_STATS, &before);
  int dupfd = ::fcntl(m.ep.fd, F_DUPFD_CLOEXEC, 0);
  std::string why;
  if (auto dev = dupfd >= 0 ? KmodDevice::open(dupfd, ifc_.mtu, &why) : nullptr) {
    if (::ioctl(m.ep.fd, UTCP_IOC_EP_STATS, &after) == 0 && after.file_refs > before.file_refs) {
      m.dev = std::move(dev);
      m.refs = after.file_refs - before.file_refs;
    }
  }
  return m;
}

// Endpoints the filler made: into the pool, unless no client is left (then the pool is
// not kept: drain_pool()).
void Registry::take_pool_made() {
  for (PoolFiller::Made& m : filler_.take()) {
    if (m.error < 0) {
      logf(2, "endpoint pool: %s; refilled again once an endpoint goes", m.why.c_str());
      pool_failed_ = true;
      continue;
    }
    if (clients_.empty()) {
      m.dev.reset();  // unmapped before the endpoint goes
      module_.destroy_endpoint(m.ep.id);
      ::close(m.ep.fd);
      continue;
    }
    if (m.dev) pool_maps_[m.ep.id] = PoolMap{std::move(m.dev), m.refs};
    pool_.push_back(m.ep);
  }
}

std::unique_ptr<KmodDevice> Registry::registry_map(const Endpoint& ep, std::string* why) {
  if (auto pm = pool_maps_.find(ep.id); pm != pool_maps_.end()) {
    auto dev = std::move(pm->second.dev);
    pool_maps_.erase(pm);
    return dev;
  }
  int dupfd = ::fcntl(ep.fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) {
    *why = std::string("no file descriptor for the registry's view: ") + std::strerror(errno);
    return nullptr;
  }
  return KmodDevice::open(dupfd, ifc_.mtu, why);
}

void Registry::drain_pool() {
  pool_maps_.clear();  // unmapped before the endpoints go
  for (const Endpoint& ep : pool_) {
    module_.destroy_endpoint(ep.id);
    ::close(ep.fd);
  }
  pool_.clear();
}

// Gives a pooled endpoint the template `t`; false when the pool is empty or the module
// refused (the endpoint is destroyed then, and the caller creates one).
bool Registry::take_pooled(const utcp_template& t, Endpoint* out) {
  while (!pool_.empty()) {
    Endpoint ep = pool_.back();
    pool_.pop_back();
    if (int rc = module_.set_template(ep.id, t); rc < 0) {
      logf(0, "pooled endpoint %u: cannot set its template: %s", ep.id, std::strerror(-rc));
      pool_maps_.erase(ep.id);
      module_.destroy_endpoint(ep.id);
      ::close(ep.fd);
      continue;
    }
    *out = ep;
    return true;
  }
  return false;
}

void Registry::release(Grant& g) {
  pool_failed_ = false;  // room in the module again: the pool may refill
  pool_maps_.erase(g.ep.id);  // a mapping made ahead that nobody took (a failed request)
  if (g.listener)
    module_.del_listener(g.listen);
  else
    module_.del_flow(g.flow);
  module_.destroy_endpoint(g.ep.id);
  if (g.ep.fd >= 0) ::close(g.ep.fd);
  g.ep.fd = -1;
}

void Registry::drop(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  for (auto h = handshakes_.begin(); h != handshakes_.end();) {
    if (h->second->client_fd != fd) {
      ++h;
      continue;
    }
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, h->first, nullptr);
    h = handshakes_.erase(h);
  }
  // Its parked Connects go too (a later client may get the same fd number).
  std::erase_if(parked_, [fd](const ParkedConnect& p) { return p.client_fd == fd; });
  close_listens(fd);  // resets what nobody accepted, before the endpoints go
  for (auto& [id, g] : it->second->grants) {
    if (g.listener) {
      logf(2, "client pid %d gone: releasing listener endpoint %u port %u", it->second->cred.pid, id,
           ntohs(g.listen.local_port));
      release(g);
      continue;
    }
    // A connection: inherited once its endpoint file is let go everywhere (paper §3.4).
    auto h = std::make_unique<Held>();
    h->pid = it->second->cred.pid;
    h->uid = it->second->cred.uid;
    h->grant = std::move(g);
    held_.push_back(std::move(h));
    held_check_ = Clock::now();
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  clients_.erase(it);
  if (clients_.empty()) drain_pool();
}

void send_message(int fd, std::span<const uint8_t> msg, int pass_fd) {
  msghdr mh{};
  iovec iov{const_cast<uint8_t*>(msg.data()), msg.size()};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
  }
  // A client that does not read its replies loses them, never blocks the registry.
  ::sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

template <typename T>
void fill_reply_header(T& reply, const RegHeader& req) {
  reply.hdr.type = uint16_t(req.type | uint16_t(MsgType::kReply));
  reply.hdr.length = sizeof reply;
  reply.hdr.seq = req.seq;
}

void Registry::reply_endpoint(Client& c, const RegHeader& req, int error, const std::string& why, Grant* g,
                              std::span<const uint8_t> state, bool pass_file) {
  EndpointReply rep{};
  fill_reply_header(rep, req);
  rep.error = error;
  std::snprintf(rep.message, sizeof rep.message, "%s", why.c_str());
  int pass_fd = -1;
  if (!error && g) {
    rep.endpoint_id = g->ep.id;
    rep.local_ip = ntohl(g->listener ? g->listen.local_ip : g->flow.local_ip);
    rep.remote_ip = g->listener ? 0 : ntohl(g->flow.remote_ip);
    rep.local_port = ntohs(g->listener ? g->listen.local_port : g->flow.local_port);
    rep.remote_port = g->listener ? 0 : ntohs(g->flow.remote_port);
    std::memcpy(rep.local_mac, ifc_.mac.b.data(), 6);
    rep.mtu = uint16_t(ifc_.mtu);
    rep.ifindex = uint32_t(ifc_.ifindex);
    std::memcpy(rep.next_hop_mac, g->next_hop.b.data(), 6);
    pass_fd = pass_file ? g->ep.fd : -1;
    rep.state_len = uint32_t(state.size());
  }
  rep.hdr.length = uint32_t(sizeof rep + rep.state_len);
  std::vector<uint8_t> msg(sizeof rep + rep.state_len);
  std::memcpy(msg.data(), &rep, sizeof rep);
  if (rep.state_len) std::memcpy(msg.data() + sizeof rep, state.data(), state.size());
  send_message(c.fd, msg, pass_fd);
}

std::optional<Registry::NextHop> Registry::next_hop(Client& c, const RegHeader& req, Ipv4Addr dst, bool* unresolved) {
  const Instant now = Clock::now();
  if (auto it = next_hops_.find(dst.v); it != next_hops_.end()) {
    if (now - it->second.at < kNextHopTtl) return it->second;
    next_hops_.erase(it);
  }
  auto route = net_.route_to(dst);
  if (!route) {
    reply_endpoint(c, req, -ENETUNREACH, "no route to " + to_string(dst), nullptr);
    return std::nullopt;
  }
  if (route->ifindex != ifc_.ifindex) {
    reply_endpoint(c, req, -ENETUNREACH,
                   to_string(dst) + " is not reached through " + ifc_.name + ", the interface utcpd serves", nullptr);
    return std::nullopt;
  }
  // Never waits here: one look at the neighbour table (which starts ARP when missing).
  auto mac = net_.neighbour(ifc_.ifindex, route->next_hop, 0);
  if (!mac && unresolved) {
    *unresolved = true;
    return std::nullopt;
  }
  if (!mac) {
    reply_endpoint(c, req, -EHOSTUNREACH, "no ARP answer from " + to_string(route->next_hop), nullptr);
    return std::nullopt;
  }
  if (next_hops_.size() >= kMaxNextHops) next_hops_.clear();  // bounded: many destinations, short-lived
  return next_hops_[dst.v] = NextHop{*route, *mac, Clock::now()};
}

void Registry::handle_connect(Client& c, const ConnectRequest& r, Instant parked_until) {
  std::array<Instant, 5> stamps{};
  stamps[0] = Clock::now();
  Ipv4Addr dst{r.remote_ip};
  Grant* reused = nullptr;
  if (r.flags & kConnectReuse) {
    // Only a connection endpoint of this client, and not while utcpd's own handshake
    // still runs on it; checked again after a wait for the next hop (it may be gone).
    auto it = c.grants.find(r.reuse_id);
    const bool busy = std::any_of(handshakes_.begin(), handshakes_.end(),
                                  [&](const auto& h) { return h.second->endpoint_id == r.reuse_id; });
    if (it == c.grants.end() || it->second.listener || it->second.flow.proto != IPPROTO_TCP || busy) {
      reply_endpoint(c, r.hdr, busy ? -EBUSY : -ENOENT,
                     busy ? "endpoint " + std::to_string(r.reuse_id) + " is still in utcpd's handshake"
                          : "no TCP connection endpoint " + std::to_string(r.reuse_id) + " of yours to reuse",
                     nullptr);
      return;
    }
    reused = &it->second;
  }
  bool unresolved = false;
  const bool may_park = parked_until == Instant{} || stamps[0] < parked_until;
  auto hop = next_hop(c, r.hdr, dst, may_park ? &unresolved : nullptr);
  if (unresolved) {
    if (parked_until == Instant{}) {
      parked_until = stamps[0] + opt_.neighbour_wait;
      logf(1, "pid %d: connect to %s parked until its next hop's address is known", c.cred.pid, to_string(dst).c_str());
    }
    if (parked_.empty()) parked_retry_ = stamps[0] + kNeighbourRetry;
    parked_.push_back(ParkedConnect{c.fd, r, parked_until});
    return;
  }
  if (!hop) return;
  if (reused) {
    reuse_endpoint(c, r, *reused, hop->mac);
    return;
  }
  const MacAddr* mac = &hop->mac;
  Grant g;
  const bool udp = r.flags & kConnectUdp;
  stamps[1] = Clock::now();
  if (!reserve_port(c, r.hdr, r.local_port, g, udp)) return;
  stamps[2] = Clock::now();
  g.next_hop = *mac;
  g.remote_ip = dst;
  g.remote_port = r.remote_port;
  utcp_template t = base_template(g.port.port());
  t.remote_ip = htonl(dst.v);
  t.remote_port = htons(r.remote_port);
  if (udp) t.proto = IPPROTO_UDP;  // the module checks UDP headers against it likewise
  if (!install_endpoint(c, r.hdr, t, r.rings, g, r.flags & kConnectHandshake)) return;
  stamps[3] = Clock::now();
  logf(1, "pid %d: %sendpoint %u for %s:%u -> %s:%u", c.cred.pid, udp ? "UDP " : "", g.ep.id, to_string(ifc_.addr).c_str(), g.port.port(),
       to_string(dst).c_str(), r.remote_port);
  uint32_t id = g.ep.id;
  auto& stored = c.grants[id] = std::move(g);
  if (r.flags & kConnectHandshake)
    start_handshake(c, r, stored, stamps);
  else
    reply_endpoint(c, r.hdr, 0, "", &stored);
}

void Registry::reuse_endpoint(Client& c, const ConnectRequest& r, Grant& g, const MacAddr& next_hop) {
  Grant fresh;  // the new port's reservation; g keeps the old one until the move is done
  if (!reserve_port(c, r.hdr, r.local_port, fresh)) return;
  utcp_template t = base_template(fresh.port.port());
  t.remote_ip = htonl(r.remote_ip);
  t.remote_port = htons(r.remote_port);
  const utcp_flow_key flow = flow_key_for(t);
  // The new classifier entry, the old one out, then the template (which starts the
  // module's TCP tracking afresh, after the old flow's frames stopped coming). A failure
  // puts the old entry back: the endpoint stays on its old 4-tuple, as the protocol says.
  if (int rc = module_.add_flow(flow, g.ep.id); rc < 0) {
    reply_endpoint(c, r.hdr, rc, "classifier map update failed", nullptr);
    return;
  }
  module_.del_flow(g.flow);
  if (int rc = module_.set_template(g.ep.id, t); rc < 0) {
    module_.del_flow(flow);
    module_.add_flow(g.flow, g.ep.id);
    reply_endpoint(c, r.hdr, rc, std::string("cannot give the endpoint its new template: ") + std::strerror(-rc),
                   nullptr);
    return;
  }
  logf(1, "pid %d: endpoint %u reused: %s:%u -> %s:%u (was port %u)", c.cred.pid, g.ep.id,
       to_string(ifc_.addr).c_str(), fresh.port.port(), to_string(Ipv4Addr{r.remote_ip}).c_str(), r.remote_port,
       g.port.port());
  g.port = std::move(fresh.port);  // the old port goes back to the kernel here
  g.shared_port.reset();           // an accepted connection's endpoint leaves its listen's port
  g.flow = flow;
  g.next_hop = next_hop;
  g.remote_ip = Ipv4Addr{r.remote_ip};
  g.remote_port = r.remote_port;
  reply_endpoint(c, r.hdr, 0, "", &g, {}, /*pass_file=*/false);
}

// Reserves the port in the kernel too (registry/ports.h); replies and returns false if it can't.
bool Registry::reserve_port(Client& c, const RegHeader& req, uint16_t port, Grant& g, bool udp) {
  int err = 0;
  g.port = (udp ? udp_ports_ : tcp_ports_).reserve(ifc_.addr, port, c.cred.uid == 0, &err);
  if (g.port.valid()) return true;
  reply_endpoint(c, req, err,
                 err == -EACCES                        ? "ports below 1024 need root"
                 : err == -EADDRINUSE                  ? "local port " + std::to_string(port) + " is in use"
                 : err == -EADDRNOTAVAIL && port == 0 ? "no free ephemeral port"
                                                       : "cannot reserve local port " + std::to_string(port),
                 nullptr);
  return false;
}

utcp_template Registry::base_template(uint16_t local_port) const {
  utcp_template t{};
  std::memcpy(t.src_mac, ifc_.mac.b.data(), 6);
  t.proto = IPPROTO_TCP;
  t.local_ip = htonl(ifc_.addr.v);
  t.local_port = htons(local_port);
  return t;
}

// Creates the endpoint with template `t` and routes its frames to it in the classifier
// (exact 4-tuple, or local address and port for a listener); replies and returns false
// on failure, leaving nothing behind.
bool Registry::install_endpoint(Client& c, const RegHeader& req, const utcp_template& t, const RingSize& asked,
                                Grant& g, bool keep_map) {
  std::string why;
  // Each field: the default when not asked for, else what was asked within the limits
  // (validate_request already refused sizes that are not powers of two or aligned).
  auto pick = [](uint32_t asked, uint32_t def, uint32_t max) { return asked == 0 ? def : std::min(asked, max); };
  const uint32_t rx = pick(asked.rx_entries, opt_.rx_entries, opt_.max_rx_entries);
  const uint32_t tx = pick(asked.tx_entries, opt_.tx_entries, opt_.max_tx_entries);
  const uint32_t slot = pick(asked.slot_size, opt_.slot_size, opt_.max_slot_size);
  const bool pooled = rx == opt_.rx_entries && tx == opt_.tx_entries && slot == opt_.slot_size && take_pooled(t, &g.ep);
  if (int rc = pooled ? 0 : module_.create_endpoint(t, rx, tx, slot, &g.ep, &why); rc < 0) {
    reply_endpoint(c, req, rc, why, nullptr);
    return false;
  }
  int rc;
  if (g.listener) {
    g.listen.local_ip = t.local_ip;
    g.listen.local_port = t.local_port;
    g.listen.proto = t.proto;
    rc = module_.add_listener(g.listen, g.ep.id);
  } else {
    g.flow.local_ip = t.local_ip;
    g.flow.remote_ip = t.remote_ip;
    g.flow.local_port = t.local_port;
    g.flow.remote_port = t.remote_port;
    g.flow.proto = t.proto;
    rc = module_.add_flow(g.flow, g.ep.id);
  }
  if (rc < 0) {
    module_.destroy_endpoint(g.ep.id);
    ::close(g.ep.fd);
    reply_endpoint(c, req, rc, "classifier map update failed", nullptr);
    return false;
  }
  // The reference count while only the registry holds the file: more later means the
  // application (or whoever it passed the file to) still has it.
  utcp_endpoint_stats st{};
  g.base_refs = ::ioctl(g.ep.fd, UTCP_IOC_EP_STATS, &st) == 0 ? st.file_refs : 1;
  if (auto pm = pool_maps_.find(g.ep.id); pm != pool_maps_.end()) {
    // The mapping made ahead is not the registry's to keep: the handshake's goes with it.
    g.base_refs = g.base_refs > pm->second.refs ? g.base_refs - pm->second.refs : 1;
    if (!keep_map) pool_maps_.erase(pm);
  }
  return true;
}

// The port, listener endpoint and classifier entry of a Listen; replies and returns
// false on failure, leaving nothing behind.
bool Registry::open_listener(Client& c, const ListenRequest& r, Grant& g) {
  Ipv4Addr local{r.local_ip};
  if (local.v != 0 && local != ifc_.addr) {
    reply_endpoint(c, r.hdr, -EADDRNOTAVAIL, to_string(local) + " is not the address of " + ifc_.name, nullptr);
    return false;
  }
  g.listener = true;
  // SO_REUSEADDR (kListenReuseAddr): the reservation an earlier listen's connections still
  // hold is shared with the new listen, as the kernel lets such a socket bind the port.
  if (auto reuse = (r.flags & kListenReuseAddr) && r.local_port ? reusable_port(r.local_port) : nullptr)
    g.shared_port = std::move(reuse);
  else if (!reserve_port(c, r.hdr, r.local_port, g))
    return false;
  utcp_template t = base_template(g.shared_port ? g.shared_port->port() : g.port.port());
  t.flags = UTCP_TMPL_F_LISTENER;
  // With kListenAccept the listener's rings are the registry's (SYNs and what arrives
  // before each connection's own endpoint): its defaults, whatever the client asked.
  const bool accept = r.flags & kListenAccept;
  return install_endpoint(c, r.hdr, t, accept ? RingSize{} : r.rings, g, accept);
}

void Registry::handle_listen(Client& c, const ListenRequest& r) {
  Grant g;
  if (!open_listener(c, r, g)) return;
  logf(1, "pid %d: listener endpoint %u on %s:%u", c.cred.pid, g.ep.id, to_string(ifc_.addr).c_str(), g.port.port());
  uint32_t id = g.ep.id;
  auto& stored = c.grants[id] = std::move(g);
  reply_endpoint(c, r.hdr, 0, "", &stored);
}

// The reservation of `port` held only by connections of listens that are closed (accepted
// ones, open or in TIME-WAIT, here or inherited), or null: none, or a listen is live on it.
std::shared_ptr<PortReservation> Registry::reusable_port(uint16_t port) const {
  for (const auto& [fd, l] : listens_)
    if (l->port == port) return nullptr;
  for (const auto& [fd, c] : clients_)
    for (const auto& [id, g] : c->grants)
      if (g.shared_port && g.shared_port->port() == port) return g.shared_port;
  for (const auto& h : held_)
    if (h->grant.shared_port && h->grant.shared_port->port() == port) return h->grant.shared_port;
  return nullptr;
}

void Registry::handle_listen_accept(Client& c, const ListenRequest& r) {
  Grant g;
  if (!open_listener(c, r, g)) return;
  if (!g.shared_port) g.shared_port = std::make_shared<PortReservation>(std::move(g.port));
  const uint16_t port = g.shared_port->port();
  // The registry's own view of the listener endpoint, and the stack that listens on it.
  std::string why;
  auto dev = registry_map(g.ep, &why);
  if (!dev) {
    release(g);
    reply_endpoint(c, r.hdr, -ENOMEM, "cannot map the listener endpoint: " + why, nullptr);
    return;
  }
  auto l = std::make_unique<Listening>();
  l->client_fd = c.fd;
  l->listen_id = g.ep.id;
  l->port = port;
  l->port_ref = g.shared_port;
  StackConfig cfg;
  cfg.ip = ifc_.addr;
  cfg.mac = ifc_.mac;
  cfg.learn_peer_mac = true;  // see docs/architecture.md, "Passive open"
  cfg.syn_cookies = true;
  cfg.tcp.rcvbuf = kRegistryRcvBuf;
  l->stack = std::make_unique<Stack>(dev.get(), cfg);
  const int backlog = r.backlog == 0 ? kDefaultBacklog : std::min(r.backlog, kMaxBacklog);
  l->handle = l->stack->socket();
  int rc = l->stack->bind(l->handle, port);
  if (rc == 0) rc = l->stack->listen(l->handle, backlog);
  if (rc < 0) {
    release(g);
    reply_endpoint(c, r.hdr, rc, "the registry's stack cannot listen", nullptr);
    return;
  }
  l->dev = std::move(dev);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = l->dev->fd();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, l->dev->fd(), &ev);
  logf(1, "pid %d: listen %u on %s:%u, backlog %d, accepting for the client", c.cred.pid, g.ep.id,
       to_string(ifc_.addr).c_str(), port, backlog);
  const uint32_t id = g.ep.id;
  const int dev_fd = l->dev->fd();
  listens_[dev_fd] = std::move(l);
  c.grants[id] = std::move(g);
  // No endpoint file: the listener endpoint stays with the registry.
  EndpointReply rep{};
  fill_reply_header(rep, r.hdr);
  rep.endpoint_id = id;
  rep.local_ip = ifc_.addr.v;
  rep.local_port = port;
  std::memcpy(rep.local_mac, ifc_.mac.b.data(), 6);
  rep.mtu = uint16_t(ifc_.mtu);
  rep.ifindex = uint32_t(ifc_.ifindex);
  send_message(c.fd, std::span(reinterpret_cast<const uint8_t*>(&rep), sizeof rep), -1);
}

Listening* Registry::find_listen(int client_fd, uint32_t listen_id) {
  for (auto& [fd, l] : listens_)
    if (l->client_fd == client_fd && l->listen_id == listen_id) return l.get();
  return nullptr;
}

void Registry::handle_accept(Client& c, const AcceptRequest& r) {
  // Only the client that made the listen may take its connections.
  Listening* l = find_listen(c.fd, r.listen_id);
  if (!l) {
    reply_endpoint(c, r.hdr, -ENOENT, "no such listen of yours", nullptr);
    return;
  }
  l->stack->poll(Clock::now());
  if (l->waiting.empty() && claim(*l, r)) return;
  if (!(r.flags & kAcceptWait)) {
    reply_endpoint(c, r.hdr, -EAGAIN, "no connection is ready", nullptr);
    return;
  }
  if (l->waiting.size() >= kMaxBacklog) {
    reply_endpoint(c, r.hdr, -ENOBUFS, "too many Accepts waiting on this listen", nullptr);
    return;
  }
  l->waiting.push_back(r);
}

// Hands one established connection of `l` to its client in answer to `req`; false when
// none is ready (nothing sent). Any failure is answered and counts as handled.
bool Registry::claim(Listening& l, const AcceptRequest& r) {
  const RegHeader& req = r.hdr;
  const RingSize& rings = r.rings;
  auto cit = clients_.find(l.client_fd);
  if (cit == clients_.end()) return false;
  Client& c = *cit->second;
  FourTuple peer;
  int h = l.stack->accept(l.handle, &peer);
  if (h == -EAGAIN) return false;
  if (h < 0) {
    reply_endpoint(c, req, h, "accept failed in the registry's stack", nullptr);
    return true;
  }
  auto reset = [&] {
    LingerOpt lin{1, 0};  // the peer learns at once that the connection is gone
    l.stack->setsockopt(h, SockOpt::kLinger, &lin, sizeof lin, Clock::now());
    l.stack->close(h);
    l.stack->poll(Clock::now());
  };
  auto mac = l.stack->peer_mac(h);
  if (!mac) {
    reset();
    reply_endpoint(c, req, -EHOSTUNREACH, "no link address learnt for the peer", nullptr);
    return true;
  }
  Grant g;
  g.shared_port = l.port_ref;
  g.next_hop = *mac;
  g.remote_ip = peer.remote_ip;
  g.remote_port = peer.remote_port;
  utcp_template t = base_template(l.port);
  t.remote_ip = htonl(peer.remote_ip.v);
  t.remote_port = htons(peer.remote_port);
  if (!install_endpoint(c, req, t, rings, g)) {  // replied
    reset();
    return true;
  }
  // From here the connection's frames go to its own endpoint; what the listener's ring
  // still holds for it is taken into the stack before the state leaves.
  Instant now = Clock::now();
  l.stack->poll(now);
  std::vector<uint8_t> state;
  int rc = l.stack->export_connection(h, now, &state);
  if (rc < 0 || state.size() > kMaxStateLen) {
    if (rc == 0) rc = -EMSGSIZE;
    else reset();
    release(g);
    reply_endpoint(c, req, rc, "cannot export the accepted connection", nullptr);
    return true;
  }
  ++l.accepted;
  logf(1, "pid %d: listen %u: accepted %s:%u as endpoint %u (%zu bytes of state)", c.cred.pid, l.listen_id,
       to_string(peer.remote_ip).c_str(), peer.remote_port, g.ep.id, state.size());
  uint32_t id = g.ep.id;
  auto& stored = c.grants[id] = std::move(g);
  reply_endpoint(c, req, 0, "", &stored, state);
  return true;
}

void Registry::progress_listens() {
  for (auto& [fd, l] : listens_) {
    l->stack->poll(Clock::now());
    while (!l->waiting.empty() && claim(*l, l->waiting.front())) l->waiting.pop_front();
  }
}

// Closes the listen on the registry's device `device_fd`: connections nobody accepted
// are reset, waiting Accepts answered with `reply_error` (0: the client is gone, no
// answer). The listener endpoint and the port go with the client's grant (release()).
void Registry::close_listen(int device_fd, int reply_error) {
  auto it = listens_.find(device_fd);
  if (it == listens_.end()) return;
  Listening& l = *it->second;
  l.stack->close(l.handle);  // RST to every unclaimed connection (stack.cc)
  l.stack->poll(Clock::now());
  const StackStats& st = l.stack->stats();
  logf(1, "listen %u on port %u closed: %llu accepted; SYN cookies sent %llu, valid %llu, refused %llu; SYNs dropped %llu",
       l.listen_id, l.port, (unsigned long long)l.accepted, (unsigned long long)st.syn_cookies_sent,
       (unsigned long long)st.syn_cookies_ok, (unsigned long long)st.syn_cookies_failed,
       (unsigned long long)st.syn_dropped_backlog);
  if (reply_error) {
    auto cit = clients_.find(l.client_fd);
    if (cit != clients_.end())
      for (const AcceptRequest& a : l.waiting)
        reply_endpoint(*cit->second, a.hdr, reply_error, "the listen was closed", nullptr);
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, device_fd, nullptr);
  listens_.erase(it);  // unmaps the registry's view
}

void Registry::close_listens(int client_fd) {
  std::vector<int> mine;
  for (auto& [fd, l] : listens_)
    if (l->client_fd == client_fd) mine.push_back(fd);
  for (int fd : mine) close_listen(fd, 0);
}

void Registry::serve(Client& c) {
  alignas(8) uint8_t buf[kMaxMessage];
  msghdr mh{};
  iovec iov{buf, sizeof buf};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  // Clients send no descriptors; any that arrive are closed (MSG_CMSG_CLOEXEC + below).
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 8)];
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ssize_t n = ::recvmsg(c.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    drop(c.fd);
    return;
  }
  for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < nfds; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
        ::close(fd);
      }
    }
  }
  std::span<const uint8_t> msg(buf, size_t(n));
  std::string why;
  RegHeader h{};
  if (msg.size() >= sizeof h) std::memcpy(&h, buf, sizeof h);
  if ((mh.msg_flags & MSG_TRUNC) != 0) {
    why = "message too long";
    reply_endpoint(c, h, -EMSGSIZE, why, nullptr);
    return;
  }
  if (int rc = validate_request(msg, &why); rc < 0) {
    logf(2, "pid %d: refused request: %s", c.cred.pid, why.c_str());
    reply_endpoint(c, h, rc, why, nullptr);
    return;
  }
  switch (static_cast<MsgType>(h.type)) {
    case MsgType::kHello: {
      HelloReply rep{};
      fill_reply_header(rep, h);
      rep.module_abi = module_.abi_version();
      rep.ifindex = uint32_t(ifc_.ifindex);
      rep.local_ip = ifc_.addr.v;
      std::memcpy(rep.local_mac, ifc_.mac.b.data(), 6);
      rep.mtu = uint16_t(ifc_.mtu);
      send_message(c.fd, std::span(reinterpret_cast<const uint8_t*>(&rep), sizeof rep), -1);
      break;
    }
    case MsgType::kConnect: {
      ConnectRequest r;
      std::memcpy(&r, buf, sizeof r);
      handle_connect(c, r);
      break;
    }
    case MsgType::kListen: {
      ListenRequest r;
      std::memcpy(&r, buf, sizeof r);
      if (r.flags & kListenAccept)
        handle_listen_accept(c, r);
      else
        handle_listen(c, r);
      break;
    }
    case MsgType::kAccept: {
      AcceptRequest r;
      std::memcpy(&r, buf, sizeof r);
      handle_accept(c, r);
      break;
    }
    case MsgType::kList: {
      ListRequest r;
      std::memcpy(&r, buf, sizeof r);
      handle_list(c, r);
      break;
    }
    case MsgType::kRelease: {
      ReleaseRequest r;
      std::memcpy(&r, buf, sizeof r);
      const bool answer = !(r.flags & kReleaseNoReply);
      auto it = c.grants.find(r.endpoint_id);
      if (it == c.grants.end()) {
        if (answer) reply_endpoint(c, h, -ENOENT, "no such endpoint of yours", nullptr);
        else logf(2, "pid %d: release of endpoint %u, not one of its own: ignored", c.cred.pid, r.endpoint_id);
        break;
      }
      if (Listening* l = find_listen(c.fd, r.endpoint_id)) close_listen(l->dev->fd(), -ECANCELED);
      release(it->second);
      c.grants.erase(it);
      if (answer) reply_endpoint(c, h, 0, "", nullptr);
      break;
    }
    default:
      break;
  }
}

ListEntry Registry::list_entry(const Grant& g, pid_t pid, uid_t uid, bool show, ListRole role) const {
  ListEntry e{};
  e.endpoint_id = g.ep.id;
  e.pid = show ? int32_t(pid) : 0;
  e.uid = uint32_t(uid);
  e.role = uint8_t(role);
  e.proto = g.listener ? uint8_t(IPPROTO_TCP) : g.flow.proto;
  e.local_ip = ntohl(g.listener ? g.listen.local_ip : g.flow.local_ip);
  if (e.local_ip == 0) e.local_ip = ifc_.addr.v;
  e.local_port = ntohs(g.listener ? g.listen.local_port : g.flow.local_port);
  if (!g.listener) {
    e.remote_ip = ntohl(g.flow.remote_ip);
    e.remote_port = ntohs(g.flow.remote_port);
  }
  if (::ioctl(g.ep.fd, UTCP_IOC_EP_STATS, &e.module) < 0) e.module = {};
  // What the endpoint's stack published: the application's claim, shown to whom may see
  // the process. A module without the ioctl, or nothing published, leaves it out.
  if (show && role != ListRole::kInherited && ::ioctl(g.ep.fd, UTCP_IOC_EP_APP_INFO, &e.app) == 0)
    e.app_valid = 1;
  else
    e.app = {};
  return e;
}

// utcpctl ss: every grant of every client, the handshakes and listens utcpd runs for
// them, and the connections it inherited — a snapshot, sent page by page.
void Registry::handle_list(Client& c, const ListRequest& r) {
  // Who and what each entry is comes from utcpd's own tables; the module's counters and
  // the published state (two ioctls each) are read only for the entries of this page.
  struct Row {
    const Grant* g;
    pid_t pid;
    uid_t uid;
    ListRole role;
    ListOrphan orphan = ListOrphan::kNone;
    uint64_t accepted = 0;
  };
  std::vector<Row> rows;
  std::set<uint32_t> handshaking;
  for (const auto& [fd, h] : handshakes_) handshaking.insert(h->endpoint_id);
  std::map<uint32_t, uint64_t> accepted;
  for (const auto& [fd, l] : listens_) accepted[l->listen_id] = l->accepted;
  for (const auto& [fd, cl] : clients_) {
    for (const auto& [id, g] : cl->grants) {
      Row row{&g, cl->cred.pid, cl->cred.uid, ListRole::kConnection};
      if (handshaking.count(id)) row.role = ListRole::kHandshake;
      else if (auto it = accepted.find(id); it != accepted.end()) row.role = ListRole::kListen, row.accepted = it->second;
      else if (g.listener) row.role = ListRole::kListener;
      rows.push_back(row);
    }
  }
  for (const auto& h : held_) {
    Row row{&h->grant, h->pid, h->uid, h->orphan ? ListRole::kInherited : ListRole::kHeld};
    if (h->orphan) {
      switch (h->orphan->kind()) {
        case Orphan::Kind::kTimeWait: row.orphan = ListOrphan::kTimeWait; break;
        case Orphan::Kind::kLastAck: row.orphan = ListOrphan::kLastAck; break;
        case Orphan::Kind::kReset: row.orphan = ListOrphan::kReset; break;
        case Orphan::Kind::kRelease: break;
      }
    }
    rows.push_back(row);
  }
  ListReply rep{};
  fill_reply_header(rep, r.hdr);
  const uint32_t start = std::min<uint32_t>(r.start, uint32_t(rows.size()));
  rep.count = std::min<uint32_t>(kListMax, uint32_t(rows.size()) - start);
  rep.next = start + rep.count < rows.size() ? start + rep.count : 0;
  rep.total = uint32_t(rows.size());
  rep.hdr.length = uint32_t(sizeof rep + rep.count * sizeof(ListEntry));
  std::vector<uint8_t> msg(rep.hdr.length);
  std::memcpy(msg.data(), &rep, sizeof rep);
  for (uint32_t i = 0; i < rep.count; ++i) {
    const Row& row = rows[start + i];
    const bool show = c.cred.uid == 0 || row.uid == c.cred.uid;
    ListEntry e = list_entry(*row.g, row.pid, row.uid, show, row.role);
    e.orphan = uint8_t(row.orphan);
    e.accepted = row.accepted;
    std::memcpy(msg.data() + sizeof rep + i * sizeof e, &e, sizeof e);
  }
  send_message(c.fd, msg, -1);
}

int usage(FILE* out) {
  std::fprintf(out,
               "usage: utcpd --interface IFNAME [options]\n"
               "       utcpd --config FILE [options]\n"
               "\n"
               "The utcp registry: the one privileged part of utcp. It owns /dev/utcp's control\n"
               "file, attaches the module to IFNAME, loads the receive classifier, and hands\n"
               "endpoints to applications over a Unix socket: for each connection it reserves a\n"
               "port (in the kernel too), builds the header template from the route and the next\n"
               "hop, creates the endpoint, adds the flow to the classifier, runs the three-way\n"
               "handshake when asked, and passes the endpoint file over. It is never on the data\n"
               "path. When a client's socket closes (it exited or crashed), utcpd inherits its\n"
               "connections once no other process holds their endpoints: a closed one waits out\n"
               "TIME-WAIT here before its port is reused, an abandoned one gets a RST.\n"
               "\n"
               "utcpd can be restarted without cutting connections: its attachment is persistent,\n"
               "so whenever it stops (SIGTERM, kill -9, a crash) the module keeps the classifier\n"
               "and every endpoint working, and the next utcpd on the interface takes them over,\n"
               "logs each recovered endpoint and inherits it when its application lets go.\n"
               "\n"
               "options:\n"
               "  -i, --interface IFNAME  the interface utcp serves (required, or in the config);\n"
               "                          it needs an IPv4 address\n"
               "  -s, --socket PATH       request socket (default %s);\n"
               "                          applications look there, or at $UTCP_REGISTRY\n"
               "  -c, --classifier OBJ    classifier BPF object (default %s)\n"
               "  -f, --config FILE       read `key value` lines: interface, socket, classifier,\n"
               "                          rx_entries, tx_entries (ring descriptors of an endpoint\n"
               "                          whose application asks for no size: powers of two up\n"
               "                          to 4096, default 64 and 32), slot_size (bytes, a\n"
               "                          multiple of 64 from 1536 to 65792, default 65792),\n"
               "                          max_rx_entries,\n"
               "                          max_tx_entries (default 1024), max_slot_size (default\n"
               "                          65792): the most an application may ask for;\n"
               "                          endpoint_pool (endpoints with the default rings made\n"
               "                          ahead on a worker thread, default 8, 0: none),\n"
               "                          log_level (0-2),\n"
               "                          neighbour_wait_ms (how long a connect waits for\n"
               "                          ARP, default 3000; other requests go on meanwhile),\n"
               "                          time_wait_ms (inherited TIME-WAIT, default 60000);\n"
               "                          options after --config override it\n"
               "      --time-wait-ms MS   TIME-WAIT of inherited connections (default 60000)\n"
               "      --no-recover        drop what a previous utcpd left on the interface (its\n"
               "                          connections are cut) instead of taking it over;\n"
               "                          config: recover no\n"
               "  -v, --verbose           log level debug (default info); -q, --quiet: errors only\n"
               "  -h, --help              this text\n"
               "\n"
               "Needs root (CAP_NET_ADMIN, CAP_BPF) and the module (`modprobe utcp`). Logs go to\n"
               "stderr. Exit status: 1 when it cannot start (the message says why), 2 for a\n"
               "usage error; otherwise it runs until a signal stops it.\n"
               "\n"
               "examples:\n"
               "  modprobe utcp && utcpd --interface eth0 --verbose\n"
               "  systemctl enable --now utcpd      # set `interface` in utcpd.conf first\n"
               "\n"
               "See utcpd(8), utcpctl(8), libutcp(3).\n",
               kDefaultSocketPath, UTCP_CLASSIFIER_DEFAULT);
  return out == stdout ? 0 : 2;
}

// Why the ring options cannot work, or nullptr.
const char* check_ring_options(const Options& o) {
  auto entries_ok = [](uint32_t n) { return n >= 1 && n <= kMaxRingEntries && (n & (n - 1)) == 0; };
  auto slot_ok = [](uint32_t n) { return n >= kMinRingSlot && n <= kMaxRingSlot && n % kRingSlotAlign == 0; };
  if (!entries_ok(o.rx_entries) || !entries_ok(o.tx_entries) || !entries_ok(o.max_rx_entries) ||
      !entries_ok(o.max_tx_entries))
    return "ring entries (rx_entries, tx_entries, max_rx_entries, max_tx_entries) must be powers of two up to 4096";
  if (!slot_ok(o.slot_size) || !slot_ok(o.max_slot_size))
    return "slot_size and max_slot_size must be multiples of 64 from 1536 to 65792";
  if (o.rx_entries > o.max_rx_entries || o.tx_entries > o.max_tx_entries || o.slot_size > o.max_slot_size)
    return "a default ring size (rx_entries, tx_entries, slot_size) is above its max_* limit";
  if (o.endpoint_pool > 256) return "endpoint_pool is at most 256";
  return nullptr;
}

bool apply_option(Options& o, const std::string& key, const std::string& val) {
  try {
    if (key == "interface") o.interface = val;
    else if (key == "socket") o.socket_path = val;
    else if (key == "classifier") o.classifier = val;
    else if (key == "rx_entries") o.rx_entries = uint32_t(std::stoul(val));
    else if (key == "tx_entries") o.tx_entries = uint32_t(std::stoul(val));
    else if (key == "slot_size") o.slot_size = uint32_t(std::stoul(val));
    else if (key == "max_rx_entries") o.max_rx_entries = uint32_t(std::stoul(val));
    else if (key == "max_tx_entries") o.max_tx_entries = uint32_t(std::stoul(val));
    else if (key == "max_slot_size") o.max_slot_size = uint32_t(std::stoul(val));
    else if (key == "endpoint_pool") o.endpoint_pool = uint32_t(std::stoul(val));
    else if (key == "log_level") g_log_level = std::stoi(val);
    else if (key == "neighbour_wait_ms") o.neighbour_wait = Duration(int64_t(std::stoul(val)) * 1000);
    else if (key == "time_wait_ms") o.inherit.time_wait = Duration(int64_t(std::stoul(val)) * 1000);
    else if (key == "recover") o.recover = val == "yes" || val == "1" || val == "true";
    else return false;
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

}  // namespace
}  // namespace utcp::registry

int main(int argc, char** argv) {
  using namespace utcp::registry;
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "utcpd: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") return usage(stdout);
    if (a == "-i" || a == "--interface") opt.interface = value();
    else if (a == "-s" || a == "--socket") opt.socket_path = value();
    else if (a == "-c" || a == "--classifier") opt.classifier = value();
    else if (a == "--time-wait-ms") opt.inherit.time_wait = utcp::Duration(int64_t(std::stoul(value())) * 1000);
    else if (a == "--no-recover") opt.recover = false;
    else if (a == "-v" || a == "--verbose") g_log_level = 2;
    else if (a == "-q" || a == "--quiet") g_log_level = 0;
    else if (a == "-f" || a == "--config") {
      std::string path = value();
      std::ifstream f(path);
      if (!f) {
        std::fprintf(stderr, "utcpd: cannot read config %s\n", path.c_str());
        return 2;
      }
      std::string line;
      for (int ln = 1; std::getline(f, line); ++ln) {
        auto hash = line.find('#');
        if (hash != std::string::npos) line.resize(hash);
        char key[64], val[512];
        if (std::sscanf(line.c_str(), " %63s %511s", key, val) != 2) continue;
        if (!apply_option(opt, key, val)) {
          std::fprintf(stderr, "utcpd: %s:%d: unknown key or bad value '%s'\n", path.c_str(), ln, key);
          return 2;
        }
      }
    } else {
      std::fprintf(stderr, "utcpd: unknown option %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (opt.interface.empty()) return usage(stderr);
  if (const char* bad = check_ring_options(opt)) {
    std::fprintf(stderr, "utcpd: %s\n", bad);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  // Each connection holds two descriptors here (its endpoint file, its port's kernel
  // socket): a thousand connections need more than the usual soft limit of 1,024.
  if (rlimit r{}; ::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  Registry reg(opt);
  if (int rc = reg.start(); rc != 0) return rc;
  return reg.run();
}
