#include "rules/policy_chain.h"

namespace medic::rules {

PolicyChain::PolicyChain(Clock& clock, Fleet& fleet, const EngineOptions& o, Notices notices,
                         StormGuard::OnLifted on_storm_lifted)
    : silence_(fleet),
      dry_run_(o.dry_run),
      host_silent_(fleet, notices),
      storm_(clock, fleet, o.storm, notices, std::move(on_storm_lifted)),
      cooldown_(o.defaults.cooldown),
      budget_(o.defaults.budget, notices),
      host_slots_(fleet, o.max_in_flight_per_host),
      fleet_slots_(o.max_in_flight_fleet),
      approval_(o.defaults.approval_timeout) {
  order_ = {&silence_, &dry_run_,      &host_silent_, &storm_,       &cooldown_,
            &budget_,  &vm_in_flight_, &host_slots_,  &fleet_slots_, &approval_};
}

Verdict PolicyChain::run(const PolicyContext& c, std::vector<PolicyCheck>* checks) {
  for (SafetyPolicy* p : order_) {
    if (!c.verb() && !p->guards_notify()) continue;
    if (request_only(c.step) && p->books_remediation()) continue;
    checks->push_back(p->check(c));
    if (checks->back().verdict != Verdict::kPass) return checks->back().verdict;
  }
  return Verdict::kPass;
}

void PolicyChain::on_dispatched(uint32_t vm, uint32_t host, int64_t now, Step step) {
  for (SafetyPolicy* p : order_) {
    if (request_only(step) && p->books_remediation()) continue;
    p->on_dispatched(vm, host, now);
  }
}

void PolicyChain::on_finished(uint32_t vm, uint32_t host) {
  for (SafetyPolicy* p : order_) p->on_finished(vm, host);
}

void PolicyChain::on_awaiting(uint32_t vm, int delta) {
  for (SafetyPolicy* p : order_) p->on_awaiting(vm, delta);
}

}  // namespace medic::rules
