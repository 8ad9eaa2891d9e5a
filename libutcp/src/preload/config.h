// config.h - the preload layer's settings, read from the environment (docs/preload.md).
//
// UTCP_PRELOAD_DESTS chooses which IPv4 destinations go through utcp: a comma-separated
// list of ADDR[/PREFIX][:PORT[-PORT]] ("*" is every address), a leading "!" excludes.
// 0.0.0.0, broadcast and multicast never do; loopback only when a rule names 127/8 or
// narrower (utcpd serves a real interface, so that is for tests of the fallback).
//
// UTCP_PRELOAD_LISTEN chooses which local ports a listen() takes through utcpd's passive
// open: a comma-separated list of PORT[-PORT], "all" (or "*") for every port, "none" or
// empty (the default) for none: servers then stay on the kernel's TCP.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace utcp::preload {

struct DestRule {
  uint32_t net = 0, mask = 0;  // host byte order
  uint16_t port_lo = 0, port_hi = 65535;
  bool exclude = false;
};

struct PortRange {
  uint16_t lo = 0, hi = 0;
};

struct Config {
  std::vector<DestRule> rules;  // empty: nothing goes through utcp
  std::vector<PortRange> listen_ports;  // UTCP_PRELOAD_LISTEN; {0, 65535} for "all"
  bool fallback = true;         // UTCP_PRELOAD_FALLBACK: kernel TCP when utcpd cannot serve
  int linger_ms = 30000;        // UTCP_PRELOAD_LINGER_MS: how long closed connections are driven at exit
  int verbose = 0;              // UTCP_PRELOAD_DEBUG: 1 logs each connection's path to stderr
};

// Parses a UTCP_PRELOAD_DESTS value. Returns false with `error` naming the bad entry.
bool parse_dests(const std::string& text, std::vector<DestRule>* out, std::string* error);
// Whether a connection to ip:port (host byte order) should go through utcp.
bool wants_utcp(const Config& cfg, uint32_t ip, uint16_t port);
// Parses a UTCP_PRELOAD_LISTEN value. Returns false with `error` naming the bad entry.
bool parse_listen(const std::string& text, std::vector<PortRange>* out, std::string* error);
// Whether a listen() on local `port` (0: not bound, an ephemeral port) goes through utcpd.
bool wants_utcp_listen(const Config& cfg, uint16_t port);
// Whether the layer has anything to do (some destination or listen port is chosen).
inline bool takes_any(const Config& cfg) { return !cfg.rules.empty() || !cfg.listen_ports.empty(); }
// Reads the environment. A malformed variable leaves its default and sets `error`.
Config load_config(std::string* error);

}  // namespace utcp::preload
