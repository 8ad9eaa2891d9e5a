// ipv4.cc - IPv4 header parsing and emitting.
#include "wire/ipv4.h"

#include "wire/checksum.h"

namespace utcp {

using wire::set_error;

std::optional<Ipv4View> Ipv4View::parse(std::span<const uint8_t> packet, ParseError* err) {
  if (packet.size() < Ipv4Repr::kHeaderLen) {
    set_error(err, ParseError::kTruncated);
    return std::nullopt;
  }
  Ipv4View v(packet);
  // RFC 791 §3.1: Version 4.
  if (v.version() != 4) {
    set_error(err, ParseError::kBadVersion);
    return std::nullopt;
  }
  // RFC 791 §3.1: IHL counts 32-bit words; "the minimum value for a correct header is 5".
  if (v.header_len() < Ipv4Repr::kHeaderLen || v.header_len() > packet.size()) {
    set_error(err, ParseError::kBadHeaderLen);
    return std::nullopt;
  }
  // RFC 791 §3.1: Total Length covers header and data. RFC 1122 §3.3.1 / RFC 894: a
  // link may pad short frames, so more bytes than claimed are fine; fewer are not.
  if (v.total_len() < v.header_len()) {
    set_error(err, ParseError::kBadLength);
    return std::nullopt;
  }
  if (v.total_len() > packet.size()) {
    set_error(err, ParseError::kTruncated);
    return std::nullopt;
  }
  return v;
}

bool Ipv4View::verify_checksum() const {
  // RFC 791 §3.1: the checksum covers the header only; a correct header sums to zero.
  return checksum_fold(checksum_add(header())) == 0;
}

bool parse_ipv4_into(std::span<const uint8_t> packet, Ipv4Repr* out,
                     std::span<const uint8_t>* payload, bool verify_checksum, ParseError* err) {
  auto v = Ipv4View::parse(packet, err);
  if (!v) return false;
  if (verify_checksum && !v->verify_checksum()) {
    set_error(err, ParseError::kBadChecksum);
    return false;
  }
  // RFC 791 §3.2: a fragment has MF set or a nonzero offset. utcp does not reassemble:
  // it sets DF and negotiates the MSS, so a fragment is refused rather than misread.
  if (v->more_fragments() || v->frag_offset() != 0) {
    set_error(err, ParseError::kFragment);
    return false;
  }
  Ipv4Repr& r = *out;
  r.src = v->src();
  r.dst = v->dst();
  r.protocol = v->protocol();
  r.ttl = v->ttl();
  r.dscp_ecn = v->dscp_ecn();
  r.dont_fragment = v->dont_fragment();
  r.ident = v->ident();
  r.payload_len = uint16_t(v->total_len() - v->header_len());
  if (payload != nullptr) *payload = v->payload();
  return true;
}

std::optional<Ipv4Repr> parse_ipv4(std::span<const uint8_t> packet,
                                   std::span<const uint8_t>* payload, bool verify_checksum,
                                   ParseError* err) {
  Ipv4Repr r;
  if (!parse_ipv4_into(packet, &r, payload, verify_checksum, err)) return std::nullopt;
  return r;
}

size_t emit_ipv4(const Ipv4Repr& repr, std::span<uint8_t> out) {
  constexpr size_t kHdr = Ipv4Repr::kHeaderLen;
  if (out.size() < kHdr || repr.payload_len > 0xffff - kHdr) return 0;
  uint8_t* p = out.data();
  p[0] = 0x45;  // RFC 791 §3.1: version 4, IHL 5 (utcp emits no options)
  p[1] = repr.dscp_ecn;
  wire::store_be16(p + 2, uint16_t(kHdr + repr.payload_len));
  wire::store_be16(p + 4, repr.ident);
  // RFC 791 §3.1 Flags: bit 1 is DF; fragment offset 0 (never a fragment).
  wire::store_be16(p + 6, repr.dont_fragment ? 0x4000 : 0);
  p[8] = repr.ttl;
  p[9] = repr.protocol;
  wire::store_be16(p + 10, 0);
  wire::store_be32(p + 12, repr.src.v);
  wire::store_be32(p + 16, repr.dst.v);
  // RFC 791 §3.1: checksum computed with the checksum field zero.
  wire::store_be16(p + 10, checksum_fold(checksum_add(out.first(kHdr))));
  return kHdr;
}

}  // namespace utcp
