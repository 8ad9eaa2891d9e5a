// utcpctl_ss.cc - `utcpctl ss`: every endpoint utcpd handed out, with its TCP state as
// the application's stack published it (uapi utcp_app_info) and the module's counters,
// in ss(8)'s layout or as JSON. Asks utcpd (registry kList); needs no privilege, though
// processes and published state of other users' connections are shown to root only.
#include "utcpctl_ss.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "api/publish.h"
#include "registry/client.h"

namespace {

using utcp::registry::ListEntry;
using utcp::registry::ListOrphan;
using utcp::registry::ListRole;

std::string addr(uint32_t ip_host, uint16_t port) {
  in_addr a{htonl(ip_host)};
  char buf[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return std::string(buf) + ":" + (port ? std::to_string(port) : "*");
}

// The state column: the stack's own word when it published one, else what utcpd knows.
std::string state_of(const ListEntry& e) {
  switch (ListRole(e.role)) {
    case ListRole::kHandshake: return "SYN-SENT(utcpd)";
    case ListRole::kListen: return "LISTEN(utcpd)";
    case ListRole::kInherited:
      switch (ListOrphan(e.orphan)) {
        case ListOrphan::kTimeWait: return "TIME-WAIT(utcpd)";
        case ListOrphan::kLastAck: return "LAST-ACK(utcpd)";
        case ListOrphan::kReset: return "RESET(utcpd)";
        case ListOrphan::kNone: break;
      }
      return "INHERITED";
    case ListRole::kHeld: return "HELD";
    case ListRole::kListener: return "LISTEN";
    case ListRole::kConnection: break;
  }
  if (e.proto == IPPROTO_UDP) return "UNCONN";
  if (e.app_valid) return utcp::app_state_name(e.app.state);
  return "UNKNOWN";
}

const char* role_name(uint8_t r) {
  switch (ListRole(r)) {
    case ListRole::kConnection: return "connection";
    case ListRole::kHandshake: return "handshake";
    case ListRole::kListener: return "listener";
    case ListRole::kListen: return "listen";
    case ListRole::kHeld: return "held";
    case ListRole::kInherited: return "inherited";
  }
  return "?";
}

std::string json_string(const char* s) {
  std::string o = "\"";
  for (; *s; ++s) {
    unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') o += '\\', o += char(c);
    else if (c < 0x20 || c >= 0x7f) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); o += b; }
    else o += char(c);
  }
  return o + "\"";
}

void print_json(const std::vector<ListEntry>& all) {
  std::printf("[");
  for (size_t i = 0; i < all.size(); ++i) {
    const ListEntry& e = all[i];
    const utcp_endpoint_stats& m = e.module;
    std::printf("%s\n {\"endpoint\": %u, \"proto\": \"%s\", \"role\": \"%s\", \"state\": %s, \"local\": %s, "
                "\"remote\": %s, \"pid\": %d, \"uid\": %u",
                i ? "," : "", e.endpoint_id, e.proto == IPPROTO_UDP ? "udp" : "tcp", role_name(e.role),
                json_string(state_of(e).c_str()).c_str(), json_string(addr(e.local_ip, e.local_port).c_str()).c_str(),
                json_string(addr(e.remote_ip, e.remote_port).c_str()).c_str(), e.pid, e.uid);
    if (ListRole(e.role) == ListRole::kListen) std::printf(", \"accepted\": %llu", (unsigned long long)e.accepted);
    std::printf(",\n  \"module\": {\"rx_frames\": %llu, \"rx_bytes\": %llu, \"rx_drops_full\": %llu, "
                "\"rx_drops_too_big\": %llu, \"tx_frames\": %llu, \"tx_bytes\": %llu, \"tx_template_rejects\": %llu, "
                "\"tx_malformed\": %llu, \"tx_rate_limited\": %llu, \"ring_bytes\": %llu}",
                (unsigned long long)m.rx_frames, (unsigned long long)m.rx_bytes, (unsigned long long)m.rx_drops_full,
                (unsigned long long)m.rx_drops_too_big, (unsigned long long)m.tx_frames, (unsigned long long)m.tx_bytes,
                (unsigned long long)m.tx_template_rejects, (unsigned long long)m.tx_malformed,
                (unsigned long long)m.tx_rate_limited, (unsigned long long)m.ring_bytes);
    if (e.app_valid) {
      const utcp_app_info& a = e.app;
      std::printf(",\n  \"tcp\": {\"pid\": %u, \"state\": \"%s\", \"congestion\": %s, \"cwnd\": %u, \"ssthresh\": %u, "
                  "\"srtt_us\": %u, \"rttvar_us\": %u, \"rto_us\": %u, \"snd_mss\": %u, \"rcv_mss\": %u, "
                  "\"snd_wnd\": %u, \"rcv_wnd\": %u, \"snd_wscale\": %u, \"rcv_wscale\": %u, \"sack\": %s, "
                  "\"timestamps\": %s, \"in_recovery\": %s, \"send_queue\": %u, \"recv_queue\": %u, "
                  "\"bytes_sent\": %llu, \"bytes_received\": %llu, \"segs_out\": %llu"
                  ", \"segs_in\": %llu, \"retransmits\": %llu, \"timeouts\": %llu}",
                  a.pid, utcp::app_state_name(a.state), json_string(a.congestion).c_str(), a.cwnd, a.ssthresh,
                  a.srtt_us, a.rttvar_us, a.rto_us, a.snd_mss, a.rcv_mss, a.snd_wnd, a.rcv_wnd, a.snd_wscale,
                  a.rcv_wscale, (a.flags & UTCP_APPF_SACK) ? "true" : "false",
                  (a.flags & UTCP_APPF_TIMESTAMPS) ? "true" : "false", (a.flags & UTCP_APPF_RECOVERY) ? "true" : "false",
                  a.send_queue, a.recv_queue, (unsigned long long)a.bytes_sent, (unsigned long long)a.bytes_received, (unsigned long long)a.segs_out, (unsigned long long)a.segs_in, (unsigned long long)a.retransmits,
                  (unsigned long long)a.timeouts);
    }
    std::printf("}");
  }
  std::printf("%s]\n", all.empty() ? "" : "\n");
}

void print_table(const std::vector<ListEntry>& all, bool info) {
  std::printf("%-5s %-17s %7s %7s %-22s %-22s %s\n", "Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port",
              "Peer Address:Port", "Process");
  for (const ListEntry& e : all) {
    std::string proc = "ep=" + std::to_string(e.endpoint_id);
    if (e.pid) proc = "pid=" + std::to_string(e.pid) + "," + proc;
    if (ListRole(e.role) == ListRole::kListen) proc += ",accepted=" + std::to_string((unsigned long long)e.accepted);
    std::printf("%-5s %-17s %7u %7u %-22s %-22s %s\n", e.proto == IPPROTO_UDP ? "udp" : "tcp", state_of(e).c_str(),
                e.app_valid ? e.app.recv_queue : 0, e.app_valid ? e.app.send_queue : 0,
                addr(e.local_ip, e.local_port).c_str(), addr(e.remote_ip, e.remote_port).c_str(), proc.c_str());
    if (!info) continue;
    const utcp_endpoint_stats& m = e.module;
    if (e.app_valid && e.proto == IPPROTO_TCP) {
      const utcp_app_info& a = e.app;
      std::printf("\t %s%s%s wscale:%u,%u rto:%.3fms rtt:%.3f/%.3fms mss:%u rcvmss:%u cwnd:%u ssthresh:%u "
                  "snd_wnd:%u rcv_wnd:%u bytes_sent:%llu bytes_received:%llu segs_out:%llu"
                  " segs_in:%llu retrans:%llu timeouts:%llu%s\n",
                  a.congestion, (a.flags & UTCP_APPF_SACK) ? " sack" : "", (a.flags & UTCP_APPF_TIMESTAMPS) ? " ts" : "",
                  a.snd_wscale, a.rcv_wscale, a.rto_us / 1e3, a.srtt_us / 1e3, a.rttvar_us / 1e3, a.snd_mss, a.rcv_mss,
                  a.cwnd, a.ssthresh, a.snd_wnd, a.rcv_wnd, (unsigned long long)a.bytes_sent, (unsigned long long)a.bytes_received, (unsigned long long)a.segs_out, (unsigned long long)a.segs_in,
                  (unsigned long long)a.retransmits, (unsigned long long)a.timeouts, (a.flags & UTCP_APPF_RECOVERY) ? " recovery" : "");
    }
    std::printf("\t module: rx %llu frames %llu B, drops %llu full %llu too-big; tx %llu frames %llu B, "
                "template rejects %llu, malformed %llu, rate-limited %llu; rings %llu KiB\n",
                (unsigned long long)m.rx_frames, (unsigned long long)m.rx_bytes, (unsigned long long)m.rx_drops_full,
                (unsigned long long)m.rx_drops_too_big, (unsigned long long)m.tx_frames, (unsigned long long)m.tx_bytes,
                (unsigned long long)m.tx_template_rejects, (unsigned long long)m.tx_malformed,
                (unsigned long long)m.tx_rate_limited, (unsigned long long)(m.ring_bytes >> 10));
  }
}

}  // namespace

int utcpctl_ss(const std::vector<std::string>& args) {
  bool json = false, info = false;
  std::string path;
  if (const char* env = std::getenv("UTCP_REGISTRY")) path = env;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "-i" || args[i] == "--info") info = true;
    else if (args[i] == "--registry" && i + 1 < args.size()) path = args[++i];
    else {
      std::fprintf(stderr, "usage: ss [-i|--info] [--json] [--registry SOCKET]\n");
      return 2;
    }
  }
  utcp::registry::RegistryClient rc;
  std::string err;
  std::vector<ListEntry> all;
  if (rc.connect(&err, path.empty() ? nullptr : path.c_str()) < 0 || rc.list(&all, &err) < 0) {
    std::fprintf(stderr, "utcpctl: %s\n", err.c_str());
    return 1;
  }
  // The congestion name is the application's claim: printable ASCII only on a terminal.
  for (ListEntry& e : all)
    for (char& ch : e.app.congestion)
      if (ch && (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f)) ch = '?';
  if (json) print_json(all);
  else print_table(all, info);
  return 0;
}
