// The chain's order, what it records, and how an approved step runs it.
#include "rules/policy_chain.h"

#include <gtest/gtest.h>

#include "rules/incident_book.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::lifecycle;

std::vector<Policy> policies(const std::vector<PolicyCheck>& checks) {
  std::vector<Policy> out;
  for (const auto& c : checks) out.push_back(c.policy);
  return out;
}

const std::vector<Policy> kAll = {
    Policy::kSilence,          Policy::kDryRun,  Policy::kHostSilent, Policy::kStormGuard,
    Policy::kCooldown,         Policy::kBudget,  Policy::kVmInFlight, Policy::kHostConcurrency,
    Policy::kFleetConcurrency, Policy::kApproval};

TEST(PolicyChain, HoldsEveryPolicyInTheDocumentedOrder) {
  VirtualClock clock;
  Fleet fleet(20s, 1h);
  PolicyChain chain(
      clock, fleet, EngineOptions{}, [](Decision) {}, [] {});
  std::vector<Policy> order;
  for (SafetyPolicy* p : chain.order()) order.push_back(p->id());
  EXPECT_EQ(order, kAll);
}

TEST(PolicyChain, AProposedVerbRecordsEveryCheckPassedInOrder) {
  Harness h("rules:\n  - {name: p, on: vm.panicked, do: reset}\n");
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kProposed);
  EXPECT_EQ(policies(ds[0].checks), kAll);
  for (const auto& c : ds[0].checks) EXPECT_EQ(c.verdict, Verdict::kPass) << policy_name(c.policy);
}

TEST(PolicyChain, ANotifyStepMeetsOnlyThePoliciesThatGuardNotify) {
  Harness h("rules:\n  - {name: p, on: vm.panicked, do: notify}\n");
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(policies(ds[0].checks), (std::vector<Policy>{Policy::kSilence, Policy::kDryRun}));
}

TEST(PolicyChain, AStoppedStepEndsItsChecksAtThePolicyThatStoppedIt) {
  Harness h("rules:\n  - {name: p, on: vm.panicked, do: reset, cooldown: 10m}\n");
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto first = h.take();
  ASSERT_EQ(first.size(), 1u);
  h.engine.on_action_result(first[0].id, ActionState::kSucceeded, true);
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kSuppressed);
  EXPECT_EQ(policies(ds[0].checks),
            (std::vector<Policy>{Policy::kSilence, Policy::kDryRun, Policy::kHostSilent,
                                 Policy::kStormGuard, Policy::kCooldown}));
  const PolicyCheck& last = ds[0].checks.back();
  EXPECT_EQ(last.verdict, Verdict::kHold);
  EXPECT_EQ(last.reason, ds[0].reason);
}

TEST(PolicyChain, AnApprovedStepRunsTheSameChainAndPassesAStormFreeze) {
  EngineOptions o;
  o.storm.min_vms = 2;
  o.storm.host_fraction = 0.5;
  o.storm.fleet_fraction = 0.99;
  Harness h(R"(rules:
  - {name: p, on: vm.panicked, do: restart, approval: required}
)",
            o);
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto pending = h.with(Outcome::kPendingApproval);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].checks.back().policy, Policy::kApproval);
  EXPECT_EQ(pending[0].checks.back().verdict, Verdict::kWait);
  h.send(lifecycle("h1", "vm2", medic::v1::LIFECYCLE_PANICKED));  // 2 of 2: h1 freezes
  ASSERT_TRUE(h.engine.frozen("h1"));
  h.take();
  ASSERT_TRUE(h.engine.approve(pending[0].id, "ana").ok());
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kApproved);
  EXPECT_EQ(ds[0].by, "ana");
  EXPECT_EQ(policies(ds[0].checks), kAll) << "the same chain, in the same order";
  EXPECT_EQ(ds[0].checks[3].policy, Policy::kStormGuard);
  EXPECT_EQ(ds[0].checks[3].verdict, Verdict::kPass) << "a person said yes";
  EXPECT_EQ(ds[0].checks.back().reason, "approved by ana");
}

TEST(PolicyChain, WhileAStepAwaitsApprovalNoOtherActionStartsOnItsVm) {
  Harness h(R"(rules:
  - {name: p, on: vm.panicked, do: restart, approval: required}
  - {name: c, on: vm.crashed, do: reset}
)");
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto pending = h.with(Outcome::kPendingApproval);
  ASSERT_EQ(pending.size(), 1u);
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_CRASHED));
  auto crash = h.take().back();
  EXPECT_EQ(crash.rule, "c");
  EXPECT_EQ(crash.policy, Policy::kVmInFlight);
  EXPECT_EQ(crash.reason, "another action on this VM is waiting for approval");
  // Control: on another VM the crash rule acts.
  h.send(lifecycle("h1", "vm2", medic::v1::LIFECYCLE_CRASHED));
  EXPECT_EQ(h.take().back().outcome, Outcome::kProposed);
}

TEST(PolicyChain, AnApprovedStepIsStillStoppedByASilentHost) {
  Harness h(R"(rules:
  - {name: p, on: vm.panicked, do: restart, approval: required}
)");
  h.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_PANICKED));
  auto pending = h.with(Outcome::kPendingApproval);
  ASSERT_EQ(pending.size(), 1u);
  h.go_silent("h1");
  h.advance(30s);
  h.take();
  ASSERT_TRUE(h.engine.approve(pending[0].id, "ana").ok());
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kSuppressed);
  EXPECT_EQ(ds[0].policy, Policy::kHostSilent);
  EXPECT_EQ(ds[0].reason, "approved by ana, but host h1 is silent");
  EXPECT_EQ(ds[0].checks.back().policy, Policy::kHostSilent);
}

}  // namespace
}  // namespace medic::rules
