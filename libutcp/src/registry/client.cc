// client.cc - the library's side of the registry protocol.
#include "registry/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/utcp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "api/profiles.h"
#include "device/module.h"

namespace utcp::registry {

std::string connect_error_message(int err, const std::string& path) {
  const std::string start = "start it with `systemctl start utcpd` or `utcpd --interface IFNAME`";
  switch (err) {
    case ENOENT:
      return "utcpd not running (no registry socket at " + path + "): " + start +
             "; if it listens elsewhere, set UTCP_REGISTRY to its socket";
    case ECONNREFUSED:
      return "utcpd not running (" + path + " is left over from a utcpd that exited; nothing listens on it): " +
             start;
    case EACCES:
    case EPERM:
      return "permission denied connecting to the registry at " + path +
             ": utcpd makes its socket writable for everyone, so a directory on the path is closed to this user "
             "(check `ls -ld " + path.substr(0, path.rfind('/') + 1) + "`) or UTCP_REGISTRY points somewhere else";
    case ENOTDIR:
    case ENOTSOCK:
      return path + " is not a registry socket (" + std::strerror(err) + "): check UTCP_REGISTRY";
    case ENAMETOOLONG:
      return "registry socket path too long (at most 107 bytes): " + path;
    default:
      return "cannot reach the registry at " + path + ": " + std::strerror(err);
  }
}

const char* reply_hint(int err) {
  switch (err) {
    case -EADDRINUSE: return "choose another local port, or 0 for an ephemeral one";
    case -EADDRNOTAVAIL: return "no free local port, or an address that is not on utcpd's interface";
    case -EACCES: return "ports below 1024 need root";
    case -ENETUNREACH: return "add a route to the destination through the interface utcpd serves (`ip route`)";
    case -EHOSTUNREACH: return "the next hop does not answer ARP: is the peer or gateway up on that link? (`ip neigh`)";
    case -ECONNREFUSED: return "nothing listens on that port at the peer";
    case -ETIMEDOUT: return "the peer did not answer: is it up, or does a firewall drop the SYN?";
    case -EMFILE: return "the module's endpoint table is full: close connections, or wait for others to end";
    case -ENOMEM: return "the module could not allocate the rings: lower rx_entries, tx_entries or slot_size in utcpd.conf";
    case -EPROTO: return "utcpd and this library come from different releases: install matching versions";
    case -EINVAL: return "utcpd refused the request as malformed: utcpd and this library may come from different releases";
    default: return nullptr;
  }
}

RingSize rings_for_profile(std::string_view profile) {
  const Profile* p = find_profile(profile);
  // utcpd's default rings (64 RX slots of 64 KiB) hold a 256 KiB window; the library
  // drains them as they fill, so buffers up to 1 MiB (default, latency, rpc) do with them.
  if (!p || (p->rcvbuf <= 1024 * 1024 && p->sndbuf <= 1024 * 1024)) return {};
  return rings_for(p->rcvbuf, p->sndbuf, kMaxRingSlot);
}

RegistryClient::~RegistryClient() {
  if (fd_ >= 0) ::close(fd_);
}

int RegistryClient::connect(std::string* error, const char* path) {
  if (!path) path = std::getenv("UTCP_REGISTRY");
  if (!path || !*path) path = kDefaultSocketPath;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof sa.sun_path) {
    *error = connect_error_message(ENAMETOOLONG, path);
    return -ENAMETOOLONG;
  }
  std::strcpy(sa.sun_path, path);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    *error = std::string("cannot create a socket for the registry: ") + std::strerror(e);
    return -e;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    ::close(fd);
    *error = connect_error_message(e, path);
    return -e;
  }
  fd_ = fd;
  return 0;
}

template <typename Req>
int RegistryClient::send_request(Req& req, std::string* error) {
  if (fd_ < 0) {
    *error = "not connected to the registry";
    return -ENOTCONN;
  }
  if (pending_accept_.type) {
    *error = "an Accept sent with send_accept() is still unanswered (take it with receive_accept())";
    return -EBUSY;
  }
  req.hdr.length = sizeof req;
  req.hdr.seq = ++seq_;
  if (::send(fd_, &req, sizeof req, MSG_NOSIGNAL) != ssize_t(sizeof req)) {
    int e = errno;
    *error = std::string("registry connection lost: ") + std::strerror(e);
    return -e;
  }
  return 0;
}

template <typename Req, typename Rep>
int RegistryClient::call(Req& req, Rep* rep, int* fd, std::string* error, std::vector<uint8_t>* tail) {
  if (int rc = send_request(req, error); rc < 0) return rc;
  return receive_reply(req.hdr, rep, fd, error, tail);
}

template <typename Rep>
int RegistryClient::receive_reply(const RegHeader& req, Rep* rep, int* fd, std::string* error,
                                  std::vector<uint8_t>* tail, bool any_seq, bool wait) {
  // Replies without a tail fit in a small buffer: no 64 KiB to clear for every Connect.
  constexpr bool kSmall = std::is_same_v<Rep, EndpointReply> || std::is_same_v<Rep, HelloReply>;
  std::vector<uint8_t> buf(kSmall && !tail ? sizeof(Rep) + 1 : kMaxMessage);
  msghdr mh{};
  iovec iov{buf.data(), buf.size()};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ssize_t n;
  do n = ::recvmsg(fd_, &mh, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT)); while (n < 0 && errno == EINTR);
  if (n < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    *error = "no reply from the registry yet";
    return -EAGAIN;
  }
  int got_fd = -1;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
      std::memcpy(&got_fd, CMSG_DATA(cm), sizeof(int));
  auto fail = [&](int e, std::string why) {
    if (got_fd >= 0) ::close(got_fd);
    *error = std::move(why);
    return e;
  };
  if (n < 0) return fail(-errno, std::string("registry read failed: ") + std::strerror(errno));
  if (n == 0) return fail(-ECONNRESET, "utcpd closed the connection (did it exit?)");
  if (size_t(n) >= sizeof *rep) std::memcpy(rep, buf.data(), sizeof *rep);
  size_t extra = 0;
  if constexpr (std::is_same_v<Rep, EndpointReply>) extra = rep->state_len;
  if constexpr (std::is_same_v<Rep, ListReply>)
    extra = size_t(n) >= sizeof *rep && rep->count <= kListMax ? rep->count * sizeof(ListEntry) : kMaxMessage;
  if (size_t(n) < sizeof *rep || size_t(n) != sizeof *rep + extra || (mh.msg_flags & MSG_TRUNC) ||
      rep->hdr.magic != kMagic || (any_seq ? rep->hdr.seq == 0 : rep->hdr.seq != req.seq) ||
      rep->hdr.type != (req.type | uint16_t(MsgType::kReply)) || rep->hdr.length != size_t(n) ||
      (extra && !tail))
    return fail(-EBADMSG, "malformed reply from the registry (library and utcpd from different releases?)");
  if (tail) tail->assign(buf.begin() + sizeof *rep, buf.begin() + n);
  if (rep->error) {
    rep->message[sizeof rep->message - 1] = 0;
    if (rep->error >= 0 || rep->error < -4095)
      return fail(-EBADMSG, "malformed reply from the registry (error field " + std::to_string(rep->error) + ")");
    std::string why = std::string("utcpd: ") + (rep->message[0] ? rep->message : "request refused") + " (" +
                      std::strerror(-rep->error) + ")";
    if (const char* hint = reply_hint(rep->error); hint && why.find(hint) == std::string::npos)
      why += std::string(": ") + hint;
    return fail(rep->error, std::move(why));
  }
  if (fd) *fd = got_fd;
  else if (got_fd >= 0) ::close(got_fd);
  return 0;
}

int RegistryClient::hello(HelloReply* out, std::string* error) {
  HelloRequest req{};
  req.hdr.type = uint16_t(MsgType::kHello);
  req.client_abi = UTCP_ABI_VERSION;
  // HelloReply carries `error` at the same place as EndpointReply; call() reads it.
  if (int rc = call(req, out, nullptr, error); rc < 0) return rc;
  // Endpoints from a module of another ABI would not map the way this library expects.
  utcp_abi_info abi{};
  abi.abi_version = out->module_abi;
  return check_abi(abi, error);
}

namespace {

void fill_grant(const EndpointReply& r, int fd, Grant* out) {
  out->endpoint_fd = fd;
  out->endpoint_id = r.endpoint_id;
  out->local_ip = Ipv4Addr{r.local_ip};
  out->remote_ip = Ipv4Addr{r.remote_ip};
  out->local_port = r.local_port;
  out->remote_port = r.remote_port;
  std::memcpy(out->local_mac.b.data(), r.local_mac, 6);
  std::memcpy(out->next_hop_mac.b.data(), r.next_hop_mac, 6);
  out->mtu = r.mtu;
}

}  // namespace

int RegistryClient::connect_endpoint(Ipv4Addr remote, uint16_t remote_port, uint16_t local_port, Grant* out,
                                     std::string* error, std::vector<uint8_t>* state) {
  return request_endpoint(remote, remote_port, local_port, state ? kConnectHandshake : 0, out, error, state);
}

int RegistryClient::udp_endpoint(Ipv4Addr remote, uint16_t remote_port, uint16_t local_port, Grant* out,
                                 std::string* error) {
  return request_endpoint(remote, remote_port, local_port, kConnectUdp, out, error, nullptr);
}

int RegistryClient::request_endpoint(Ipv4Addr remote, uint16_t remote_port, uint16_t local_port, uint32_t flags,
                                     Grant* out, std::string* error, std::vector<uint8_t>* state) {
  ConnectRequest req{};
  req.hdr.type = uint16_t(MsgType::kConnect);
  req.remote_ip = remote.v;
  req.remote_port = remote_port;
  req.local_port = local_port;
  req.flags = flags;
  req.rings = rings_;
  EndpointReply rep{};
  int fd = -1;
  if (int rc = call(req, &rep, &fd, error, state); rc < 0) return rc;
  if (state && state->empty()) {
    if (fd >= 0) ::close(fd);
    *error = "utcpd ran the handshake but sent no connection state";
    return -EBADMSG;
  }
  if (fd < 0) {
    *error = "the registry granted an endpoint but sent no endpoint file";
    return -EBADMSG;
  }
  fill_grant(rep, fd, out);
  return 0;
}

int RegistryClient::listen_endpoint(uint16_t local_port, uint16_t backlog, Grant* out, std::string* error) {
  ListenRequest req{};
  req.hdr.type = uint16_t(MsgType::kListen);
  req.local_port = local_port;
  req.backlog = backlog;
  req.rings = rings_;
  EndpointReply rep{};
  int fd = -1;
  if (int rc = call(req, &rep, &fd, error); rc < 0) return rc;
  if (fd < 0) {
    *error = "the registry granted an endpoint but sent no endpoint file";
    return -EBADMSG;
  }
  fill_grant(rep, fd, out);
  return 0;
}

int RegistryClient::listen(uint16_t local_port, uint16_t backlog, Grant* out, std::string* error, bool reuse_addr) {
  ListenRequest req{};
  req.hdr.type = uint16_t(MsgType::kListen);
  req.local_port = local_port;
  req.backlog = backlog;
  req.rings = rings_;
  req.flags = kListenAccept | (reuse_addr ? kListenReuseAddr : 0);
  EndpointReply rep{};
  int fd = -1;
  if (int rc = call(req, &rep, &fd, error); rc < 0) return rc;
  if (fd >= 0) {
    ::close(fd);
    *error = "the registry sent an endpoint file for a listen it accepts on";
    return -EBADMSG;
  }
  fill_grant(rep, -1, out);
  return 0;
}

int RegistryClient::send_accept(uint32_t listen_id, bool wait, std::string* error) {
  AcceptRequest req{};
  req.hdr.type = uint16_t(MsgType::kAccept);
  req.listen_id = listen_id;
  req.flags = wait ? kAcceptWait : 0;
  req.rings = rings_;
  if (int rc = send_request(req, error); rc < 0) return rc;
  pending_accept_ = req.hdr;
  return 0;
}

int RegistryClient::receive_accept(Grant* out, std::vector<uint8_t>* state, std::string* error) {
  if (!pending_accept_.type) {
    *error = "no Accept was sent (send_accept() first)";
    return -EINVAL;
  }
  const RegHeader req = pending_accept_;
  pending_accept_ = {};
  std::vector<uint8_t> dropped;
  if (!state) state = &dropped;  // the reply is read all the same
  EndpointReply rep{};
  int fd = -1;
  if (int rc = receive_reply(req, &rep, &fd, error, state); rc < 0) return rc;
  if (fd < 0 || state->empty()) {
    if (fd >= 0) ::close(fd);
    *error = "the registry accepted a connection but sent no endpoint file or no state";
    return -EBADMSG;
  }
  fill_grant(rep, fd, out);
  return 0;
}

int RegistryClient::accept(uint32_t listen_id, bool wait, Grant* out, std::vector<uint8_t>* state,
                           std::string* error) {
  if (int rc = send_accept(listen_id, wait, error); rc < 0) return rc;
  return receive_accept(out, state, error);
}

int RegistryClient::release_listen(uint32_t listen_id, std::string* error) {
  if (!pending_accept_.type) return release(listen_id, error);
  ReleaseRequest req{};
  req.hdr.type = uint16_t(MsgType::kRelease);
  req.endpoint_id = listen_id;
  const RegHeader accept_req = pending_accept_;
  pending_accept_ = {};  // send_request() refuses while an Accept is out
  int rc = send_request(req, error);
  pending_accept_ = accept_req;
  if (rc < 0) return rc;
  Grant late;
  std::string ignored;
  if (receive_accept(&late, nullptr, &ignored) == 0 && late.endpoint_fd >= 0) ::close(late.endpoint_fd);
  EndpointReply rep{};
  return receive_reply(req.hdr, &rep, nullptr, error, nullptr);
}
int RegistryClient::send_connect(Ipv4Addr remote, uint16_t remote_port, uint32_t* seq, std::string* error,
                                 uint32_t reuse_id) {
  ConnectRequest req{};
  req.hdr.type = uint16_t(MsgType::kConnect);
  req.remote_ip = remote.v;
  req.remote_port = remote_port;
  if (reuse_id) {
    req.flags = kConnectReuse;
    req.reuse_id = reuse_id;  // the endpoint keeps its rings
  } else {
    req.rings = rings_;
  }
  if (int rc = send_request(req, error); rc < 0) return rc;
  *seq = req.hdr.seq;
  return 0;
}

int RegistryClient::receive_connect(bool wait, uint32_t* seq, Grant* out, std::string* error) {
  RegHeader req{};
  req.type = uint16_t(MsgType::kConnect);
  EndpointReply rep{};
  int fd = -1;
  *seq = 0;
  int rc = receive_reply(req, &rep, &fd, error, nullptr, /*any_seq=*/true, wait);
  if (rc == -EAGAIN && !wait) return rc;
  // utcpd's answer (a grant or a refusal) names its request; a reply that failed the
  // checks names none (and a failed read left the header zero).
  if (rc != -EBADMSG) *seq = rep.hdr.seq;
  if (rc < 0) return rc;
  fill_grant(rep, fd, out);
  return 0;
}

int RegistryClient::release(uint32_t endpoint_id, std::string* error, bool wait) {
  ReleaseRequest req{};
  req.hdr.type = uint16_t(MsgType::kRelease);
  req.endpoint_id = endpoint_id;
  if (!wait) {
    req.flags = kReleaseNoReply;
    return send_request(req, error);
  }
  EndpointReply rep{};
  return call(req, &rep, nullptr, error);
}

int RegistryClient::list(std::vector<ListEntry>* out, std::string* error) {
  out->clear();
  uint32_t start = 0;
  // Each page moves `start` forward; a registry that does not is malformed, not a loop.
  for (int pages = 0; pages < 1 << 16; ++pages) {
    ListRequest req{};
    req.hdr.type = uint16_t(MsgType::kList);
    req.start = start;
    ListReply rep{};
    std::vector<uint8_t> tail;
    if (int rc = call(req, &rep, nullptr, error, &tail); rc < 0) {
      if (rc == -EOPNOTSUPP) *error += ": this utcpd predates `list` (upgrade utcpd)";
      return rc;
    }
    for (uint32_t i = 0; i < rep.count; ++i) {
      ListEntry e;
      std::memcpy(&e, tail.data() + i * sizeof e, sizeof e);
      e.app.congestion[sizeof e.app.congestion - 1] = 0;
      out->push_back(e);
    }
    if (rep.next == 0) return 0;
    if (rep.next <= start) break;
    start = rep.next;
  }
  *error = "malformed list reply from the registry (its pages do not advance)";
  return -EBADMSG;
}

}  // namespace utcp::registry
