// Time for medic. Everything that needs the time or a timer takes a Clock, so
// the same code runs live (SystemClock), and in rule tests, the simulator and
// unit tests on a VirtualClock whose advance() fires due timers in order.
//
// A Clock is not thread-safe: it belongs to one event loop. Cross-thread code
// reads SystemClock::wall_now() directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

namespace medic {

using Duration = std::chrono::nanoseconds;
// Nanoseconds since the Unix epoch.
using Time = std::chrono::time_point<std::chrono::system_clock, Duration>;

inline int64_t to_ns(Time t) { return t.time_since_epoch().count(); }
inline Time from_ns(int64_t ns) { return Time(Duration(ns)); }

using TimerId = uint64_t;

class Clock {
 public:
  using Callback = std::function<void()>;
  virtual ~Clock() = default;

  virtual Time now() const = 0;

  // Schedules `cb` to run once at or after `at`. Timers due at the same time
  // run in the order they were scheduled. Returns an id for cancel().
  TimerId schedule_at(Time at, Callback cb);
  TimerId schedule_after(Duration d, Callback cb) { return schedule_at(now() + d, std::move(cb)); }
  // Cancels a pending timer; returns false when it already ran or is unknown.
  bool cancel(TimerId id);

  // Runs every timer due at now(); returns how many ran.
  size_t run_due();
  // When the earliest pending timer is due, if any.
  std::optional<Time> next_deadline() const;
  size_t pending_timers() const { return timers_.size(); }

 protected:
  // Pops and runs the earliest timer if it is due at `t`. Returns false if none.
  bool run_one_due(Time t);

 private:
  // Keyed by (due time, sequence) so equal times keep scheduling order.
  std::map<std::pair<Time, uint64_t>, std::pair<TimerId, Callback>> timers_;
  std::map<TimerId, std::pair<Time, uint64_t>> index_;
  uint64_t next_seq_ = 0;
  TimerId next_id_ = 1;
};

class SystemClock final : public Clock {
 public:
  Time now() const override { return wall_now(); }
  static Time wall_now() {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
};

// A clock that never jumps or goes back (CLOCK_MONOTONIC), as a Time counted
// from an arbitrary start: for deadlines that must not move when the wall
// clock is set (a lease's validity), never for timestamps a person reads.
class MonotonicClock final : public Clock {
 public:
  Time now() const override {
    return Time(std::chrono::duration_cast<Duration>(
        std::chrono::steady_clock::now().time_since_epoch()));
  }
};

// A clock that moves only when told. advance() steps through every timer due
// in the interval, setting now() to each timer's due time before running it.
class VirtualClock final : public Clock {
 public:
  explicit VirtualClock(Time start = from_ns(1'700'000'000'000'000'000)) : now_(start) {}
  Time now() const override { return now_; }
  // REQUIRES: d >= 0.
  void advance(Duration d) { advance_to(now_ + d); }
  void advance_to(Time t);

 private:
  Time now_;
};

}  // namespace medic
