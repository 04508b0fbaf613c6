// The policy chain: the engine's safety policies in their one fixed order.
// A ladder step meets them one by one until one does not pass; the step's
// Decision records every check made, ending at the one that stopped it.
//
// Contract:
// - The order is set in one place, the constructor: silence, dry-run,
//   host-silent, storm guard, cooldown, budget, vm-in-flight, host
//   concurrency, fleet concurrency, approval. Adding a policy is writing its
//   class (rules/policy.h) and adding it there.
// - Notify steps meet only the policies that guard notify (silence, dry-run).
// - A step an operator approved runs the same chain with
//   PolicyContext::approved_by set; each policy says what a yes means to it.
// - The on_*() calls fan out to every policy, in chain order.
#pragma once

#include <vector>

#include "core/clock.h"
#include "rules/engine.h"
#include "rules/policies.h"
#include "rules/storm_guard.h"

namespace medic::rules {

class PolicyChain {
 public:
  // `notices` receives the policies' own notices; `on_storm_lifted` is
  // called when a storm freeze lifts.
  PolicyChain(Clock& clock, Fleet& fleet, const EngineOptions& options, Notices notices,
              StormGuard::OnLifted on_storm_lifted);
  PolicyChain(const PolicyChain&) = delete;
  PolicyChain& operator=(const PolicyChain&) = delete;

  // Runs the chain for the step in `c`, appending each check to `*checks`.
  // Returns the verdict of the last check (kPass when every policy passed).
  Verdict run(const PolicyContext& c, std::vector<PolicyCheck>* checks);

  // A `step` on `vm` was dispatched at `now`.
  void on_dispatched(uint32_t vm, uint32_t host, int64_t now, Step step);
  void on_finished(uint32_t vm, uint32_t host);
  void on_awaiting(uint32_t vm, int delta);

  SilencePolicy& silences() { return silence_; }
  const SilencePolicy& silences() const { return silence_; }
  HostSilentPolicy& host_silent() { return host_silent_; }
  StormGuard& storm() { return storm_; }
  const StormGuard& storm() const { return storm_; }
  CooldownPolicy& cooldown() { return cooldown_; }
  const CooldownPolicy& cooldown() const { return cooldown_; }
  BudgetPolicy& budget() { return budget_; }
  const BudgetPolicy& budget() const { return budget_; }
  VmInFlightPolicy& vm_in_flight() { return vm_in_flight_; }
  HostConcurrencyPolicy& host_slots() { return host_slots_; }
  FleetConcurrencyPolicy& fleet_slots() { return fleet_slots_; }
  ApprovalPolicy& approval() { return approval_; }
  const std::vector<SafetyPolicy*>& order() const { return order_; }

 private:
  SilencePolicy silence_;
  DryRunPolicy dry_run_;
  HostSilentPolicy host_silent_;
  StormGuard storm_;
  CooldownPolicy cooldown_;
  BudgetPolicy budget_;
  VmInFlightPolicy vm_in_flight_;
  HostConcurrencyPolicy host_slots_;
  FleetConcurrencyPolicy fleet_slots_;
  ApprovalPolicy approval_;
  std::vector<SafetyPolicy*> order_;
};

}  // namespace medic::rules
