// arp.cc - ARP parsing and emitting for Ethernet/IPv4.
#include "wire/arp.h"

#include <algorithm>

namespace utcp {

using wire::set_error;

namespace {
constexpr uint16_t kHtypeEthernet = 1;  // RFC 826 ar$hrd; IANA hardware type 1
}

std::optional<ArpView> ArpView::parse(std::span<const uint8_t> packet, ParseError* err) {
  if (packet.size() < ArpRepr::kLen) {
    set_error(err, ParseError::kTruncated);
    return std::nullopt;
  }
  return ArpView(packet);
}

MacAddr ArpView::mac_at(size_t off) const {
  MacAddr m;
  std::copy_n(b_.data() + off, 6, m.b.begin());
  return m;
}

std::optional<ArpRepr> parse_arp(std::span<const uint8_t> packet, ParseError* err) {
  auto v = ArpView::parse(packet, err);
  if (!v) return std::nullopt;
  // RFC 826 "Packet Reception": check ar$hrd and ar$pro (with their lengths) are ours.
  if (v->htype() != kHtypeEthernet || v->ptype() != uint16_t(EtherType::kIpv4) ||
      v->hlen() != 6 || v->plen() != 4) {
    set_error(err, ParseError::kUnsupported);
    return std::nullopt;
  }
  if (v->op() != arp_op::kRequest && v->op() != arp_op::kReply) {
    set_error(err, ParseError::kUnsupported);
    return std::nullopt;
  }
  return ArpRepr{v->op(), v->sender_mac(), v->target_mac(), v->sender_ip(), v->target_ip()};
}

size_t emit_arp(const ArpRepr& repr, std::span<uint8_t> out) {
  if (out.size() < ArpRepr::kLen) return 0;
  uint8_t* p = out.data();
  wire::store_be16(p, kHtypeEthernet);
  wire::store_be16(p + 2, uint16_t(EtherType::kIpv4));
  p[4] = 6;
  p[5] = 4;
  wire::store_be16(p + 6, repr.op);
  std::copy(repr.sender_mac.b.begin(), repr.sender_mac.b.end(), p + 8);
  wire::store_be32(p + 14, repr.sender_ip.v);
  std::copy(repr.target_mac.b.begin(), repr.target_mac.b.end(), p + 18);
  wire::store_be32(p + 24, repr.target_ip.v);
  return ArpRepr::kLen;
}

}  // namespace utcp
