// config.cc - parsing of the preload layer's environment variables.
#include "preload/config.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>

namespace utcp::preload {

namespace {

bool parse_uint(const std::string& s, unsigned long max, unsigned long* out) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  unsigned long v = std::strtoul(s.c_str(), nullptr, 10);
  if (v > max) return false;
  *out = v;
  return true;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

bool parse_rule(std::string e, DestRule* r) {
  if (!e.empty() && e[0] == '!') {
    r->exclude = true;
    e = e.substr(1);
  }
  std::string addr = e, ports;
  if (size_t colon = e.find(':'); colon != std::string::npos) {
    addr = e.substr(0, colon);
    ports = e.substr(colon + 1);
    unsigned long lo, hi;
    size_t dash = ports.find('-');
    if (dash == std::string::npos) {
      if (!parse_uint(ports, 65535, &lo) || lo == 0) return false;
      hi = lo;
    } else if (!parse_uint(ports.substr(0, dash), 65535, &lo) || !parse_uint(ports.substr(dash + 1), 65535, &hi) ||
               lo == 0 || hi < lo) {
      return false;
    }
    r->port_lo = uint16_t(lo);
    r->port_hi = uint16_t(hi);
  }
  if (addr == "*") {
    r->net = r->mask = 0;
    return true;
  }
  unsigned long prefix = 32;
  if (size_t slash = addr.find('/'); slash != std::string::npos) {
    if (!parse_uint(addr.substr(slash + 1), 32, &prefix)) return false;
    addr = addr.substr(0, slash);
  }
  in_addr a;
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) return false;
  r->mask = prefix == 0 ? 0 : ~uint32_t(0) << (32 - prefix);
  r->net = ntohl(a.s_addr) & r->mask;
  return true;
}

bool env_flag(const char* name, bool dflt, std::string* error) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  if (!std::strcmp(v, "1")) return true;
  if (!std::strcmp(v, "0")) return false;
  *error += std::string(*error->c_str() ? "; " : "") + name + " must be 0 or 1 (got \"" + v + "\")";
  return dflt;
}

}  // namespace

bool parse_dests(const std::string& text, std::vector<DestRule>* out, std::string* error) {
  std::vector<DestRule> rules;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string e = trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (!e.empty() && e != "none") {
      DestRule r;
      if (!parse_rule(e, &r)) {
        *error = "UTCP_PRELOAD_DESTS: bad entry \"" + e + "\" (want ADDR[/PREFIX][:PORT[-PORT]], * or !EXCLUDED)";
        return false;
      }
      rules.push_back(r);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  *out = std::move(rules);
  return true;
}

bool parse_listen(const std::string& text, std::vector<PortRange>* out, std::string* error) {
  std::vector<PortRange> ranges;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string e = trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (e == "all" || e == "*") {
      ranges.push_back({0, 65535});
    } else if (!e.empty() && e != "none") {
      unsigned long lo, hi;
      size_t dash = e.find('-');
      bool ok = dash == std::string::npos
                    ? parse_uint(e, 65535, &lo) && (hi = lo, true)
                    : parse_uint(e.substr(0, dash), 65535, &lo) && parse_uint(e.substr(dash + 1), 65535, &hi);
      if (!ok || lo == 0 || hi < lo) {
        *error = "UTCP_PRELOAD_LISTEN: bad entry \"" + e + "\" (want PORT[-PORT], all or none)";
        return false;
      }
      ranges.push_back({uint16_t(lo), uint16_t(hi)});
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  *out = std::move(ranges);
  return true;
}

bool wants_utcp_listen(const Config& cfg, uint16_t port) {
  for (const PortRange& r : cfg.listen_ports)
    if (port >= r.lo && port <= r.hi && (port != 0 || r.lo == 0)) return true;
  return false;
}

bool wants_utcp(const Config& cfg, uint32_t ip, uint16_t port) {
  if (ip == 0 || ip == 0xffffffffu || (ip >> 28) == 0xe) return false;
  // Loopback only when named (utcpd serves a real interface: such a connect falls back
  // or fails, which is what the unit tests exercise); "*" and wide prefixes skip it.
  bool loopback = (ip >> 24) == 127;
  bool in = false;
  for (const DestRule& r : cfg.rules) {
    if ((ip & r.mask) != r.net || port < r.port_lo || port > r.port_hi) continue;
    if (loopback && (r.mask >> 24) != 0xff) continue;
    if (r.exclude) return false;
    in = true;
  }
  return in;
}

Config load_config(std::string* error) {
  Config cfg;
  error->clear();
  const char* d = std::getenv("UTCP_PRELOAD_DESTS");
  std::string dests = d ? d : "*";
  std::string e;
  if (!parse_dests(dests, &cfg.rules, &e)) {
    *error = e + "; no destination goes through utcp";
    cfg.rules.clear();
  }
  if (const char* l = std::getenv("UTCP_PRELOAD_LISTEN"); l && *l) {
    std::string le;
    if (!parse_listen(l, &cfg.listen_ports, &le)) {
      *error += std::string(error->empty() ? "" : "; ") + le + "; no listen goes through utcp";
      cfg.listen_ports.clear();
    }
  }
  cfg.fallback = env_flag("UTCP_PRELOAD_FALLBACK", true, error);
  cfg.verbose = env_flag("UTCP_PRELOAD_DEBUG", false, error) ? 1 : 0;
  if (const char* l = std::getenv("UTCP_PRELOAD_LINGER_MS"); l && *l) {
    unsigned long v;
    if (parse_uint(l, 3600000, &v)) cfg.linger_ms = int(v);
    else *error += std::string(error->empty() ? "" : "; ") + "UTCP_PRELOAD_LINGER_MS must be 0..3600000";
  }
  return cfg;
}

}  // namespace utcp::preload
