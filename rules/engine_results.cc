// How an incident's dispatched step is answered: action results (and the
// slots they free for waiting incidents), approvals, denials and approval
// timeouts. The steps themselves, the policy chain and the watch:
// rules/engine_steps.cc.
#include <spdlog/spdlog.h>

#include "rules/engine_impl.h"

namespace medic::rules {

// ------------------------------------------------------------ results

void Engine::Impl::release_slot(const std::string& id) {
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  if (it->second.timeout) clock_.cancel(it->second.timeout);
  touch_vm(it->second.vm);
  chain_.on_finished(it->second.vm, it->second.host);
  in_flight_.erase(it);
}

void Engine::Impl::result(const std::string& id, ActionState outcome, bool healed,
                          const std::string& reason) {
  if (!in_flight_.count(id)) {
    spdlog::debug("rules: result for unknown or finished action {} ignored", id);
    return;
  }
  release_slot(id);
  Incident* inc = book_.by_action(id);
  book_.unbind_action(id);
  if (inc && inc->state == IncidentState::kActing && inc->action_id == id) {
    switch (outcome) {
      case ActionState::kSucceeded:
        if (healed && inc->rule->ladder[inc->step] == Step::kDelete) {
          const uint32_t v = inc->vm;
          close_healed(*inc, "the actuator saw the VM gone after the verb", 0);
          retire(v, "the VM was deleted (" + id + ")");
        } else if (healed)
          close_healed(*inc,
                       inc->rule->ladder[inc->step] == Step::kStop
                           ? "the actuator saw the VM stopped after the verb"
                           : "the actuator saw the VM healthy after the verb",
                       0);
        else if (inc->healed_seen)
          close_healed(*inc, heal_words(*inc->rule), inc->healed_ref);
        else
          watch_after_result(*inc);
        break;
      case ActionState::kFailed:
      case ActionState::kTimedOut:
        spdlog::warn("rules: action {} {}: {}", id,
                     outcome == ActionState::kFailed ? "failed" : "timed out", reason);
        advance(*inc, std::string("the action ") +
                          (outcome == ActionState::kFailed ? "failed" : "timed out") +
                          (reason.empty() ? "" : ": " + reason));
        break;
      case ActionState::kRejected:
        spdlog::warn("rules: action {} rejected by the actuator: {}", id, reason);
        verdict(*inc, false, "the actuator refused the action: " + reason, "", 0);
        close(*inc, IncidentEnd::kClosed);
        break;
      default:  // not a result (on_action_result's contract)
        break;
    }
  }
  pump_waiting();
}

void Engine::Impl::pump_waiting() {
  auto host_full = [&](const Incident& inc) {
    return chain_.host_slots().full(fleet_.vm_at(inc.vm).host);
  };
  while (!waiting_.empty() && !chain_.fleet_slots().full()) {
    IncidentId id = waiting_.front();
    waiting_.pop_front();
    Incident* inc = book_.find(id);
    if (!inc || !inc->waiting_for_slot()) continue;
    if (host_full(*inc)) {
      // Its host is still full; look at it again after others had a turn.
      bool others = std::any_of(waiting_.begin(), waiting_.end(), [&](IncidentId w) {
        Incident* o = book_.find(w);
        return o && !host_full(*o);
      });
      waiting_.push_back(id);
      if (!others) break;
      continue;
    }
    attempt_step(*inc);
  }
}

// ------------------------------------------------------------ operators

void Engine::Impl::on_approval_timeout(IncidentId id) {
  Incident* inc = book_.find(id);
  if (!inc || !inc->awaiting_approval()) return;
  inc->timer = 0;
  Decision d = base(*inc);
  d.id = inc->action_id;
  d.outcome = Outcome::kExpired;
  d.policy = Policy::kApproval;
  d.reason = "no operator approved it in time";
  book_.unbind_action(inc->action_id);
  emit(d);
  close(*inc, IncidentEnd::kClosed);
}

Incident* Engine::Impl::pending(const std::string& action_id) {
  Incident* inc = book_.by_action(action_id);
  return inc && inc->awaiting_approval() ? inc : nullptr;
}

// The approved step meets the same chain again, as approved: facts (a silent
// host, another action in flight, free slots) still rule; what a person's yes
// overrides (a storm freeze, cooldown, budget) passes. Approval is for this
// step: if it must wait for a slot, it does not ask again.
Status Engine::Impl::approve(const std::string& id, const std::string& by) {
  touched_ = true;
  Incident* inc = pending(id);
  if (!inc) return not_found("no action " + id + " is waiting for approval");
  if (inc->timer) clock_.cancel(inc->timer);
  inc->timer = 0;
  book_.unbind_action(id);
  chain_.on_awaiting(inc->vm, -1);
  inc->waiting_on = Policy::kNone;
  inc->approved_step = inc->step + 1;
  inc->approved_by = by;
  Decision d = base(*inc);
  d.id = id;
  run_step(*inc, d);
  return {};
}

Status Engine::Impl::deny(const std::string& id, const std::string& by, const std::string& reason) {
  touched_ = true;
  Incident* inc = pending(id);
  if (!inc) return not_found("no action " + id + " is waiting for approval");
  book_.unbind_action(id);
  Decision d = base(*inc);
  d.id = id;
  d.by = by;
  d.outcome = Outcome::kDenied;
  d.policy = Policy::kApproval;
  d.reason = reason;
  emit(d);
  close(*inc, IncidentEnd::kClosed);
  return {};
}

}  // namespace medic::rules
