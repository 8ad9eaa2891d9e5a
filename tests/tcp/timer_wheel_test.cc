// timer_wheel_test.cc - the hierarchical timing wheel against a brute-force reference.
#include "tcp/timer_wheel.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

namespace utcp {
namespace {

Instant at_us(int64_t us) { return Instant(Duration(us)); }

TEST(TimerWheel, FiresAtRoundedUpTick) {
  TimerWheel w(Duration(1000));
  TimerEntry e;
  w.schedule(e, at_us(2500));  // rounds up to tick 3 (3000 us)
  int fired = 0;
  EXPECT_EQ(w.advance(at_us(2999), [&](TimerEntry&) { ++fired; }), 0u);
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(w.next_expiry(), at_us(3000));
  EXPECT_EQ(w.advance(at_us(3000), [&](TimerEntry& x) { EXPECT_EQ(&x, &e); ++fired; }), 1u);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(e.linked());
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_expiry(), kInstantNever);
}

TEST(TimerWheel, CancelAndRearm) {
  TimerWheel w(Duration(1000));
  TimerEntry a, b;
  w.schedule(a, at_us(10'000));
  w.schedule(b, at_us(5'000'000));  // level 2
  w.cancel(a);
  w.schedule(b, at_us(20'000));  // re-arm moves it
  std::vector<TimerEntry*> got;
  w.advance(at_us(100'000), [&](TimerEntry& x) { got.push_back(&x); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], &b);
  EXPECT_FALSE(a.linked());
}

TEST(TimerWheel, OverdueFiresOnNextTick) {
  TimerWheel w(Duration(1000), at_us(50'000));
  TimerEntry e;
  w.schedule(e, at_us(1'000));
  int fired = 0;
  w.advance(at_us(50'000), [&](TimerEntry&) { ++fired; });
  EXPECT_EQ(fired, 0);
  w.advance(at_us(51'000), [&](TimerEntry&) { ++fired; });
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, BeyondSpanFiresEarlyAndCanBeRearmed) {
  TimerWheel w(Duration(1));
  TimerEntry e;
  const int64_t far = int64_t(TimerWheel::kMaxDelta) * 3;
  w.schedule(e, at_us(far));
  int fired = 0;
  // The owner re-arms until its real deadline has passed, as connections do.
  for (int i = 0; i < 10 && fired == 0; ++i) {
    w.advance(at_us(far), [&](TimerEntry& x) {
      if (w.now() >= at_us(far)) ++fired; else w.schedule(x, at_us(far));
    });
  }
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, RearmFromCallback) {
  TimerWheel w(Duration(1000));
  TimerEntry e;
  w.schedule(e, at_us(1000));
  int fired = 0;
  w.advance(at_us(10'000), [&](TimerEntry& x) {
    ++fired;
    if (fired < 5) w.schedule(x, w.now() + Duration(1000));
  });
  EXPECT_EQ(fired, 5);
}

// Random schedules, cancels and advances; every entry must fire exactly at its rounded-up
// tick (the wheel's `now()` at the callback), never early, never late.
TEST(TimerWheel, RandomizedAgainstReference) {
  std::mt19937_64 rng(12345);
  TimerWheel w(Duration(1000));
  constexpr int kN = 2000;
  std::vector<std::unique_ptr<TimerEntry>> es;
  std::vector<int64_t> due(kN, -1);  // tick, or -1 when not armed
  for (int i = 0; i < kN; ++i) es.push_back(std::make_unique<TimerEntry>(reinterpret_cast<void*>(intptr_t(i))));
  int64_t now_us = 0;
  size_t total_fired = 0;
  for (int step = 0; step < 3000; ++step) {
    for (int k = 0; k < 5; ++k) {
      int i = int(rng() % kN);
      int kind = int(rng() % 4);
      if (kind == 0) {
        w.cancel(*es[i]);
        due[i] = -1;
      } else {
        // Mix of short (level 0), medium and long (levels 2-3) deadlines.
        int64_t span = kind == 1 ? 64'000 : kind == 2 ? 5'000'000 : 400'000'000;
        int64_t at = now_us + int64_t(rng() % span);
        w.schedule(*es[i], at_us(at));
        int64_t tick = (at + 999) / 1000;
        due[i] = std::max<int64_t>(tick, now_us / 1000 + 1);
      }
    }
    int64_t jump = (rng() % 10 == 0) ? int64_t(rng() % 50'000'000) : int64_t(rng() % 5'000);
    now_us += jump;
    total_fired += w.advance(at_us(now_us), [&](TimerEntry& x) {
      int i = int(reinterpret_cast<intptr_t>(x.owner));
      ASSERT_GE(due[i], 0) << "cancelled entry fired";
      EXPECT_EQ(w.now(), at_us(due[i] * 1000)) << "entry " << i;
      due[i] = -1;
    });
    for (int i = 0; i < kN; ++i)
      if (due[i] >= 0) {
        ASSERT_GT(due[i] * 1000, now_us / 1000 * 1000) << "missed entry " << i;
      }
  }
  EXPECT_GT(total_fired, 1000u);
  w.clear();
}

}  // namespace
}  // namespace utcp
