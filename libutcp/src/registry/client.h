// client.h - the library's side of the registry protocol: ask utcpd for an endpoint.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "registry/protocol.h"
#include "wire/types.h"

namespace utcp::registry {

// What the registry granted: the endpoint file and the facts for building frames.
struct Grant {
  int endpoint_fd = -1;  // caller owns it
  uint32_t endpoint_id = 0;
  Ipv4Addr local_ip, remote_ip;
  uint16_t local_port = 0, remote_port = 0;
  MacAddr local_mac, next_hop_mac;
  uint16_t mtu = 0;
};

// The rings to ask for with a socket profile (api/profiles.h): utcpd's default for
// buffers up to 1 MiB (default, latency, rpc), GSO/GRO-sized slots for `bulk` (its 4 MiB
// buffers); the default for an unknown name.
RingSize rings_for_profile(std::string_view profile);

// What to tell the user when connecting to the registry socket `path` failed with errno
// `err`: each message says what to do (start utcpd, fix UTCP_REGISTRY, permissions).
std::string connect_error_message(int err, const std::string& path);
// A hint for an error utcpd answered with (negative errno), or nullptr.
const char* reply_hint(int err);

class RegistryClient {
 public:
  RegistryClient() = default;
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // Connects to utcpd at `path` (default: $UTCP_REGISTRY, else /run/utcp/utcpd.sock).
  // Returns 0 or -errno with `error` saying what to do (e.g. "utcpd not running").
  int connect(std::string* error, const char* path = nullptr);
  // Takes an already connected registry socket as its own (tests: a socketpair's end).
  void adopt(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // The rings every later Connect, Listen and Accept asks for (RingSize: 0 fields = utcpd's
  // defaults, which are small; rings_for() sizes them for a window). utcpd clamps them to
  // its limits; KmodDevice reads what was granted from the endpoint's layout.
  void set_rings(const RingSize& r) { rings_ = r; }
  const RingSize& rings() const { return rings_; }
  // Asks utcpd what it serves; -EPROTO when its module speaks another ABI than this library.
  int hello(HelloReply* out, std::string* error);
  // An endpoint for one connection to remote:port (local_port 0 = ephemeral). With
  // `state`, utcpd also runs the three-way handshake (paper §3.4) and `state` receives the
  // established connection's exported TCP state, to import into the caller's stack;
  // a refused or unanswered handshake returns -ECONNREFUSED / -ETIMEDOUT.
  int connect_endpoint(Ipv4Addr remote, uint16_t remote_port, uint16_t local_port, Grant* out, std::string* error,
                       std::vector<uint8_t>* state = nullptr);
  // A UDP endpoint for datagrams with remote:port (local_port 0 = ephemeral UDP port).
  int udp_endpoint(Ipv4Addr remote, uint16_t remote_port, uint16_t local_port, Grant* out, std::string* error);
  // A listener endpoint on local_port, for a stack that answers SYNs itself.
  int listen_endpoint(uint16_t local_port, uint16_t backlog, Grant* out, std::string* error);

  // --- passive open through the registry (paper §3.4) ---
  // utcpd listens on local_port (0: ephemeral) and runs the handshakes; `out` gets the
  // listen id (endpoint_id), local address and port, and no endpoint file. backlog 0 =
  // kDefaultBacklog; more than kMaxBacklog is capped. Closed by release(listen id) or
  // when this client disconnects; connections nobody accepted are then reset.
  int listen(uint16_t local_port, uint16_t backlog, Grant* out, std::string* error, bool reuse_addr = false);
  // One established connection of the listen: its own endpoint in `out` and its TCP
  // state in `state`, to import (Stack::import_connection). Without `wait`, -EAGAIN at
  // once when none is ready; with it, blocks until one is.
  int accept(uint32_t listen_id, bool wait, Grant* out, std::vector<uint8_t>* state, std::string* error);
  // The same in two steps, for an event loop: send the request ahead, wait for fd() to
  // be readable, then take the reply. No other request may be made on this client
  // between the two (the replies would cross; use a second RegistryClient for that).
  int send_accept(uint32_t listen_id, bool wait, std::string* error);
  int receive_accept(Grant* out, std::vector<uint8_t>* state, std::string* error);
  // The registry socket, for poll()/epoll (readable: a reply is there).
  int fd() const { return fd_; }

  // Gives the endpoint (or listen) back. With `wait` false the request goes out and no
  // answer comes (kReleaseNoReply): nothing is waited for, and a release utcpd refuses
  // (not yours, already gone) is not reported.
  int release(uint32_t endpoint_id, std::string* error, bool wait = true);
  // Closes a listen made by listen(), also while an Accept sent with send_accept() is
  // unanswered (utcpd then answers it first, with -ECANCELED or a last connection, which
  // is dropped). Returns when utcpd has let go of the port.
  int release_listen(uint32_t listen_id, std::string* error);
  // Whether an Accept sent with send_accept() still waits for receive_accept().
  bool accept_pending() const { return pending_accept_.type != 0; }

  // --- Connects sent ahead (GrantPrefetcher, registry/prefetch.h) ---
  // Sends a Connect for remote:port without the handshake (ephemeral port, the rings of
  // set_rings) and returns at once with its sequence number in `seq`. With `reuse_id`,
  // a kConnectReuse: not a new endpoint, that one (granted to this client, its
  // connection over) moved to the new 4-tuple; its answer carries no endpoint file.
  int send_connect(Ipv4Addr remote, uint16_t remote_port, uint32_t* seq, std::string* error, uint32_t reuse_id = 0);
  // The next reply to any Connect sent ahead, in the order utcpd answers (which is not
  // always the order asked: a Connect waiting for ARP is answered later). 0 with `seq`
  // and `out` set; utcpd's refusal as its -errno with `seq` set and `error` saying why;
  // -EAGAIN with `seq` 0 when `wait` is false and no reply is there; any other failure
  // (lost connection, malformed reply) with `seq` 0. `out->endpoint_fd` is -1 when no
  // file came with a grant: right for a kConnectReuse, wrong for any other (the caller
  // knows which it asked). Nothing else may be asked on this
  // client while such Connects are unanswered, but release(.., wait = false).
  int receive_connect(bool wait, uint32_t* seq, Grant* out, std::string* error);

  // Every endpoint utcpd handed out, with the module's counters and what each
  // connection's stack published (utcpctl ss). All pages, in utcpd's order.
  int list(std::vector<ListEntry>* out, std::string* error);

 private:
  // One Connect request with `flags` (kConnect*); `state` receives the handshake's state.
  int request_endpoint(Ipv4Addr remote, uint16_t remote_port, uint16_t local_port, uint32_t flags, Grant* out,
                       std::string* error, std::vector<uint8_t>* state);
  template <typename Req, typename Rep>
  int call(Req& req, Rep* rep, int* fd, std::string* error, std::vector<uint8_t>* tail = nullptr);
  template <typename Req>
  int send_request(Req& req, std::string* error);
  template <typename Rep>
  int receive_reply(const RegHeader& req, Rep* rep, int* fd, std::string* error, std::vector<uint8_t>* tail,
                    bool any_seq = false, bool wait = true);
  int fd_ = -1;
  uint32_t seq_ = 0;
  RingSize rings_{};
  RegHeader pending_accept_{};  // the Accept sent by send_accept(), type 0 when none
};

}  // namespace utcp::registry
