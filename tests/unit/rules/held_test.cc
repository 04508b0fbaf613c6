// Held incidents are held: a step stopped by a silence, cooldown, budget,
// storm freeze or silent host gives one decision when it is held and one
// verdict when the hold lifts or the VM heals, however often its trigger
// comes back meanwhile.
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::heartbeat;
using testing::lifecycle;
using testing::state;

EngineOptions no_storm() {
  EngineOptions o;
  o.storm.min_vms = 1000;
  return o;
}

// A rule that triggers on every state report while the VM is stopped: the
// case that wrote a decision per report before holds were kept.
constexpr const char* kStoppedRule = R"(rules:
  - {name: stopped, on: vm.state, where: vm.state == "stopped", do: restart, cooldown: 0s,
     budget: 1 per 1h, heal_within: 30s}
)";

// The rule's decisions on its own step (not the budget's notices).
size_t decisions_of(const Harness& h, const std::string& rule) {
  size_t n = 0;
  for (const auto& d : h.sink.decisions) n += d.rule == rule && d.step != Step::kNotify;
  return n;
}

TEST(HeldIncident, ABudgetHoldWritesOneDecisionWhateverTheTriggersThenOneReleaseVerdict) {
  Harness h(kStoppedRule, no_storm());
  h.send(state("h1", "vm1", medic::v1::VM_STATE_STOPPED));
  auto first = h.take();
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].outcome, Outcome::kProposed);
  h.engine.on_action_result(first[0].id, ActionState::kSucceeded, false);
  h.advance(30s);  // the watch ends without a heal: the ladder is over
  h.take();
  h.sink.verdicts.clear();
  // Three minutes of reports, one a second, all stopped.
  for (int i = 0; i < 180; ++i) {
    h.send(state("h1", "vm1", medic::v1::VM_STATE_STOPPED));
    h.advance(1s);
  }
  EXPECT_EQ(decisions_of(h, "stopped"), 1u) << "one decision for the held incident, not 180";
  ASSERT_EQ(h.with(Outcome::kSuppressed).size(), 1u);
  EXPECT_EQ(h.with(Outcome::kSuppressed)[0].policy, Policy::kBudget);
  EXPECT_TRUE(h.sink.verdicts.empty()) << "still held: no verdict yet";
  EXPECT_EQ(h.engine.stats().open_incidents, 1u);
  // The window passes (1h after the action): the hold lifts with a verdict
  // on the held decision, and the next report acts again.
  const std::string held = h.with(Outcome::kSuppressed)[0].id;
  h.take();
  h.advance(1h - 3min - 30s);
  ASSERT_EQ(h.sink.verdicts.size(), 1u);
  EXPECT_EQ(h.sink.verdicts[0].decision_id, held);
  EXPECT_FALSE(h.sink.verdicts[0].healed);
  EXPECT_NE(h.sink.verdicts[0].detail.find("released: the budget has room again"),
            std::string::npos)
      << h.sink.verdicts[0].detail;
  EXPECT_TRUE(h.take().empty()) << "a release is no decision";
  h.send(state("h1", "vm1", medic::v1::VM_STATE_STOPPED));
  auto again = h.take();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].outcome, Outcome::kProposed);
}

TEST(HeldIncident, ACooldownHoldEndsWhenTheCooldownDoesAndAPanicInItIsNotActedOnLater) {
  Harness h("rules:\n  - {name: p, on: vm.panicked, do: reset, cooldown: 2m}\n", no_storm());
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, true);
  h.advance(30s);
  for (int i = 0; i < 5; ++i) {
    h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
    h.advance(10s);
  }
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u) << "five panics in the cooldown, one held decision";
  EXPECT_EQ(ds[0].policy, Policy::kCooldown);
  EXPECT_EQ(ds[0].checks.back().verdict, Verdict::kHold);
  h.advance(2min);
  ASSERT_EQ(h.sink.verdicts.size(), 2u) << "the first action's heal, then the release";
  EXPECT_EQ(h.sink.verdicts[1].decision_id, ds[0].id);
  EXPECT_NE(h.sink.verdicts[1].detail.find("the cooldown ended"), std::string::npos);
  EXPECT_TRUE(h.take().empty()) << "a panic from the cooldown is not acted on once it ends";
  EXPECT_EQ(h.engine.stats().open_incidents, 0u);
  // Control: a panic after the cooldown is acted on.
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kProposed);
}

TEST(HeldIncident, AHeldIncidentThatHealsClosesWithOneHealedVerdict) {
  Harness h(R"(rules:
  - {name: p, on: vm.panicked, do: reset, cooldown: 10m, healed_by: vm.heartbeat}
)",
            no_storm());
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto ds = h.take();
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, true);
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  ASSERT_EQ(ds[0].policy, Policy::kCooldown);
  h.sink.verdicts.clear();
  h.send(heartbeat("h1", "vm1"));
  ASSERT_EQ(h.sink.verdicts.size(), 1u);
  EXPECT_TRUE(h.sink.verdicts[0].healed);
  EXPECT_EQ(h.sink.verdicts[0].decision_id, ds[0].id);
  EXPECT_EQ(h.engine.stats().open_incidents, 0u);
  h.advance(10min);
  EXPECT_EQ(h.sink.verdicts.size(), 1u) << "no release verdict for an incident already closed";
}

TEST(HeldIncident, ASilenceHoldsUntilRemovedAndOnlyWhatNoOtherSilenceCovers) {
  Harness h(kStoppedRule, no_storm());
  Silence all;
  all.host = "h1";
  all.until = h.clock.now() + 1h;
  all.reason = "maintenance";
  std::string s1 = h.engine.silence(all);
  Silence vm2 = all;
  vm2.vm = "vm2";
  vm2.until = h.clock.now() + 2h;
  h.engine.silence(vm2);
  for (int i = 0; i < 30; ++i) {
    h.send(state("h1", "vm1", medic::v1::VM_STATE_STOPPED));
    h.send(state("h1", "vm2", medic::v1::VM_STATE_STOPPED));
    h.advance(1s);
  }
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 2u) << "one held decision per VM over 30 reports each";
  for (const auto& d : ds) EXPECT_EQ(d.policy, Policy::kSilence);
  ASSERT_TRUE(h.engine.unsilence(s1).ok());
  ASSERT_EQ(h.sink.verdicts.size(), 1u) << "vm2 is still covered by its own silence";
  EXPECT_EQ(h.sink.verdicts[0].decision_id, ds[0].vm == "vm1" ? ds[0].id : ds[1].id);
  EXPECT_NE(h.sink.verdicts[0].detail.find("silence " + s1 + " was removed"), std::string::npos);
  h.send(state("h1", "vm1", medic::v1::VM_STATE_STOPPED));
  h.send(state("h1", "vm2", medic::v1::VM_STATE_STOPPED));
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].vm, "vm1");
  EXPECT_EQ(ds[0].outcome, Outcome::kProposed);
}

TEST(HeldIncident, AHoldSurvivesSnapshotAndRestoreAndLiftsOnTime) {
  Harness h(kStoppedRule, no_storm());
  h.send(state("h1", "vm1", medic::v1::VM_STATE_STOPPED));
  auto ds = h.take();
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);
  h.advance(30s);
  h.take();
  h.send(state("h1", "vm1", medic::v1::VM_STATE_STOPPED));
  ds = h.with(Outcome::kSuppressed);
  ASSERT_EQ(ds.size(), 1u);
  ASSERT_EQ(ds[0].policy, Policy::kBudget);
  const std::string held = ds[0].id;
  EngineState saved = h.engine.snapshot();

  testing::RecordingSink sink;
  Engine next(h.clock, testing::must_load(kStoppedRule), no_storm(), sink);
  ASSERT_TRUE(next.restore(saved).ok());
  for (int i = 0; i < 10; ++i) {
    auto e = state("h1", "vm1", medic::v1::VM_STATE_STOPPED);
    next.ingest(e, 0);
    h.clock.advance(1s);
  }
  EXPECT_TRUE(sink.decisions.empty()) << "the restored incident is still held";
  for (int i = 0; i < 60; ++i) {
    next.host_seen("h1", h.clock.now());
    h.clock.advance(1min);
  }
  ASSERT_EQ(sink.verdicts.size(), 1u);
  EXPECT_EQ(sink.verdicts[0].decision_id, held) << "the release names the held decision";
  EXPECT_NE(sink.verdicts[0].detail.find("the budget has room again"), std::string::npos);
}

}  // namespace
}  // namespace medic::rules
