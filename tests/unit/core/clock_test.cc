#include "core/clock.h"

#include <gtest/gtest.h>

#include <vector>

namespace medic {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(VirtualClock, AdvanceFiresDueTimersInTimeOrder) {
  VirtualClock clock;
  Time start = clock.now();
  std::vector<int> fired;
  std::vector<Time> when;
  clock.schedule_after(seconds(3), [&] { fired.push_back(3); when.push_back(clock.now()); });
  clock.schedule_after(seconds(1), [&] { fired.push_back(1); when.push_back(clock.now()); });
  clock.schedule_after(seconds(2), [&] { fired.push_back(2); when.push_back(clock.now()); });
  clock.advance(milliseconds(2500));
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
  ASSERT_EQ(when.size(), 2u);
  EXPECT_EQ(when[0], start + seconds(1));
  EXPECT_EQ(when[1], start + seconds(2));
  EXPECT_EQ(clock.now(), start + milliseconds(2500));
  clock.advance(seconds(1));
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
}

TEST(VirtualClock, TimersAtTheSameTimeRunInSchedulingOrder) {
  VirtualClock clock;
  std::vector<int> fired;
  for (int i = 0; i < 5; ++i) clock.schedule_after(seconds(1), [&, i] { fired.push_back(i); });
  clock.advance(seconds(1));
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(VirtualClock, TimerScheduledFromCallbackWithinWindowFires) {
  VirtualClock clock;
  int count = 0;
  std::function<void()> tick = [&] {
    ++count;
    clock.schedule_after(seconds(1), tick);
  };
  clock.schedule_after(seconds(1), tick);
  clock.advance(seconds(10));
  EXPECT_EQ(count, 10);
}

TEST(VirtualClock, CancelledTimerDoesNotFire) {
  VirtualClock clock;
  bool fired = false;
  TimerId id = clock.schedule_after(seconds(1), [&] { fired = true; });
  EXPECT_TRUE(clock.cancel(id));
  EXPECT_FALSE(clock.cancel(id));
  clock.advance(seconds(5));
  EXPECT_FALSE(fired);
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(VirtualClock, NextDeadlineIsEarliestPending) {
  VirtualClock clock;
  EXPECT_FALSE(clock.next_deadline().has_value());
  clock.schedule_after(seconds(5), [] {});
  clock.schedule_after(seconds(2), [] {});
  EXPECT_EQ(*clock.next_deadline(), clock.now() + seconds(2));
}

TEST(SystemClock, RunDueRunsOnlyPastTimers) {
  SystemClock clock;
  int fired = 0;
  clock.schedule_at(clock.now() - seconds(1), [&] { ++fired; });
  clock.schedule_after(seconds(3600), [&] { ++fired; });
  EXPECT_EQ(clock.run_due(), 1u);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(clock.pending_timers(), 1u);
}

}  // namespace
}  // namespace medic
