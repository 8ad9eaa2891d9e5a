// ethernet.cc - Ethernet II header parsing and emitting.
#include "wire/ethernet.h"

#include <algorithm>
#include <cstring>

namespace utcp {

std::optional<EthernetView> EthernetView::parse(std::span<const uint8_t> frame, ParseError* err) {
  if (frame.size() < EthernetRepr::kHeaderLen) {
    wire::set_error(err, ParseError::kTruncated);
    return std::nullopt;
  }
  return EthernetView(frame);
}

MacAddr EthernetView::mac_at(size_t off) const {
  MacAddr m;
  std::copy_n(b_.data() + off, 6, m.b.begin());
  return m;
}

bool parse_ethernet_into(std::span<const uint8_t> frame, EthernetRepr* out,
                         std::span<const uint8_t>* payload, ParseError* err) {
  auto v = EthernetView::parse(frame, err);
  if (!v) return false;
  std::memcpy(out->dst.b.data(), frame.data(), 6);
  std::memcpy(out->src.b.data(), frame.data() + 6, 6);
  out->ethertype = v->ethertype();
  if (payload != nullptr) *payload = v->payload();
  return true;
}

std::optional<EthernetRepr> parse_ethernet(std::span<const uint8_t> frame,
                                           std::span<const uint8_t>* payload, ParseError* err) {
  EthernetRepr r;
  if (!parse_ethernet_into(frame, &r, payload, err)) return std::nullopt;
  return r;
}

size_t emit_ethernet(const EthernetRepr& repr, std::span<uint8_t> out) {
  if (out.size() < EthernetRepr::kHeaderLen) return 0;
  std::copy(repr.dst.b.begin(), repr.dst.b.end(), out.data());
  std::copy(repr.src.b.begin(), repr.src.b.end(), out.data() + 6);
  wire::store_be16(out.data() + 12, repr.ethertype);
  return EthernetRepr::kHeaderLen;
}

}  // namespace utcp
