// utcpctl - ioctl-level command-line tool for /dev/utcp, for tests and debugging.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "device/kmod_device.h"
#include "device/module.h"
#include "device/pcap.h"
#include "wire/frame.h"
#include "utcpctl_ss.h"

namespace {

int usage(FILE* out) {
  std::fprintf(out,
      "usage: utcpctl [--device PATH] COMMAND [ARGS...]\n"
      "       utcpctl [--device PATH] run SCRIPT|-\n"
      "\n"
      "Inspects and drives the utcp kernel module through the ioctls of /dev/utcp (or\n"
      "PATH): checks its ABI, shows its counters, and for tests and debugging does by hand\n"
      "what utcpd does. `abi` needs only access to the device, `pcap` CAP_NET_RAW; every\n"
      "other command uses the control ioctls, which need CAP_NET_ADMIN (run as root).\n"
      "\n"
      "Control state (attachment, classifier, endpoints) lives only while its control\n"
      "file is open, so `run` executes one command per line of SCRIPT (or stdin) in one\n"
      "process; blank lines and #comments are skipped; it stops at the first failure.\n"
      "Endpoints are named by the NAME given at creation.\n"
      "\n"
      "commands:\n"
      "  abi                          print the module's ABI answer; check it matches this tool\n"
      "  attach IFNAME                attach the control file to a device (CAP_NET_ADMIN)\n"
      "  detach                       detach it\n"
      "  load-classifier OBJ          load the BPF classifier object and install it\n"
      "  endpoint-create NAME TEMPLATE [--rx N] [--tx N] [--slot BYTES]\n"
      "      TEMPLATE: --mac MAC --proto tcp|udp --local IP:PORT (--remote IP:PORT | --listener) [--mss N]\n"
      "  template-set NAME TEMPLATE   replace an endpoint's template\n"
      "  rate-set NAME BYTES_PER_SEC BURST   token bucket on the endpoint's transmit (0 = off)\n"
      "  flow-add NAME                add the endpoint's template to the classifier maps\n"
      "  send-raw NAME [--count N] (--hex HEX | FIELDS)\n"
      "      FIELDS default to the template: --dst-mac MAC --src-mac MAC --src IP:PORT\n"
      "      --dst IP:PORT --proto tcp|udp --payload TEXT --len BYTES (payload size)\n"
      "  recv-raw NAME N [--timeout-ms MS]   wait for N frames and print them\n"
      "  ring-dump NAME               print the endpoint's ring indices and layout\n"
      "  stats [NAME] [--json]        global (or one endpoint's) counters\n"
      "  top [--interval-ms MS] [--count N] [--json]\n"
      "                               global counters and their per-second rates every MS ms\n"
      "                               (default 1000), N times (0: until interrupted); --json:\n"
      "                               one JSON object per interval\n"
      "  ss [-i] [--json] [--registry SOCKET]\n"
      "                               connections and endpoints utcpd handed out, like ss(8):\n"
      "                               state, queues, addresses, process; -i: congestion control,\n"
      "                               RTT, cwnd, retransmits and the module's counters (drops,\n"
      "                               template rejects); asks utcpd (UTCP_REGISTRY or the default\n"
      "                               socket), no privilege needed\n"
      "  ss [-i] [--json] [--registry SOCKET]\n"
      "                               connections and endpoints utcpd handed out, like ss(8):\n"
      "                               state, queues, addresses, process; -i: congestion control,\n"
      "                               RTT, cwnd, retransmits and the module's counters (drops,\n"
      "                               template rejects); asks utcpd (UTCP_REGISTRY or the default\n"
      "                               socket), no privilege needed\n"
      "  pcap IFNAME FILE [--local IP:PORT] [--remote IP:PORT] [--count N] [--timeout-ms MS]\n"
      "                               write the frames of one flow (both directions, also those\n"
      "                               of utcp endpoints) crossing IFNAME to a pcap file, until N\n"
      "                               frames, MS ms or Ctrl-C (CAP_NET_RAW)\n"
      "  destroy NAME                 destroy an endpoint (its fd stays, detached)\n"
      "  persist on|off               keep (on) the attachment and its endpoints parked in the\n"
      "                               module when this control file closes, for a later adopt\n"
      "  adopt IFNAME                 take over the attachment a closed persistent control file\n"
      "                               (a dead utcpd) parked on IFNAME; `adopt IFNAME` followed\n"
      "                               by `persist off` drops it (its connections are cut)\n"
      "  endpoints                    list this control file's endpoints (id, template, flags)\n"
      "  endpoint-open ID             open the endpoint with this id again (as a restarted utcpd\n"
      "                               does) and print who else holds its file\n"
      "  sleep MS                     pause (in scripts)\n"
      "\n"
      "\n"
      "Exit status 0 on success; 1 with a message saying what to do; 2 for a usage error.\n"
      "\n"
      "examples:\n"
      "  utcpctl abi                      is the module loaded, and which ABI?\n"
      "  utcpctl stats --json             the module's counters as one JSON object\n"
      "  utcpctl top                      its traffic, refreshed every second\n"
      "  utcpctl ss -i                    utcp's connections with RTT, cwnd, retransmits\n"
      "  utcpctl ss -i                    utcp's connections with RTT, cwnd, retransmits\n"
      "  utcpctl pcap eth0 c.pcap --local 10.0.0.1:40000   one flow's frames, for tcpdump -r\n"
      "  printf 'attach eth0\\nstats\\n' | utcpctl run -\n"
      "\n"
      "See utcpctl(8), utcpd(8).\n");
  return out == stdout ? 0 : 2;
}

struct Endpoint {
  utcp::EndpointHandle handle;
  std::unique_ptr<utcp::KmodDevice> dev;
  bool listener = false;
};

struct State {
  const char* device = UTCP_DEVICE_PATH;
  int ctl = -1;
  int ifindex = 0;
  uint32_t mtu = 1500;
  bpf_object* bpf = nullptr;
  int flow_map = -1, listen_map = -1;
  std::map<std::string, Endpoint> endpoints;
  ~State() {
    endpoints.clear();
    if (bpf) bpf_object__close(bpf);
    if (ctl >= 0) ::close(ctl);
  }
};

[[nodiscard]] int fail(const std::string& msg) {
  std::fprintf(stderr, "utcpctl: %s\n", msg.c_str());
  return 1;
}

int errno_fail(const std::string& what, int err) {
  std::string hint;
  if (err == EPERM) hint = " (control ioctls need CAP_NET_ADMIN: run as root; template violations are EPERM too)";
  else if (err == ENOTTY) hint = " (the device did not understand the ioctl: is --device the utcp module's, and its ABI this tool's? try `utcpctl abi`)";
  else if (err == EMFILE) hint = " (the module's endpoint table of this control file is full)";
  else if (err == ENOMEM || err == E2BIG) hint = " (ring too large: lower --rx, --tx or --slot)";
  else if (err == ENOTCONN) hint = " (the endpoint was destroyed or the device detached)";
  return fail(what + ": " + std::strerror(err) + hint);
}

int ensure_ctl(State& st) {
  if (st.ctl >= 0) return 0;
  std::string error;
  int fd = utcp::open_module(&error, nullptr, st.device);
  if (fd < 0) return fail(error);
  st.ctl = fd;
  return 0;
}

bool parse_mac(std::string_view s, utcp::MacAddr* out) {
  unsigned b[6];
  std::string str(s);
  if (std::sscanf(str.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return false;
  for (int i = 0; i < 6; ++i) {
    if (b[i] > 255) return false;
    out->b[i] = uint8_t(b[i]);
  }
  return true;
}

bool parse_ip(std::string_view s, utcp::Ipv4Addr* out) {
  in_addr a{};
  if (inet_pton(AF_INET, std::string(s).c_str(), &a) != 1) return false;
  out->v = ntohl(a.s_addr);
  return true;
}

bool parse_endpoint_addr(std::string_view s, utcp::Ipv4Addr* ip, uint16_t* port) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  unsigned long p = std::strtoul(std::string(s.substr(colon + 1)).c_str(), nullptr, 10);
  if (p == 0 || p > 65535) return false;
  *port = uint16_t(p);
  return parse_ip(s.substr(0, colon), ip);
}

bool parse_u32(std::string_view s, uint32_t* out) {
  std::string str(s);
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(str.c_str(), &end, 0);
  if (str.empty() || *end || errno || v > 0xffffffffull) return false;
  *out = uint32_t(v);
  return true;
}

bool parse_proto(std::string_view s, uint8_t* out) {
  if (s == "tcp") *out = 6;
  else if (s == "udp") *out = 17;
  else return false;
  return true;
}

using Args = std::vector<std::string>;

// Parses template options from args[i..]; unknown options are left for the caller.
struct TemplateArgs {
  utcp::MacAddr mac;
  uint8_t proto = 0;
  utcp::Ipv4Addr local, remote;
  uint16_t lport = 0, rport = 0, mss = 0;
  bool listener = false, have_mac = false, have_local = false, have_remote = false;
  uint32_t rx = 256, tx = 256, slot = 2048;
};

int parse_template(const Args& a, size_t i, TemplateArgs* t) {
  for (; i < a.size(); ++i) {
    const std::string& o = a[i];
    bool has_val = i + 1 < a.size();
    uint32_t v = 0;
    if (o == "--listener") {
      t->listener = true;
    } else if (!has_val) {
      return fail("option " + o + " needs a value (see --help)");
    } else if (o == "--mac") {
      if (!parse_mac(a[++i], &t->mac)) return fail("bad MAC '" + a[i] + "' (want aa:bb:cc:dd:ee:ff)");
      t->have_mac = true;
    } else if (o == "--proto") {
      if (!parse_proto(a[++i], &t->proto)) return fail("bad protocol '" + a[i] + "' (tcp or udp)");
    } else if (o == "--local") {
      if (!parse_endpoint_addr(a[++i], &t->local, &t->lport)) return fail("bad --local '" + a[i] + "' (want IP:PORT)");
      t->have_local = true;
    } else if (o == "--remote") {
      if (!parse_endpoint_addr(a[++i], &t->remote, &t->rport)) return fail("bad --remote '" + a[i] + "' (want IP:PORT)");
      t->have_remote = true;
    } else if (o == "--mss" || o == "--rx" || o == "--tx" || o == "--slot") {
      if (!parse_u32(a[++i], &v)) return fail("bad number for " + o + ": '" + a[i] + "'");
      if (o == "--mss") {
        if (v > 65535) return fail("--mss must be at most 65535");
        t->mss = uint16_t(v);
      } else if (o == "--rx") t->rx = v;
      else if (o == "--tx") t->tx = v;
      else t->slot = v;
    } else {
      return fail("unknown option " + o + " (see --help)");
    }
  }
  if (!t->have_mac || !t->proto || !t->have_local || t->have_remote == t->listener)
    return fail("a template needs --mac, --proto, --local and one of --remote / --listener");
  return 0;
}

utcp_template to_template(const TemplateArgs& t) {
  utcp_template r = utcp::make_template(t.mac, t.proto, t.local, t.lport, t.remote, t.rport, t.listener);
  r.mss = t.mss;
  return r;
}

Endpoint* find_endpoint(State& st, const std::string& name) {
  auto it = st.endpoints.find(name);
  if (it == st.endpoints.end()) {
    std::fprintf(stderr, "utcpctl: no endpoint named '%s' (create it with endpoint-create in the same run)\n", name.c_str());
    return nullptr;
  }
  return &it->second;
}

int cmd_abi(State& st) {
  std::string error;
  utcp::ModuleInfo info;
  int fd = utcp::open_module(&error, &info, st.device);
  if (fd < 0) return fail(error);
  ::close(fd);
  std::printf("abi_version %u\nmax_endpoints %u\nmax_ring_entries %u\nmax_frame_len %u\nflags 0x%x\n",
              info.abi.abi_version, info.abi.max_endpoints, info.abi.max_ring_entries,
              info.abi.max_frame_len, info.abi.flags);
  return 0;
}

int cmd_attach(State& st, const Args& a) {
  if (a.size() != 2) return fail("usage: attach IFNAME");
  if (int rc = ensure_ctl(st)) return rc;
  unsigned idx = if_nametoindex(a[1].c_str());
  if (!idx) return fail("no network device '" + a[1] + "' in this namespace (ip link)");
  if (int rc = utcp::ctl_attach(st.ctl, int(idx)); rc < 0) {
    if (rc == -EBUSY) return fail("device " + a[1] + " already has an rx handler (bridge/bond port, or another utcp control file)");
    return errno_fail("attach " + a[1], -rc);
  }
  st.ifindex = int(idx);
  // The MTU from the device itself (sysfs may belong to another network namespace).
  st.mtu = 1500;
  if (int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); s >= 0) {
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", a[1].c_str());
    if (::ioctl(s, SIOCGIFMTU, &ifr) == 0) st.mtu = uint32_t(ifr.ifr_mtu);
    ::close(s);
  }
  std::printf("attached %s ifindex %u mtu %u\n", a[1].c_str(), idx, st.mtu);
  return 0;
}

int cmd_detach(State& st) {
  if (int rc = ensure_ctl(st)) return rc;
  if (::ioctl(st.ctl, UTCP_IOC_DETACH) < 0) return errno_fail("detach", errno);
  std::printf("detached\n");
  return 0;
}

int cmd_load_classifier(State& st, const Args& a) {
  if (a.size() != 2) return fail("usage: load-classifier OBJ");
  if (int rc = ensure_ctl(st)) return rc;
  bpf_object* obj = bpf_object__open_file(a[1].c_str(), nullptr);
  if (!obj || libbpf_get_error(obj)) return fail("cannot open BPF object " + a[1] + " (build it: ninja utcp_classifier.bpf.o)");
  if (int rc = bpf_object__load(obj); rc < 0) {
    bpf_object__close(obj);
    return errno_fail("the kernel refused the classifier (bpf_object__load)", -rc);
  }
  bpf_program* prog = bpf_object__find_program_by_name(obj, UTCP_CLASSIFIER_PROG);
  bpf_map* flows = bpf_object__find_map_by_name(obj, UTCP_FLOW_MAP_NAME);
  bpf_map* listeners = bpf_object__find_map_by_name(obj, UTCP_LISTEN_MAP_NAME);
  if (!prog || !flows || !listeners) {
    bpf_object__close(obj);
    return fail(a[1] + " is not the utcp classifier (missing program or maps)");
  }
  if (int rc = utcp::ctl_set_classifier(st.ctl, bpf_program__fd(prog)); rc < 0) {
    bpf_object__close(obj);
    return errno_fail("install classifier", -rc);
  }
  if (st.bpf) bpf_object__close(st.bpf);
  st.bpf = obj;
  st.flow_map = bpf_map__fd(flows);
  st.listen_map = bpf_map__fd(listeners);
  std::printf("classifier %s loaded\n", a[1].c_str());
  return 0;
}

int cmd_endpoint_create(State& st, const Args& a) {
  if (a.size() < 2) return fail("usage: endpoint-create NAME TEMPLATE");
  TemplateArgs t;
  if (int rc = parse_template(a, 2, &t)) return rc;
  if (int rc = ensure_ctl(st)) return rc;
  if (st.endpoints.count(a[1])) return fail("endpoint '" + a[1] + "' exists already");
  Endpoint ep;
  ep.listener = t.listener;
  utcp_template tmpl = to_template(t);
  if (int rc = utcp::ctl_create_endpoint(st.ctl, tmpl, t.rx, t.tx, t.slot, &ep.handle); rc < 0)
    return errno_fail("endpoint-create " + a[1], -rc);
  std::string error;
  ep.dev = utcp::KmodDevice::open(ep.handle.fd, st.mtu, &error);
  if (!ep.dev) return fail(error);
  std::printf("endpoint %s id %u fd %d map_size %llu\n", a[1].c_str(), ep.handle.id, ep.handle.fd,
              (unsigned long long)ep.handle.layout.map_size);
  st.endpoints.emplace(a[1], std::move(ep));
  return 0;
}

int cmd_template_set(State& st, const Args& a) {
  if (a.size() < 2) return fail("usage: template-set NAME TEMPLATE");
  Endpoint* ep = find_endpoint(st, a[1]);
  if (!ep) return 1;
  TemplateArgs t;
  if (int rc = parse_template(a, 2, &t)) return rc;
  utcp_endpoint_template et{};
  et.id = ep->handle.id;
  et.tmpl = to_template(t);
  if (::ioctl(st.ctl, UTCP_IOC_SET_TEMPLATE, &et) < 0) return errno_fail("template-set", errno);
  ep->listener = t.listener;
  std::printf("template of %s replaced\n", a[1].c_str());
  return 0;
}

int cmd_rate_set(State& st, const Args& a) {
  uint32_t bps = 0, burst = 0;
  if (a.size() != 4 || !parse_u32(a[2], &bps) || !parse_u32(a[3], &burst))
    return fail("usage: rate-set NAME BYTES_PER_SEC BURST");
  Endpoint* ep = find_endpoint(st, a[1]);
  if (!ep) return 1;
  utcp_rate_limit r{};
  r.id = ep->handle.id;
  r.bytes_per_sec = bps;
  r.burst_bytes = burst;
  if (::ioctl(st.ctl, UTCP_IOC_SET_RATE, &r) < 0) return errno_fail("rate-set", errno);
  std::printf("rate of %s: %u B/s, burst %u B\n", a[1].c_str(), bps, burst);
  return 0;
}

int cmd_flow_add(State& st, const Args& a) {
  if (a.size() != 2) return fail("usage: flow-add NAME");
  Endpoint* ep = find_endpoint(st, a[1]);
  if (!ep) return 1;
  if (st.flow_map < 0) return fail("no classifier loaded in this run (load-classifier OBJ first)");
  const utcp_template& t = ep->dev->info().tmpl;
  uint32_t id = ep->handle.id;
  int rc;
  if (utcp::is_listener(t)) {
    utcp_listen_key k = utcp::listen_key_for(t);
    rc = bpf_map_update_elem(st.listen_map, &k, &id, BPF_ANY);
  } else {
    utcp_flow_key k = utcp::flow_key_for(t);
    rc = bpf_map_update_elem(st.flow_map, &k, &id, BPF_ANY);
  }
  if (rc < 0) return errno_fail("flow-add (map update)", errno);
  std::printf("flow %s -> id %u\n", a[1].c_str(), id);
  return 0;
}

bool parse_hex(std::string_view s, std::vector<uint8_t>* out) {
  std::string clean;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c)) && c != ':') clean += c;
  if (clean.size() % 2) return false;
  for (size_t i = 0; i < clean.size(); i += 2) {
    char* end = nullptr;
    std::string byte = clean.substr(i, 2);
    unsigned long v = std::strtoul(byte.c_str(), &end, 16);
    if (*end) return false;
    out->push_back(uint8_t(v));
  }
  return true;
}

int cmd_send_raw(State& st, const Args& a) {
  if (a.size() < 2) return fail("usage: send-raw NAME [--count N] (--hex HEX | FIELDS)");
  Endpoint* ep = find_endpoint(st, a[1]);
  if (!ep) return 1;
  utcp::FrameSpec f = utcp::frame_for_template(ep->dev->info().tmpl, utcp::MacAddr::broadcast());
  std::vector<uint8_t> frame, payload;
  std::string text = "utcp";
  uint32_t count = 1, len = 0;
  bool have_len = false;
  for (size_t i = 2; i < a.size(); ++i) {
    const std::string& o = a[i];
    if (i + 1 >= a.size()) return fail("option " + o + " needs a value");
    const std::string& v = a[++i];
    bool ok = true;
    if (o == "--hex") ok = parse_hex(v, &frame);
    else if (o == "--dst-mac") ok = parse_mac(v, &f.dst_mac);
    else if (o == "--src-mac") ok = parse_mac(v, &f.src_mac);
    else if (o == "--src") ok = parse_endpoint_addr(v, &f.src_ip, &f.src_port);
    else if (o == "--dst") ok = parse_endpoint_addr(v, &f.dst_ip, &f.dst_port);
    else if (o == "--proto") ok = parse_proto(v, &f.proto);
    else if (o == "--payload") text = v;
    else if (o == "--len") ok = have_len = parse_u32(v, &len);
    else if (o == "--count") ok = parse_u32(v, &count);
    else return fail("unknown option " + o);
    if (!ok) return fail("bad value for " + o + ": '" + v + "'");
  }
  if (frame.empty()) {
    payload.assign(text.begin(), text.end());
    if (have_len) payload.resize(len, 'x');
    f.payload = payload;
    frame.resize(14 + 20 + 20 + payload.size());
    size_t n = utcp::build_frame(f, frame);
    if (!n) return fail("frame does not fit (payload too long?)");
    frame.resize(n);
  }
  for (uint32_t i = 0; i < count; ++i) {
    auto buf = ep->dev->tx_buffer(frame.size());
    if (buf.size() < frame.size()) {
      ep->dev->flush(utcp::kInstantZero);
      buf = ep->dev->tx_buffer(frame.size());
      if (buf.size() < frame.size()) return fail("TX ring full or frame larger than a slot");
    }
    std::copy(frame.begin(), frame.end(), buf.begin());
    ep->dev->tx_commit(frame.size());
  }
  ep->dev->flush(utcp::kInstantZero);
  const utcp_tx_result& r = ep->dev->last_tx();
  std::printf("send-raw %s: sent %u refused %u pending %u first_error %s\n", a[1].c_str(), r.sent, r.refused,
              r.pending, r.first_error ? std::strerror(-r.first_error) : "none");
  if (ep->dev->last_tx_rc() < 0) return errno_fail("send-raw", -ep->dev->last_tx_rc());
  return 0;
}

void print_frame(std::span<const uint8_t> f) {
  std::printf("frame len %zu:", f.size());
  for (size_t i = 0; i < f.size() && i < 64; ++i) std::printf("%s%02x", i % 4 ? "" : " ", f[i]);
  std::printf("%s\n", f.size() > 64 ? " ..." : "");
}

int cmd_recv_raw(State& st, const Args& a) {
  uint32_t n = 0, timeout_ms = 5000;
  if (a.size() < 3 || !parse_u32(a[2], &n)) return fail("usage: recv-raw NAME N [--timeout-ms MS]");
  if (a.size() == 5 && a[3] == "--timeout-ms") {
    if (!parse_u32(a[4], &timeout_ms)) return fail("bad --timeout-ms");
  } else if (a.size() != 3) {
    return fail("usage: recv-raw NAME N [--timeout-ms MS]");
  }
  Endpoint* ep = find_endpoint(st, a[1]);
  if (!ep) return 1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  uint32_t got = 0;
  while (got < n) {
    got += uint32_t(ep->dev->receive(utcp::kInstantZero, print_frame, n - got));
    if (got >= n) break;
    auto left = std::chrono::duration_cast<utcp::Duration>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return fail("recv-raw: got " + std::to_string(got) + " of " + std::to_string(n) + " frames before the timeout");
    int rc = ep->dev->wait(left);
    if (rc < 0) return errno_fail("recv-raw wait", -rc);
  }
  std::printf("received %u frames\n", got);
  return 0;
}

int cmd_ring_dump(State& st, const Args& a) {
  if (a.size() != 2) return fail("usage: ring-dump NAME");
  Endpoint* ep = find_endpoint(st, a[1]);
  if (!ep) return 1;
  const utcp_ring_layout& l = ep->dev->info().layout;
  utcp_endpoint_stats s{};
  ep->dev->stats(&s);
  std::printf("endpoint %s id %u map_size %llu rx_entries %u tx_entries %u slot_size %u slots_off %u\n",
              a[1].c_str(), ep->handle.id, (unsigned long long)l.map_size, l.rx_entries, l.tx_entries,
              l.slot_size, l.slots_off);
  std::printf("tx_queued %u rx_frames %llu tx_frames %llu\n", ep->dev->tx_queued(),
              (unsigned long long)s.rx_frames, (unsigned long long)s.tx_frames);
  return 0;
}

void print_stats_pairs(const std::vector<std::pair<const char*, unsigned long long>>& kv, bool json) {
  if (json) {
    std::printf("{");
    for (size_t i = 0; i < kv.size(); ++i) std::printf("%s\"%s\": %llu", i ? ", " : "", kv[i].first, kv[i].second);
    std::printf("}\n");
  } else {
    for (auto& [k, v] : kv) std::printf("%-26s %llu\n", k, v);
  }
}

// The module's global counters by name, in the order `stats` prints them.
std::vector<std::pair<const char*, unsigned long long>> global_pairs(const utcp_global_stats& g) {
  return {{"live_endpoints", g.live_endpoints}, {"live_ring_bytes", g.live_ring_bytes},
          {"live_controls", g.live_controls}, {"endpoints_created", g.endpoints_created},
          {"rx_frames", g.rx_frames}, {"rx_bytes", g.rx_bytes}, {"rx_passed", g.rx_passed},
          {"rx_stale", g.rx_stale}, {"rx_drops", g.rx_drops}, {"tx_frames", g.tx_frames},
          {"tx_bytes", g.tx_bytes}, {"tx_template_rejects", g.tx_template_rejects},
          {"tx_malformed", g.tx_malformed}, {"classifier_runs", g.classifier_runs},
          {"classifier_sampled_runs", g.classifier_sampled_runs},
          {"classifier_sampled_ns", g.classifier_sampled_ns}, {"parked_controls", g.parked_controls}};
}

// Values that go up and down (no rate is shown for them).
bool is_gauge(std::string_view name) { return name.starts_with("live_"); }

int cmd_stats(State& st, const Args& a) {
  bool json = false;
  std::string name;
  for (size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--json") json = true;
    else name = a[i];
  }
  if (int rc = ensure_ctl(st)) return rc;
  if (!name.empty()) {
    Endpoint* ep = find_endpoint(st, name);
    if (!ep) return 1;
    utcp_endpoint_stats s{};
    if (int rc = ep->dev->stats(&s); rc < 0) return errno_fail("endpoint stats", -rc);
    print_stats_pairs({{"id", s.id}, {"detached", s.flags & UTCP_EPF_DETACHED},
                       {"rx_frames", s.rx_frames}, {"rx_bytes", s.rx_bytes},
                       {"rx_drops_full", s.rx_drops_full}, {"rx_drops_too_big", s.rx_drops_too_big},
                       {"tx_frames", s.tx_frames}, {"tx_bytes", s.tx_bytes},
                       {"tx_template_rejects", s.tx_template_rejects}, {"tx_malformed", s.tx_malformed},
                       {"tx_rate_limited", s.tx_rate_limited}, {"tx_dev_errors", s.tx_dev_errors},
                       {"ring_bytes", s.ring_bytes}, {"tcp_snd_max", s.tcp_snd_max},
                       {"tcp_rcv_ack", s.tcp_rcv_ack}, {"tcp_flags", s.tcp_flags}, {"file_refs", s.file_refs}},
                      json);
    return 0;
  }
  utcp_global_stats g{};
  if (int rc = utcp::ctl_global_stats(st.ctl, &g); rc < 0) return errno_fail("global stats", -rc);
  unsigned long long ns_per_run = g.classifier_sampled_runs ? g.classifier_sampled_ns / g.classifier_sampled_runs : 0;
  auto kv = global_pairs(g);
  kv.emplace_back("classifier_ns_per_run", ns_per_run);
  print_stats_pairs(kv, json);
  return 0;
}

// top: the module's global counters every interval with their rates, like top(1) (the
// screen is redrawn when stdout is a terminal), or one JSON object per interval.
int cmd_top(State& st, const Args& a) {
  uint32_t interval_ms = 1000, count = 0;
  bool json = false;
  for (size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--json") json = true;
    else if (a[i] == "--interval-ms" && i + 1 < a.size() && parse_u32(a[i + 1], &interval_ms) && interval_ms > 0) ++i;
    else if (a[i] == "--count" && i + 1 < a.size() && parse_u32(a[i + 1], &count)) ++i;
    else return fail("usage: top [--interval-ms MS] [--count N] [--json]   (MS > 0; N = 0: until interrupted)");
  }
  if (int rc = ensure_ctl(st)) return rc;
  const bool redraw = !json && ::isatty(1);
  utcp_global_stats prev{}, cur{};
  if (int rc = utcp::ctl_global_stats(st.ctl, &prev); rc < 0) return errno_fail("global stats", -rc);
  auto t_prev = std::chrono::steady_clock::now(), t_start = t_prev;
  for (uint32_t n = 0; count == 0 || n < count; ++n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    if (int rc = utcp::ctl_global_stats(st.ctl, &cur); rc < 0) return errno_fail("global stats", -rc);
    auto t_cur = std::chrono::steady_clock::now();
    double dt = std::chrono::duration<double>(t_cur - t_prev).count();
    double since = std::chrono::duration<double>(t_cur - t_start).count();
    auto now_kv = global_pairs(cur), prev_kv = global_pairs(prev);
    uint64_t runs = cur.classifier_sampled_runs - prev.classifier_sampled_runs;
    uint64_t ns_per_run = runs ? (cur.classifier_sampled_ns - prev.classifier_sampled_ns) / runs : 0;
    if (json) {
      std::printf("{\"time_s\": %.3f, \"interval_s\": %.3f", since, dt);
      for (size_t i = 0; i < now_kv.size(); ++i) {
        std::printf(", \"%s\": %llu", now_kv[i].first, now_kv[i].second);
        if (!is_gauge(now_kv[i].first))
          std::printf(", \"%s_per_s\": %.1f", now_kv[i].first, double(now_kv[i].second - prev_kv[i].second) / dt);
      }
      std::printf(", \"classifier_ns_per_run\": %llu}\n", (unsigned long long)ns_per_run);
    } else {
      if (redraw) std::printf("\033[H\033[2J");
      std::printf("utcp.ko on %s: %.1f s, every %u ms%s\n", st.device, since, interval_ms,
                  redraw ? " (Ctrl-C quits)" : "");
      std::printf("live: %llu endpoints, %llu control files, %.1f KiB of rings\n\n",
                  (unsigned long long)cur.live_endpoints, (unsigned long long)cur.live_controls,
                  double(cur.live_ring_bytes) / 1024);
      std::printf("%-24s %16s %14s\n", "counter", "total", "per second");
      for (size_t i = 0; i < now_kv.size(); ++i) {
        if (is_gauge(now_kv[i].first)) continue;
        std::printf("%-24s %16llu %14.1f\n", now_kv[i].first, now_kv[i].second,
                    double(now_kv[i].second - prev_kv[i].second) / dt);
      }
      std::printf("%-24s %16llu ns (this interval)\n", "classifier_ns_per_run", (unsigned long long)ns_per_run);
      if (!redraw) std::printf("\n");
    }
    std::fflush(stdout);
    prev = cur;
    t_prev = t_cur;
  }
  return 0;
}

volatile std::sig_atomic_t g_interrupted = 0;

// pcap: writes the frames of one flow (or all IPv4 TCP/UDP frames) crossing an interface
// to a pcap file: both directions, including frames the module delivers to endpoints
// (packet taps see them before the module's receive handler) and frames endpoints send.
int cmd_pcap(const Args& a) {
  if (a.size() < 3) return fail("usage: pcap IFNAME FILE [--local IP:PORT] [--remote IP:PORT] [--count N] [--timeout-ms MS]");
  utcp::Ipv4Addr local_ip, remote_ip;
  uint16_t local_port = 0, remote_port = 0;
  uint32_t count = 0, timeout_ms = 0;
  for (size_t i = 3; i < a.size(); ++i) {
    const std::string& o = a[i];
    if (i + 1 >= a.size()) return fail("option " + o + " needs a value");
    const std::string& v = a[++i];
    bool ok = true;
    if (o == "--local") ok = parse_endpoint_addr(v, &local_ip, &local_port);
    else if (o == "--remote") ok = parse_endpoint_addr(v, &remote_ip, &remote_port);
    else if (o == "--count") ok = parse_u32(v, &count);
    else if (o == "--timeout-ms") ok = parse_u32(v, &timeout_ms);
    else return fail("unknown option " + o + " (see --help)");
    if (!ok) return fail("bad value for " + o + ": '" + v + "'");
  }
  unsigned ifindex = if_nametoindex(a[1].c_str());
  if (!ifindex) return fail("no network device '" + a[1] + "' in this namespace (ip link)");
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) {
    int e = errno;
    if (e == EPERM || e == EACCES) return fail("capturing needs CAP_NET_RAW: run as root");
    return errno_fail("packet socket", e);
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = int(ifindex);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
    int e = errno;
    ::close(fd);
    return errno_fail("binding the capture to " + a[1], e);
  }
  // On loopback every packet passes the tap twice (out, then in): keep the incoming copy,
  // as tcpdump does.
  bool loopback = false;
  {
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", a[1].c_str());
    if (::ioctl(fd, SIOCGIFHWADDR, &ifr) == 0) loopback = ifr.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK;
  }
  std::string error;
  auto writer = utcp::PcapWriter::open(a[2], &error, 262144);
  if (!writer) {
    ::close(fd);
    return fail(error);
  }
  // A flow matches in either direction; an unset side matches anything.
  auto side = [](utcp::Ipv4Addr want_ip, uint16_t want_port, utcp::Ipv4Addr ip, uint16_t port) {
    return (want_ip.v == 0 || want_ip == ip) && (want_port == 0 || want_port == port);
  };
  auto matches = [&](const utcp::ParsedFrame& f) {
    uint16_t sp = f.tcp ? f.tcp->src_port : f.udp->src_port, dp = f.tcp ? f.tcp->dst_port : f.udp->dst_port;
    return (side(local_ip, local_port, f.ip.src, sp) && side(remote_ip, remote_port, f.ip.dst, dp)) ||
           (side(local_ip, local_port, f.ip.dst, dp) && side(remote_ip, remote_port, f.ip.src, sp));
  };
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  std::signal(SIGTERM, [](int) { g_interrupted = 1; });
  std::printf("pcap: capturing on %s (ifindex %u) into %s\n", a[1].c_str(), ifindex, a[2].c_str());
  std::fflush(stdout);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::vector<uint8_t> buf(65536 + 256);
  uint64_t seen = 0;
  while (!g_interrupted && (count == 0 || writer->frames() < count)) {
    int wait_ms = 200;
    if (timeout_ms) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      wait_ms = int(std::min<int64_t>(left.count(), 200));
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, wait_ms) <= 0) continue;
    sockaddr_ll from{};
    socklen_t fl = sizeof from;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n <= 0) continue;
    ++seen;
    if (loopback && from.sll_pkttype == PACKET_OUTGOING) continue;
    std::span<const uint8_t> frame(buf.data(), size_t(n));
    // Outgoing frames may carry offloaded (unfinished) checksums: do not verify them.
    auto f = utcp::parse_frame(frame, false);
    if (!f || f->arp || (!f->tcp && !f->udp) || !matches(*f)) continue;
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    writer->write(utcp::Instant(utcp::Duration(int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000)), frame);
  }
  ::close(fd);
  uint64_t written = writer->frames();
  writer.reset();  // closes the file
  std::printf("pcap: %llu frames written to %s (%llu seen on %s)\n", (unsigned long long)written, a[2].c_str(),
              (unsigned long long)seen, a[1].c_str());
  if (count && written < count) return fail("pcap: " + std::to_string(written) + " of " + std::to_string(count) + " frames before the timeout");
  return 0;
}

int cmd_destroy(State& st, const Args& a) {
  if (a.size() != 2) return fail("usage: destroy NAME");
  Endpoint* ep = find_endpoint(st, a[1]);
  if (!ep) return 1;
  if (int rc = utcp::ctl_destroy_endpoint(st.ctl, ep->handle.id); rc < 0) return errno_fail("destroy", -rc);
  std::printf("endpoint %s destroyed\n", a[1].c_str());
  return 0;
}

int cmd_persist(State& st, const Args& a) {
  if (a.size() != 2 || (a[1] != "on" && a[1] != "off")) return fail("usage: persist on|off");
  if (int rc = ensure_ctl(st)) return rc;
  utcp_persist p{};
  p.persist = a[1] == "on";
  if (::ioctl(st.ctl, UTCP_IOC_SET_PERSIST, &p) < 0) return errno_fail("persist", errno);
  std::printf("persist %s\n", a[1].c_str());
  return 0;
}

int cmd_adopt(State& st, const Args& a) {
  if (a.size() != 2) return fail("usage: adopt IFNAME");
  if (int rc = ensure_ctl(st)) return rc;
  unsigned idx = if_nametoindex(a[1].c_str());
  if (!idx) return fail("no network device '" + a[1] + "' in this namespace (ip link)");
  utcp_adopt ad{};
  ad.ifindex = int(idx);
  if (::ioctl(st.ctl, UTCP_IOC_ADOPT, &ad) < 0) {
    int e = errno;
    if (e == ENOENT) return fail("nothing parked on " + a[1] + " (no persistent control file was closed while attached to it)");
    if (e == EISCONN) return fail("adopt must be the first control command of a run");
    return errno_fail("adopt " + a[1], e);
  }
  st.ifindex = int(idx);
  std::printf("adopted %s ifindex %u endpoints %u classifier_prog_id %u\n", a[1].c_str(), idx, ad.endpoints,
              ad.prog_id);
  return 0;
}

std::string template_str(const utcp_template& t) {
  auto ip = [](uint32_t be) {
    char b[INET_ADDRSTRLEN];
    in_addr a{be};
    return std::string(inet_ntop(AF_INET, &a, b, sizeof b) ? b : "?");
  };
  std::string s = std::string(t.proto == 6 ? "tcp" : t.proto == 17 ? "udp" : "?") + " " + ip(t.local_ip) + ":" +
                  std::to_string(ntohs(t.local_port));
  if (t.flags & UTCP_TMPL_F_LISTENER) return s + " listener";
  return s + " -> " + ip(t.remote_ip) + ":" + std::to_string(ntohs(t.remote_port));
}

int cmd_endpoints(State& st) {
  if (int rc = ensure_ctl(st)) return rc;
  std::vector<utcp_endpoint_entry> ents;
  utcp_endpoint_list l{};
  for (;;) {  // grow to what the module says it needs
    l = {};
    l.entries = reinterpret_cast<uint64_t>(ents.data());
    l.capacity = uint32_t(ents.size());
    if (::ioctl(st.ctl, UTCP_IOC_ENDPOINT_LIST, &l) == 0) break;
    if (errno != ENOSPC) return errno_fail("endpoints", errno);
    ents.resize(l.count + 8);
  }
  for (uint32_t i = 0; i < l.count; ++i) {
    const utcp_endpoint_entry& e = ents[i];
    std::printf("id %u %s flags 0x%x tcp_flags 0x%x\n", e.id, template_str(e.tmpl).c_str(), e.flags, e.tcp_flags);
  }
  std::printf("%u endpoints\n", l.count);
  return 0;
}

int cmd_endpoint_open(State& st, const Args& a) {
  uint32_t id = 0;
  if (a.size() != 2 || !parse_u32(a[1], &id)) return fail("usage: endpoint-open ID");
  if (int rc = ensure_ctl(st)) return rc;
  utcp_endpoint_open o{};
  o.id = id;
  if (::ioctl(st.ctl, UTCP_IOC_ENDPOINT_OPEN, &o) < 0) return errno_fail("endpoint-open " + a[1], errno);
  utcp_endpoint_info info{};
  utcp_endpoint_stats es{};
  bool ok = ::ioctl(o.fd, UTCP_IOC_EP_INFO, &info) == 0 && ::ioctl(o.fd, UTCP_IOC_EP_STATS, &es) == 0;
  int e = errno;
  ::close(o.fd);
  if (!ok) return errno_fail("endpoint-open: the new fd", e);
  std::printf("endpoint id %u %s other_refs %u file_refs %u\n", info.id, template_str(info.tmpl).c_str(), o.file_refs,
              es.file_refs);
  return 0;
}

int run_command(State& st, const Args& a) {
  const std::string& c = a[0];
  if (c == "abi") return cmd_abi(st);
  if (c == "attach") return cmd_attach(st, a);
  if (c == "detach") return cmd_detach(st);
  if (c == "load-classifier") return cmd_load_classifier(st, a);
  if (c == "endpoint-create") return cmd_endpoint_create(st, a);
  if (c == "template-set") return cmd_template_set(st, a);
  if (c == "rate-set") return cmd_rate_set(st, a);
  if (c == "flow-add") return cmd_flow_add(st, a);
  if (c == "send-raw") return cmd_send_raw(st, a);
  if (c == "recv-raw") return cmd_recv_raw(st, a);
  if (c == "ring-dump") return cmd_ring_dump(st, a);
  if (c == "stats") return cmd_stats(st, a);
  if (c == "top") return cmd_top(st, a);
  if (c == "ss") return utcpctl_ss(a);
  if (c == "pcap") return cmd_pcap(a);
  if (c == "destroy") return cmd_destroy(st, a);
  if (c == "persist") return cmd_persist(st, a);
  if (c == "adopt") return cmd_adopt(st, a);
  if (c == "endpoints") return cmd_endpoints(st);
  if (c == "endpoint-open") return cmd_endpoint_open(st, a);
  if (c == "sleep") {
    uint32_t ms = 0;
    if (a.size() != 2 || !parse_u32(a[1], &ms)) return fail("usage: sleep MS");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return 0;
  }
  std::fprintf(stderr, "utcpctl: unknown command '%s' (see --help)\n", c.c_str());
  return 2;
}

int run_script(State& st, const std::string& path) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) return fail("cannot read script " + path);
    in = &file;
  }
  std::string line;
  int lineno = 0;
  while (std::getline(*in, line)) {
    ++lineno;
    std::istringstream words(line);
    Args a;
    for (std::string w; words >> w;) {
      if (w[0] == '#') break;
      a.push_back(w);
    }
    if (a.empty()) continue;
    std::fflush(stdout);
    if (int rc = run_command(st, a)) {
      std::fprintf(stderr, "utcpctl: script %s line %d failed: %s\n", path.c_str(), lineno, line.c_str());
      return rc;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  State st;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") return usage(stdout);
    if (a == "--device" && i + 1 < argc) {
      st.device = argv[++i];
      continue;
    }
    break;
  }
  if (i >= argc) return usage(stderr);
  libbpf_set_print(nullptr);
  Args args(argv + i, argv + argc);
  if (args[0] == "run") {
    if (args.size() != 2) return fail("usage: run SCRIPT|-");
    return run_script(st, args[1]);
  }
  return run_command(st, args);
}
