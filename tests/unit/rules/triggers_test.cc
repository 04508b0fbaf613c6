#include "rules/triggers.h"

#include <gtest/gtest.h>

#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kSec = 1'000'000'000;

TEST(Triggers, IncidentKeyIsTheRuleNameAndItsKeyFieldsWithTheVmsHostBeforeItsId) {
  Rule r;
  r.name = "probe-down";
  r.key = {KeyField::kVmId, KeyField::kProbeName};
  VmFacts vm;
  vm.id = "vm1";
  vm.host = "h1";
  auto e = testing::probe("h1", "vm1", "http", false);
  std::string k = "junk from before";
  incident_key(r, vm, &e, &k);
  EXPECT_EQ(k, "probe-down\x1fh1\x1evm1\x1fhttp");
  incident_key(r, vm, nullptr, &k);
  EXPECT_EQ(k, std::string("probe-down\x1fh1\x1evm1\x1f"));
  r.key = {KeyField::kVmHost};
  incident_key(r, vm, nullptr, &k);
  EXPECT_EQ(k, "probe-down\x1fh1");
}

TEST(Triggers, CountFiresOnTheNthEventWithinTheWindowAndStartsAfresh) {
  Rule r;
  r.count = 3;
  r.within = 10s;
  CountWindows w;
  EXPECT_FALSE(w.reached(r, "k", 0));
  EXPECT_FALSE(w.reached(r, "k", 1 * kSec));
  EXPECT_FALSE(w.reached(r, "other", 2 * kSec)) << "keys count apart";
  EXPECT_TRUE(w.reached(r, "k", 9 * kSec));
  EXPECT_FALSE(w.reached(r, "k", 10 * kSec)) << "the window starts afresh after firing";
  EXPECT_FALSE(w.reached(r, "k", 11 * kSec));
  EXPECT_FALSE(w.reached(r, "k", 25 * kSec)) << "the first two aged out";
}

TEST(Triggers, DescribesWhatFired) {
  auto set = testing::must_load(R"(rules:
  - {name: flapping, on: vm.crashed, count: 3, within: 1m, do: notify}
  - name: hang
    absent: vm.heartbeat
    for: 30s
    do: notify
)");
  const Rule& count = *set->rules()[0];
  const Rule& hang = *set->rules()[1];
  auto e = testing::lifecycle("h1", "vm1", medic::v1::LIFECYCLE_CRASHED);
  EXPECT_EQ(describe_event_trigger(count, EventType::kVmCrashed, e), "3 vm.crashed within 1m");
  EXPECT_EQ(describe_absence(hang), "no vm.heartbeat for 30s");
}

TEST(Triggers, AbsenceWatchCallsBackWhenADeadlinePassesAndNotBefore) {
  auto set = testing::must_load(R"(rules:
  - name: hang
    absent: vm.heartbeat
    for: 30s
    do: notify
)");
  VirtualClock clock;
  std::vector<AbsenceWatch::Due> due;
  AbsenceWatch w(clock, [&] { w.pop_due(to_ns(clock.now()), &due); });
  w.rebuild(*set, 0, to_ns(clock.now()));
  w.arm_all(0, to_ns(clock.now()));
  w.arm_all(1, to_ns(clock.now()));
  EXPECT_EQ(w.armed_count(), 2u);
  clock.advance(20s);
  w.signalled(*set, EventType::kVmHeartbeat, 1, to_ns(clock.now()));  // VM 1 refreshed
  clock.advance(10s - 1ns);
  EXPECT_TRUE(due.empty());
  clock.advance(1ns);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].vm, 0u);
  EXPECT_EQ(due[0].rule->name, "hang");
  clock.advance(20s);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[1].vm, 1u);
  EXPECT_EQ(w.armed_count(), 0u) << "fired keys are disarmed";
}

TEST(Triggers, AbsenceWatchKeepsTrackersOfRulesThatSurviveAReload) {
  const char* yaml = R"(rules:
  - name: hang
    absent: vm.heartbeat
    for: 30s
    do: notify
)";
  VirtualClock clock;
  size_t fired = 0;
  std::vector<AbsenceWatch::Due> due;
  AbsenceWatch w(clock, [&] {
    due.clear();
    w.pop_due(to_ns(clock.now()), &due);
    fired += due.size();
  });
  w.rebuild(*testing::must_load(yaml), 0, to_ns(clock.now()));
  w.arm_all(0, to_ns(clock.now()));
  clock.advance(20s);
  w.rebuild(*testing::must_load(yaml), 1, to_ns(clock.now()));  // same name and signal
  clock.advance(10s);
  EXPECT_EQ(fired, 1u) << "the deadline carried over; a rebuilt tracker would fire at 50s";
}

}  // namespace
}  // namespace medic::rules
