// timer_wheel.h - hierarchical timing wheel (Varghese & Lauck, scheme 7) for connection timers.
//
// Entries are intrusive (a TimerEntry lives inside its owner), so start and stop are O(1)
// and allocate nothing. Five levels of 64 slots cover 2^30 ticks; later deadlines are
// clamped to the last slot and simply fire early (the owner re-checks its real deadline
// and re-arms, which every user of this wheel does anyway). Occupancy bitmaps let
// advance() skip empty stretches of time instead of stepping tick by tick.
#pragma once

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>

#include "base/time.h"

namespace utcp {

class TimerWheel;

struct TimerLink {
  TimerLink* next = nullptr;
  TimerLink* prev = nullptr;  // non-null while in a slot
};

// One timer. Owned (embedded) by whoever it belongs to; `owner` lets the expiry callback
// find it. Must be cancelled (or the wheel destroyed) before it is destroyed.
struct TimerEntry : TimerLink {
  explicit TimerEntry(void* owner_ptr = nullptr) : owner(owner_ptr) {}
  TimerEntry(const TimerEntry&) = delete;
  TimerEntry& operator=(const TimerEntry&) = delete;
  ~TimerEntry() { assert(!linked()); }

  bool linked() const { return prev != nullptr; }
  uint64_t expires_tick() const { return expires; }

  void* owner;
  uint64_t expires = 0;  // in ticks
  uint16_t slot = 0;     // level * 64 + index, for the occupancy bitmap on unlink
};

class TimerWheel {
 public:
  static constexpr int kBits = 6;
  static constexpr int kSlots = 1 << kBits;
  static constexpr int kLevels = 5;
  static constexpr uint64_t kMaxDelta = (uint64_t{1} << (kBits * kLevels)) - 1;

  // `tick` is the resolution; deadlines are rounded up to it, so nothing fires early
  // (except deadlines beyond the wheel's span, see above).
  explicit TimerWheel(Duration tick = Duration(1000), Instant start = kInstantZero)
      : tick_us_(tick.count() > 0 ? tick.count() : 1), current_(to_tick_floor(start)) {
    for (auto& level : slots_)
      for (auto& s : level) s.next = s.prev = &s;
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  ~TimerWheel() { clear(); }

  Duration tick() const { return Duration(tick_us_); }
  size_t size() const { return count_; }
  // The instant of the last processed tick.
  Instant now() const { return Instant(Duration(int64_t(current_ * tick_us_))); }

  // (Re)arms `e` to fire at the first tick at or after `at`. A deadline not after the
  // current tick fires on the next advance() past it.
  void schedule(TimerEntry& e, Instant at) {
    if (e.linked()) unlink(e);
    if (at == kInstantNever) return;
    e.expires = to_tick_ceil(at);
    link(e, false);
  }
  void cancel(TimerEntry& e) {
    if (e.linked()) unlink(e);
  }
  // Unlinks every entry without firing it.
  void clear() {
    for (auto& level : slots_)
      for (auto& s : level)
        while (s.next != &s) unlink(*static_cast<TimerEntry*>(s.next));
  }

  // Processes every tick up to `now`, calling fn(TimerEntry&) for each expired entry
  // (already unlinked; fn may re-arm it or any other entry). Returns how many fired.
  template <class F>
  size_t advance(Instant now, F&& fn) {
    const uint64_t target = to_tick_floor(now);
    size_t fired = 0;
    while (current_ < target) {
      const uint64_t t = next_event_tick();
      if (t > target) {
        current_ = target;
        break;
      }
      current_ = t;
      cascade_at(t);
      Slot& s = slots_[0][t & (kSlots - 1)];
      // An entry re-armed from fn() lands in a later slot, never this one.
      while (s.next != &s) {
        TimerEntry& e = *static_cast<TimerEntry*>(s.next);
        unlink(e);
        ++fired;
        fn(e);
      }
    }
    return fired;
  }

  // The earliest instant at which advance() could fire something (the true deadline of
  // the earliest entry, up to cascading); kInstantNever when empty. O(levels).
  Instant next_expiry() const {
    if (count_ == 0) return kInstantNever;
    // Level 0 holds exact expiry ticks; higher levels only know a lower bound, which is
    // the boundary where they cascade. Both are safe "wake me by" answers.
    uint64_t t = next_event_tick();
    return Instant(Duration(int64_t(t * tick_us_)));
  }

 private:
  using Slot = TimerLink;  // a slot is the sentinel of a circular list of entries

  uint64_t to_tick_floor(Instant t) const {
    int64_t us = t.time_since_epoch().count();
    return us <= 0 ? 0 : uint64_t(us) / tick_us_;
  }
  uint64_t to_tick_ceil(Instant t) const {
    if (t == kInstantNever) return UINT64_MAX;
    int64_t us = t.time_since_epoch().count();
    return us <= 0 ? 0 : (uint64_t(us) + tick_us_ - 1) / tick_us_;
  }

  // `cascading`: the entry comes down from a higher level at tick current_, which is
  // about to be processed, so an entry due exactly now goes to the current slot.
  void link(TimerEntry& e, bool cascading) {
    uint64_t exp = e.expires;
    if (exp < current_ + (cascading ? 0 : 1)) exp = current_ + 1;  // overdue: next tick
    uint64_t delta = exp - current_;
    if (delta > kMaxDelta) {
      delta = kMaxDelta;  // beyond the span: park in the farthest slot, fire early
      exp = current_ + delta;
    }
    int level = 0;
    while (level < kLevels - 1 && delta >= (uint64_t{1} << (kBits * (level + 1)))) ++level;
    const unsigned idx = unsigned(exp >> (kBits * level)) & (kSlots - 1);
    Slot& s = slots_[level][idx];
    e.slot = uint16_t(level * kSlots + idx);
    e.next = &s;
    e.prev = s.prev;
    s.prev->next = &e;
    s.prev = &e;
    occupied_[level] |= uint64_t{1} << idx;
    ++count_;
  }

  void unlink(TimerEntry& e) {
    const int level = e.slot / kSlots;
    const unsigned idx = e.slot % kSlots;
    e.prev->next = e.next;
    e.next->prev = e.prev;
    e.next = e.prev = nullptr;
    const Slot& head = slots_[level][idx];
    if (head.next == &head) occupied_[level] &= ~(uint64_t{1} << idx);
    --count_;
  }

  // Moves the entries of every higher-level slot whose period starts at tick t down.
  void cascade_at(uint64_t t) {
    for (int level = 1; level < kLevels; ++level) {
      if ((t & ((uint64_t{1} << (kBits * level)) - 1)) != 0) break;
      const unsigned idx = unsigned(t >> (kBits * level)) & (kSlots - 1);
      Slot& s = slots_[level][idx];
      // Take the whole list, then re-insert relative to the new current tick.
      TimerLink* n = s.next;
      if (n == &s) continue;
      s.prev->next = nullptr;  // terminate the detached chain
      s.next = s.prev = &s;
      occupied_[level] &= ~(uint64_t{1} << idx);
      while (n != nullptr) {
        TimerLink* nx = n->next;
        n->next = n->prev = nullptr;
        --count_;
        link(*static_cast<TimerEntry*>(n), true);
        n = nx;
      }
    }
  }

  // Smallest tick > current_ at which a level-0 slot fires or an occupied higher slot
  // cascades. Every occupied slot has one, so this is finite when count_ > 0.
  uint64_t next_event_tick() const {
    uint64_t best = UINT64_MAX;
    for (int level = 0; level < kLevels; ++level) {
      const uint64_t occ = occupied_[level];
      if (occ == 0) continue;
      const int shift = kBits * level;
      const unsigned c = unsigned(current_ >> shift) & (kSlots - 1);
      const uint64_t rotation_base = (current_ >> (shift + kBits)) << (shift + kBits);
      // Slots after the current index come in this rotation, the others in the next.
      const uint64_t after = c == kSlots - 1 ? 0 : occ & (~uint64_t{0} << (c + 1));
      uint64_t t;
      if (after) {
        t = rotation_base + (uint64_t(std::countr_zero(after)) << shift);
      } else {
        t = rotation_base + (uint64_t{1} << (shift + kBits)) +
            (uint64_t(std::countr_zero(occ)) << shift);
      }
      if (t < best) best = t;
    }
    return best;
  }

  uint64_t tick_us_;
  uint64_t current_;
  size_t count_ = 0;
  std::array<uint64_t, kLevels> occupied_{};
  std::array<std::array<Slot, kSlots>, kLevels> slots_;
};

}  // namespace utcp
