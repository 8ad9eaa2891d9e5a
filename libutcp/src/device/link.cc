// link.cc - the seeded PRNG, the fault-applying delay line and the in-memory link pair.
#include "device/link.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace utcp {

// ---- Prng ----------------------------------------------------------------------------

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Prng::Prng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Prng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Prng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

uint64_t Prng::below(uint64_t n) {
  if (n == 0) return 0;
  // Lemire's multiply-shift; the tiny bias is irrelevant for fault injection.
  return uint64_t((unsigned __int128)next() * n >> 64);
}

// ---- DelayLine -----------------------------------------------------------------------

namespace {
bool later(const auto& x, const auto& y) { return x.at != y.at ? x.at > y.at : x.order > y.order; }
}  // namespace

DelayLine::DelayLine(const FaultConfig& cfg) : cfg_(cfg), rng_(cfg.seed) {}

void DelayLine::push(Instant ready, std::span<const uint8_t> frame) {
  ++stats_.sent;
  const uint64_t index = next_sent_++;
  // A fixed number of draws per frame, whatever the outcome, keeps runs with different
  // knobs on the same seed comparable frame by frame.
  const bool lose = rng_.chance(cfg_.loss);
  const bool corrupt = rng_.chance(cfg_.corrupt);
  const bool dup = rng_.chance(cfg_.duplicate);
  const bool hold = rng_.chance(cfg_.reorder);
  if (lose) {
    ++stats_.dropped;
    return;
  }
  auto jitter = [&] {
    return cfg_.jitter.count() > 0 ? Duration(rng_.below(uint64_t(cfg_.jitter.count()) + 1)) : Duration(0);
  };
  Instant at = ready + cfg_.delay + jitter();
  if (hold) at += cfg_.reorder_delay;
  enqueue(at, index, frame, corrupt);
  if (dup) {
    ++stats_.duplicated;
    // The copy travels on its own, with its own jitter, never ahead of the original.
    enqueue(std::max(at, ready + cfg_.delay + jitter()), index, frame, false);
  }
}

void DelayLine::enqueue(Instant at, uint64_t sent_index, std::span<const uint8_t> frame,
                        bool corrupt) {
  std::vector<uint8_t> buf;
  if (!pool_.empty()) {
    buf = std::move(pool_.back());
    pool_.pop_back();
  }
  buf.assign(frame.begin(), frame.end());
  if (corrupt && !buf.empty()) {
    ++stats_.corrupted;
    buf[rng_.below(buf.size())] ^= uint8_t(1u << rng_.below(8));
  }
  heap_.push_back(Frame{at, next_order_++, sent_index, std::move(buf)});
  std::push_heap(heap_.begin(), heap_.end(), [](const Frame& x, const Frame& y) { return later(x, y); });
}

Instant DelayLine::next_at() const { return heap_.empty() ? kInstantNever : heap_.front().at; }

DelayLine::Frame DelayLine::take() {
  std::pop_heap(heap_.begin(), heap_.end(), [](const Frame& x, const Frame& y) { return later(x, y); });
  Frame f = std::move(heap_.back());
  heap_.pop_back();
  account(f);
  return f;
}

void DelayLine::account(const Frame& f) {
  ++stats_.delivered;
  if (f.sent_index + 1 < delivered_high_) ++stats_.reordered;
  delivered_high_ = std::max(delivered_high_, f.sent_index + 1);
}

size_t DelayLine::pop_due(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                          size_t max) {
  size_t n = 0;
  while (n < max && !heap_.empty() && heap_.front().at <= now) {
    // Taken out before the call, so `fn` may push into this line again.
    Frame f = take();
    fn(f.bytes);
    pool_.push_back(std::move(f.bytes));
    ++n;
  }
  return n;
}

std::span<const uint8_t> DelayLine::front_due(Instant now) const {
  if (heap_.empty() || heap_.front().at > now) return {};
  return heap_.front().bytes;
}

void DelayLine::pop() {
  assert(!heap_.empty());
  Frame f = take();
  pool_.push_back(std::move(f.bytes));
}

// ---- TxStaging -----------------------------------------------------------------------

std::span<uint8_t> TxStaging::buffer(size_t len) {
  if (count_ >= limit_) return {};  // back-pressure until drained
  if (count_ == frames_.size()) frames_.emplace_back();
  auto& buf = frames_[count_];  // reused: keeps its capacity
  buf.resize(len);
  return buf;
}

void TxStaging::commit(size_t len) {
  assert(count_ < frames_.size() && len <= frames_[count_].size());
  frames_[count_].resize(std::min(len, frames_[count_].size()));
  if (payloads_.size() <= count_) payloads_.resize(count_ + 1);
  payloads_[count_] = {};
  ++count_;
}

void TxStaging::commit_split(size_t hdr_len, std::span<const uint8_t> payload) {
  commit(hdr_len);
  payloads_[count_ - 1] = payload;
}

bool TxStaging::push(std::span<const uint8_t> frame) {
  auto buf = buffer(frame.size());
  if (buf.size() < frame.size()) return false;
  std::copy(frame.begin(), frame.end(), buf.begin());
  commit(frame.size());
  return true;
}

void TxStaging::drain(const std::function<void(std::span<const uint8_t>)>& fn) {
  for (size_t i = 0; i < count_; ++i) {
    if (!payloads_[i].empty()) {
      // A split frame: its payload is read now, as the module reads it when it sends.
      auto& f = frames_[i];
      const size_t h = f.size();
      f.resize(h + payloads_[i].size());
      std::memcpy(f.data() + h, payloads_[i].data(), payloads_[i].size());
      payloads_[i] = {};
    }
    fn(frames_[i]);
  }
  count_ = 0;
}

// ---- LinkPair ------------------------------------------------------------------------

namespace {
FaultConfig faults_of(const LinkConfig& c, uint64_t stream) {
  FaultConfig f;
  f.seed = c.seed ^ (stream * 0x9e3779b97f4a7c15ULL);
  f.loss = c.loss;
  f.duplicate = c.duplicate;
  f.reorder = c.reorder;
  f.corrupt = c.corrupt;
  f.delay = c.delay;
  f.jitter = c.jitter;
  f.reorder_delay = c.reorder_delay;
  return f;
}
}  // namespace

// One direction: a bottleneck queue serialized at bandwidth_bps, then the delay line.
class LinkPair::Direction {
 public:
  Direction(const LinkConfig& cfg, uint64_t stream) : cfg_(cfg), line_(faults_of(cfg, stream)) {}

  void send(Instant now, std::span<const uint8_t> frame) {
    if (frame.size() > size_t(cfg_.mtu) + 14) {
      ++line_.stats().sent;
      ++line_.stats().dropped_oversize;
      return;
    }
    Instant ready = now;
    if (cfg_.bandwidth_bps > 0) {
      const int64_t now_ns = now.time_since_epoch().count() * 1000;
      // Frames whose last bit has left by now no longer occupy the queue.
      while (head_ < waiting_.size() && waiting_[head_] <= now_ns) ++head_;
      if (head_ == waiting_.size()) {
        waiting_.clear();  // keeps capacity: no allocation in steady state
        head_ = 0;
      } else if (head_ >= 1024 && head_ * 2 >= waiting_.size()) {
        waiting_.erase(waiting_.begin(), waiting_.begin() + long(head_));
        head_ = 0;
      }
      if (cfg_.queue_limit > 0 && waiting_.size() - head_ >= cfg_.queue_limit) {
        ++line_.stats().sent;
        ++line_.stats().dropped_queue;
        return;
      }
      // Nanoseconds so that small frames on fast links do not round up to 1 µs each.
      const auto bits = (unsigned __int128)frame.size() * 8;
      const auto ser_ns = int64_t((bits * 1'000'000'000 + cfg_.bandwidth_bps - 1) / cfg_.bandwidth_bps);
      wire_free_ns_ = std::max(wire_free_ns_, now_ns) + ser_ns;
      waiting_.push_back(wire_free_ns_);
      ready = Instant(Duration((wire_free_ns_ + 999) / 1000));
    }
    line_.push(ready, frame);
  }

  const LinkConfig& config() const { return cfg_; }
  DelayLine& line() { return line_; }
  const DelayLine& line() const { return line_; }

 private:
  LinkConfig cfg_;
  DelayLine line_;
  int64_t wire_free_ns_ = 0;     // when the wire finishes the last accepted frame
  // Finish times of frames not yet fully on the wire, from waiting_[head_] on; a vector
  // rather than a deque, which would allocate a block every 64 frames.
  std::vector<int64_t> waiting_;
  size_t head_ = 0;
};

class LinkPair::Endpoint final : public Device {
 public:
  Endpoint(Direction& out, Direction& in) : out_(out), in_(in), staged_(out.config().tx_ring) {}

  DeviceCaps caps() const override {
    DeviceCaps c;
    c.mtu = out_.config().mtu;
    c.max_tx_frame = out_.config().mtu + 14;
    c.max_rx_frame = in_.config().mtu + 14;
    return c;
  }

  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                 size_t max) override {
    return in_.line().pop_due(now, fn, max);
  }

  std::span<uint8_t> tx_buffer(size_t len) override { return staged_.buffer(len); }
  void tx_commit(size_t len) override { staged_.commit(len); }
  std::span<uint8_t> tx_payload_area(size_t min_size) override {
    const size_t n = out_.config().tx_payload_area;
    if (n == 0 || n < min_size) return {};
    if (area_.size() != n) area_.assign(n, 0);
    return area_;
  }
  void tx_commit_split(size_t hdr_len, std::span<const uint8_t> payload) override {
    // What the module refuses (UTCP_TXF_SPLIT), a test link must not let through either.
    assert(!payload.empty() && payload.data() >= area_.data() &&
           payload.data() + payload.size() <= area_.data() + area_.size());
    staged_.commit_split(hdr_len, payload);
  }
  void flush(Instant now) override {
    staged_.drain([&](std::span<const uint8_t> f) { out_.send(now, f); });
  }

  Instant poll_at() const override { return in_.line().next_at(); }

 private:
  Direction& out_;
  Direction& in_;
  TxStaging staged_;
  std::vector<uint8_t> area_;
};

LinkPair::LinkPair(const LinkConfig& a_to_b, const LinkConfig& b_to_a)
    : ab_(std::make_unique<Direction>(a_to_b, 1)),
      ba_(std::make_unique<Direction>(b_to_a, 2)),
      a_(std::make_unique<Endpoint>(*ab_, *ba_)),
      b_(std::make_unique<Endpoint>(*ba_, *ab_)) {}

LinkPair::~LinkPair() = default;

Device& LinkPair::a() { return *a_; }
Device& LinkPair::b() { return *b_; }
const LinkStats& LinkPair::stats_a_to_b() const { return ab_->line().stats(); }
const LinkStats& LinkPair::stats_b_to_a() const { return ba_->line().stats(); }
Instant LinkPair::poll_at() const { return std::min(a_->poll_at(), b_->poll_at()); }

}  // namespace utcp
