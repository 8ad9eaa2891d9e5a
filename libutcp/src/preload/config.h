// config.h - the preload layer's settings, read from the environment (docs/preload.md).
//
// UTCP_PRELOAD_DESTS chooses which IPv4 destinations go through utcp: a comma-separated
// list of ADDR[/PREFIX][:PORT[-PORT]] ("*" is every address), a leading "!" excludes.
// 0.0.0.0, broadcast and multicast never do; loopback only when a rule names 127/8 or
// narrower (utcpd serves a real interface, so that is for tests of the fallback).
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

struct Config {
  std::vector<DestRule> rules;  // empty: nothing goes through utcp
  bool fallback = true;         // UTCP_PRELOAD_FALLBACK: kernel TCP when utcpd cannot serve
  int linger_ms = 30000;        // UTCP_PRELOAD_LINGER_MS: how long closed connections are driven at exit
  int verbose = 0;              // UTCP_PRELOAD_DEBUG: 1 logs each connection's path to stderr
};

// Parses a UTCP_PRELOAD_DESTS value. Returns false with `error` naming the bad entry.
bool parse_dests(const std::string& text, std::vector<DestRule>* out, std::string* error);
// Whether a connection to ip:port (host byte order) should go through utcp.
bool wants_utcp(const Config& cfg, uint32_t ip, uint16_t port);
// Reads the environment. A malformed variable leaves its default and sets `error`.
Config load_config(std::string* error);

}  // namespace utcp::preload
