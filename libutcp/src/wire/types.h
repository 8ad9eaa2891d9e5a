// types.h - addresses and the plain representations ("Repr") of the headers utcp speaks.
//
// A Repr is what the protocol code works with: host byte order, no pointers into
// untrusted memory except a payload span that the parser has bounded. Parsing and
// emitting (wire/ethernet.h, ipv4.h, tcp.h, udp.h, arp.h) convert between bytes and Reprs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "wire/seq.h"

namespace utcp {

struct MacAddr {
  std::array<uint8_t, 6> b{};
  constexpr bool operator==(const MacAddr&) const = default;
  static constexpr MacAddr broadcast() { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
};

// IPv4 address held in host byte order (10.0.0.1 == 0x0a000001).
struct Ipv4Addr {
  uint32_t v = 0;
  constexpr bool operator==(const Ipv4Addr&) const = default;
  constexpr auto operator<=>(const Ipv4Addr&) const = default;
  static constexpr Ipv4Addr of(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return {uint32_t(a) << 24 | uint32_t(b) << 16 | uint32_t(c) << 8 | d};
  }
};

enum class EtherType : uint16_t { kIpv4 = 0x0800, kArp = 0x0806, kIpv6 = 0x86dd };

struct EthernetRepr {
  MacAddr dst, src;
  uint16_t ethertype = 0;
  static constexpr size_t kHeaderLen = 14;
};

enum class IpProto : uint8_t { kIcmp = 1, kTcp = 6, kUdp = 17 };

struct Ipv4Repr {
  Ipv4Addr src, dst;
  uint8_t protocol = 0;
  uint8_t ttl = 64;
  uint8_t dscp_ecn = 0;
  bool dont_fragment = true;
  uint16_t ident = 0;
  uint16_t payload_len = 0;  // bytes after the IPv4 header
  static constexpr size_t kHeaderLen = 20;  // utcp emits no IP options
};

namespace tcp_flags {
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10,
                         kUrg = 0x20, kEce = 0x40, kCwr = 0x80;
}

struct SackBlock {
  SeqNum left, right;  // [left, right)
  constexpr bool operator==(const SackBlock&) const = default;
};

struct TcpTimestamps {
  uint32_t tsval = 0, tsecr = 0;
  constexpr bool operator==(const TcpTimestamps&) const = default;
};

// Every option utcp understands; unknown options are skipped by the parser.
struct TcpOptions {
  std::optional<uint16_t> mss;            // kind 2 (SYN only)
  std::optional<uint8_t> window_scale;    // kind 3 (SYN only), shift as sent (may be >14)
  bool sack_permitted = false;            // kind 4 (SYN only)
  std::optional<TcpTimestamps> timestamps;  // kind 8
  uint8_t sack_count = 0;                 // kind 5: blocks in `sack`
  std::array<SackBlock, 4> sack{};
};

struct TcpRepr {
  uint16_t src_port = 0, dst_port = 0;
  SeqNum seq;
  SeqNum ack;              // meaningful when flags has kAck
  uint8_t flags = 0;
  uint16_t window = 0;     // raw field, before scaling
  uint16_t urgent = 0;
  TcpOptions options;
  std::span<const uint8_t> payload;  // points into the parsed frame, or caller's data to emit

  bool has(uint8_t f) const { return (flags & f) != 0; }
  // RFC 9293 §3.4: SYN and FIN each occupy one sequence number.
  uint32_t seg_len() const {
    return uint32_t(payload.size()) + (has(tcp_flags::kSyn) ? 1 : 0) + (has(tcp_flags::kFin) ? 1 : 0);
  }
  static constexpr size_t kMinHeaderLen = 20;
  static constexpr size_t kMaxHeaderLen = 60;
};

struct UdpRepr {
  uint16_t src_port = 0, dst_port = 0;
  std::span<const uint8_t> payload;
  static constexpr size_t kHeaderLen = 8;
};

struct ArpRepr {
  uint16_t op = 0;  // 1 request, 2 reply
  MacAddr sender_mac, target_mac;
  Ipv4Addr sender_ip, target_ip;
  static constexpr size_t kLen = 28;
};

// Why a parser refused its input; tests and statistics read it.
enum class ParseError : uint8_t {
  kOk = 0,
  kTruncated,     // shorter than a length it claims or the minimum header
  kBadVersion,    // IPv4 version != 4
  kBadHeaderLen,  // IHL or data offset out of range
  kBadLength,     // total/UDP length inconsistent with the bytes present
  kBadChecksum,
  kFragment,      // IPv4 fragment (utcp does not reassemble)
  kBadOption,     // malformed option list
  kUnsupported,   // well-formed but not something utcp handles (e.g. ARP for non-Ethernet/IPv4)
};

const char* to_string(ParseError e);

}  // namespace utcp
