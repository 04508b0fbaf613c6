// How an incident's ladder steps meet the policy chain, are dispatched and
// watched. How they are answered (results, approvals, denials, approval
// timeouts): rules/engine_results.cc.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/duration.h"
#include "rules/engine_impl.h"

namespace medic::rules {

namespace {

std::string fmt(Duration d) {
  return format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

}  // namespace

std::string heal_words(const Rule& r) {
  if (r.healed_by == EventType::kVmStopped) return "the VM reported vm.stopped";
  return std::string(event_type_name(r.healed_by)) + " came back";
}

// ------------------------------------------------------------ decisions

Decision Engine::Impl::base(const Incident& inc) {
  const Rule& r = *inc.rule;
  const VmEntry& vm = fleet_.vm_at(inc.vm);
  Decision d;
  d.id = next_id();
  d.at = clock_.now();
  d.rule = r.name;
  d.rule_version = r.version;
  d.vm = vm.facts.id;
  d.host = std::string(vm.facts.host);
  d.step = r.ladder[inc.step];
  d.ladder_step = inc.step + 1;
  d.ladder_size = static_cast<uint32_t>(r.ladder.size());
  d.evidence = inc.evidence;
  d.trigger = inc.trigger;
  d.heal_within = r.heal_within;
  return d;
}

void Engine::Impl::emit(const Decision& d) {
  ++stats_.decisions;
  touch_decision(d);
  sink_.on_decision(d);
}

void Engine::Impl::notice(Decision d) {
  d.id = next_id();
  d.at = clock_.now();
  emit(d);
}

// ------------------------------------------------------------ steps

void Engine::Impl::attempt_step(Incident& inc) {
  Decision d = base(inc);
  run_step(inc, d);
}

// The step meets the chain; what the last check answered decides what
// becomes of it. An operator's approval of this very step is part of the run.
// An approved step keeps the pending action's id however often it meets the
// chain (waiting for a slot, it meets it again when one frees), so the log
// holds one action from pending to its end.
void Engine::Impl::run_step(Incident& inc, Decision& d) {
  std::string_view approved_by;
  if (inc.approved_step == inc.step + 1) approved_by = inc.approved_by;
  if (!approved_by.empty()) {
    d.by = std::string(approved_by);
    // An approval of a pending action (an operator's own request approves
    // itself and was never pending).
    d.answers_pending = !inc.action_id.empty();
    if (d.answers_pending) d.id = inc.action_id;
  }
  inc.step_decision = d.id;
  uint32_t host = fleet_.vm_at(inc.vm).host;
  PolicyContext c{*inc.rule, inc, inc.vm, host, d.step, now_ns(), d, approved_by};
  d.checks.reserve(chain_.order().size());
  switch (chain_.run(c, &d.checks)) {
    case Verdict::kPass:
      return dispatch(inc, d, d.answers_pending ? Outcome::kApproved : Outcome::kProposed);
    case Verdict::kDryRun:
      d.outcome = Outcome::kDryRun;
      if (d.step == Step::kNotify) d.reason = notify_text(inc);
      emit(d);
      return watch(inc, clock_.now() + inc.rule->heal_within);
    default: {
      PolicyCheck by = d.checks.back();
      return stopped(inc, d, by);
    }
  }
}

void Engine::Impl::stopped(Incident& inc, Decision& d, const PolicyCheck& by) {
  switch (by.verdict) {
    case Verdict::kSuppress:
      return suppress(inc, d, by.policy, by.reason);
    case Verdict::kHold:
      return hold(inc, d, by);
    case Verdict::kWait:
      if (by.policy == Policy::kApproval) return await_approval(inc, d, by.reason);
      return wait_for_slot(inc, d, by.policy, by.reason);
    case Verdict::kPass:
    case Verdict::kDryRun:
      break;
  }
}

void Engine::Impl::suppress(Incident& inc, Decision& d, Policy p, std::string reason) {
  d.outcome = Outcome::kSuppressed;
  d.policy = p;
  d.reason = std::move(reason);
  emit(d);
  close(inc, IncidentEnd::kClosed);
}

// One decision says the step is held; the incident then absorbs the
// triggers of its key without a decision each, until the hold lifts (its
// timer, or the event release_held() is called for) or the VM heals.
void Engine::Impl::hold(Incident& inc, Decision& d, const PolicyCheck& by) {
  d.outcome = Outcome::kSuppressed;
  d.policy = by.policy;
  d.reason = by.reason;
  emit(d);
  book_.move_to(inc, IncidentState::kHeld);
  inc.held_by = by.policy;
  if (by.until_ns != 0) {
    inc.deadline = from_ns(by.until_ns);
    arm_hold_timer(inc);
  }
}

void Engine::Impl::arm_hold_timer(Incident& inc) {
  IncidentId id = inc.id;
  inc.timer = clock_.schedule_at(inc.deadline, [this, id] { on_hold_end(id); });
}

void Engine::Impl::on_hold_end(IncidentId id) {
  Incident* inc = book_.find(id);
  if (!inc || inc->state != IncidentState::kHeld) return;
  inc->timer = 0;
  if (inc->held_by == Policy::kStormGuard) return settle_end(*inc);
  std::string why;
  switch (inc->held_by) {
    case Policy::kSilence:
      why = "the silence ended";
      break;
    case Policy::kCooldown:
      why = "the cooldown ended";
      break;
    case Policy::kBudget:
      why = "the budget has room again";
      break;
    default:
      why = std::string(policy_name(inc->held_by)) + " no longer holds it";
      break;
  }
  release(*inc, why);
}

// The storm guard has decided: a freeze keeps the incident held until it
// lifts (which closes it); otherwise it was no storm, and the step meets the
// policies again. A step waits for one settle at most: a settle that began
// after it (a steady trickle of unrelated failures) does not hold it again,
// so no action starves.
void Engine::Impl::settle_end(Incident& inc) {
  const StormGuard& g = chain_.storm();
  uint32_t host = fleet_.vm_at(inc.vm).host;
  if (g.fleet_frozen() || g.frozen(host)) return;
  book_.move_to(inc, IncidentState::kOpen);
  inc.settled = true;
  inc.held_by = Policy::kNone;
  Decision d = base(inc);
  verdict(inc, false, "released: the storm guard settled with no storm", d.id, 0);
  run_step(inc, d);
}

void Engine::Impl::release(Incident& inc, const std::string& why) {
  verdict(inc, false, "released: " + why + "; a trigger that still holds opens a new incident",
          "", 0);
  close(inc, IncidentEnd::kClosed);
}

void Engine::Impl::wait_for_slot(Incident& inc, Decision& d, Policy p, std::string reason) {
  bool first = !inc.waiting_reported;
  book_.move_to(inc, IncidentState::kOpen);
  touch_vm(inc.vm);
  inc.waiting_on = p;
  inc.waiting_reported = true;
  waiting_.push_back(inc.id);
  if (!first) return;
  d.outcome = Outcome::kSuppressed;
  d.policy = p;
  d.reason = std::move(reason);
  emit(d);
}

void Engine::Impl::await_approval(Incident& inc, Decision& d, std::string reason) {
  d.outcome = Outcome::kPendingApproval;
  d.policy = Policy::kApproval;
  d.reason = std::move(reason);
  d.expires_at = clock_.now() + chain_.approval().timeout(*inc.rule);
  book_.move_to(inc, IncidentState::kOpen);
  inc.waiting_on = Policy::kApproval;
  inc.action_id = d.id;
  inc.deadline = d.expires_at;
  chain_.on_awaiting(inc.vm, +1);
  book_.bind_action(d.id, inc.id);
  arm_approval_timer(inc);
  emit(d);
}

void Engine::Impl::arm_approval_timer(Incident& inc) {
  IncidentId id = inc.id;
  inc.timer = clock_.schedule_at(inc.deadline, [this, id] { on_approval_timeout(id); });
}

std::string Engine::Impl::notify_text(const Incident& inc) const {
  const Rule& r = *inc.rule;
  if (!r.message.empty()) return r.message;
  const VmEntry& vm = fleet_.vm_at(inc.vm);
  std::string s = "rule " + r.name + ": VM " + vm.facts.id + " on host " +
                  std::string(vm.facts.host) + ": " + inc.trigger;
  if (inc.step > 0) {
    s += "; tried";
    for (uint32_t i = 0; i < inc.step; ++i) s += " " + std::string(step_name(r.ladder[i]));
    s += " without healing it";
  }
  return s;
}

void Engine::Impl::dispatch(Incident& inc, Decision& d, Outcome outcome) {
  d.outcome = outcome;
  if (d.step == Step::kNotify) {
    d.reason = notify_text(inc);
    emit(d);
    return watch(inc, clock_.now() + inc.rule->heal_within);
  }
  uint32_t host = fleet_.vm_at(inc.vm).host;
  chain_.on_dispatched(inc.vm, host, now_ns(), d.step);
  book_.move_to(inc, IncidentState::kActing);
  inc.watch_from = clock_.now();  // the step's heal window runs from here
  inc.action_id = d.id;
  inc.healed_seen = false;
  inc.progress = false;
  inc.healed_ref = 0;
  book_.bind_action(d.id, inc.id);
  d.expires_at = clock_.now() + opt_.action_ttl;
  start_action(d.id, inc.vm, host, clock_.now() + result_timeout(inc.rule->heal_within));
  emit(d);
}

// The actuator may answer until the action's expiry, its watch and the
// dispatcher's result grace have passed: no timeout is sooner.
Duration Engine::Impl::result_timeout(Duration heal_within) const {
  return std::max(opt_.action_timeout, opt_.action_ttl + heal_within + opt_.result_grace);
}

void Engine::Impl::start_action(const std::string& id, uint32_t vm, uint32_t host, Time expires) {
  TimerId t = clock_.schedule_at(expires, [this, id] {
    in_flight_[id].timeout = 0;
    result(id, ActionState::kTimedOut, false, "no result within the action timeout");
  });
  in_flight_[id] = {vm, host, expires, t};
}

void Engine::Impl::watch(Incident& inc, Time until) {
  touch_vm(inc.vm);
  book_.move_to(inc, IncidentState::kWatching);
  inc.watch_from = clock_.now();
  arm_watch(inc, until);
}

// The actuator answers a verb that did not heal the VM at the end of its
// own watch (Action.watch_ns: the rule's heal_within from the verb), so the
// step's heal window is counted from the dispatch, not from the result; a
// reboot the guest ignored is then followed by the next step one heal_within
// after it was sent, not two. A little grace is left for events the
// actuator's look did not see (a probe, a heartbeat on its way).
void Engine::Impl::watch_after_result(Incident& inc) {
  constexpr Duration kLateEventGrace = std::chrono::seconds(5);
  // An incident restored from a snapshot that did not keep the step's time
  // counts from now.
  if (to_ns(inc.watch_from) == 0) inc.watch_from = clock_.now();
  const Time until =
      std::max(inc.watch_from + inc.rule->heal_within, clock_.now() + kLateEventGrace);
  touch_vm(inc.vm);
  book_.move_to(inc, IncidentState::kWatching);
  arm_watch(inc, until);
}

void Engine::Impl::arm_watch(Incident& inc, Time until) {
  inc.deadline = until;
  IncidentId id = inc.id;
  inc.timer = clock_.schedule_at(until, [this, id] { on_watch_end(id); });
}

// What counts as progress after a step (rules/rule.h boot_timeout): the VM
// reports booting, was reset or started, or beats when its heal signal is
// another one.
void Engine::Impl::note_progress(Incident& inc, EventType type, const medic::v1::Event& e) {
  bool booting = type == EventType::kVmState && e.state().state() == medic::v1::VM_STATE_BOOTING;
  if (booting || type == EventType::kVmReset || type == EventType::kVmStarted ||
      (type == EventType::kVmHeartbeat && inc.rule->healed_by != EventType::kVmHeartbeat)) {
    if (!inc.progress) touch_vm(inc.vm);
    inc.progress = true;
  }
}

void Engine::Impl::on_watch_end(IncidentId id) {
  Incident* p = book_.find(id);
  if (!p) return;
  p->timer = 0;
  if (p->healed_seen) return close_healed(*p, heal_words(*p->rule), p->healed_ref);
  Time boot_end = p->watch_from + p->rule->boot_timeout;
  if (p->progress && clock_.now() < boot_end) {
    spdlog::info("rules: VM {} shows progress (booting) after its {} step; watching it until {} "
                 "after the step (boot_timeout) before climbing",
                 fleet_.vm_at(p->vm).facts.id, step_name(p->rule->ladder[p->step]),
                 fmt(p->rule->boot_timeout));
    touch_vm(p->vm);
    p->progress = false;  // one extension per step
    return arm_watch(*p, boot_end);
  }
  advance(*p, "no " + std::string(event_type_name(p->rule->healed_by)) + " within " +
                  fmt(p->rule->heal_within) + " of the step");
}

void Engine::Impl::advance(Incident& inc, const std::string& why) {
  ++inc.step;
  inc.progress = false;
  inc.waiting_reported = false;
  if (inc.step >= inc.rule->ladder.size()) {
    spdlog::warn("rules: rule {} ran its whole ladder on VM {} without healing it", inc.rule->name,
                 fleet_.vm_at(inc.vm).facts.id);
    verdict(inc, false, why + "; that was the last step of the ladder", "", 0);
    return close(inc, IncidentEnd::kEscalated);
  }
  book_.move_to(inc, IncidentState::kOpen);
  Decision d = base(inc);
  verdict(inc, false, why, d.id, 0);
  run_step(inc, d);
}

void Engine::Impl::close_healed(Incident& inc, const std::string& how, EvidenceRef ref) {
  verdict(inc, true, how, "", ref);
  close(inc, IncidentEnd::kHealed);
}

void Engine::Impl::verdict(const Incident& inc, bool healed, std::string detail, std::string next,
                           EvidenceRef ref) {
  // An incident restored from a state written before step_decision was kept
  // still knows its action.
  const std::string& id = inc.step_decision.empty() ? inc.action_id : inc.step_decision;
  if (id.empty()) return;
  HealVerdict v;
  v.decision_id = id;
  v.at = clock_.now();
  v.rule = inc.rule->name;
  v.vm = fleet_.vm_at(inc.vm).facts.id;
  v.healed = healed;
  v.detail = std::move(detail);
  v.next = std::move(next);
  v.evidence = ref;
  sink_.on_heal_verdict(v);
}

void Engine::Impl::close(Incident& inc, IncidentEnd end) {
  touch_vm(inc.vm);
  if (inc.timer) clock_.cancel(inc.timer);
  if (inc.awaiting_approval()) chain_.on_awaiting(inc.vm, -1);
  --fleet_.vm_at(inc.vm).open;
  if (end == IncidentEnd::kHealed) chain_.storm().healed(inc.vm);
  // A clone refused or failed before its VM ever reported: there is no such
  // VM, so the table retires the one the request entered.
  const VmEntry& vm = fleet_.vm_at(inc.vm);
  if (end != IncidentEnd::kHealed && inc.rule->request && inc.rule->ladder[0] == Step::kClone &&
      vm.last_seen_ns == 0)
    fleet_.retire(inc.vm);
  book_.close(inc, end);
}

}  // namespace medic::rules
