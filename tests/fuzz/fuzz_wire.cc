// fuzz_wire.cc - libFuzzer target: parse_frame on arbitrary bytes; whatever parses is re-emitted and must re-parse to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "wire/arp.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

namespace {

using namespace utcp;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_wire: invariant broken: %s\n", what);
  std::abort();
}
#define CHECK(c) \
  do {           \
    if (!(c)) fail(#c); \
  } while (0)

bool inside(std::span<const uint8_t> part, std::span<const uint8_t> whole) {
  return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// Options survive a round trip as emit_tcp writes them: known kinds only, SACK blocks
// capped to what fits.
void check_options(const TcpOptions& sent, const TcpOptions& back) {
  CHECK(back.mss == sent.mss);
  CHECK(back.window_scale == sent.window_scale);
  CHECK(back.sack_permitted == sent.sack_permitted);
  CHECK(back.timestamps == sent.timestamps);
  CHECK(back.sack_count == tcp_sack_blocks_emitted(sent));
  for (size_t i = 0; i < back.sack_count; ++i) CHECK(back.sack[i] == sent.sack[i]);
}

void round_trip(const ParsedFrame& f) {
  std::vector<uint8_t> out(14 + 20 + 60 + 65536);
  CHECK(emit_ethernet(f.eth, out) == 14);
  std::span<uint8_t> l3 = std::span(out).subspan(14);
  size_t total = 14;
  if (f.arp) {
    CHECK(emit_arp(*f.arp, l3) == ArpRepr::kLen);
    total += ArpRepr::kLen;
  } else {
    std::span<uint8_t> l4 = l3.subspan(20);
    size_t l4len;
    if (f.tcp) {
      l4len = emit_tcp(*f.tcp, f.ip.src, f.ip.dst, l4);
      // Canonical options can be longer than the input's; only past 65535 may it fail.
      if (l4len == 0) {
        CHECK(tcp_header_len(*f.tcp) + f.tcp->payload.size() > 0xffff - 20);
        return;
      }
    } else if (f.udp) {
      l4len = emit_udp(*f.udp, f.ip.src, f.ip.dst, l4);
      CHECK(l4len == 8 + f.udp->payload.size());
    } else {
      std::copy(f.ip_payload.begin(), f.ip_payload.end(), l4.begin());
      l4len = f.ip_payload.size();
    }
    if (l4len > 0xffff - 20) return;
    Ipv4Repr ip = f.ip;
    ip.payload_len = uint16_t(l4len);
    CHECK(emit_ipv4(ip, l3) == 20);
    total += 20 + l4len;
  }
  out.resize(total);
  ParseError err = ParseError::kOk;
  auto g = parse_frame(out, true, &err);
  if (!g) fail(to_string(err));
  CHECK(g->eth.dst == f.eth.dst && g->eth.src == f.eth.src && g->eth.ethertype == f.eth.ethertype);
  CHECK(g->arp.has_value() == f.arp.has_value());
  if (f.arp) {
    CHECK(g->arp->op == f.arp->op && g->arp->sender_mac == f.arp->sender_mac &&
          g->arp->target_mac == f.arp->target_mac && g->arp->sender_ip == f.arp->sender_ip &&
          g->arp->target_ip == f.arp->target_ip);
    return;
  }
  CHECK(g->ip.src == f.ip.src && g->ip.dst == f.ip.dst && g->ip.protocol == f.ip.protocol);
  CHECK(g->ip.ttl == f.ip.ttl && g->ip.dscp_ecn == f.ip.dscp_ecn && g->ip.ident == f.ip.ident);
  CHECK(g->ip.dont_fragment == f.ip.dont_fragment);
  CHECK(g->tcp.has_value() == f.tcp.has_value() && g->udp.has_value() == f.udp.has_value());
  if (f.tcp) {
    const TcpRepr &a = *f.tcp, &b = *g->tcp;
    CHECK(a.src_port == b.src_port && a.dst_port == b.dst_port && a.seq == b.seq && a.ack == b.ack);
    CHECK(a.flags == b.flags && a.window == b.window && a.urgent == b.urgent);
    CHECK(std::equal(a.payload.begin(), a.payload.end(), b.payload.begin(), b.payload.end()));
    check_options(a.options, b.options);
  } else if (f.udp) {
    CHECK(f.udp->src_port == g->udp->src_port && f.udp->dst_port == g->udp->dst_port);
    CHECK(std::equal(f.udp->payload.begin(), f.udp->payload.end(), g->udp->payload.begin(),
                     g->udp->payload.end()));
  } else {
    CHECK(std::equal(f.ip_payload.begin(), f.ip_payload.end(), g->ip_payload.begin(),
                     g->ip_payload.end()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized copy: any read past `size` is a heap overflow under ASan.
  std::vector<uint8_t> bytes(data, data + size);
  std::span<const uint8_t> in(bytes);
  for (bool verify : {false, true}) {
    ParseError err = ParseError::kOk;
    auto f = parse_frame(in, verify, &err);
    if (!f) {
      CHECK(err != ParseError::kOk);
      continue;
    }
    CHECK(err == ParseError::kOk);
    CHECK(inside(f->ip_payload, in));
    if (f->tcp) CHECK(inside(f->tcp->payload, f->ip_payload));
    if (f->udp) CHECK(inside(f->udp->payload, f->ip_payload));
    round_trip(*f);
  }
  return 0;
}
