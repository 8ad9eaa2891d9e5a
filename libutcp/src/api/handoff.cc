// handoff.cc - one message with one file descriptor: the connection handoff of handoff.h.
#include "api/handoff.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace utcp {

namespace {

constexpr uint32_t kHandoffMagic = 0x48504354;  // "TCPH"
constexpr uint16_t kHandoffVersion = 1;

struct HandoffHeader {
  uint32_t magic = kHandoffMagic;
  uint16_t version = kHandoffVersion;
  uint16_t mtu = 0;
  uint32_t local_ip = 0;
  uint8_t local_mac[6] = {};
  uint8_t next_hop[6] = {};
  uint32_t state_len = 0;
  uint32_t remote_ip = 0;
};
static_assert(sizeof(HandoffHeader) == 32);

int fail(int err, std::string* error, std::string why) {
  if (error) *error = std::move(why);
  return err;
}

}  // namespace

int send_connection(int sock, int endpoint_fd, const HandoffInfo& info, std::span<const uint8_t> state,
                    std::string* error) {
  if (endpoint_fd < 0 || state.empty() || state.size() > kMaxHandoffState)
    return fail(-EINVAL, error, "handoff: no endpoint or a state of bad size");
  HandoffHeader h;
  h.mtu = info.mtu;
  h.local_ip = info.local_ip.v;
  h.remote_ip = info.remote_ip.v;
  std::memcpy(h.local_mac, info.local_mac.b.data(), 6);
  std::memcpy(h.next_hop, info.next_hop.b.data(), 6);
  h.state_len = uint32_t(state.size());
  std::vector<uint8_t> msg(sizeof h + state.size());
  std::memcpy(msg.data(), &h, sizeof h);
  std::memcpy(msg.data() + sizeof h, state.data(), state.size());
  iovec iov{msg.data(), msg.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &endpoint_fd, sizeof(int));
  ssize_t n;
  do n = ::sendmsg(sock, &mh, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  if (n < 0) return fail(-errno, error, std::string("handoff: sendmsg: ") + std::strerror(errno));
  if (size_t(n) != msg.size()) return fail(-EMSGSIZE, error, "handoff: message sent short");
  return 0;
}

int recv_connection(int sock, int* endpoint_fd, HandoffInfo* info, std::vector<uint8_t>* state,
                    std::string* error) {
  *endpoint_fd = -1;
  std::vector<uint8_t> buf(sizeof(HandoffHeader) + kMaxHandoffState + 1);
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ssize_t n;
  do n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  // Collect every descriptor that came, so none leaks whatever the verdict.
  std::vector<int> fds;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  auto bad = [&](int err, std::string why) {
    for (int fd : fds) ::close(fd);
    return fail(err, error, std::move(why));
  };
  if (n < 0) return bad(-errno, std::string("handoff: recvmsg: ") + std::strerror(errno));
  if (n == 0) return bad(-ECONNRESET, "handoff: the sender hung up before passing a connection");
  HandoffHeader h;
  if (size_t(n) < sizeof h) return bad(-EBADMSG, "handoff: short message");
  std::memcpy(&h, buf.data(), sizeof h);
  if (h.magic != kHandoffMagic || h.version != kHandoffVersion)
    return bad(-EBADMSG, "handoff: not a connection handoff (or another release's)");
  if (h.state_len == 0 || h.state_len > kMaxHandoffState || size_t(n) != sizeof h + h.state_len ||
      (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
    return bad(-EBADMSG, "handoff: the state length does not match the message");
  if (fds.size() != 1) return bad(-EBADMSG, "handoff: expected exactly one endpoint file");
  if (h.mtu < 576 || h.local_ip == 0 || h.remote_ip == 0) return bad(-EBADMSG, "handoff: bad MTU or address");
  info->mtu = h.mtu;
  info->local_ip = Ipv4Addr{h.local_ip};
  info->remote_ip = Ipv4Addr{h.remote_ip};
  std::memcpy(info->local_mac.b.data(), h.local_mac, 6);
  std::memcpy(info->next_hop.b.data(), h.next_hop, 6);
  state->assign(buf.begin() + sizeof h, buf.begin() + n);
  *endpoint_fd = fds[0];
  return 0;
}

}  // namespace utcp
