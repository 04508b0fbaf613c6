#include "rules/absence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace medic::rules {
namespace {

TEST(AbsenceTracker, FiresKeysWhoseDeadlinePassedInDeadlineOrder) {
  AbsenceTracker t;
  t.arm(3, 300);
  t.arm(1, 100);
  t.arm(2, 200);
  std::vector<AbsenceTracker::Key> out;
  EXPECT_EQ(t.pop_due(99, &out), 0u);
  EXPECT_EQ(t.pop_due(200, &out), 2u);
  EXPECT_EQ(out, (std::vector<AbsenceTracker::Key>{1, 2}));
  EXPECT_FALSE(t.armed(1));
  EXPECT_TRUE(t.armed(3));
  EXPECT_EQ(t.armed_count(), 1u);
}

TEST(AbsenceTracker, RefreshedKeysDoNotFireAndKeepOneHeapEntry) {
  AbsenceTracker t;
  t.arm(7, 100);
  for (int64_t now = 50; now < 10'000; now += 50) t.arm(7, now + 100);
  std::vector<AbsenceTracker::Key> out;
  EXPECT_EQ(t.pop_due(9'999, &out), 0u);
  EXPECT_EQ(t.pop_due(10'050, &out), 1u);
  EXPECT_LE(t.memory_bytes(), 64u * 8);  // no growth per refresh
}

TEST(AbsenceTracker, AnEarlierDeadlineIsHonoured) {
  AbsenceTracker t;
  t.arm(1, 1000);
  t.arm(1, 10);
  std::vector<AbsenceTracker::Key> out;
  EXPECT_EQ(t.pop_due(10, &out), 1u);
  EXPECT_EQ(t.pop_due(2000, &out), 0u) << "the stale entry fired again";
}

TEST(AbsenceTracker, DisarmedKeysNeverFire) {
  AbsenceTracker t;
  t.arm(1, 10);
  t.disarm(1);
  std::vector<AbsenceTracker::Key> out;
  EXPECT_EQ(t.pop_due(100, &out), 0u);
  t.arm(1, 200);
  EXPECT_EQ(t.pop_due(200, &out), 1u);
}

TEST(AbsenceTracker, MatchesABruteForceModelUnderRandomOperations) {
  std::mt19937_64 rng(42);
  AbsenceTracker t;
  std::vector<int64_t> model(64, 0);
  int64_t now = 0;
  for (int step = 0; step < 20'000; ++step) {
    auto key = static_cast<AbsenceTracker::Key>(rng() % 64);
    switch (rng() % 4) {
      case 0:
      case 1: {
        int64_t d = now + 1 + static_cast<int64_t>(rng() % 100);
        t.arm(key, d);
        model[key] = d;
        break;
      }
      case 2:
        t.disarm(key);
        model[key] = 0;
        break;
      default: {
        now += static_cast<int64_t>(rng() % 30);
        std::vector<AbsenceTracker::Key> got;
        t.pop_due(now, &got);
        std::vector<AbsenceTracker::Key> want;
        for (AbsenceTracker::Key k = 0; k < model.size(); ++k) {
          if (model[k] != 0 && model[k] <= now) {
            want.push_back(k);
            model[k] = 0;
          }
        }
        std::sort(got.begin(), got.end());
        ASSERT_EQ(got, want) << "step " << step;
      }
    }
  }
}

}  // namespace
}  // namespace medic::rules
