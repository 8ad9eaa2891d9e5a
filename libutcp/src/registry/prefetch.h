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
// An owner that is done with a connection may also give its endpoint back for the next
// connection to a destination (recycle): utcpd moves it to a new 4-tuple (kConnectReuse)
// and take() hands it out again, its file and the owner's mapping of its rings kept, so
// a steady stream of connections costs no endpoint creation, mmap or munmap at all.
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
#include <utility>
#include <vector>

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

  // An endpoint for a connection to remote:port: a recycled one ready for it when there
  // is one, else one granted ahead, else the answer to the oldest Connect still asked for
  // this destination, else a new one, waited for. Then asks ahead again for this
  // destination. utcpd's refusal comes back as its -errno with `error` (like
  // RegistryClient::connect_endpoint without a state). A recycled endpoint comes with
  // `out->endpoint_fd` -1: it is the owner's file of that endpoint_id, already mapped
  // (its RX ring may still hold frames of the connection before: drop them).
  int take(Ipv4Addr remote, uint16_t remote_port, Grant* out, std::string* error);
  // Gives a taken endpoint back (Release without a reply, on the client that asked for it).
  int release(uint32_t endpoint_id, std::string* error);
  // The taken endpoint `endpoint_id`, its connection over, for a later connection to
  // remote:port: asks utcpd to move it there (kConnectReuse) and returns at once. The
  // owner keeps its file and mapping until take() hands it out again, or until
  // given_back() names it. <0 (the request could not be sent): nothing changed, the
  // owner still has the endpoint to release.
  int recycle(uint32_t endpoint_id, Ipv4Addr remote, uint16_t remote_port, std::string* error);
  // Recycled endpoints this prefetcher gave back to utcpd instead (utcpd refused to move
  // one, or it waited longer than max_age): the owner closes its file and mapping of
  // each. Emptied by the call.
  std::vector<uint32_t> given_back() { return std::exchange(given_back_, {}); }

  // Takes in every answer already there, without waiting (an owner with idle time may
  // call it, so take() finds them ready): 0, or <0 when the registry connection failed.
  int collect_ready(std::string* error);

  // Grants given to take() that were ready before it was called, and all grants given.
  uint64_t hits() const { return hits_; }
  uint64_t taken() const { return taken_; }
  // Grants given to take() that were recycled endpoints.
  uint64_t reused() const { return reused_; }
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
    uint32_t reuse_id = 0;  // the answer to a recycle(): this endpoint, the owner's file
  };
  struct Asked {
    Key dest;
    Clock::time_point at;
    uint32_t reuse_id = 0;
  };
  static Key key(Ipv4Addr a, uint16_t port) { return (uint64_t(a.v) << 16) | port; }
  // Takes one reply into ready_; -EAGAIN (no wait) when none is there, <0 when the
  // registry connection failed (every asked Connect is then forgotten).
  int collect(bool wait, std::string* error);
  void expire(Clock::time_point now);
  void ask_ahead(Key k, Ipv4Addr remote, uint16_t remote_port);
  bool asked_for(Key k) const;
  void drop(Ready& r);
  // Ready, asked for, or (recycled endpoints) lent to the owner, for destination k.
  size_t have(Key k) const;

  Options opt_;
  RegistryClient reg_;
  std::map<uint32_t, Asked> asked_;         // seq -> destination, unanswered
  std::map<Key, std::deque<Ready>> ready_;  // answers not yet taken, oldest first
  // Recycled endpoints lent to the owner, by id: each is expected back (recycle()), so
  // it counts towards its destination's depth and no Connect is asked in its stead.
  std::map<uint32_t, Key> cycling_;
  std::vector<uint32_t> given_back_;
  uint64_t hits_ = 0, taken_ = 0, expired_ = 0, reused_ = 0;
};

}  // namespace utcp::registry
