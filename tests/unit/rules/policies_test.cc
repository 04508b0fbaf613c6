// Each safety policy on its own: what it answers, why, and the books it
// keeps. The chain and the engine are not involved.
#include "rules/policies.h"

#include <gtest/gtest.h>

#include "rules/incident_book.h"
#include "rules/storm_guard.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kSec = 1'000'000'000;

// A fleet of host h1 (vm1, vm2) and h2 (vm3), all seen at t = 100 s, and a
// rule whose first step is a reboot.
struct PolicyTest : ::testing::Test {
  PolicyTest() {
    bool created = false;
    h1 = fleet.host("h1");
    h2 = fleet.host("h2");
    vm1 = fleet.vm("vm1", h1, &created);
    vm2 = fleet.vm("vm2", h1, &created);
    vm3 = fleet.vm("vm3", h2, &created);
    fleet.mark_seen(h1, 100 * kSec);
    fleet.mark_seen(h2, 100 * kSec);
    rule.name = "r";
    rule.ladder = {Step::kReboot, Step::kNotify};
    incident.rule = std::make_shared<Rule>(rule);
    draft.rule = "r";
    draft.vm = "vm1";
  }
  PolicyContext ctx(uint32_t vm, int64_t now, std::string_view approved_by = {},
                    Step step = Step::kReboot) {
    incident.vm = vm;
    return PolicyContext{rule, incident, vm, fleet.vm_at(vm).host, step, now, draft, approved_by};
  }

  Fleet fleet{20s, 1h};
  uint32_t h1, h2, vm1, vm2, vm3;
  Rule rule;
  Incident incident;
  Decision draft;
  std::vector<Decision> notices;
  Notices sink = [this](Decision d) { notices.push_back(std::move(d)); };
};

TEST_F(PolicyTest, SilenceHoldsWhatItMatchesUntilItEndsAndPassesTheRest) {
  SilencePolicy p(fleet);
  Silence s;
  s.host = "h1";
  s.until = from_ns(200 * kSec);
  s.reason = "maintenance";
  s.by = "ana";
  EXPECT_EQ(p.add(s), "s-1");
  PolicyCheck c = p.check(ctx(vm1, 110 * kSec));
  EXPECT_EQ(c.verdict, Verdict::kHold);
  EXPECT_EQ(c.until_ns, 200 * kSec) << "the hold lifts when the silence ends";
  EXPECT_EQ(c.policy, Policy::kSilence);
  EXPECT_EQ(c.reason, "silenced by ana for 1m30s more: maintenance");
  EXPECT_EQ(p.check(ctx(vm3, 110 * kSec)).verdict, Verdict::kPass) << "vm3 is on h2";
  EXPECT_EQ(p.check(ctx(vm1, 110 * kSec, "bo")).verdict, Verdict::kPass)
      << "an approved step is not silenced";
  EXPECT_EQ(p.check(ctx(vm1, 200 * kSec)).verdict, Verdict::kPass) << "the silence expired";
  EXPECT_TRUE(p.silences().empty()) << "an expired silence is dropped";
  EXPECT_FALSE(p.remove("s-1"));
}

TEST_F(PolicyTest, DryRunAnswersForTheEngineOrTheRule) {
  DryRunPolicy all(true), some(false);
  EXPECT_EQ(all.check(ctx(vm1, 0)).verdict, Verdict::kDryRun);
  EXPECT_EQ(some.check(ctx(vm1, 0)).verdict, Verdict::kPass);
  rule.mode = Mode::kDryRun;
  PolicyCheck c = some.check(ctx(vm1, 0));
  EXPECT_EQ(c.verdict, Verdict::kDryRun);
  EXPECT_EQ(c.reason, "the rule is in dry run");
}

TEST_F(PolicyTest, HostSilentHoldsAndNoticesOncePerSpell) {
  HostSilentPolicy p(fleet, sink);
  EXPECT_EQ(p.check(ctx(vm1, 120 * kSec)).verdict, Verdict::kPass) << "silent for 20s: the limit";
  PolicyCheck c = p.check(ctx(vm1, 121 * kSec));
  EXPECT_EQ(c.verdict, Verdict::kHold);
  EXPECT_EQ(c.reason,
            "host h1 has been silent for 21s (limit 20s): no facts about its VMs, so no action on "
            "them");
  EXPECT_EQ(p.check(ctx(vm2, 130 * kSec)).verdict, Verdict::kHold);
  ASSERT_EQ(notices.size(), 1u) << "one notice per silent spell";
  EXPECT_EQ(notices[0].host, "h1");
  EXPECT_EQ(notices[0].policy, Policy::kHostSilent);
  PolicyCheck a = p.check(ctx(vm1, 130 * kSec, "ana"));
  EXPECT_EQ(a.verdict, Verdict::kSuppress) << "facts rule even after approval";
  EXPECT_EQ(a.reason, "approved by ana, but host h1 is silent");
  fleet.mark_seen(h1, 131 * kSec);
  EXPECT_EQ(p.check(ctx(vm1, 131 * kSec)).verdict, Verdict::kPass);
  fleet.mark_seen(h1, 131 * kSec);
  p.check(ctx(vm1, 160 * kSec));
  EXPECT_EQ(notices.size(), 2u) << "a new spell is noticed again";
}

TEST_F(PolicyTest, CooldownHoldsOnlyAFirstStepSoonAfterAnActionUntilItEnds) {
  CooldownPolicy p(2min);
  EXPECT_EQ(p.check(ctx(vm1, 100 * kSec)).verdict, Verdict::kPass) << "never acted on";
  p.on_dispatched(vm1, h1, 100 * kSec);
  EXPECT_EQ(p.last_action(vm1), 100 * kSec);
  PolicyCheck c = p.check(ctx(vm1, 160 * kSec));
  EXPECT_EQ(c.verdict, Verdict::kHold);
  EXPECT_EQ(c.until_ns, 220 * kSec) << "2m after the action";
  EXPECT_EQ(c.reason, "the last action on this VM was 1m ago (cooldown 2m)");
  EXPECT_EQ(p.check(ctx(vm2, 160 * kSec)).verdict, Verdict::kPass) << "per VM";
  EXPECT_EQ(p.check(ctx(vm1, 160 * kSec, "ana")).verdict, Verdict::kPass) << "approved";
  incident.step = 1;
  EXPECT_EQ(p.check(ctx(vm1, 160 * kSec)).verdict, Verdict::kPass) << "a later ladder step";
  incident.step = 0;
  EXPECT_EQ(p.check(ctx(vm1, 220 * kSec)).verdict, Verdict::kPass) << "cooldown passed";
  rule.cooldown = 10min;
  c = p.check(ctx(vm1, 220 * kSec));
  EXPECT_EQ(c.verdict, Verdict::kHold) << "the rule's own";
  EXPECT_EQ(c.until_ns, 700 * kSec);
}

TEST_F(PolicyTest, BudgetCountsActionsInTheWindowAndNoticesOnce) {
  BudgetPolicy p(Budget{2, 1h}, sink);
  p.on_dispatched(vm1, h1, 100 * kSec);
  EXPECT_EQ(p.check(ctx(vm1, 200 * kSec)).verdict, Verdict::kPass) << "1 of 2 used";
  p.on_dispatched(vm1, h1, 200 * kSec);
  PolicyCheck c = p.check(ctx(vm1, 300 * kSec));
  EXPECT_EQ(c.verdict, Verdict::kHold);
  EXPECT_EQ(c.until_ns, 3700 * kSec) << "room again when the first action leaves the window";
  EXPECT_EQ(c.reason, "the VM had 2 actions in the last 1h (budget 2 per 1h)");
  p.check(ctx(vm1, 400 * kSec));
  ASSERT_EQ(notices.size(), 1u) << "one budget notice per window";
  EXPECT_EQ(notices[0].policy, Policy::kBudget);
  EXPECT_EQ(notices[0].vm, "vm1");
  EXPECT_EQ(p.check(ctx(vm2, 300 * kSec)).verdict, Verdict::kPass) << "per VM";
  EXPECT_EQ(p.check(ctx(vm1, 300 * kSec, "ana")).verdict, Verdict::kPass) << "approved";
  EXPECT_EQ(p.check(ctx(vm1, 3701 * kSec)).verdict, Verdict::kPass) << "the first one aged out";
}

TEST_F(PolicyTest, VmInFlightAllowsOneActionPerVmCountingOneAwaitingApproval) {
  VmInFlightPolicy p;
  EXPECT_EQ(p.check(ctx(vm1, 0)).verdict, Verdict::kPass);
  p.on_dispatched(vm1, h1, 0);
  PolicyCheck c = p.check(ctx(vm1, 0));
  EXPECT_EQ(c.verdict, Verdict::kSuppress);
  EXPECT_EQ(c.reason, "another action on this VM is still in flight");
  EXPECT_EQ(p.check(ctx(vm1, 0, "ana")).reason,
            "approved by ana, but another action on this VM is in flight");
  EXPECT_EQ(p.check(ctx(vm2, 0)).verdict, Verdict::kPass);
  p.on_finished(vm1, h1);
  EXPECT_EQ(p.check(ctx(vm1, 0)).verdict, Verdict::kPass);
  p.on_awaiting(vm1, +1);
  EXPECT_EQ(p.check(ctx(vm1, 0)).reason, "another action on this VM is waiting for approval");
  p.on_awaiting(vm1, -1);
  EXPECT_EQ(p.check(ctx(vm1, 0)).verdict, Verdict::kPass);
}

TEST_F(PolicyTest, HostConcurrencyWaitsWhenTheHostIsFull) {
  HostConcurrencyPolicy p(fleet, 1);
  EXPECT_EQ(p.check(ctx(vm1, 0)).verdict, Verdict::kPass);
  p.on_dispatched(vm1, h1, 0);
  PolicyCheck c = p.check(ctx(vm2, 0));
  EXPECT_EQ(c.verdict, Verdict::kWait);
  EXPECT_EQ(c.reason, "host h1 has 1 actions in flight (limit 1); waiting for one to finish");
  EXPECT_EQ(p.check(ctx(vm2, 0, "ana")).reason, "approved by ana; waiting for a free action slot");
  EXPECT_EQ(p.check(ctx(vm3, 0)).verdict, Verdict::kPass) << "another host";
  p.on_finished(vm1, h1);
  EXPECT_EQ(p.check(ctx(vm2, 0)).verdict, Verdict::kPass);
}

TEST_F(PolicyTest, FleetConcurrencyWaitsWhenTheFleetIsFull) {
  FleetConcurrencyPolicy p(2);
  p.on_dispatched(vm1, h1, 0);
  EXPECT_EQ(p.check(ctx(vm3, 0)).verdict, Verdict::kPass);
  p.on_dispatched(vm3, h2, 0);
  PolicyCheck c = p.check(ctx(vm2, 0));
  EXPECT_EQ(c.verdict, Verdict::kWait);
  EXPECT_EQ(c.reason, "the fleet has 2 actions in flight (limit 2); waiting for one to finish");
  p.on_finished(vm3, h2);
  EXPECT_EQ(p.check(ctx(vm2, 0)).verdict, Verdict::kPass);
}

TEST_F(PolicyTest, ApprovalWaitsForAnOperatorOnlyWhereTheRuleSaysSo) {
  ApprovalPolicy p(15min);
  EXPECT_EQ(p.check(ctx(vm1, 0)).verdict, Verdict::kPass);
  rule.approval_required = true;
  PolicyCheck c = p.check(ctx(vm1, 0));
  EXPECT_EQ(c.verdict, Verdict::kWait);
  EXPECT_EQ(c.reason, "rule requires operator approval within 15m");
  PolicyCheck a = p.check(ctx(vm1, 0, "ana"));
  EXPECT_EQ(a.verdict, Verdict::kPass);
  EXPECT_EQ(a.reason, "approved by ana");
  rule.approval_timeout = 1min;
  EXPECT_EQ(p.timeout(rule), 1min);
}

TEST_F(PolicyTest, StormGuardFreezesAHostWhenMostOfItsVmsTurnBadAndLiftsWhenQuiet) {
  VirtualClock clock;
  StormOptions o;
  o.min_vms = 2;
  o.host_fraction = 0.5;
  o.fleet_fraction = 0.9;
  o.quiet = 5min;
  o.fleet_settle = 0s;  // no fleet settle to wait for: the host's page goes at once
  int lifted = 0;
  StormGuard g(clock, fleet, o, sink, [&] { ++lifted; });
  int64_t now = to_ns(clock.now());
  g.mark_bad(vm1, now);
  g.evaluate(now);
  EXPECT_FALSE(g.frozen(h1)) << "one of two VMs is not more than half";
  EXPECT_EQ(g.check(ctx(vm1, now)).verdict, Verdict::kPass);
  g.mark_bad(vm1, now);  // the same VM again counts once
  g.evaluate(now);
  EXPECT_FALSE(g.frozen(h1));
  g.mark_bad(vm2, now);
  g.evaluate(now);
  EXPECT_TRUE(g.frozen(h1));
  EXPECT_FALSE(g.fleet_frozen()) << "2 of 3 is under 0.9";
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].policy, Policy::kStormGuard);
  PolicyCheck c = g.check(ctx(vm1, now));
  EXPECT_EQ(c.verdict, Verdict::kHold);
  EXPECT_EQ(c.reason, "automatic actions are frozen on host h1 by the storm guard");
  EXPECT_EQ(g.check(ctx(vm1, now, "ana")).verdict, Verdict::kPass) << "a person said yes";
  EXPECT_EQ(g.check(ctx(vm3, now)).verdict, Verdict::kPass) << "another host";
  rule.storm_guard = false;
  EXPECT_EQ(g.check(ctx(vm1, now)).verdict, Verdict::kPass) << "the rule opted out";
  clock.advance(5min - 1s);
  EXPECT_TRUE(g.frozen(h1));
  clock.advance(1s);
  EXPECT_FALSE(g.frozen(h1));
  EXPECT_EQ(lifted, 1);
}

TEST_F(PolicyTest, StormGuardUnfreezesOnRequestAndRefusesWhatIsNotFrozen) {
  VirtualClock clock;
  StormOptions o;
  o.min_vms = 2;
  int lifted = 0;
  StormGuard g(clock, fleet, o, sink, [&] { ++lifted; });
  Status not_frozen = g.unfreeze(h1, "ana");
  EXPECT_FALSE(not_frozen.ok());
  EXPECT_EQ(not_frozen.message(), "host h1 is not frozen");
  EXPECT_EQ(g.unfreeze(kNoHost, "ana").message(), "the fleet is not frozen");
  int64_t now = to_ns(clock.now());
  g.mark_bad(vm1, now);
  g.mark_bad(vm2, now);
  g.evaluate(now);
  ASSERT_TRUE(g.frozen(h1));
  EXPECT_TRUE(g.unfreeze(h1, "ana").ok());
  EXPECT_FALSE(g.frozen(h1));
  EXPECT_EQ(lifted, 1);
}

}  // namespace
}  // namespace medic::rules
