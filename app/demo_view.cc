#include "app/demo_view.h"

namespace medic::app {

void DemoView::on_fault(const vmm::sim::InjectedFault& f) {
  if (f.vm.empty()) {
    tl_.host_fault(f.at, f.host, vmm::sim::fault_name(f.kind));
    return;
  }
  fault(f.at, f.vm, vmm::sim::fault_name(f.kind));
}

void DemoView::fault(Time at, const std::string& vm, const std::string& what) {
  tl_.fault_injected(at, name(vm), what);
  watching_[vm] = at;
}

void DemoView::on_batch(const medic::v1::EventBatch& batch, bool urgent) {
  if (!urgent) return;
  for (const auto& e : batch.events()) {
    if (e.has_lifecycle()) {
      tl_.detected(clock_.now(), name(e.vm()),
                   std::string("vm.") + vmm::lifecycle_name(e.lifecycle().what()) +
                       " event, signed by " + e.host());
    }
  }
}

void DemoView::on_decision(const rules::Decision& d) {
  const Time now = clock_.now();
  const std::string vm = d.vm.empty() ? (d.host.empty() ? "fleet" : d.host) : name(d.vm);
  const std::string step(rules::step_name(d.step));
  switch (d.outcome) {
    case rules::Outcome::kProposed:
      if (d.step == rules::Step::kNotify) {
        tl_.note(now, "notify: " + d.reason);
        return;
      }
      if (d.trigger.rfind("no ", 0) == 0) tl_.detected(now, vm, d.trigger);
      tl_.decided(now, vm, d.rule, step,
                  "ladder step " + std::to_string(d.ladder_step) + "/" +
                      std::to_string(d.ladder_size) + ", all safety policies passed");
      names_[d.id] = vm;
      if (first_action_.empty()) first_action_ = d.id;
      return;
    case rules::Outcome::kSuppressed:
      tl_.suppressed(now, vm, d.rule, step, std::string(rules::policy_name(d.policy)), d.reason);
      return;
    case rules::Outcome::kDryRun:
      tl_.note(now, vm + ": dry-run " + step + " by rule " + d.rule);
      return;
    default:
      tl_.note(now, vm + ": " + std::string(rules::outcome_name(d.outcome)) + " " + step);
  }
}

void DemoView::on_dispatch_event(const actuators::DispatchEvent& e) {
  using T = ActionState;
  using Ran = Timeline::Ran;
  if (e.action.verb() == medic::v1::VERB_INJECT) return;  // shown as its fault
  const std::string vm =
      names_.count(e.action.id()) ? names_[e.action.id()] : name(e.action.vm());
  switch (e.state) {
    case T::kDispatched:
      tl_.dispatched(e.at, vm, e.action.id(), vmm::verb_name(e.action.verb()));
      break;
    case T::kSucceeded: {
      const bool healed = e.result && e.result->healed();
      tl_.executed(e.at, vm, e.action.id(), healed ? Ran::kHealed : Ran::kNotHealed);
      if (healed && succeeded_.empty()) succeeded_ = e.action.id();
      break;
    }
    case T::kFailed:
    case T::kRejected:
    case T::kTimedOut:
      tl_.executed(e.at, vm, e.action.id(), Ran::kFailed,
                   e.result ? e.result->reason() : e.reason);
      break;
    default:
      break;
  }
}

void DemoView::check_healed() {
  for (auto it = watching_.begin(); it != watching_.end();) {
    if (healthy_(it->first, it->second)) {
      tl_.healed(clock_.now(), name(it->first));
      it = watching_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace medic::app
