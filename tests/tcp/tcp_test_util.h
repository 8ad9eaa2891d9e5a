// tcp_test_util.h - shared test helpers: a recording SegmentSink, segment builders, the leak check.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "tcp/connection.h"
#include "tcp/live.h"

namespace utcp::test {

// Fixture base: every test ends with no live connection, buffer, stack or socket.
class LeakChecked : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(live_count(LiveKind::kConnection), 0) << "leaked connections";
    EXPECT_EQ(live_count(LiveKind::kBuffer), 0) << "leaked buffers";
    EXPECT_EQ(live_count(LiveKind::kStack), 0) << "leaked stacks";
    EXPECT_EQ(live_count(LiveKind::kSocket), 0) << "leaked sockets";
  }
};

struct Sent {
  FourTuple tuple;
  TcpRepr repr;  // repr.payload points into `data`
  std::vector<uint8_t> data;
  bool has(uint8_t f) const { return repr.has(f); }
  SeqNum seq() const { return repr.seq; }
  SeqNum ack() const { return repr.ack; }
};

class Capture : public SegmentSink {
 public:
  bool send(const FourTuple& t, const TcpRepr& r, std::span<const uint8_t> p1,
            std::span<const uint8_t> p2) override {
    if (full) return false;
    Sent s{t, r, {}};
    s.data.assign(p1.begin(), p1.end());
    s.data.insert(s.data.end(), p2.begin(), p2.end());
    segs.push_back(std::move(s));
    segs.back().repr.payload = segs.back().data;
    return true;
  }
  std::vector<Sent> take() {
    auto v = std::move(segs);
    segs.clear();
    for (auto& s : v) s.repr.payload = s.data;
    return v;
  }
  std::vector<Sent> segs;
  bool full = false;
};

inline std::vector<uint8_t> pattern(size_t n, uint32_t seed = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t((i + seed) * 2654435761u >> 24);
  return v;
}

}  // namespace utcp::test
