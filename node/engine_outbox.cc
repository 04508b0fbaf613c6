// The decision recorder and outbox: every decision becomes an audit row
// before anything else happens; a verb's `dispatched` transition is appended
// next, and the action leaves (Dispatcher::dispatch) only once that row is
// durable. What the actuator reports comes back as transitions and is fed to
// the rules engine. A refused append is counted (stats().audit_errors) and the
// action it would have recorded is not sent.
#include <spdlog/spdlog.h>

#include "node/engine_node.h"
#include "vmm/hypervisor.h"

namespace medic::node {
namespace {

// rules::Outcome mixes what a decision decided (proposed, suppressed,
// pending_approval, dry_run: a decision row) with what an operator or a timer
// did to a pending action (approved, denied, expired: a transition only).
std::optional<DecisionOutcome> decision_outcome(rules::Outcome o) {
  switch (o) {
    case rules::Outcome::kProposed: return DecisionOutcome::kProposed;
    case rules::Outcome::kSuppressed: return DecisionOutcome::kSuppressed;
    case rules::Outcome::kPendingApproval: return DecisionOutcome::kPendingApproval;
    case rules::Outcome::kDryRun: return DecisionOutcome::kDryRun;
    default: return std::nullopt;
  }
}

// THE place where the policies a decision passed are copied into its audit
// record: the checks its step actually met and passed, in chain order.
std::vector<std::string> policies_passed(const rules::Decision& d) {
  std::vector<std::string> out;
  for (const auto& c : d.checks) {
    if (c.verdict == rules::Verdict::kPass) out.emplace_back(rules::policy_name(c.policy));
  }
  return out;
}

std::string passed_words(const rules::Decision& d) {
  std::string out;
  for (const auto& p : policies_passed(d)) out += (out.empty() ? "passed " : ", ") + p;
  return out;
}

Time expiry_of(const rules::Decision& d, Time from, Duration ttl) {
  return d.expires_at.time_since_epoch().count() != 0 ? d.expires_at : from + ttl;
}

// The one info line per decision: rule, VM, outcome, policy.
void log_decision(const rules::Decision& d) {
  spdlog::info("decision {}: rule {} VM {} on {}: {} {} (step {}/{}){}{}", d.id,
               d.rule.empty() ? "(engine)" : d.rule, d.vm.empty() ? "-" : d.vm,
               d.host.empty() ? "-" : d.host, rules::outcome_name(d.outcome),
               rules::step_name(d.step), d.ladder_step, d.ladder_size,
               d.policy == rules::Policy::kNone ? "" : " by policy " + std::string(rules::policy_name(d.policy)),
               d.reason.empty() ? "" : ": " + d.reason);
}

// What people are told when an action starts or stops waiting for them: the
// webhook gets it as a notification, the log as a warning (the notifier
// writes that line).
rules::Decision approval_notice(const rules::Decision& d, const std::string& text) {
  rules::Decision n = d;
  n.reason = text;
  return n;
}

}  // namespace

void EngineNode::on_decision(const rules::Decision& d) {
  ++stats_.decisions;
  log_decision(d);
  // One lookup per decision (not per event): the registry's lock is cheap next
  // to the audit write that follows.
  counters_
      .counter("decision_outcomes_total",
               {{"rule", d.rule.empty() ? "(engine)" : d.rule},
                {"outcome", std::string(rules::outcome_name(d.outcome))},
                {"policy", std::string(rules::policy_name(d.policy))}},
               "decisions by rule, outcome and the policy that decided it")
      .add();
  if (observer_) observer_->on_decision(d);
  followers_.on_decision(d);
  // An approved pending action (an operator's request names them in `by` too,
  // but is a decision of its own: it has no pending row).
  if (d.answers_pending &&
      (d.outcome == rules::Outcome::kApproved || d.outcome == rules::Outcome::kSuppressed)) {
    record_approved_step(d);
    return;
  }
  if (!decision_outcome(d.outcome)) {
    record_operator_outcome(d);
    return;
  }
  auto seq = store_->append_decision(decision_record(d));
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::error("engine: decision {} not recorded, so not acted on: {}", d.id,
                  seq.status().message());
    return;
  }
  if (d.outcome == rules::Outcome::kPendingApproval) {
    const Time until = expiry_of(d, d.at, config_.engine.action_ttl);
    const auto left = std::chrono::round<std::chrono::seconds>(until - d.at);
    notifier_->notify(approval_notice(
        d, "action " + d.id + " (" + std::string(rules::step_name(d.step)) + " VM " + d.vm +
               ") waits for an operator's approval, " + std::to_string(left.count()) +
               "s left: medic approve " + d.id));
    return;
  }
  if (d.outcome != rules::Outcome::kProposed) return;
  if (d.step == rules::Step::kNotify) {
    record_notify(d);
  } else {
    record_verb(d);
  }
}

// A step an operator approved met the policy chain again, under the pending
// action's id (it was recorded once, as pending_approval). Passed: approved,
// with what it passed, and sent. Waiting for a free slot: the action stays
// pending in the log (the operator request's row holds the approval) and
// meets the chain again when a slot frees. Stopped by a fact the approval
// does not override (a silent host, another action on the VM): approved,
// then suppressed saying why, in one commit (an `approved` row alone would be
// re-sent by a restarted engine).
void EngineNode::record_approved_step(const rules::Decision& d) {
  if (d.outcome == rules::Outcome::kApproved) {
    record_transition(d.id, ActionState::kApproved, d.by, passed_words(d));
    if (d.step != rules::Step::kNotify) record_verb(d);
    return;
  }
  if (!d.checks.empty() && d.checks.back().verdict == rules::Verdict::kWait) {
    spdlog::info("engine: action {} approved by {}: {}", d.id, d.by, d.reason);
    return;
  }
  const Time now = party_.clock.now();
  std::string met = passed_words(d);
  met += (met.empty() ? "" : "; ") + std::string("stopped by ");
  met += rules::policy_name(d.policy);
  std::vector<audit::Record> batch;
  batch.push_back(audit::Record::of(
      audit::Transition{d.id, now, ActionState::kApproved, d.by, std::move(met), 0}));
  batch.push_back(audit::Record::of(
      audit::Transition{d.id, now, ActionState::kSuppressed, "engine", d.reason, 0}));
  auto seq = store_->append_batch(std::move(batch));
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::warn("engine: approved action {} not recorded as suppressed: {}", d.id,
                 seq.status().message());
  }
}

// denied / expired: a transition of the pending action.
void EngineNode::record_operator_outcome(const rules::Decision& d) {
  switch (d.outcome) {
    case rules::Outcome::kDenied:
      record_transition(d.id, ActionState::kDenied, d.by, d.reason);
      return;
    case rules::Outcome::kExpired:
      record_transition(d.id, ActionState::kExpired, "engine", d.reason);
      notifier_->notify(approval_notice(
          d, "action " + d.id + " (" + std::string(rules::step_name(d.step)) + " VM " + d.vm +
                 ") expired: nobody approved it in time" +
                 (d.reason.empty() ? "" : " (" + d.reason + ")")));
      return;
    default:
      return;
  }
}

audit::Decision EngineNode::decision_record(const rules::Decision& d) {
  audit::Decision rec;
  rec.id = d.id;
  rec.at = d.at;
  rec.rule = d.rule.empty() ? "(engine)" : d.rule;
  rec.rule_version = d.rule_version;
  rec.vm = d.vm;
  rec.host = d.host;
  rec.verb = std::string(rules::step_name(d.step));
  rec.ladder_step = d.ladder_step > 0 ? static_cast<int32_t>(d.ladder_step - 1) : 0;
  rec.outcome = *decision_outcome(d.outcome);
  rec.policy = std::string(rules::policy_name(d.policy));
  rec.reason = d.reason;
  if (!d.trigger.empty() && rec.reason.empty()) rec.reason = "trigger: " + d.trigger;
  rec.policies_passed = policies_passed(d);
  rec.evidence = store_evidence(d.evidence);
  if (rec.outcome != DecisionOutcome::kDryRun) {
    rec.action_id = d.id;
    rec.action_expires_at = expiry_of(d, d.at, config_.engine.action_ttl);
  }
  return rec;
}

// Outbox: the `dispatched` row goes to the log first; the action leaves only
// once that row is durable (flush_outbox).
void EngineNode::record_verb(const rules::Decision& d) {
  const Time now = party_.clock.now();
  medic::v1::Action action;
  action.set_id(d.id);
  action.set_verb(rules::step_verb(d.step));
  action.set_host(d.host);
  action.set_vm(d.vm);
  action.set_issued_at_ns(to_ns(now));
  action.set_expires_at_ns(to_ns(expiry_of(d, now, config_.engine.action_ttl)));
  action.set_rule(d.rule);
  action.set_rule_version(d.rule_version);
  action.set_attempt(1);
  action.set_watch_ns(d.heal_within.count());
  add_clone_args(&action);
  auto seq = store_->append_transition(
      {d.id, now, ActionState::kDispatched, "engine", "to the actuator of " + d.host, 0});
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::error("engine: action {} not recorded as dispatched, so not sent: {}", d.id,
                  seq.status().message());
    return;
  }
  outbox_.push_back({*seq, std::move(action), d.at, urgent_receipt(d.evidence)});
}

void EngineNode::add_clone_args(medic::v1::Action* action) const {
  if (action->verb() != medic::v1::VERB_CLONE) return;
  action->set_template_name(engine_->vm_label(action->vm(), "template"));
  action->set_vm_name(engine_->vm_name(action->vm()));
}

void EngineNode::record_notify(const rules::Decision& d) {
  ++stats_.notifications;
  // The notifier logs at once and POSTs from its own thread: never blocks here.
  notifier_->notify(d);
  const std::string to = config_.notify.url.empty() ? "logged" : "logged and queued for the webhook";
  record_transition(d.id, ActionState::kDispatched, "engine", "notification " + to);
  record_transition(d.id, ActionState::kSucceeded, "engine", "notification " + to);
}

// The engine's word on whether a step healed the VM, with the event that
// showed it, so `medic audit why` never has to guess from the verb's result.
void EngineNode::on_heal_verdict(const rules::HealVerdict& v) {
  audit::HealVerdict rec{v.decision_id, v.at, v.healed, v.detail, v.next, 0};
  if (v.evidence) {
    auto refs = store_evidence({v.evidence});
    if (!refs.empty()) rec.ref = refs.front().evidence;
  }
  spdlog::info("engine: {} on VM {}: {} ({})", v.decision_id, v.vm,
               v.healed ? "healed" : "not healed", v.detail);
  followers_.on_heal(v);
  std::vector<audit::Record> batch;
  batch.push_back(audit::Record::of(std::move(rec)));
  auto seq = store_->append_batch(std::move(batch));
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::warn("engine: heal verdict of {} not recorded: {}", v.decision_id,
                 seq.status().message());
  }
}

std::optional<audit::Seq> EngineNode::record_transition(const std::string& action_id,
                                                        ActionState state, const std::string& actor,
                                                        const std::string& detail) {
  auto seq = store_->append_transition({action_id, party_.clock.now(), state, actor, detail, 0});
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::warn("engine: transition of {} to {} not recorded: {}", action_id, state_name(state),
                 seq.status().message());
    return std::nullopt;
  }
  return *seq;
}

void EngineNode::flush_outbox() {
  const audit::Seq durable = store_->durable_seq();
  while (!result_acks_.empty() && result_acks_.front().seq <= durable) {
    dispatcher_->ack_result(result_acks_.front().host, result_acks_.front().action_id);
    result_acks_.pop_front();
  }
  while (!outbox_.empty() && outbox_.front().seq <= durable) {
    Outgoing out = std::move(outbox_.front());
    outbox_.pop_front();
    Status s = dispatcher_->dispatch(out.action);
    if (!s.ok()) {
      spdlog::warn("engine: action {} not dispatched: {}", out.action.id(), s.message());
      record_transition(out.action.id(), ActionState::kFailed, "engine",
                        "not dispatched: " + s.message());
      engine_->on_action_result(out.action.id(), ActionState::kFailed, false, s.message());
      continue;
    }
    ++stats_.dispatched;
    followers_.on_dispatched(out.action.id(), out.action.host());
    const Time now = party_.clock.now();
    if (out.decided_at != Time{}) decided_to_dispatched_->observe(now - out.decided_at);
    if (out.urgent_at != Time{}) urgent_to_dispatched_->observe(now - out.urgent_at);
    spdlog::info("dispatch {}: {} VM {} to the actuator of {} (rule {})", out.action.id(),
                 vmm::verb_name(out.action.verb()), out.action.vm(), out.action.host(),
                 out.action.rule());
  }
}

void EngineNode::on_dispatch_event(const actuators::DispatchEvent& e) {
  if (observer_) observer_->on_dispatch_event(e);
  if (e.state == ActionState::kDispatched) return;  // recorded before it left (outbox)
  if (e.action.verb() == medic::v1::VERB_INJECT) {
    // No rule decided it (engine_requests.cc): its request row is its record.
    if (is_result(e.state)) spdlog::info("engine: inject {} on {}: {}", e.action.fault(),
                                         e.action.vm(), e.result ? e.result->reason() : e.reason);
    if (e.result) dispatcher_->ack_result(e.action.host(), e.action.id());
    return;
  }
  std::string detail = e.reason;
  bool healed = false;
  if (e.result) {
    detail = e.result->reason();
    healed = e.result->healed();
    if (e.state == ActionState::kSucceeded) {
      // The actuator's own look, not the engine's verdict (a heal_verdicts row).
      const char* goal = e.action.verb() == medic::v1::VERB_STOP     ? "stopped"
                         : e.action.verb() == medic::v1::VERB_DELETE ? "gone"
                                                                     : "healthy";
      detail = healed ? std::string("executed; the actuator saw the VM ") + goal
                      : std::string("executed; the actuator did not see the VM ") + goal + " yet";
      if (healed && e.action.verb() == medic::v1::VERB_STOP) detail += ", as asked";
    }
    if (!e.result->output().empty()) detail += " [output: " + e.result->output() + "]";
  }
  if (!e.known && !take_unknown_result(e)) return;
  const auto seq = record_transition(e.action.id(), e.state, e.action.host(), detail);
  if (e.result && seq) result_acks_.push_back({*seq, e.action.host(), e.action.id()});
  if (!is_result(e.state)) return;
  counters_
      .counter("action_results_total",
               {{"verb", vmm::verb_name(e.action.verb())},
                {"outcome", state_name(e.state)},
                {"healed", healed ? "true" : "false"}},
               "what actuators reported, by verb and outcome")
      .add();
  spdlog::info("result {}: {} from {}: {}", e.action.id(), state_name(e.state), e.action.host(),
               detail);
  if (healed) {
    spdlog::info("healed: VM {} on {} (rule {}, action {})", e.action.vm(), e.action.host(),
                 e.action.rule(), e.action.id());
  }
  followers_.on_result(e.action.id(), e.state == ActionState::kSucceeded, detail);
  engine_->on_action_result(e.action.id(), e.state, healed, detail);
}

bool EngineNode::take_unknown_result(const actuators::DispatchEvent& e) {
  auto st = store_->action_state(e.action.id());
  if (!st.ok()) return false;  // cannot tell now: unacknowledged, it comes again
  if (st->has_value() && !is_terminal(**st)) return true;
  // Finished already (a duplicate), or not an action of this log: nothing
  // to record, so the actuator may stop sending it.
  if (e.result) dispatcher_->ack_result(e.action.host(), e.action.id());
  return false;
}

// After a restart: every action the log says is not finished is either
// dispatched again (same id; the actuator's journal makes that safe) or, when
// it can no longer be, closed with the reason.
void EngineNode::resume_in_flight() {
  const Time now = party_.clock.now();
  auto pending = store_->in_flight(now, /*include_expired=*/true);
  if (!pending.ok()) {
    spdlog::error("engine: cannot read in-flight actions from the audit log: {}",
                  pending.status().message());
    ++stats_.audit_errors;
    return;
  }
  for (const auto& a : *pending) resume(a, now);
  if (stats_.resumed) spdlog::info("engine: resuming {} in-flight actions", stats_.resumed);
  flush_outbox();
}

void EngineNode::resume(const audit::InFlightAction& a, Time now) {
  using S = ActionState;
  if (a.state == S::kPendingApproval) {
    // The restored engine holds the approval with its original expiry, and
    // expires it itself when that passes.
    if (restored_approvals_.count(a.action_id)) return;
    record_transition(a.action_id, S::kExpired, "engine",
                      "engine restarted while waiting for approval; its state was not kept");
    return;
  }
  const bool expired = a.expires_at.time_since_epoch().count() != 0 && a.expires_at <= now;
  if (!expired) return resend(a, now);
  if (a.state == S::kDispatched || a.state == S::kAcked) return await_late_result(a, now);
  record_transition(a.action_id, S::kExpired, "engine",
                    "engine restarted; the action expired before it was dispatched");
  engine_->on_action_result(a.action_id, S::kTimedOut, false, "expired before it was dispatched");
}

Duration EngineNode::watch_of(const std::string& action_id) const {
  // As the dispatcher counts it: an action without a watch gets its default.
  auto it = restored_watch_.find(action_id);
  if (it == restored_watch_.end() || it->second.count() == 0) return config_.dispatch.default_watch;
  return it->second;
}

// Sent before the restart and expired since: the actuator may have run it and
// may still answer until expiry + watch + result grace. Its result is recorded
// when it comes (on_dispatch_event, unknown id); timed_out only after that.
void EngineNode::await_late_result(const audit::InFlightAction& a, Time now) {
  const Time deadline = a.expires_at + watch_of(a.action_id) + config_.dispatch.result_grace;
  if (deadline <= now) return late_result_deadline(a.action_id);
  std::string id = a.action_id;
  timers_.push_back(party_.clock.schedule_at(deadline, [this, id] { late_result_deadline(id); }));
  ++stats_.resumed;
}

void EngineNode::late_result_deadline(const std::string& action_id) {
  auto st = store_->action_state(action_id);
  if (!st.ok() || !st->has_value() || is_terminal(**st)) return;
  record_transition(action_id, ActionState::kTimedOut, "engine",
                    "no result by its expiry, watch and result grace (the engine had restarted)");
  engine_->on_action_result(action_id, ActionState::kTimedOut, false, "no result in time");
}

void EngineNode::resend(const audit::InFlightAction& a, Time now) {
  using S = ActionState;
  medic::v1::Action action;
  action.set_id(a.action_id);
  action.set_verb(vmm::verb_from_name(a.verb));
  action.set_host(a.host);
  action.set_vm(a.vm);
  action.set_issued_at_ns(to_ns(a.state_at));
  action.set_expires_at_ns(to_ns(a.expires_at));
  action.set_rule(a.rule);
  action.set_rule_version(a.rule_version);
  action.set_attempt(1);
  add_clone_args(&action);
  if (auto it = restored_watch_.find(a.action_id); it != restored_watch_.end()) {
    action.set_watch_ns(it->second.count());
  }
  audit::Seq after = store_->durable_seq();
  if (a.state == S::kProposed || a.state == S::kApproved) {
    auto seq = store_->append_transition(
        {a.action_id, now, S::kDispatched, "engine", "resumed after an engine restart", 0});
    if (!seq.ok()) {
      ++stats_.audit_errors;
      return;
    }
    after = *seq;
  }
  outbox_.push_back({after, std::move(action)});
  ++stats_.resumed;
}

}  // namespace medic::node
