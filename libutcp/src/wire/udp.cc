// udp.cc - UDP header parsing and emitting.
#include "wire/udp.h"

#include <cstring>

#include "wire/checksum.h"

namespace utcp {

using wire::set_error;

std::optional<UdpView> UdpView::parse(std::span<const uint8_t> datagram, ParseError* err) {
  if (datagram.size() < UdpRepr::kHeaderLen) {
    set_error(err, ParseError::kTruncated);
    return std::nullopt;
  }
  UdpView v(datagram);
  // RFC 768: Length is header + data, so at least 8.
  if (v.length() < UdpRepr::kHeaderLen) {
    set_error(err, ParseError::kBadLength);
    return std::nullopt;
  }
  if (v.length() > datagram.size()) {
    set_error(err, ParseError::kTruncated);
    return std::nullopt;
  }
  return v;
}

bool UdpView::verify_checksum(Ipv4Addr src, Ipv4Addr dst) const {
  // RFC 768: "An all zero transmitted checksum value means that the transmitter
  // generated no checksum"; RFC 1122 §4.1.3.4 lets the receiver accept it.
  if (checksum() == 0) return true;
  const auto d = b_.first(length());
  uint32_t sum = pseudo_header_sum(src, dst, uint8_t(IpProto::kUdp), length());
  return checksum_fold(checksum_add(d, sum)) == 0;
}

std::optional<UdpRepr> parse_udp(std::span<const uint8_t> datagram, Ipv4Addr src, Ipv4Addr dst,
                                 bool verify_checksum, ParseError* err) {
  auto v = UdpView::parse(datagram, err);
  if (!v) return std::nullopt;
  if (verify_checksum && !v->verify_checksum(src, dst)) {
    set_error(err, ParseError::kBadChecksum);
    return std::nullopt;
  }
  return UdpRepr{v->src_port(), v->dst_port(), v->payload()};
}

size_t emit_udp(const UdpRepr& repr, Ipv4Addr src, Ipv4Addr dst, std::span<uint8_t> out,
                bool fill_checksum) {
  constexpr size_t kHdr = UdpRepr::kHeaderLen;
  const size_t plen = repr.payload.size();
  if (out.size() < kHdr || plen > out.size() - kHdr || plen > 0xffff - kHdr) return 0;
  uint8_t* p = out.data();
  if (plen > 0 && repr.payload.data() != p + kHdr) std::memmove(p + kHdr, repr.payload.data(), plen);
  const auto len = uint16_t(kHdr + plen);
  wire::store_be16(p, repr.src_port);
  wire::store_be16(p + 2, repr.dst_port);
  wire::store_be16(p + 4, len);
  wire::store_be16(p + 6, 0);
  if (fill_checksum) {
    uint32_t sum = pseudo_header_sum(src, dst, uint8_t(IpProto::kUdp), len);
    uint16_t check = checksum_fold(checksum_add(out.first(len), sum));
    // RFC 768: "If the computed checksum is zero, it is transmitted as all ones".
    wire::store_be16(p + 6, check == 0 ? 0xffff : check);
  }
  return len;
}

}  // namespace utcp
