// gso.cc - SoftGso: segmentation offload in software (see gso.h).
#include "device/gso.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/types.h"

namespace utcp {

using wire::load_be16;
using wire::load_be32;
using wire::store_be16;
using wire::store_be32;

namespace {
constexpr size_t kEth = 14;
}  // namespace

SoftGso::SoftGso(Device& inner, size_t max_frame, size_t payload_area)
    : inner_(inner), buf_(std::min<size_t>(max_frame, kEth + 65535)), area_(payload_area) {}

void SoftGso::tx_commit_split(size_t hdr_len, std::span<const uint8_t> payload) {
  // Joined here rather than at flush: the frame is cut into segments at commit anyway.
  if (hdr_len > buf_.size() || payload.size() > buf_.size() - hdr_len ||
      payload.data() < area_.data() || payload.data() + payload.size() > area_.data() + area_.size()) {
    ++stats_.frames;
    ++stats_.dropped;
    return;
  }
  std::memcpy(buf_.data() + hdr_len, payload.data(), payload.size());
  tx_commit(hdr_len + payload.size());
}

DeviceCaps SoftGso::caps() const {
  DeviceCaps c = inner_.caps();
  c.max_tx_frame = uint32_t(buf_.size());
  c.tx_tcp_checksum_offload = true;
  return c;
}

std::span<uint8_t> SoftGso::tx_buffer(size_t len) {
  if (len > buf_.size() || !drain()) return {};
  return buf_;
}

bool SoftGso::drain() {
  while (pending_head_ < pending_n_) {
    if (!inner_.transmit(pending_[pending_head_])) return false;
    ++pending_head_;
  }
  pending_head_ = pending_n_ = 0;
  return true;
}

void SoftGso::flush(Instant now) {
  drain();
  inner_.flush(now);
  drain();  // what the flush made room for
}

void SoftGso::emit(std::span<const uint8_t> frame) {
  ++stats_.segments;
  if (pending_head_ == pending_n_ && inner_.transmit(frame)) return;
  if (pending_n_ == pending_.size()) pending_.emplace_back();
  pending_[pending_n_++].assign(frame.begin(), frame.end());
}

void SoftGso::tx_commit(size_t len) {
  ++stats_.frames;
  uint8_t* f = buf_.data();
  len = std::min(len, buf_.size());
  const size_t mtu = inner_.caps().mtu;
  const bool ipv4 = len >= kEth + 20 && load_be16(f + 12) == uint16_t(EtherType::kIpv4) && (f[kEth] >> 4) == 4;
  const size_t ihl = ipv4 ? size_t(f[kEth] & 0xf) * 4 : 0;
  if (!ipv4 || ihl < 20 || kEth + ihl + 20 > len || f[kEth + 9] != uint8_t(IpProto::kTcp) ||
      load_be16(f + kEth + 2) != len - kEth || (load_be16(f + kEth + 6) & 0x3fff) != 0) {
    // Not a whole unfragmented IPv4 TCP frame: as it is, if the inner device takes it.
    if (len > inner_.caps().max_tx_frame) {
      ++stats_.dropped;
      return;
    }
    emit({f, len});
    return;
  }
  uint8_t* ip = f + kEth;
  uint8_t* th = ip + ihl;
  const size_t thl = size_t(th[12] >> 4) * 4;
  if (thl < 20 || kEth + ihl + thl > len || ihl + thl >= mtu) {
    ++stats_.dropped;
    return;
  }
  const size_t hdrs = kEth + ihl + thl;
  const size_t payload = len - hdrs;
  const size_t gso = mtu - ihl - thl;
  const size_t nseg = payload == 0 ? 1 : (payload + gso - 1) / gso;
  if (nseg > 1) ++stats_.gso_frames;
  const uint32_t seq0 = load_be32(th + 4);
  const uint16_t id0 = load_be16(ip + 4);
  const uint8_t flags0 = th[13];
  const Ipv4Addr src{load_be32(ip + 12)}, dst{load_be32(ip + 16)};
  std::array<uint8_t, kEth + 60 + 60> hdr;
  std::memcpy(hdr.data(), f, hdrs);
  uint8_t* hip = hdr.data() + kEth;
  uint8_t* hth = hip + ihl;
  for (size_t i = 0; i < nseg; ++i) {
    const size_t off = i * gso;
    const size_t n = std::min(gso, payload - std::min(payload, off));
    const bool last = i + 1 == nseg;
    // IPv4: length, ident (Linux numbers the segments of a GSO frame), checksum.
    store_be16(hip + 2, uint16_t(ihl + thl + n));
    store_be16(hip + 4, uint16_t(id0 + i));
    store_be16(hip + 10, 0);
    store_be16(hip + 10, checksum_fold(checksum_add({hip, ihl})));
    // TCP: sequence number, flags, checksum over pseudo-header, header and data.
    store_be32(hth + 4, seq0 + uint32_t(off));
    uint8_t fl = flags0;
    if (!last) fl &= uint8_t(~(tcp_flags::kFin | tcp_flags::kPsh));
    if (i > 0) fl &= uint8_t(~0x80);  // CWR
    hth[13] = fl;
    store_be16(hth + 16, 0);
    seg_.resize(hdrs + n);
    std::memcpy(seg_.data(), hdr.data(), hdrs);
    std::memcpy(seg_.data() + hdrs, f + hdrs + off, n);
    uint32_t sum = pseudo_header_sum(src, dst, uint8_t(IpProto::kTcp), uint16_t(thl + n));
    sum = checksum_add({seg_.data() + kEth + ihl, thl + n}, sum);
    store_be16(seg_.data() + kEth + ihl + 16, checksum_fold(sum));
    emit(seg_);
  }
}

}  // namespace utcp
