// tcp.cc - TCP header and option parsing and emitting.
#include "wire/tcp.h"

#include <algorithm>
#include <cstring>

#include "wire/checksum.h"

namespace utcp {

using wire::load_be16;
using wire::load_be32;
using wire::set_error;
using wire::store_be16;
using wire::store_be32;

namespace {

constexpr size_t kMaxOptionsLen = TcpRepr::kMaxHeaderLen - TcpRepr::kMinHeaderLen;  // 40

// Option lengths (RFC 9293 §3.2, RFC 7323 §2.2/§3.2, RFC 2018 §2/§3).
constexpr uint8_t kMssLen = 4, kWsLen = 3, kSackPermLen = 2, kTsLen = 10, kSackBaseLen = 2,
                  kSackBlockLen = 8;
constexpr size_t kMaxSackBlocks = 4;

}  // namespace

std::optional<TcpView> TcpView::parse(std::span<const uint8_t> segment, ParseError* err) {
  if (segment.size() < TcpRepr::kMinHeaderLen) {
    set_error(err, ParseError::kTruncated);
    return std::nullopt;
  }
  TcpView v(segment);
  // RFC 9293 §3.1: Data Offset counts 32-bit words; the header is at least 20 bytes.
  if (v.header_len() < TcpRepr::kMinHeaderLen || v.header_len() > segment.size()) {
    set_error(err, ParseError::kBadHeaderLen);
    return std::nullopt;
  }
  return v;
}

bool TcpView::verify_checksum(Ipv4Addr src, Ipv4Addr dst) const {
  uint32_t sum = pseudo_header_sum(src, dst, uint8_t(IpProto::kTcp), uint16_t(b_.size()));
  return checksum_fold(checksum_add(b_, sum)) == 0;
}

bool parse_tcp_options(std::span<const uint8_t> opts, TcpOptions* out, ParseError* err) {
  const uint8_t* p = opts.data();
  const size_t n = opts.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t kind = p[i];
    // RFC 9293 §3.1: End of Option List ends parsing; the rest is padding.
    if (kind == tcp_option::kEol) break;
    // RFC 9293 §3.1: No-Operation is a single byte.
    if (kind == tcp_option::kNop) {
      ++i;
      continue;
    }
    // RFC 9293 §3.2 (MUST-7): be prepared for an illegal option length (e.g. zero)
    // without crashing; a length below 2 or past the header ends the segment's use.
    if (i + 1 >= n) {
      set_error(err, ParseError::kBadOption);
      return false;
    }
    const uint8_t len = p[i + 1];
    if (len < 2 || len > n - i) {
      set_error(err, ParseError::kBadOption);
      return false;
    }
    const uint8_t* v = p + i + 2;
    switch (kind) {
      case tcp_option::kMss:  // RFC 9293 §3.2: kind 2, length 4, 16-bit MSS
        if (len == kMssLen) out->mss = load_be16(v);
        break;
      case tcp_option::kWindowScale:  // RFC 7323 §2.2: kind 3, length 3, shift count
        if (len == kWsLen) out->window_scale = v[0];
        break;
      case tcp_option::kSackPermitted:  // RFC 2018 §2: kind 4, length 2
        if (len == kSackPermLen) out->sack_permitted = true;
        break;
      case tcp_option::kTimestamps:  // RFC 7323 §3.2: kind 8, length 10, TSval, TSecr
        if (len == kTsLen) out->timestamps = TcpTimestamps{load_be32(v), load_be32(v + 4)};
        break;
      case tcp_option::kSack: {  // RFC 2018 §3: kind 5, length 2 + 8n
        const size_t body = size_t(len) - kSackBaseLen;
        const size_t blocks = body / kSackBlockLen;
        // A length that is not 2 + 8n with n >= 1 is ignored, as Linux does; more than 4
        // blocks cannot fit in 40 option bytes and so never reach this point.
        if (body % kSackBlockLen == 0 && blocks >= 1 && blocks <= kMaxSackBlocks) {
          out->sack_count = uint8_t(blocks);
          for (size_t b = 0; b < blocks; ++b) {
            out->sack[b] = SackBlock{SeqNum(load_be32(v + 8 * b)), SeqNum(load_be32(v + 8 * b + 4))};
          }
        }
        break;
      }
      default:  // RFC 9293 §3.2 (MUST-68): ignore options not implemented, by length.
        break;
    }
    i += len;
  }
  return true;
}

bool parse_tcp_into(std::span<const uint8_t> segment, Ipv4Addr src, Ipv4Addr dst,
                    bool verify_checksum, TcpRepr* out, ParseError* err) {
  auto v = TcpView::parse(segment, err);
  if (!v) return false;
  if (verify_checksum && !v->verify_checksum(src, dst)) {
    set_error(err, ParseError::kBadChecksum);
    return false;
  }
  TcpRepr& r = *out;
  r.options = TcpOptions{};
  if (!parse_tcp_options(v->options(), &r.options, err)) return false;
  r.src_port = v->src_port();
  r.dst_port = v->dst_port();
  r.seq = SeqNum(v->seq());
  r.ack = SeqNum(v->ack());
  r.flags = v->flags();
  r.window = v->window();
  r.urgent = v->urgent();
  r.payload = v->payload();
  return true;
}

std::optional<TcpRepr> parse_tcp(std::span<const uint8_t> segment, Ipv4Addr src, Ipv4Addr dst,
                                 bool verify_checksum, ParseError* err) {
  TcpRepr r;
  if (!parse_tcp_into(segment, src, dst, verify_checksum, &r, err)) return std::nullopt;
  return r;
}

namespace {

// Bytes of options before the SACK blocks, in the Linux layout.
size_t fixed_options_len(const TcpOptions& o) {
  size_t len = 0;
  if (o.mss) len += 4;
  if (o.timestamps) len += 12;            // [SACK-perm | NOP NOP] + TS
  else if (o.sack_permitted) len += 4;    // NOP NOP SACK-perm
  if (o.window_scale) len += 4;           // NOP WS
  return len;
}

}  // namespace

size_t tcp_sack_blocks_emitted(const TcpOptions& o) {
  const size_t room = kMaxOptionsLen - fixed_options_len(o);
  if (o.sack_count == 0 || room < 4 + kSackBlockLen) return 0;
  return std::min<size_t>({o.sack_count, kMaxSackBlocks, (room - 4) / kSackBlockLen});
}

size_t tcp_options_len(const TcpOptions& o) {
  const size_t blocks = tcp_sack_blocks_emitted(o);
  return fixed_options_len(o) + (blocks > 0 ? 4 + kSackBlockLen * blocks : 0);
}

size_t tcp_header_len(const TcpRepr& repr) {
  return TcpRepr::kMinHeaderLen + tcp_options_len(repr.options);
}

namespace {

// Writes header fields and options (checksum zero); returns the header length.
size_t write_header(const TcpRepr& r, uint8_t* p) {
  const size_t hlen = tcp_header_len(r);
  store_be16(p, r.src_port);
  store_be16(p + 2, r.dst_port);
  store_be32(p + 4, r.seq.raw());
  store_be32(p + 8, r.ack.raw());
  p[12] = uint8_t((hlen / 4) << 4);  // RFC 9293 §3.1: data offset; reserved bits zero
  p[13] = r.flags;
  store_be16(p + 14, r.window);
  store_be16(p + 16, 0);
  store_be16(p + 18, r.urgent);
  uint8_t* o = p + TcpRepr::kMinHeaderLen;
  const TcpOptions& opt = r.options;
  if (opt.mss) {
    *o++ = tcp_option::kMss;
    *o++ = kMssLen;
    store_be16(o, *opt.mss);
    o += 2;
  }
  if (opt.timestamps) {
    // Linux puts SACK-permitted in the two padding bytes before the timestamps.
    if (opt.sack_permitted) {
      *o++ = tcp_option::kSackPermitted;
      *o++ = kSackPermLen;
    } else {
      *o++ = tcp_option::kNop;
      *o++ = tcp_option::kNop;
    }
    *o++ = tcp_option::kTimestamps;
    *o++ = kTsLen;
    store_be32(o, opt.timestamps->tsval);
    store_be32(o + 4, opt.timestamps->tsecr);
    o += 8;
  } else if (opt.sack_permitted) {
    *o++ = tcp_option::kNop;
    *o++ = tcp_option::kNop;
    *o++ = tcp_option::kSackPermitted;
    *o++ = kSackPermLen;
  }
  if (opt.window_scale) {
    *o++ = tcp_option::kNop;
    *o++ = tcp_option::kWindowScale;
    *o++ = kWsLen;
    *o++ = *opt.window_scale;
  }
  if (const size_t blocks = tcp_sack_blocks_emitted(opt); blocks > 0) {
    *o++ = tcp_option::kNop;
    *o++ = tcp_option::kNop;
    *o++ = tcp_option::kSack;
    *o++ = uint8_t(kSackBaseLen + kSackBlockLen * blocks);
    for (size_t b = 0; b < blocks; ++b) {
      store_be32(o, opt.sack[b].left.raw());
      store_be32(o + 4, opt.sack[b].right.raw());
      o += 8;
    }
  }
  return hlen;
}

}  // namespace

size_t emit_tcp_header(const TcpRepr& repr, Ipv4Addr src, Ipv4Addr dst, std::span<uint8_t> out,
                       size_t payload_len, uint32_t payload_sum, bool fill_checksum) {
  const size_t hlen = tcp_header_len(repr);
  if (out.size() < hlen || payload_len > 0xffff - hlen) return 0;
  write_header(repr, out.data());
  const auto seg_len = uint16_t(hlen + payload_len);
  const uint32_t pseudo = pseudo_header_sum(src, dst, uint8_t(IpProto::kTcp), seg_len);
  uint16_t check;
  if (fill_checksum) {
    // RFC 9293 §3.1: ones'-complement of the sum over pseudo-header, header and data.
    check = checksum_fold(checksum_combine(checksum_add(out.first(hlen), pseudo), payload_sum));
  } else {
    check = uint16_t(~checksum_fold(pseudo));
  }
  store_be16(out.data() + 16, check);
  return hlen;
}

size_t emit_tcp(const TcpRepr& repr, Ipv4Addr src, Ipv4Addr dst, std::span<uint8_t> out,
                bool fill_checksum) {
  const size_t hlen = tcp_header_len(repr);
  const size_t plen = repr.payload.size();
  if (out.size() < hlen || plen > out.size() - hlen || plen > 0xffff - hlen) return 0;
  uint8_t* data = out.data() + hlen;
  // In-place building: the payload already sits where it belongs.
  if (plen > 0 && repr.payload.data() != data) std::memmove(data, repr.payload.data(), plen);
  const uint32_t psum = fill_checksum ? checksum_add({data, plen}) : 0;
  emit_tcp_header(repr, src, dst, out, plen, psum, fill_checksum);
  return hlen + plen;
}

}  // namespace utcp
