// protocol.cc - validation of registry requests (used by utcpd on every message).
#include "registry/protocol.h"

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

}  // namespace

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
      if (r.reserved || (r.flags & ~(kConnectHandshake | kConnectUdp))) {
        *why = "unknown flags or reserved field not zero";
        return -EINVAL;
      }
      if ((r.flags & kConnectHandshake) && (r.flags & kConnectUdp)) {
        *why = "UDP has no handshake";
        return -EINVAL;
      }
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
      if (r.reserved || (r.flags & ~kListenAccept)) {
        *why = "unknown flags or reserved field not zero";
        return -EINVAL;
      }
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
      if (r.listen_id == 0) { *why = "listen id 0"; return -EINVAL; }
      return 0;
    }
    case MsgType::kRelease: {
      ReleaseRequest r;
      if (!read_as(msg, &r)) break;
      if (r.reserved) { *why = "reserved field not zero"; return -EINVAL; }
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
