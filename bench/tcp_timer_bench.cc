// tcp_timer_bench.cc - the timing wheel's start/stop/expiry costs against an ordered-map timer queue.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "tcp/timer_wheel.h"

namespace {

using utcp::Duration;
using utcp::Instant;
using utcp::TimerEntry;
using utcp::TimerWheel;

Instant at_us(int64_t us) { return Instant(Duration(us)); }

// A fixed random plan of re-arms: which of n timers, and to what deadline (< 60 s).
struct RearmPlan {
  RearmPlan(std::mt19937_64& rng, size_t n) : idx(4096), when(4096) {
    for (size_t i = 0; i < idx.size(); ++i) {
      idx[i] = uint32_t(rng() % n);
      when[i] = int64_t(rng() % 60'000'000);
    }
  }
  std::vector<uint32_t> idx;
  std::vector<int64_t> when;
};

// n timers armed at random deadlines in [base, base + span) microseconds.
std::vector<std::unique_ptr<TimerEntry>> arm_random(TimerWheel& w, std::mt19937_64& rng, size_t n,
                                                    int64_t base, int64_t span) {
  std::vector<std::unique_ptr<TimerEntry>> es;
  for (size_t i = 0; i < n; ++i) {
    es.push_back(std::make_unique<TimerEntry>());
    w.schedule(*es.back(), at_us(base + int64_t(rng() % uint64_t(span))));
  }
  return es;
}

// Re-arming a random armed timer (the common TCP case: every ACK moves the RTO).
void BM_WheelRearm(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  TimerWheel w(Duration(1000));
  std::mt19937_64 rng(1);
  auto es = arm_random(w, rng, n, 0, 60'000'000);
  const RearmPlan plan(rng, n);
  size_t k = 0;
  for (auto _ : state) {
    w.schedule(*es[plan.idx[k & 4095]], at_us(plan.when[k & 4095]));
    ++k;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  w.clear();
}
BENCHMARK(BM_WheelRearm)->Arg(1000)->Arg(100'000)->Arg(1'000'000);

void BM_WheelStartStop(benchmark::State& state) {
  TimerWheel w(Duration(1000));
  TimerEntry e;
  int64_t t = 0;
  for (auto _ : state) {
    w.schedule(e, at_us(200'000 + (t++ & 1023) * 1000));
    w.cancel(e);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 2);
}
BENCHMARK(BM_WheelStartStop);

// Expiry: n timers spread over 1 s of 1 ms ticks; each fired timer is re-armed 1 s ahead.
void BM_WheelExpire(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  TimerWheel w(Duration(1000));
  std::mt19937_64 rng(2);
  auto es = arm_random(w, rng, n, 1000, 1'000'000);
  int64_t now = 0;
  size_t fired = 0;
  for (auto _ : state) {
    now += 1000;
    fired += w.advance(at_us(now), [&](TimerEntry& e) { w.schedule(e, at_us(now + 1'000'000)); });
  }
  state.SetItemsProcessed(int64_t(fired));
  state.counters["fired_per_tick"] = double(fired) / double(state.iterations());
  w.clear();
}
BENCHMARK(BM_WheelExpire)->Arg(1000)->Arg(100'000);

// Baseline: the same re-arm pattern on a std::multimap keyed by deadline.
void BM_MultimapRearm(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  std::multimap<int64_t, size_t> q;
  std::vector<std::multimap<int64_t, size_t>::iterator> pos(n);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < n; ++i) pos[i] = q.emplace(int64_t(rng() % 60'000'000), i);
  const RearmPlan plan(rng, n);
  size_t k = 0;
  for (auto _ : state) {
    size_t i = plan.idx[k & 4095];
    q.erase(pos[i]);
    pos[i] = q.emplace(plan.when[k & 4095], i);
    ++k;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_MultimapRearm)->Arg(1000)->Arg(100'000)->Arg(1'000'000);

}  // namespace

BENCHMARK_MAIN();
