// prefetch.h - endpoints asked of utcpd ahead of the connect that will use them.
//
// The paper keeps its registry off the data path but on every connection's setup (§3.4);
// the setup then costs a round trip to the registry and the registry's own work before
// the first SYN can leave. A GrantPrefetcher keeps that off the setup too: for each
// destination (address and port) an application connects to, it keeps up to `depth`
// Connects (without the handshake) asked ahead on its own registry connection, so the
// next connect to the same place finds an endpoint granted — exact template, classifier
// entry, next hop resolved — and the library starts its handshake at once. Nothing about
// the protection changes: each endpoint is an ordinary grant for one 4-tuple, checked by
// the module on every frame; an unused one is given back.
//
// Costs, bounded: at most `depth` ephemeral ports and endpoints per destination, for at
// most `max_destinations` destinations; a grant older than `max_age` (utcpd's own reuse
// time for a next hop's address) is given back unused rather than trusted. Not thread-
// safe: one owner (a transport, a connection-setup thread) calls it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "registry/client.h"

namespace utcp::registry {

class GrantPrefetcher {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    unsigned depth = 4;              // grants ready or asked for, per destination
    unsigned max_destinations = 16;  // destinations beyond these are asked for one at a time
    Clock::duration max_age = std::chrono::seconds(1);
  };

  // Connects its own client to utcpd (path as RegistryClient::connect); -errno and `error`.
  int start(std::string* error, const char* path = nullptr);
  // Over an already connected client (tests: one end of a socketpair).
  void adopt(int registry_fd);
  explicit GrantPrefetcher(Options o) : opt_(o) {}
  GrantPrefetcher() : GrantPrefetcher(Options{}) {}
  ~GrantPrefetcher();
  GrantPrefetcher(const GrantPrefetcher&) = delete;
  GrantPrefetcher& operator=(const GrantPrefetcher&) = delete;

  void set_rings(const RingSize& r) { reg_.set_rings(r); }

  // An endpoint for a connection to remote:port: one granted ahead when there is one, else
  // the answer to the oldest Connect still asked for this destination, else a new one,
  // waited for. Then asks ahead again for this destination. utcpd's refusal comes back as
  // its -errno with `error` (like RegistryClient::connect_endpoint without a state).
  int take(Ipv4Addr remote, uint16_t remote_port, Grant* out, std::string* error);
  // Gives a taken endpoint back (Release without a reply, on the client that asked for it).
  int release(uint32_t endpoint_id, std::string* error) { return reg_.release(endpoint_id, error, false); }

  // Takes in every answer already there, without waiting (an owner with idle time may
  // call it, so take() finds them ready): 0, or <0 when the registry connection failed.
  int collect_ready(std::string* error);

  // Grants given to take() that were ready before it was called, and all grants given.
  uint64_t hits() const { return hits_; }
  uint64_t taken() const { return taken_; }
  // Grants given back unused because they grew older than max_age.
  uint64_t expired() const { return expired_; }
  // Ready grants and unanswered Connects, over all destinations.
  size_t ready() const;
  size_t in_flight() const { return asked_.size(); }

 private:
  using Key = uint64_t;  // address << 16 | port
  struct Ready {
    int rc = 0;  // 0, or utcpd's -errno for that Connect
    Grant grant;
    std::string error;
    Clock::time_point at;  // when it was asked for: utcpd looked up the next hop after that
  };
  struct Asked {
    Key dest;
    Clock::time_point at;
  };
  static Key key(Ipv4Addr a, uint16_t port) { return (uint64_t(a.v) << 16) | port; }
  // Takes one reply into ready_; -EAGAIN (no wait) when none is there, <0 when the
  // registry connection failed (every asked Connect is then forgotten).
  int collect(bool wait, std::string* error);
  void expire(Clock::time_point now);
  void ask_ahead(Key k, Ipv4Addr remote, uint16_t remote_port);
  bool asked_for(Key k) const;
  void drop(Ready& r);

  Options opt_;
  RegistryClient reg_;
  std::map<uint32_t, Asked> asked_;         // seq -> destination, unanswered
  std::map<Key, std::deque<Ready>> ready_;  // answers not yet taken, oldest first
  uint64_t hits_ = 0, taken_ = 0, expired_ = 0;
};

}  // namespace utcp::registry
