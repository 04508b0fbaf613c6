// Gathers the story of one decision (audit/why_story.h).
#include "audit/why_story.h"

#include <algorithm>

#include "fabric/envelope.h"
#include "medic/v1/control.pb.h"
#include "medic/v1/envelope.pb.h"

namespace medic::audit::internal {
namespace {

constexpr const char* kTriggerPrefix = "trigger: ";

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string kind_of(const StoredDecision& d) {
  if (d.outcome == DecisionOutcome::kDryRun) return "dry run";
  return d.verb == "notify" ? "notice" : "action";
}

// How a policy stopped a step: for good (suppress), while its cause lasts
// (hold: the incident absorbs triggers), or until a slot frees (wait: the
// step is tried again as a new decision).
std::string stop_verdict(const std::string& policy) {
  if (policy == "host-silent" || policy == "storm-guard") return "held";
  if (policy == "host-concurrency" || policy == "fleet-concurrency") return "waiting";
  return "stopped";
}

std::vector<PolicyLine> policy_lines(const StoredDecision& d) {
  std::vector<PolicyLine> out;
  for (const auto& p : d.policies_passed) out.push_back({p, "passed", ""});
  switch (d.outcome) {
    case DecisionOutcome::kSuppressed: out.push_back({d.policy, stop_verdict(d.policy), d.reason}); break;
    case DecisionOutcome::kPendingApproval: out.push_back({"approval", "waiting", d.reason}); break;
    case DecisionOutcome::kDryRun:
      out.push_back({"dry-run", "dry run", "recorded what would have been done; nothing ran"});
      break;
    case DecisionOutcome::kProposed: break;
  }
  return out;
}

// The signed request behind an approval or denial `t`: the one its row
// reference names, else the accepted request for this action by the same person.
const StoredRequest* approval_request(const ActionHistory& h, const StoredTransition& t,
                                      const char* verb) {
  if (const StoredRequest* q = find_request(h, t.ref)) return q;
  const StoredRequest* found = nullptr;
  for (const auto& r : h.requests) {
    if (r.accepted && r.operator_name == t.actor && r.verb == verb) found = &r;
  }
  return found;
}

// The comment an approver signed, read from the request envelope itself.
std::string signed_comment(const StoredRequest& q) {
  medic::v1::Envelope env;
  medic::v1::ControlRequest req;
  if (!env.ParseFromString(q.envelope) || !req.ParseFromString(env.payload())) return "";
  return req.has_approve() ? req.approve().comment() : "";
}

ApprovalPart answered(const ActionHistory& h, const StoredTransition& t, bool approved) {
  ApprovalPart a;
  a.state = approved ? "approved" : "denied";
  a.by = t.actor;
  a.at = t.at;
  a.detail = t.detail;
  if (const StoredRequest* q = approval_request(h, t, approved ? "approve" : "deny")) {
    a.request = q->seq;
    a.key = fabric::short_key_id(q->sender);
    if (approved) a.comment = signed_comment(*q);
  }
  return a;
}

ApprovalPart approval_part(const ActionHistory& h) {
  if (const StoredTransition* t = find_state(h, ActionState::kApproved)) return answered(h, *t, true);
  if (const StoredTransition* t = find_state(h, ActionState::kDenied)) return answered(h, *t, false);
  ApprovalPart a;
  if (find_state(h, ActionState::kPendingApproval)) {
    if (const StoredTransition* t = find_state(h, ActionState::kExpired)) {
      a.state = "expired";
      a.at = t->at;
      a.detail = t->detail;
    } else {
      a.state = "waiting";
      a.until = h.decision.action_expires_at;
    }
  } else if (h.decision.outcome == DecisionOutcome::kDryRun) {
    a.state = "not applicable";
  } else if (h.decision.rule.starts_with("request:")) {
    // A person's request (`medic vm start|stop`): the request is the yes. A
    // requester's (`medic request`) needed none, or would have a pending row.
    for (const auto& q : h.requests) {
      if (!q.accepted || !(q.verb.starts_with("vm ") || q.verb.starts_with("request "))) continue;
      a.state = q.verb.starts_with("vm ") ? "requested" : "asked";
      a.by = q.operator_name;
      a.at = q.received_at;
      a.request = q.seq;
      a.key = fabric::short_key_id(q.sender);
    }
  }
  return a;
}

std::vector<std::string> refused_requests(const ActionHistory& h) {
  std::vector<std::string> out;
  for (const auto& q : h.requests) {
    if (!q.accepted) {
      out.push_back(q.operator_name + " (" + q.verb + ") at " + utc(q.received_at) + ": " +
                    q.detail);
    }
  }
  return out;
}

std::string unreported_summary(const ActionHistory& h, const std::string& kind) {
  const StoredTransition* dispatched = find_state(h, ActionState::kDispatched);
  const StoredTransition* acked = find_state(h, ActionState::kAcked);
  if (kind == "notice" && dispatched) {
    return "none: the engine sends notices itself (" + dispatched->detail + ")";
  }
  if (!h.transitions.empty() && is_terminal(h.transitions.back().state) && dispatched) {
    const auto& t = h.transitions.back();
    return std::string(state_name(t.state)) + " (" + t.actor + ")" +
           (t.detail.empty() ? "" : ": " + t.detail);
  }
  if (acked) return "acknowledged by " + acked->actor + " at " + utc(acked->at) + ", no result yet";
  if (dispatched) return "dispatched at " + utc(dispatched->at) + ", not acknowledged yet";
  return "never dispatched";
}

ActuatorPart actuator_part(const ActionHistory& h, const std::string& kind) {
  ActuatorPart a;
  medic::v1::ActionResult r;
  const StoredEvidence* ev = nullptr;
  if (!action_result(h, &r, &ev)) {
    a.summary = unreported_summary(h, kind);
    return a;
  }
  a.reported = true;
  a.outcome = result_words(r.outcome());
  a.reason = r.reason();
  a.saw_healthy = r.healed();
  a.by = ev->sender_name;
  a.key = fabric::short_key_id(ev->sender);
  a.row = ev->seq;
  a.executed = from_ns(r.executed_at_ns());
  a.finished = from_ns(r.finished_at_ns());
  a.output = r.output();
  return a;
}

// When the problem began: the earliest evidence, or the last heartbeat a
// state report had seen when that is earlier (an absence fires `for:` after
// the signal stopped, on a report made then).
std::optional<Time> problem_since(const std::vector<EvidenceLine>& lines) {
  std::optional<Time> since;
  for (const auto& l : lines) {
    if (to_ns(l.observed) == 0) continue;
    Time t = l.observed;
    if (to_ns(l.last_heartbeat) != 0 && l.last_heartbeat < t) t = l.last_heartbeat;
    if (!since || t < *since) since = t;
  }
  return since;
}

// No verdict: why not, in words.
HealPart unjudged(const ActionHistory& h, const std::string& kind) {
  HealPart p;
  const auto& d = h.decision;
  const bool ran = find_state(h, ActionState::kDispatched) != nullptr;
  if (d.rule == "(engine)") {
    p.state = "not applicable";
    p.detail = "a notice of the engine's own: no ladder step to judge";
  } else if (d.outcome == DecisionOutcome::kDryRun) {
    p.state = "not judged yet";
    p.detail = "the engine is watching the VM after the dry run";
  } else if (!ran && !h.transitions.empty() && is_terminal(h.transitions.back().state)) {
    p.state = "not applicable";
    p.detail = std::string("nothing was done (") + state_name(h.transitions.back().state) + ")";
  } else if (!h.transitions.empty() && !is_terminal(h.transitions.back().state)) {
    p.state = "not judged yet";
    p.detail = std::string("the ") + kind + " is " + state_name(h.transitions.back().state);
  } else if (ran) {
    p.state = "not judged yet";
    p.detail = "the engine is watching the VM for its heal signal";
  } else {
    p.state = "not applicable";
    p.detail = "nothing was done";
  }
  return p;
}

HealPart heal_part(const ActionHistory& h, const std::vector<EvidenceLine>& lines,
                   const std::string& kind) {
  HealPart p = h.verdicts.empty() ? unjudged(h, kind) : HealPart{};
  p.since = problem_since(lines);
  if (h.verdicts.empty()) return p;
  const StoredVerdict& v = h.verdicts.back();
  p.state = v.healed ? "healed" : "not healed";
  p.at = v.at;
  p.detail = v.detail;
  p.evidence = v.ref;
  if (v.healed && p.since) p.took = v.at - *p.since;
  return p;
}

std::optional<StepLink> previous_step(const ActionHistory& h) {
  if (!h.previous) return std::nullopt;
  const auto& d = h.previous->decision;
  return StepLink{d.action_id.empty() ? d.id : d.action_id, d.verb, d.ladder_step + 1,
                  h.previous->verdict.at, h.previous->verdict.detail};
}

std::optional<StepLink> next_step(const ActionHistory& h) {
  if (!h.next || h.verdicts.empty()) return std::nullopt;
  const auto& d = *h.next;
  return StepLink{d.action_id.empty() ? d.id : d.action_id, d.verb, d.ladder_step + 1,
                  h.verdicts.back().at, h.verdicts.back().detail};
}

// The answer first: what became of the decision, and whether the VM healed.
std::string story_answer(const WhyStory& s) {
  std::string a;
  if (s.kind == "dry run") {
    a = "dry run: would have done " + s.verb + "; nothing was executed";
  } else if (s.status == "suppressed" && s.approval.state == "approved") {
    // Approved, then stopped by a fact the approval does not override: the
    // last transition says which.
    a = "not done: " + s.transitions.back().detail;
  } else if (s.status == "suppressed") {
    const PolicyLine& by = s.policies.back();
    a = "not done: " + by.verdict + " by " + by.name + (by.reason.empty() ? "" : ": " + by.reason);
  } else if (s.approval.state == "waiting") {
    return "waiting for an operator's approval until " + utc(s.approval.until);
  } else if (s.approval.state == "denied") {
    return "not done: denied by " + s.approval.by +
           (s.approval.detail.empty() ? "" : ": " + s.approval.detail);
  } else if (s.status == "expired") {
    a = "not done: expired" + (s.approval.detail.empty() ? "" : ": " + s.approval.detail);
  } else if (s.kind == "notice") {
    a = "notice " + std::string(s.status == "succeeded" ? "sent" : s.status);
  } else {
    a = s.verb + " " + s.status;
  }
  if (s.heal.state == "healed") {
    a += "; the VM healed at " + utc(s.heal.at) + " (" + s.heal.detail + ")";
  } else if (s.heal.state == "not healed") {
    a += "; the VM did not heal (" + s.heal.detail + ")";
    if (s.next) a += "; the engine climbed to step " + std::to_string(s.next->ladder_step);
  } else if (s.heal.state == "not judged yet") {
    a += "; not judged yet: " + s.heal.detail;
  }
  return a;
}

}  // namespace

WhyStory why_story(const ActionHistory& h) {
  const auto& d = h.decision;
  WhyStory s;
  s.id = d.action_id.empty() ? d.id : d.action_id;
  s.decision_id = d.id;
  s.kind = kind_of(d);
  s.verb = d.verb;
  s.vm = d.vm;
  s.vm_name = vm_name_in(h, d.vm);
  s.host = d.host;
  s.status = status_words(h);
  if (starts_with(d.reason, kTriggerPrefix)) s.trigger = d.reason.substr(9);
  if (s.kind == "notice" && d.outcome != DecisionOutcome::kSuppressed) s.notice = d.reason;
  s.evidence = evidence_lines(h, d.evidence);
  s.rule = d.rule;
  s.rule_version = d.rule_version;
  s.ladder_step = d.ladder_step + 1;
  s.decided_at = d.at;
  s.policies = policy_lines(d);
  s.approval = approval_part(h);
  s.refused = refused_requests(h);
  s.previous = previous_step(h);
  s.next = next_step(h);
  s.actuator = actuator_part(h, s.kind);
  s.heal = heal_part(h, s.evidence, s.kind);
  s.transitions = h.transitions;
  s.verdicts = h.verdicts;
  s.answer = story_answer(s);
  return s;
}

}  // namespace medic::audit::internal
