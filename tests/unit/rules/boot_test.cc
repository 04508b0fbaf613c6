// Boot-aware ladders: a VM that shows progress after a step (it reports
// booting, is reset or started) is watched up to the rule's boot_timeout
// before the ladder climbs; one that makes no progress climbs at heal_within.
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "rules/loader.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::no_storm;
using testing::heartbeat;
using testing::lifecycle;
using testing::state;


constexpr const char* kHangRule = R"(rules:
  - {name: hang, absent: vm.heartbeat, for: 30s, do: [reboot, reset], heal_within: 1m,
     boot_timeout: 3m}
)";

// The VM stops beating; the reboot is dispatched and succeeds (its result
// comes up to 5 s later). Returns the time the reboot was sent: the step's
// watch counts from there.
Time reboot_succeeds(Harness& h) {
  h.send(heartbeat("h1", "vm1"));
  h.advance(31s);
  auto ds = h.take();
  EXPECT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds.empty() ? Step::kNotify : ds[0].step, Step::kReboot);
  if (ds.empty()) return h.clock.now();
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);
  return ds[0].at;
}

TEST(BootAware, ASlowBootingGuestIsWatchedPastHealWithinAndHealsWithoutAReset) {
  Harness h(kHangRule, no_storm());
  Time t0 = reboot_succeeds(h);
  // 90 s of "booting" reports, one every 5 s, then the first heartbeat.
  while (h.clock.now() < t0 + 90s) {
    h.send(state("h1", "vm1", medic::v1::VM_STATE_BOOTING));
    h.advance(5s);
  }
  EXPECT_EQ(h.count(Step::kReset, Outcome::kProposed), 0u) << "reset mid-boot";
  h.send(heartbeat("h1", "vm1"));
  ASSERT_FALSE(h.sink.verdicts.empty());
  EXPECT_TRUE(h.sink.verdicts.back().healed);
  EXPECT_EQ(h.engine.stats().open_incidents, 0u);
}

TEST(BootAware, AGuestThatMakesNoProgressClimbsAtHealWithin) {
  Harness h(kHangRule, no_storm());
  Time t0 = reboot_succeeds(h);
  while (h.clock.now() < t0 + 90s) {
    h.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));  // hung, says running
    h.advance(5s);
  }
  auto resets = h.with(Outcome::kProposed);
  ASSERT_EQ(resets.size(), 1u);
  EXPECT_EQ(resets[0].step, Step::kReset);
  EXPECT_EQ(resets[0].at, t0 + 1min) << "heal_within after the reboot was sent";
}

TEST(BootAware, AGuestStillBootingAtBootTimeoutClimbsThen) {
  Harness h(kHangRule, no_storm());
  Time t0 = reboot_succeeds(h);
  while (h.clock.now() < t0 + 5min) {
    h.send(state("h1", "vm1", medic::v1::VM_STATE_BOOTING));
    h.advance(5s);
  }
  auto resets = h.with(Outcome::kProposed);
  ASSERT_EQ(resets.size(), 1u);
  EXPECT_EQ(resets[0].step, Step::kReset);
  EXPECT_EQ(resets[0].at, t0 + 3min) << "boot_timeout after the reboot was sent";
}

TEST(BootAware, BootTimeoutShorterThanHealWithinIsAnError) {
  auto r = load_rule_text(R"(rules:
  - {name: hang, absent: vm.heartbeat, for: 30s, do: reboot, heal_within: 2m, boot_timeout: 1m}
)",
                          "r.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.text().find("r.yaml:2:93: error: boot_timeout must be at least heal_within (2m)"),
            std::string::npos)
      << r.text();
  auto fine = load_rule_text("rules:\n  - {name: hang, absent: vm.heartbeat, for: 30s, do: reboot}\n",
                             "r.yaml");
  ASSERT_TRUE(fine.ok()) << fine.text();
  EXPECT_EQ(fine.rules->rules()[0]->boot_timeout, 5min) << "the default";
}

}  // namespace
}  // namespace medic::rules
