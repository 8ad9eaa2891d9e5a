// protocol.cc - validation of registry requests (used by utcpd on every message).
#include "registry/protocol.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace utcp::registry {
namespace {

template <typename T>
bool read_as(std::span<const uint8_t> msg, T* out) {
  if (msg.size() != sizeof(T)) return false;
  std::memcpy(out, msg.data(), sizeof(T));
  return true;
}

// 0, or why `r` is not a ring size any utcpd could grant.
const char* check_rings(const RingSize& r) {
  auto bad_entries = [](uint32_t n) { return n != 0 && ((n & (n - 1)) != 0 || n > kMaxRingEntries); };
  if (bad_entries(r.rx_entries) || bad_entries(r.tx_entries))
    return "ring entries must be 0 (the default) or a power of two up to 4096";
  if (r.slot_size != 0 && (r.slot_size < kMinRingSlot || r.slot_size > kMaxRingSlot || r.slot_size % kRingSlotAlign))
    return "slot size must be 0 (the default) or a multiple of 64 from 1536 to 65792";
  return nullptr;
}

uint32_t pow2_at_least(uint64_t n) {
  uint32_t p = 1;
  while (p < n && p < kMaxRingEntries) p <<= 1;
  return p;
}

}  // namespace

RingSize rings_for(uint32_t rcvbuf, uint32_t sndbuf, uint32_t max_frame) {
  RingSize r;
  uint32_t slot = 0;
  if (max_frame) {
    uint64_t s = (uint64_t(max_frame) + kRingSlotAlign - 1) / kRingSlotAlign * kRingSlotAlign;
    slot = uint32_t(std::clamp<uint64_t>(s, kMinRingSlot, kMaxRingSlot));
    r.slot_size = slot;
  }
  // A received frame carries one full segment when slots hold one MTU-sized frame; with
  // larger slots GRO merges segments and a frame is counted as a quarter slot (a window
  // of unmerged segments then overflows the ring and is retransmitted, as with a NIC's
  // ring). A sent frame carries up to one slot (GSO), at least one segment. Segments of
  // MTU 1500: 1460 bytes behind 54 bytes of headers.
  constexpr uint32_t kSegment = 1460, kHeaders = 54;
  const uint32_t rx_payload = std::max(slot / 4, kSegment);
  const uint32_t tx_payload = std::max(slot, kSegment + kHeaders) - kHeaders;
  if (rcvbuf) r.rx_entries = uint16_t(pow2_at_least((uint64_t(rcvbuf) + rx_payload - 1) / rx_payload));
  if (sndbuf) r.tx_entries = uint16_t(pow2_at_least((uint64_t(sndbuf) + tx_payload - 1) / tx_payload));
  return r;
}

int validate_request(std::span<const uint8_t> msg, std::string* why) {
  RegHeader h;
  if (msg.size() < sizeof(h)) {
    *why = "message shorter than its header";
    return -EBADMSG;
  }
  std::memcpy(&h, msg.data(), sizeof(h));
  if (h.magic != kMagic) {
    *why = "bad magic: not a utcp registry message";
    return -EBADMSG;
  }
  if (h.version != kProtocolVersion) {
    *why = "registry protocol version " + std::to_string(h.version) + " not spoken here (utcpd speaks " +
           std::to_string(kProtocolVersion) + "): use libutcp and utcpd from one release";
    return -EPROTONOSUPPORT;
  }
  if (h.length != msg.size()) {
    *why = "length field disagrees with the message size";
    return -EBADMSG;
  }
  switch (static_cast<MsgType>(h.type)) {
    case MsgType::kHello: {
      HelloRequest r;
      if (!read_as(msg, &r)) break;
      if (r.reserved) { *why = "reserved field not zero"; return -EINVAL; }
      return 0;
    }
    case MsgType::kConnect: {
      ConnectRequest r;
      if (!read_as(msg, &r)) break;
      if (r.flags & ~(kConnectHandshake | kConnectUdp | kConnectReuse)) {
        *why = "unknown flags";
        return -EINVAL;
      }
      if (r.flags & kConnectReuse) {
        if (r.reuse_id == 0) { *why = "kConnectReuse names no endpoint (reuse_id 0)"; return -EINVAL; }
        if (r.flags & (kConnectHandshake | kConnectUdp)) {
          *why = "kConnectReuse is for a TCP endpoint whose handshake the library runs";
          return -EINVAL;
        }
        if (r.rings.rx_entries || r.rings.tx_entries || r.rings.slot_size) {
          *why = "kConnectReuse keeps the endpoint's rings (ring sizes must be 0)";
          return -EINVAL;
        }
      } else if (r.reuse_id) {
        *why = "reuse_id without kConnectReuse";
        return -EINVAL;
      }
      if ((r.flags & kConnectHandshake) && (r.flags & kConnectUdp)) {
        *why = "UDP has no handshake";
        return -EINVAL;
      }
      if (const char* bad = check_rings(r.rings)) { *why = bad; return -EINVAL; }
      if (r.remote_port == 0) { *why = "remote port 0"; return -EINVAL; }
      uint8_t first = uint8_t(r.remote_ip >> 24);
      if (r.remote_ip == 0 || first == 127 || first >= 224) {
        *why = "remote address is not a unicast address utcp can reach";
        return -ENETUNREACH;
      }
      return 0;
    }
    case MsgType::kListen: {
      ListenRequest r;
      if (!read_as(msg, &r)) break;
      if (r.reserved || (r.flags & ~(kListenAccept | kListenReuseAddr))) {
        *why = "unknown flags or reserved field not zero";
        return -EINVAL;
      }
      if ((r.flags & kListenReuseAddr) && !(r.flags & kListenAccept)) {
        *why = "kListenReuseAddr is for listens utcpd accepts on (kListenAccept)";
        return -EINVAL;
      }
      if (const char* bad = check_rings(r.rings)) { *why = bad; return -EINVAL; }
      uint8_t first = uint8_t(r.local_ip >> 24);
      if (r.local_ip != 0 && (first == 127 || first >= 224)) {
        *why = "local address is not a unicast address utcp serves";
        return -EADDRNOTAVAIL;
      }
      return 0;
    }
    case MsgType::kAccept: {
      AcceptRequest r;
      if (!read_as(msg, &r)) break;
      if (r.reserved || (r.flags & ~kAcceptWait)) {
        *why = "unknown flags or reserved field not zero";
        return -EINVAL;
      }
      if (const char* bad = check_rings(r.rings)) { *why = bad; return -EINVAL; }
      if (r.listen_id == 0) { *why = "listen id 0"; return -EINVAL; }
      return 0;
    }
    case MsgType::kRelease: {
      ReleaseRequest r;
      if (!read_as(msg, &r)) break;
      if (r.flags & ~kReleaseNoReply) { *why = "unknown flags"; return -EINVAL; }
      return 0;
    }
    case MsgType::kList: {
      ListRequest r;
      if (!read_as(msg, &r)) break;
      if (r.reserved) { *why = "reserved field not zero"; return -EINVAL; }
      return 0;
    }
    default:
      *why = "unknown request type " + std::to_string(h.type);
      return -EOPNOTSUPP;
  }
  *why = "wrong size for request type " + std::to_string(h.type);
  return -EBADMSG;
}

}  // namespace utcp::registry
