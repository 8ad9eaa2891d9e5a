// link.h - an in-memory Ethernet link between two Devices on a virtual clock, with seeded faults.
//
// Everything random comes from a seeded PRNG, so a seed replays a run exactly. Frames
// become deliverable at send time + queueing + serialization + delay (+ jitter); nothing
// moves unless the caller passes time in (receive/flush/poll_at), so tests run on a
// virtual clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "base/time.h"
#include "device/device.h"

namespace utcp {

// xoshiro256** seeded through splitmix64: fast, and the same sequence on every platform
// (unlike std:: distributions, whose output is implementation-defined).
class Prng {
 public:
  explicit Prng(uint64_t seed);
  uint64_t next();
  double uniform();                 // [0, 1)
  uint64_t below(uint64_t n);       // [0, n); 0 when n == 0
  bool chance(double p) { return p > 0 && uniform() < p; }

 private:
  uint64_t s_[4];
};

// What happened to the frames of one direction.
struct LinkStats {
  uint64_t sent = 0;              // frames offered to the link
  uint64_t delivered = 0;         // frames handed to the receiver (duplicates included)
  uint64_t dropped = 0;           // lost to the `loss` probability
  uint64_t dropped_queue = 0;     // tail-dropped: queue_limit frames already waiting
  uint64_t dropped_oversize = 0;  // longer than mtu + 14
  uint64_t duplicated = 0;        // extra copies made
  uint64_t reordered = 0;         // delivered after a frame that was sent later
  uint64_t corrupted = 0;         // one bit flipped
};

// Frames built through tx_buffer()/tx_commit() and held until flush(); the buffers are
// reused, so steady state allocates nothing. Shared by the Device implementations here.
class TxStaging {
 public:
  explicit TxStaging(size_t limit) : limit_(limit) {}
  // Room for a frame of `len` bytes; empty when `limit` frames already wait.
  std::span<uint8_t> buffer(size_t len);
  // Keeps the first `len` bytes of the last buffer() as a frame.
  void commit(size_t len);
  // Keeps the first `hdr_len` bytes of the last buffer() as the start of a frame whose
  // rest is `payload`, read only when the frame is drained (as the module reads a split
  // descriptor's payload when it sends it).
  void commit_split(size_t hdr_len, std::span<const uint8_t> payload);
  // buffer() + copy + commit(); false when full.
  bool push(std::span<const uint8_t> frame);
  // Hands every held frame to `fn` in commit order and empties the staging.
  void drain(const std::function<void(std::span<const uint8_t>)>& fn);
  size_t size() const { return count_; }

 private:
  size_t limit_;
  std::vector<std::vector<uint8_t>> frames_;
  std::vector<std::span<const uint8_t>> payloads_;  // per frame: read at drain()
  size_t count_ = 0;
};

// The fault knobs shared by the link and the FaultInjector. Probabilities are per frame.
struct FaultConfig {
  uint64_t seed = 1;
  double loss = 0, duplicate = 0, reorder = 0, corrupt = 0;
  Duration delay{0};
  Duration jitter{0};                 // extra delay, uniform in [0, jitter]
  Duration reorder_delay{1000};       // how long a frame picked for reordering is held back
};

// Frames on their way, each due at an Instant; faults are applied as frames enter.
// Buffers are recycled, so the steady state allocates nothing per frame.
class DelayLine {
 public:
  explicit DelayLine(const FaultConfig& cfg);

  // A frame that would arrive at `ready` on a perfect link: may be lost, corrupted,
  // duplicated, delayed (delay + jitter) and held back (reorder).
  void push(Instant ready, std::span<const uint8_t> frame);
  // When the earliest frame is due; kInstantNever when empty.
  Instant next_at() const;
  size_t size() const { return heap_.size(); }
  // Hands frames due by `now` to `fn` in due order (ties in send order), at most `max`.
  size_t pop_due(Instant now, const std::function<void(std::span<const uint8_t>)>& fn, size_t max);
  // The earliest frame, if due by `now` (empty span otherwise); pop() removes it.
  std::span<const uint8_t> front_due(Instant now) const;
  void pop();

  LinkStats& stats() { return stats_; }
  const LinkStats& stats() const { return stats_; }

 private:
  struct Frame {
    Instant at;
    uint64_t order;       // tie-break: push order
    uint64_t sent_index;  // which offered frame this is a copy of (reorder statistic)
    std::vector<uint8_t> bytes;
  };
  void enqueue(Instant at, uint64_t sent_index, std::span<const uint8_t> frame, bool corrupt);
  Frame take();
  void account(const Frame& f);

  FaultConfig cfg_;
  Prng rng_;
  LinkStats stats_;
  std::vector<Frame> heap_;  // min-heap on (at, order)
  std::vector<std::vector<uint8_t>> pool_;
  uint64_t next_order_ = 0, next_sent_ = 0;
  uint64_t delivered_high_ = 0;  // 1 + highest sent_index delivered so far
};

struct LinkConfig {
  uint64_t seed = 1;
  double loss = 0, duplicate = 0, reorder = 0, corrupt = 0;
  Duration delay{0}, jitter{0};
  uint64_t bandwidth_bps = 0;      // 0 = infinite: no serialization time
  uint32_t mtu = 1500;             // IP MTU; longer frames are dropped and counted
  size_t queue_limit = 0;          // frames waiting for the wire before tail drop; 0 = no limit
  Duration reorder_delay{1000};    // see FaultConfig
  size_t tx_ring = 256;            // committed, unflushed frames before tx_buffer says full
  // Bytes of device memory for a send buffer (Device::tx_payload_area); 0: none.
  size_t tx_payload_area = 0;
};

// Two Devices joined back to back: what a() transmits, b() receives, and vice versa.
class LinkPair {
 public:
  explicit LinkPair(const LinkConfig& cfg) : LinkPair(cfg, cfg) {}
  // Each direction its own config; the b→a direction draws from a different PRNG
  // stream even with the same seed.
  LinkPair(const LinkConfig& a_to_b, const LinkConfig& b_to_a);
  ~LinkPair();
  LinkPair(const LinkPair&) = delete;
  LinkPair& operator=(const LinkPair&) = delete;

  Device& a();
  Device& b();
  const LinkStats& stats_a_to_b() const;
  const LinkStats& stats_b_to_a() const;
  // The earlier of both endpoints' poll_at().
  Instant poll_at() const;

 private:
  class Direction;
  class Endpoint;
  std::unique_ptr<Direction> ab_, ba_;
  std::unique_ptr<Endpoint> a_, b_;
};

}  // namespace utcp
