// Engine::request(): a person's start or stop of one VM meets the policy chain
// as a step they approved. What a yes overrides (silence, cooldown, budget,
// storm) passes; facts (a silent host, another action, slots, dry run) still
// rule. A stop is healed when the VM reports stopped and ends the VM's other
// incidents; a start when it beats. Both survive snapshot and restore.
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::heartbeat;
using testing::lifecycle;
using testing::state;

const char* kRules = R"(rules:
  - {name: guest-panicked, on: vm.panicked, do: reset, cooldown: 10m}
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    where: vm.state == "running"
    do: [reboot, notify]
    heal_within: 1m
)";

Request req(const std::string& vm, Step s, const std::string& reason = "maintenance") {
  Request r;
  r.vm = vm;
  r.step = s;
  r.by = "alice";
  r.reason = reason;
  r.request_id = "r-1";
  r.evidence = 77;
  return r;
}

class RequestTest : public ::testing::Test {
 protected:
  RequestTest() : h_(kRules, opts()) {
    h_.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));
    h_.send(state("h1", "vm2", medic::v1::VM_STATE_RUNNING));
  }
  static EngineOptions opts() {
    EngineOptions o = testing::no_storm();
    o.max_in_flight_per_host = 1;
    return o;
  }
  testing::Harness h_;
};

TEST_F(RequestTest, AStopIsApprovedByItsRequesterAndHealedWhenTheVmReportsStopped) {
  Silence s;
  s.vm = "vm1";
  s.until = h_.clock.now() + 1h;
  s.reason = "window";
  h_.engine.silence(s);
  auto d = h_.engine.request(req("vm1", Step::kStop));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kProposed) << "a silence does not hold what a person asked for";
  EXPECT_EQ(d->by, "alice");
  EXPECT_EQ(d->rule, "request:stop");
  EXPECT_EQ(d->step, Step::kStop);
  EXPECT_EQ(d->trigger, "request r-1 by alice: stop (maintenance)");
  EXPECT_EQ(d->evidence, std::vector<EvidenceRef>{77});
  EXPECT_EQ(h_.engine.stats().in_flight, 1u);
  // The checks it met, as the audit records them: silence passed as approved.
  ASSERT_FALSE(d->checks.empty());
  EXPECT_EQ(d->checks.front().policy, Policy::kSilence);
  EXPECT_EQ(d->checks.front().verdict, Verdict::kPass);

  h_.engine.on_action_result(d->id, ActionState::kSucceeded, false);
  EXPECT_EQ(h_.engine.stats().open_incidents, 1u) << "watching for vm.stopped";
  h_.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_STOPPED));
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u);
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_TRUE(h_.sink.verdicts[0].healed);
  EXPECT_EQ(h_.sink.verdicts[0].detail, "the VM reported vm.stopped");
}

TEST_F(RequestTest, AStopTheActuatorSawDoneClosesAtOnceAndCountsForTheRulesCooldown) {
  auto d = h_.engine.request(req("vm1", Step::kStop));
  ASSERT_TRUE(d.ok()) << d.status();
  h_.engine.on_action_result(d->id, ActionState::kSucceeded, true);
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_EQ(h_.sink.verdicts[0].detail, "the actuator saw the VM stopped after the verb");
  h_.take();
  h_.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto ds = h_.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kSuppressed);
  EXPECT_EQ(ds[0].policy, Policy::kCooldown) << "the VM was just acted on";
}

TEST_F(RequestTest, AStartIsHealedWhenTheGuestBeatsAndAStartedVmIsProgress) {
  auto d = h_.engine.request(req("vm2", Step::kStart, ""));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->trigger, "request r-1 by alice: start");
  h_.engine.on_action_result(d->id, ActionState::kSucceeded, false);
  h_.send(state("h1", "vm2", medic::v1::VM_STATE_BOOTING));
  // Beyond heal_within: a booting VM is watched up to boot_timeout.
  h_.run(90s, 5s, {{"h1", "vm1"}}, {"h1"});
  EXPECT_EQ(h_.engine.stats().open_incidents, 1u);
  EXPECT_TRUE(h_.sink.verdicts.empty());
  h_.send(heartbeat("h1", "vm2"));
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_TRUE(h_.sink.verdicts[0].healed);
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u);
}

TEST_F(RequestTest, AStartThatNeverBeatsIsNotHealedAndHasNoNextStep) {
  auto d = h_.engine.request(req("vm2", Step::kStart));
  ASSERT_TRUE(d.ok()) << d.status();
  h_.engine.on_action_result(d->id, ActionState::kFailed, false, "qemu: no such disk");
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_FALSE(h_.sink.verdicts[0].healed);
  EXPECT_NE(h_.sink.verdicts[0].detail.find("no such disk"), std::string::npos);
  EXPECT_NE(h_.sink.verdicts[0].detail.find("last step of the ladder"), std::string::npos);
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u);
  EXPECT_EQ(h_.engine.stats().in_flight, 0u);
}

TEST_F(RequestTest, UnknownVmNotifyAndASecondRequestOfTheSameVerbAreRefused) {
  EXPECT_EQ(h_.engine.request(req("vm9", Step::kStop)).status().code(), Code::kNotFound);
  EXPECT_EQ(h_.engine.request(req("vm1", Step::kNotify)).status().code(), Code::kInvalidArgument);
  ASSERT_TRUE(h_.engine.request(req("vm1", Step::kStop)).ok());
  auto again = h_.engine.request(req("vm1", Step::kStop));
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_NE(again.status().message().find("already in progress"), std::string::npos);
  EXPECT_EQ(h_.engine.stats().decisions, 1u) << "a refused request decides nothing";
}

TEST_F(RequestTest, AnotherActionOnTheVmInFlightStopsTheRequest) {
  h_.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  ASSERT_EQ(h_.with(Outcome::kProposed).size(), 1u);
  auto d = h_.engine.request(req("vm1", Step::kStop));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kSuppressed);
  EXPECT_EQ(d->policy, Policy::kVmInFlight);
  EXPECT_EQ(d->reason, "approved by alice, but another action on this VM is in flight");
  EXPECT_EQ(h_.engine.stats().open_incidents, 1u) << "only the panic's incident is open";
}

TEST_F(RequestTest, ASilentHostStopsTheRequest) {
  h_.go_silent("h1");
  h_.advance(30s);
  auto d = h_.engine.request(req("vm1", Step::kStart));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kSuppressed);
  EXPECT_EQ(d->policy, Policy::kHostSilent);
  EXPECT_NE(d->reason.find("host h1 is silent"), std::string::npos) << d->reason;
}

TEST_F(RequestTest, ARequestWaitsForAFreeSlotOnItsHost) {
  h_.send(lifecycle("h1", "vm2", medic::v1::LIFECYCLE_PANICKED));
  auto reset = h_.with(Outcome::kProposed);
  ASSERT_EQ(reset.size(), 1u);
  auto d = h_.engine.request(req("vm1", Step::kStop));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kSuppressed);
  EXPECT_EQ(d->policy, Policy::kHostConcurrency);
  EXPECT_EQ(h_.engine.stats().open_incidents, 2u) << "the request waits";
  h_.take();
  h_.engine.on_action_result(reset[0].id, ActionState::kSucceeded, true);
  auto ds = h_.with(Outcome::kProposed);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].vm, "vm1");
  EXPECT_EQ(ds[0].by, "alice");
}

TEST_F(RequestTest, ADispatchedStopEndsTheVmsOtherIncidents) {
  h_.run(10s, 5s, {{"h1", "vm1"}, {"h1", "vm2"}}, {"h1"});
  h_.run(40s, 5s, {{"h1", "vm2"}}, {"h1"});  // vm1 went quiet: guest-unresponsive reboots it
  auto reboot = h_.with(Outcome::kProposed);
  ASSERT_EQ(reboot.size(), 1u);
  h_.engine.on_action_result(reboot[0].id, ActionState::kSucceeded, false);  // now watching
  h_.sink.verdicts.clear();
  auto d = h_.engine.request(req("vm1", Step::kStop));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kProposed);
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_EQ(h_.sink.verdicts[0].decision_id, reboot[0].id);
  EXPECT_EQ(h_.sink.verdicts[0].detail, "ended: alice stopped the VM (" + d->id + ")");
  EXPECT_EQ(h_.engine.stats().open_incidents, 1u);
  h_.take();
  h_.run(3min, 5s, {{"h1", "vm2"}}, {"h1"});
  EXPECT_EQ(h_.count(Step::kNotify, Outcome::kProposed), 0u) << "the reboot's ladder climbed";
}

TEST_F(RequestTest, ADryRunEngineRecordsTheRequestWithoutDispatching) {
  EngineOptions o = opts();
  o.dry_run = true;
  testing::Harness dry(kRules, o);
  dry.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));
  auto d = dry.engine.request(req("vm1", Step::kStop));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kDryRun);
  EXPECT_EQ(dry.engine.stats().in_flight, 0u);
}

TEST_F(RequestTest, ARequestInFlightSurvivesSnapshotAndRestore) {
  auto d = h_.engine.request(req("vm1", Step::kStop));
  ASSERT_TRUE(d.ok()) << d.status();
  EngineState s = h_.engine.snapshot();
  testing::RecordingSink sink;
  VirtualClock clock(h_.clock.now());
  Engine restored(clock, testing::must_load(kRules), opts(), sink);
  Status st = restored.restore(s);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(restored.stats().in_flight, 1u);
  auto again = restored.request(req("vm1", Step::kStop));
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists) << "the restored engine knows it";
  restored.on_action_result(d->id, ActionState::kSucceeded, true);
  ASSERT_EQ(sink.verdicts.size(), 1u);
  EXPECT_TRUE(sink.verdicts[0].healed);
  EXPECT_EQ(restored.stats().open_incidents, 0u);
}

// ---- a requester's (an application's) request: every policy has its say

Request app_req(const std::string& vm, Step s, bool needs_approval = false) {
  Request r = req(vm, s, "app unresponsive");
  r.by = "billing-app";
  r.by_operator = false;
  r.needs_approval = needs_approval;
  return r;
}

TEST_F(RequestTest, ARequestersAskMeetsTheSilenceAnOperatorsWouldPass) {
  Silence s;
  s.vm = "vm1";
  s.until = h_.clock.now() + 1h;
  s.reason = "window";
  h_.engine.silence(s);
  auto d = h_.engine.request(app_req("vm1", Step::kReboot));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kSuppressed);
  EXPECT_EQ(d->policy, Policy::kSilence);
  EXPECT_TRUE(d->by.empty()) << "nobody approved it";
  EXPECT_EQ(d->trigger, "request r-1 by billing-app: reboot (app unresponsive)");
  EXPECT_EQ(h_.engine.stats().in_flight, 0u);
}

TEST_F(RequestTest, ARequestersAskMeetsTheRulesCooldownAndBudget) {
  EngineOptions o = opts();
  o.defaults.budget = {1, 1h};
  o.defaults.cooldown = 0s;
  testing::Harness h(kRules, o);
  h.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));
  auto first = h.engine.request(app_req("vm1", Step::kReset));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->outcome, Outcome::kProposed);
  h.engine.on_action_result(first->id, ActionState::kSucceeded, true);
  auto second = h.engine.request(app_req("vm1", Step::kReset));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->outcome, Outcome::kSuppressed);
  EXPECT_EQ(second->policy, Policy::kBudget);
  // An operator's own request is a person's yes: the budget passes.
  auto op = h.engine.request(req("vm1", Step::kReset));
  EXPECT_EQ(op->outcome, Outcome::kProposed) << op->reason;
}

TEST_F(RequestTest, ARequestTheScopeSendsForApprovalWaitsThenGoesOnUnderItsId) {
  auto d = h_.engine.request(app_req("vm1", Step::kRestart, true));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kPendingApproval);
  EXPECT_NE(d->reason.find("the requester's scope requires operator approval"), std::string::npos)
      << d->reason;
  EXPECT_FALSE(d->answers_pending);
  // It survives a restart of the engine while it waits.
  EngineState snap = h_.engine.snapshot();
  testing::RecordingSink sink;
  VirtualClock clock(h_.clock.now());
  Engine restored(clock, testing::must_load(kRules), opts(), sink);
  ASSERT_TRUE(restored.restore(snap).ok());
  ASSERT_TRUE(restored.approve(d->id, "alice").ok());
  ASSERT_EQ(sink.decisions.size(), 1u);
  const Decision& a = sink.decisions[0];
  EXPECT_EQ(a.outcome, Outcome::kApproved);
  EXPECT_EQ(a.id, d->id);
  EXPECT_EQ(a.by, "alice");
  EXPECT_TRUE(a.answers_pending);
  EXPECT_EQ(restored.stats().in_flight, 1u);
}

TEST_F(RequestTest, ARequestNobodyApprovesExpires) {
  auto d = h_.engine.request(app_req("vm1", Step::kRestart, true));
  ASSERT_TRUE(d.ok()) << d.status();
  h_.take();
  h_.run(16min, 5s, {{"h1", "vm1"}, {"h1", "vm2"}}, {"h1"});
  auto expired = h_.with(Outcome::kExpired);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].id, d->id);
  // The VM's heartbeats all along do not answer it: nobody did.
  EXPECT_EQ(expired[0].reason, "no operator approved it in time");
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u);
}

TEST(RequestRuleNames, ARuleFileMayNotUseTheRequestPrefix) {
  auto r = load_rule_text("rules:\n  - {name: \"request:stop\", on: vm.panicked, do: reset}\n",
                          "r.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.text().find("r.yaml:2:12: error: rule name \"request:stop\": names beginning"),
            std::string::npos)
      << r.text();
}

}  // namespace
}  // namespace medic::rules
