#include "rules/engine.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>

#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::no_storm;
using testing::heartbeat;
using testing::lifecycle;
using testing::probe;
using testing::state;

constexpr auto kPanic = medic::v1::LIFECYCLE_PANICKED;
constexpr auto kCrash = medic::v1::LIFECYCLE_CRASHED;


const char* kPanicRule = R"(rules:
  - name: guest-panicked
    on: vm.panicked
    where: vm.labels.tier != "batch"
    do: reset
)";

TEST(Engine, ProposesTheRuleActionWithEvidenceAndVersion) {
  Harness h(kPanicRule);
  h.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING, {{"tier", "web"}}), 7);
  h.send(lifecycle("h1", "vm1", kPanic), 8);
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  const Decision& d = ds[0];
  EXPECT_EQ(d.outcome, Outcome::kProposed);
  EXPECT_EQ(d.step, Step::kReset);
  EXPECT_EQ(d.rule, "guest-panicked");
  EXPECT_EQ(d.rule_version.size(), 12u);
  EXPECT_EQ(d.vm, "vm1");
  EXPECT_EQ(d.host, "h1");
  EXPECT_EQ(d.ladder_step, 1u);
  EXPECT_EQ(d.ladder_size, 1u);
  EXPECT_EQ(d.evidence, std::vector<EvidenceRef>{8});
  EXPECT_EQ(d.trigger, "vm.panicked");
  EXPECT_FALSE(d.id.empty());
  EXPECT_EQ(d.expires_at, d.at + EngineOptions{}.action_ttl);
}

TEST(Engine, AnOpenIncidentNamesItsVmByItsNameLabel) {
  Harness h(kPanicRule);
  h.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING, {{"name", "db-primary"}}));
  h.send(state("h1", "vm2", medic::v1::VM_STATE_RUNNING, {{"tier", "web"}}));
  h.send(lifecycle("h1", "vm1", kPanic));
  h.send(lifecycle("h1", "vm2", kPanic));
  auto open = h.engine.incidents();
  ASSERT_EQ(open.size(), 2u);
  std::map<std::string, std::string> names;
  for (const auto& i : open) names[i.vm] = i.vm_name;
  EXPECT_EQ(names["vm1"], "db-primary");
  EXPECT_EQ(names["vm2"], "") << "a VM that reports no name";
}

TEST(Engine, WhereFiltersOnVmLabels) {
  Harness h(kPanicRule);
  h.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING, {{"tier", "batch"}}));
  h.send(lifecycle("h1", "vm1", kPanic));
  EXPECT_TRUE(h.take().empty()) << "a batch VM matched where: tier != batch";
  // Control: the same panic on a VM of another tier does fire the rule.
  h.send(state("h1", "vm2", medic::v1::VM_STATE_RUNNING, {{"tier", "web"}}));
  h.send(lifecycle("h1", "vm2", kPanic));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].vm, "vm2");
  EXPECT_EQ(ds[0].outcome, Outcome::kProposed);
}

TEST(Engine, IgnoresEventsItCannotClassify) {
  Harness h(kPanicRule);
  medic::v1::Event e;
  e.set_host("h1");
  e.set_vm("vm1");
  h.send(e);
  h.send(lifecycle("h1", "", kPanic));
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(h.engine.stats().unknown_events, 2u);
  EXPECT_EQ(h.engine.stats().vms, 0u) << "an event it could not classify created a VM";
  // Control: a panic with a type and a VM is classified, counted and acted on.
  h.send(lifecycle("h1", "vm1", kPanic));
  EXPECT_EQ(h.take().size(), 1u);
  EXPECT_EQ(h.engine.stats().unknown_events, 2u);
  EXPECT_EQ(h.engine.stats().events, 3u);
  EXPECT_EQ(h.engine.stats().vms, 1u);
}

const char* kHangRule = R"(rules:
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    do: [reboot, reset, restart, notify]
    heal_within: 1m
    budget: 5 per 1h
)";

TEST(Engine, AbsenceFiresExactlyWhenTheSignalIsOverdue) {
  Harness h(kHangRule);
  h.run(10s, 1s, {{"h1", "vm1"}, {"h1", "vm2"}}, {"h1"});
  // vm1 falls silent; its last heartbeat was at 9s.
  h.run(28s, 1s, {{"h1", "vm2"}}, {"h1"});
  EXPECT_TRUE(h.take().empty());
  h.run(2s, 1s, {{"h1", "vm2"}}, {"h1"});
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].vm, "vm1");
  EXPECT_EQ(ds[0].step, Step::kReboot);
  EXPECT_EQ(ds[0].at - h.start, 39s);
  EXPECT_EQ(ds[0].trigger, "no vm.heartbeat for 30s");
}

TEST(Engine, LadderMovesUpOnlyWhenTheStepDidNotHeal) {
  Harness h(kHangRule);
  h.run(5s, 1s, {{"h1", "vm1"}}, {"h1"});
  h.run(35s, 1s, {}, {"h1"});
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].step, Step::kReboot);
  const Time sent = ds[0].at;
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);
  h.run(sent + 59s - h.clock.now(), 1s, {}, {"h1"});
  EXPECT_TRUE(h.take().empty()) << "escalated before heal_within passed";
  h.run(2s, 1s, {}, {"h1"});
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].step, Step::kReset);
  EXPECT_EQ(ds[0].at, sent + 1min) << "heal_within from the step, not from its result";
  EXPECT_EQ(ds[0].ladder_step, 2u);
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);
  h.run(10s, 1s, {{"h1", "vm1"}}, {"h1"});  // the guest is back
  h.run(10min, 5s, {{"h1", "vm1"}}, {"h1"});
  EXPECT_TRUE(h.take().empty()) << "ladder went on after the VM healed";
  EXPECT_EQ(h.engine.stats().open_incidents, 0u);
}

TEST(Engine, FailedStepEscalatesAtOnceAndRejectedStepStops) {
  Harness h(kHangRule);
  h.run(5s, 1s, {{"h1", "vm1"}, {"h1", "vm2"}}, {"h1"});
  h.run(35s, 1s, {}, {"h1"});
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 2u);
  h.engine.on_action_result(ds[0].id, ActionState::kFailed, false, "qmp: no socket");
  auto next = h.take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].step, Step::kReset);
  EXPECT_EQ(next[0].vm, ds[0].vm);
  h.engine.on_action_result(ds[1].id, ActionState::kRejected, false, "expired");
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(h.engine.stats().open_incidents, 1u);
}

TEST(Engine, ActionWithoutResultTimesOutAndEscalates) {
  EngineOptions opt;
  opt.action_timeout = 20s;
  opt.action_ttl = 5s;
  opt.result_grace = 0s;
  Harness h(kHangRule, opt);
  h.run(5s, 1s, {{"h1", "vm1"}}, {"h1"});
  h.run(35s, 1s, {}, {"h1"});
  ASSERT_EQ(h.take().size(), 1u);
  // Not at 20s: the actuator may answer until expiry (5s) + heal_within (1m).
  h.run(50s, 1s, {}, {"h1"});
  EXPECT_TRUE(h.take().empty());
  h.run(20s, 1s, {}, {"h1"});
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].step, Step::kReset);
}

TEST(Engine, DuplicateAndUnknownResultsAreIgnored) {
  Harness h(kPanicRule);
  h.send(lifecycle("h1", "vm1", kPanic));
  auto ds = h.take();
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, true);
  h.engine.on_action_result(ds[0].id, ActionState::kFailed, false);
  h.engine.on_action_result("nope", ActionState::kFailed, false);
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(h.engine.stats().in_flight, 0u);
}

TEST(Engine, CountTriggerFiresOnTheNthEventWithinTheWindow) {
  Harness h(R"(rules:
  - {name: crash-loop, on: vm.crashed, count: 3, within: 10m, do: notify}
)");
  h.send(lifecycle("h1", "vm1", kCrash));
  h.advance(6min);
  h.send(lifecycle("h1", "vm1", kCrash));
  h.advance(6min);  // the first one is out of the window now
  h.send(lifecycle("h1", "vm1", kCrash));
  EXPECT_TRUE(h.take().empty());
  h.advance(1min);
  h.send(lifecycle("h1", "vm1", kCrash));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].step, Step::kNotify);
  EXPECT_EQ(ds[0].trigger, "3 vm.crashed within 10m");
  EXPECT_NE(ds[0].reason.find("VM vm1 on host h1"), std::string::npos) << ds[0].reason;
}

TEST(Engine, ProbeIncidentsAreKeyedByProbeAndHealedByItsOwnProbe) {
  Harness h(R"(rules:
  - name: service-down
    on: probe.failed
    key: [vm.id, probe.name]
    do: [restart, notify]
    heal_within: 1m
)");
  h.send(probe("h1", "vm1", "http", false));
  h.send(probe("h1", "vm1", "ssh", false));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds[1].outcome, Outcome::kSuppressed);
  EXPECT_EQ(ds[1].policy, Policy::kCooldown);
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);
  h.advance(10s);
  h.send(probe("h1", "vm1", "ssh", true));  // not the probe that failed
  h.advance(51s);
  h.engine.host_seen("h1", h.clock.now());
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].step, Step::kNotify);
  h.send(probe("h1", "vm1", "http", true));
  h.advance(10min);
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(h.engine.stats().open_incidents, 0u);
}

TEST(Engine, CooldownHoldsANewIncidentSoonAfterAnAction) {
  Harness h(kPanicRule);
  h.send(lifecycle("h1", "vm1", kPanic));
  auto ds = h.take();
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, true);
  h.advance(1min);
  h.send(lifecycle("h1", "vm1", kPanic));
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kSuppressed);
  EXPECT_EQ(ds[0].policy, Policy::kCooldown);
  EXPECT_NE(ds[0].reason.find("1m ago (cooldown 2m)"), std::string::npos) << ds[0].reason;
  h.advance(70s);
  h.send(lifecycle("h1", "vm1", kPanic));
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kProposed);
}

TEST(Engine, BudgetStopsActionsAndNotifiesOncePerWindow) {
  Harness h(R"(rules:
  - {name: p, on: vm.panicked, do: reset, cooldown: 0s, budget: 2 per 1h}
)");
  for (int i = 0; i < 5; ++i) {
    h.send(lifecycle("h1", "vm1", kPanic));
    for (const auto& d : h.sink.decisions) {
      if (d.outcome == Outcome::kProposed && d.step == Step::kReset) {
        h.engine.on_action_result(d.id, ActionState::kSucceeded, true);
      }
    }
    h.advance(5min);
  }
  EXPECT_EQ(h.count(Step::kReset, Outcome::kProposed), 2u);
  EXPECT_EQ(h.count(Step::kReset, Outcome::kSuppressed), 1u)
      << "the third panic is held by the budget; the next two join it";
  EXPECT_EQ(h.count(Step::kNotify, Outcome::kProposed), 1u);
  for (const auto& d : h.with(Outcome::kSuppressed)) EXPECT_EQ(d.policy, Policy::kBudget);
  h.take();
  h.advance(1h);
  h.send(lifecycle("h1", "vm1", kPanic));
  EXPECT_EQ(h.count(Step::kReset, Outcome::kProposed), 1u) << "budget window did not slide";
}

TEST(Engine, HostConcurrencyMakesActionsWaitForASlot) {
  EngineOptions opt = no_storm();
  opt.max_in_flight_per_host = 1;
  Harness h(kPanicRule, opt);
  h.send(lifecycle("h1", "vm1", kPanic));
  h.send(lifecycle("h1", "vm2", kPanic));
  h.send(lifecycle("h2", "vm3", kPanic));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds[0].outcome, Outcome::kProposed);
  EXPECT_EQ(ds[1].outcome, Outcome::kSuppressed);
  EXPECT_EQ(ds[1].policy, Policy::kHostConcurrency);
  EXPECT_NE(ds[1].reason.find("waiting"), std::string::npos);
  EXPECT_EQ(ds[2].outcome, Outcome::kProposed);
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, true);
  auto next = h.take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].vm, "vm2");
  EXPECT_EQ(next[0].outcome, Outcome::kProposed);
}

TEST(Engine, FleetConcurrencyLimitsActionsAcrossHosts) {
  EngineOptions opt = no_storm();
  opt.max_in_flight_fleet = 2;
  Harness h(kPanicRule, opt);
  for (int i = 0; i < 4; ++i)
    h.send(lifecycle("h" + std::to_string(i), "vm" + std::to_string(i), kPanic));
  EXPECT_EQ(h.count(Step::kReset, Outcome::kProposed), 2u);
  auto waiting = h.with(Outcome::kSuppressed);
  ASSERT_EQ(waiting.size(), 2u);
  EXPECT_EQ(waiting[0].policy, Policy::kFleetConcurrency);
  auto first = h.with(Outcome::kProposed)[0];
  h.take();
  h.engine.on_action_result(first.id, ActionState::kSucceeded, true);
  auto next = h.take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].vm, "vm2");
}

TEST(Engine, SilencesSuppressByVmHostLabelAndRuleUntilTheyExpire) {
  Harness h(R"(rules:
  - {name: p, on: vm.panicked, do: reset, cooldown: 0s}
  - {name: w, on: vm.watchdog, do: reset, cooldown: 0s}
)",
            no_storm());
  h.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING, {{"team", "db"}}));
  Silence by_label;
  by_label.label_key = "team";
  by_label.label_value = "db";
  by_label.until = h.clock.now() + 1h;
  by_label.reason = "db maintenance";
  by_label.by = "alice";
  std::string id = h.engine.silence(by_label);
  Silence by_rule;
  by_rule.rule = "w";
  by_rule.host = "h2";
  by_rule.until = h.clock.now() + 10min;
  h.engine.silence(by_rule);

  h.send(lifecycle("h1", "vm1", kPanic));
  h.send(lifecycle("h2", "vm2", medic::v1::LIFECYCLE_WATCHDOG));
  h.send(lifecycle("h2", "vm3", kPanic));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds[0].policy, Policy::kSilence);
  EXPECT_NE(ds[0].reason.find("silenced by alice for 1h more: db maintenance"), std::string::npos)
      << ds[0].reason;
  EXPECT_EQ(ds[1].policy, Policy::kSilence);
  EXPECT_EQ(ds[2].outcome, Outcome::kProposed);
  h.engine.on_action_result(ds[2].id, ActionState::kSucceeded, true);

  h.advance(11min);
  h.send(lifecycle("h2", "vm2", medic::v1::LIFECYCLE_WATCHDOG));
  EXPECT_EQ(h.take().at(0).outcome, Outcome::kProposed) << "expired silence still applied";
  EXPECT_TRUE(h.engine.unsilence(id).ok());
  EXPECT_FALSE(h.engine.unsilence(id).ok());
  h.send(lifecycle("h1", "vm1", kPanic));
  EXPECT_EQ(h.take().at(0).outcome, Outcome::kProposed);
}

const char* kApprovalRule = R"(rules:
  - {name: p, on: vm.panicked, do: restart, approval: required, approval_timeout: 10m}
)";

TEST(Engine, ApprovalRequiredWaitsForAnOperator) {
  Harness h(kApprovalRule);
  h.send(lifecycle("h1", "vm1", kPanic));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kPendingApproval);
  EXPECT_EQ(ds[0].policy, Policy::kApproval);
  EXPECT_EQ(h.engine.stats().in_flight, 0u);
  h.advance(2min);
  h.engine.host_seen("h1", h.clock.now());
  ASSERT_TRUE(h.engine.approve(ds[0].id, "alice").ok());
  auto ap = h.take();
  ASSERT_EQ(ap.size(), 1u);
  EXPECT_EQ(ap[0].outcome, Outcome::kApproved);
  EXPECT_EQ(ap[0].id, ds[0].id) << "the action keeps its id from pending to approved";
  EXPECT_EQ(ap[0].by, "alice");
  EXPECT_EQ(h.engine.stats().in_flight, 1u);
  EXPECT_EQ(h.engine.approve(ds[0].id, "bob").code(), Code::kNotFound);
}

TEST(Engine, ApprovedActionStillWaitsForAConcurrencySlotWithoutAskingAgain) {
  EngineOptions opt = no_storm();
  opt.max_in_flight_per_host = 1;
  Harness h(kApprovalRule, opt);
  h.send(lifecycle("h1", "vm1", kPanic));
  h.send(lifecycle("h1", "vm2", kPanic));
  auto pending = h.take();
  ASSERT_EQ(pending.size(), 2u);
  ASSERT_TRUE(h.engine.approve(pending[0].id, "alice").ok());
  ASSERT_TRUE(h.engine.approve(pending[1].id, "bob").ok());
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds[0].outcome, Outcome::kApproved);
  EXPECT_EQ(ds[1].outcome, Outcome::kSuppressed);
  EXPECT_EQ(ds[1].policy, Policy::kHostConcurrency);
  EXPECT_NE(ds[1].reason.find("approved by bob"), std::string::npos) << ds[1].reason;
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, true);
  auto next = h.take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].vm, "vm2");
  EXPECT_EQ(next[0].outcome, Outcome::kApproved);
  EXPECT_EQ(next[0].by, "bob");
  EXPECT_EQ(ds[1].id, pending[1].id) << "the waiting step is still the approved action";
  EXPECT_EQ(next[0].id, pending[1].id) << "dispatched under the id the operator approved";
}

TEST(Engine, DeniedAndExpiredApprovalsAreRecorded) {
  Harness h(kApprovalRule);
  h.send(lifecycle("h1", "vm1", kPanic));
  h.send(lifecycle("h1", "vm2", kPanic));
  auto ds = h.take();
  ASSERT_TRUE(h.engine.deny(ds[0].id, "bob", "known issue, leave it").ok());
  h.advance(10min);
  auto out = h.take();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].outcome, Outcome::kDenied);
  EXPECT_EQ(out[0].reason, "known issue, leave it");
  EXPECT_EQ(out[1].outcome, Outcome::kExpired);
  EXPECT_EQ(out[1].id, ds[1].id);
  EXPECT_EQ(h.engine.approve(ds[1].id, "late").code(), Code::kNotFound);
}

TEST(Engine, ApprovalOfASilentHostsVmIsStillSuppressed) {
  Harness h(kApprovalRule);
  h.send(lifecycle("h1", "vm1", kPanic));
  auto ds = h.take();
  h.go_silent("h1");
  h.advance(1min);
  ASSERT_TRUE(h.engine.approve(ds[0].id, "alice").ok());
  auto out = h.take();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].step, Step::kNotify) << "the sweep noticed the silent host";
  EXPECT_EQ(out[0].policy, Policy::kHostSilent);
  EXPECT_EQ(out[0].at - h.start, 25s);
  EXPECT_EQ(out[1].step, Step::kRestart);
  EXPECT_EQ(out[1].policy, Policy::kHostSilent);
  EXPECT_EQ(out[1].id, ds[0].id) << "the answer ends the approved action, it is no new one";
  EXPECT_EQ(out[1].by, "alice");
}

TEST(Engine, PendingApprovalExpiresWhenTheVmHeals) {
  Harness h(R"(rules:
  - {name: p, on: vm.panicked, do: restart, approval: required, healed_by: vm.started}
)");
  h.send(lifecycle("h1", "vm1", kPanic));
  h.take();
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_STARTED));
  auto out = h.take();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].outcome, Outcome::kExpired);
  EXPECT_NE(out[0].reason.find("healed"), std::string::npos);
}

TEST(Engine, DryRunRecordsTheWholeLadderWithoutActing) {
  Harness h(R"(rules:
  - name: hang
    absent: vm.heartbeat
    for: 30s
    do: [reboot, reset]
    heal_within: 1m
    mode: dry-run
)");
  h.run(5s, 1s, {{"h1", "vm1"}}, {"h1"});
  h.run(100s, 1s, {}, {"h1"});
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds[0].outcome, Outcome::kDryRun);
  EXPECT_EQ(ds[0].step, Step::kReboot);
  EXPECT_EQ(ds[1].outcome, Outcome::kDryRun);
  EXPECT_EQ(ds[1].step, Step::kReset);
  EXPECT_EQ(h.engine.stats().in_flight, 0u);
}

TEST(Engine, EngineWideDryRunAppliesToEveryRule) {
  EngineOptions opt;
  opt.dry_run = true;
  Harness h(kPanicRule, opt);
  h.send(lifecycle("h1", "vm1", kPanic));
  EXPECT_EQ(h.take().at(0).outcome, Outcome::kDryRun);
}

TEST(Engine, ReloadKeepsAbsenceStateAndFinishesIncidentsWithTheirRule) {
  Harness h(kHangRule);
  h.run(5s, 1s, {{"h1", "vm1"}}, {"h1"});
  h.run(35s, 1s, {}, {"h1"});
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  std::string old_version = ds[0].rule_version;
  h.engine.reload(testing::must_load(R"(rules:
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    do: [reboot, restart]
    heal_within: 2m
)"));
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);
  h.run(61s, 1s, {}, {"h1"});
  auto next = h.take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].step, Step::kReset) << "the running incident switched rules mid-ladder";
  EXPECT_EQ(next[0].rule_version, old_version);
  EXPECT_EQ(h.engine.stats().absence_keys, 1u);
}

TEST(Engine, VmsNotHeardOfForLongAreForgottenUntilTheySpeakAgain) {
  EngineOptions opt;
  opt.forget_vm_after = 10min;
  Harness h(R"(rules:
  - {name: hang, absent: vm.heartbeat, for: 30s, do: notify, heal_within: 1m}
)",
            opt);
  h.run(5s, 1s, {{"h1", "gone"}}, {"h1"});
  h.run(10min, 5s, {}, {"h1"});
  size_t before = h.take().size();
  EXPECT_GE(before, 5u);  // one notify per incident while it is still watched
  h.run(30min, 5s, {}, {"h1"});
  EXPECT_TRUE(h.take().empty()) << "a VM silent for longer than forget_vm_after is still watched";
  EXPECT_EQ(h.engine.stats().absence_keys, 0u);
  h.run(1s, 1s, {{"h1", "gone"}}, {"h1"});
  EXPECT_EQ(h.engine.stats().absence_keys, 1u);
  h.run(31s, 1s, {}, {"h1"});
  EXPECT_EQ(h.take().size(), 1u);
}

TEST(Engine, HeldIncidentsRecordOneSuppressionPerSpell) {
  EngineOptions opt = no_storm();
  Harness h(kHangRule, opt);
  h.run(5s, 1s, {{"h1", "vm1"}, {"h2", "vm2"}}, {"h1", "h2"});
  // h1 goes silent for 5 minutes: vm1's absence fires ten times.
  h.run(5min, 5s, {{"h2", "vm2"}}, {"h2"});
  EXPECT_EQ(h.count(Step::kReboot, Outcome::kSuppressed), 1u);
  EXPECT_EQ(h.count(Step::kNotify, Outcome::kProposed), 1u);
  EXPECT_EQ(h.engine.stats().open_incidents, 1u);
  // h1 speaks again, vm1 too: the held incident is released, no action.
  h.take();
  h.run(5min, 5s, {{"h1", "vm1"}, {"h2", "vm2"}}, {"h1", "h2"});
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(h.engine.stats().open_incidents, 0u);
}

TEST(Engine, ReloadWithANewAbsenceRuleArmsItForKnownVms) {
  Harness h(kPanicRule);
  h.run(5s, 1s, {{"h1", "vm1"}}, {"h1"});
  h.engine.reload(testing::must_load(kHangRule));
  h.run(29s, 1s, {}, {"h1"});
  EXPECT_TRUE(h.take().empty());
  h.run(2s, 1s, {}, {"h1"});
  EXPECT_EQ(h.take().size(), 1u);
}

}  // namespace
}  // namespace medic::rules

namespace medic::rules {
namespace {

TEST(EngineOptionsReader, ReadsEveryKeyAndReportsProblemsWithPositions) {
  auto node = load_yaml_string(R"(host_silent_after: 15s
forget_vm_after: 2h
max_in_flight_per_host: 3
max_in_flight_fleet: 40
action_timeout: 2m
dry_run: true
cooldown: 5m
budget: 4 per 2h
approval_timeout: 30m
heal_within: 90s
storm: {host_fraction: 0.6, fleet_fraction: 0.25, min_vms: 5, window: 2m, quiet: 10m}
)",
                               "engine.yaml");
  ASSERT_TRUE(node.ok());
  ConfigReader r("engine.yaml");
  EngineOptions o;
  read_engine_options(r, *node, &o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(o.host_silent_after, std::chrono::seconds(15));
  EXPECT_EQ(o.forget_vm_after, std::chrono::hours(2));
  EXPECT_EQ(o.max_in_flight_per_host, 3u);
  EXPECT_EQ(o.max_in_flight_fleet, 40u);
  EXPECT_EQ(o.action_timeout, std::chrono::minutes(2));
  EXPECT_TRUE(o.dry_run);
  EXPECT_EQ(o.defaults.cooldown, std::chrono::minutes(5));
  EXPECT_EQ(o.defaults.budget.count, 4u);
  EXPECT_EQ(o.defaults.approval_timeout, std::chrono::minutes(30));
  EXPECT_EQ(o.defaults.heal_within, std::chrono::seconds(90));
  EXPECT_DOUBLE_EQ(o.storm.host_fraction, 0.6);
  EXPECT_DOUBLE_EQ(o.storm.fleet_fraction, 0.25);
  EXPECT_EQ(o.storm.min_vms, 5u);
  EXPECT_EQ(o.storm.quiet, std::chrono::minutes(10));

  auto bad = load_yaml_string(
      "budget: lots\nstorm: {fleet_fraction: 2}\nmax_in_flight_fleet: 0\nspeed: 3\n", "bad.yaml");
  ASSERT_TRUE(bad.ok());
  ConfigReader rb("bad.yaml");
  read_engine_options(rb, *bad, &o);
  std::string all = rb.status().message();
  EXPECT_NE(all.find("bad.yaml:1:9: error: invalid budget"), std::string::npos) << all;
  EXPECT_NE(all.find("bad.yaml:2:25: error: fleet_fraction must be a fraction"), std::string::npos)
      << all;
  EXPECT_NE(all.find("bad.yaml:3:22: error: \"max_in_flight_fleet\" must be between 1"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("bad.yaml:4:1: error: unknown key \"speed\""), std::string::npos) << all;
}

}  // namespace
}  // namespace medic::rules
