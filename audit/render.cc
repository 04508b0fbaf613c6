// What `medic audit list/show/why` print: short lines, UTC times, plain words,
// the answer first; and the same facts as JSON.
#include <time.h>

#include <algorithm>
#include <cstdio>

#include "audit/chain.h"
#include "audit/log.h"
#include "core/duration.h"
#include "core/json.h"
#include "fabric/envelope.h"
#include "medic/v1/actions.pb.h"
#include "medic/v1/envelope.pb.h"
#include "medic/v1/events.pb.h"

namespace medic::audit {
namespace {


std::string utc(Time t) {
  int64_t n = to_ns(t);
  if (n == 0) return "-";
  time_t secs = static_cast<time_t>(n / 1'000'000'000);
  int ms = static_cast<int>((n % 1'000'000'000) / 1'000'000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string iso(Time t) {
  std::string s = utc(t);
  if (s.size() > 10) s[10] = 'T';
  return s;
}

// Durations for people: "2.35s", "4m10s".
std::string span(Duration d) {
  int64_t ms = d.count() / 1'000'000;
  if (ms < 0) return "-" + span(-d);
  if (ms < 60'000) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fs", static_cast<double>(ms) / 1000.0);
    return buf;
  }
  return format_duration(std::chrono::duration_cast<Duration>(std::chrono::seconds(ms / 1000)));
}

std::string short_key(const fabric::PublicKey& k) { return fabric::short_key_id(k); }

const char* vm_state_words(medic::v1::VmState s) {
  switch (s) {
    case medic::v1::VM_STATE_RUNNING: return "running";
    case medic::v1::VM_STATE_PAUSED: return "paused";
    case medic::v1::VM_STATE_STOPPED: return "stopped";
    case medic::v1::VM_STATE_PANICKED: return "panicked";
    case medic::v1::VM_STATE_CRASHED: return "crashed";
    case medic::v1::VM_STATE_BOOTING: return "booting";
    case medic::v1::VM_STATE_SHUTTING_DOWN: return "shutting down";
    default: return "unknown state";
  }
}

const char* lifecycle_words(medic::v1::Lifecycle l) {
  switch (l) {
    case medic::v1::LIFECYCLE_PANICKED: return "guest kernel panicked";
    case medic::v1::LIFECYCLE_WATCHDOG: return "watchdog fired";
    case medic::v1::LIFECYCLE_STOPPED: return "VM stopped";
    case medic::v1::LIFECYCLE_SHUTDOWN: return "VM shut down";
    case medic::v1::LIFECYCLE_RESET: return "VM reset";
    case medic::v1::LIFECYCLE_CRASHED: return "VM process crashed";
    case medic::v1::LIFECYCLE_RESUMED: return "VM resumed";
    case medic::v1::LIFECYCLE_STARTED: return "VM started";
    default: return "lifecycle event";
  }
}

std::string event_words(const medic::v1::Event& e) {
  std::string s;
  switch (e.body_case()) {
    case medic::v1::Event::kState: {
      s = std::string("state report: ") + vm_state_words(e.state().state());
      if (e.state().last_heartbeat_ns() == 0) {
        s += ", no heartbeat ever seen";
      } else if (e.observed_at_ns() > e.state().last_heartbeat_ns()) {
        s += ", last heartbeat " +
             span(Duration(e.observed_at_ns() - e.state().last_heartbeat_ns())) + " before";
      }
      break;
    }
    case medic::v1::Event::kLifecycle:
      s = lifecycle_words(e.lifecycle().what());
      if (!e.lifecycle().detail().empty()) s += " (" + e.lifecycle().detail() + ")";
      break;
    case medic::v1::Event::kHeartbeat: s = "heartbeat from " + e.heartbeat().source(); break;
    case medic::v1::Event::kProbe:
      s = "probe " + e.probe().probe() + (e.probe().ok() ? " ok" : " failed");
      if (!e.probe().reason().empty()) s += ": " + e.probe().reason();
      break;
    default: s = "event";
  }
  return s;
}

// One piece of evidence as people read it.
struct EvidenceLine {
  Seq seq = 0;
  int32_t index = -1;
  Time observed{};
  std::string what;
  std::string vm;
  std::string host;
  std::string sender_name;
  std::string sender_key;
  bool signature_ok = false;
};

bool signature_ok(const medic::v1::Envelope& env) {
  fabric::PublicKey pk;
  if (env.sender().size() != 32 || env.signature().size() != 64) return false;
  std::copy(env.sender().begin(), env.sender().end(), pk.begin());
  std::string buf;
  fabric::signing_input(env, &buf);
  return fabric::verify_signature(pk, reinterpret_cast<const uint8_t*>(buf.data()), buf.size(),
                                  reinterpret_cast<const uint8_t*>(env.signature().data()));
}

const StoredEvidence* find_evidence(const ActionHistory& h, Seq seq) {
  for (const auto& e : h.evidence) {
    if (e.seq == seq) return &e;
  }
  return nullptr;
}

std::vector<EvidenceLine> evidence_lines(const ActionHistory& h) {
  std::vector<EvidenceLine> out;
  for (const EvidenceRef& ref : h.decision.evidence) {
    EvidenceLine line;
    line.seq = ref.evidence;
    line.index = ref.event_index;
    const StoredEvidence* e = find_evidence(h, ref.evidence);
    if (!e) {
      line.what = "(evidence row missing)";
      out.push_back(line);
      continue;
    }
    line.sender_name = e->sender_name;
    line.sender_key = short_key(e->sender);
    line.host = e->host;
    line.observed = e->received_at;
    medic::v1::Envelope env;
    if (!env.ParseFromString(e->envelope)) {
      line.what = "(unreadable envelope)";
      out.push_back(line);
      continue;
    }
    line.signature_ok = signature_ok(env);
    medic::v1::EventBatch batch;
    if (env.kind() == medic::v1::KIND_EVENT_BATCH && batch.ParseFromString(env.payload())) {
      std::vector<int> indexes;
      if (ref.event_index >= 0) {
        indexes.push_back(ref.event_index);
      } else {
        for (int i = 0; i < batch.events_size(); ++i) indexes.push_back(i);
      }
      for (int i : indexes) {
        EvidenceLine l = line;
        l.index = i;
        if (i >= batch.events_size()) {
          l.what = "(event " + std::to_string(i) + " is not in the batch)";
        } else {
          const auto& ev = batch.events(i);
          l.what = event_words(ev);
          l.vm = ev.vm();
          l.observed = from_ns(ev.observed_at_ns());
        }
        out.push_back(l);
      }
      continue;
    }
    line.what = "signed " + std::string(fabric::kind_tag(env.kind())) + " message";
    out.push_back(line);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.observed < b.observed; });
  return out;
}

const StoredTransition* find_state(const ActionHistory& h, ActionState s) {
  for (const auto& t : h.transitions) {
    if (t.state == s) return &t;
  }
  return nullptr;
}

const StoredRequest* find_request(const ActionHistory& h, Seq seq) {
  for (const auto& q : h.requests) {
    if (q.seq == seq) return &q;
  }
  return nullptr;
}

// The actuator's signed ActionResult a transition rests on, if any.
bool action_result(const ActionHistory& h, medic::v1::ActionResult* out, const StoredEvidence** e) {
  for (auto it = h.transitions.rbegin(); it != h.transitions.rend(); ++it) {
    if (!it->ref) continue;
    const StoredEvidence* ev = find_evidence(h, it->ref);
    if (!ev) continue;
    medic::v1::Envelope env;
    if (env.ParseFromString(ev->envelope) && env.kind() == medic::v1::KIND_ACTION_RESULT &&
        out->ParseFromString(env.payload())) {
      *e = ev;
      return true;
    }
  }
  return false;
}

const char* result_words(medic::v1::ActionResult::Outcome o) {
  switch (o) {
    case medic::v1::ActionResult::OUTCOME_SUCCEEDED: return "succeeded";
    case medic::v1::ActionResult::OUTCOME_FAILED: return "failed";
    case medic::v1::ActionResult::OUTCOME_REJECTED: return "rejected";
    default: return "unknown outcome";
  }
}

std::optional<ActionState> last_state(const ActionHistory& h) {
  if (h.transitions.empty()) return std::nullopt;
  return h.transitions.back().state;
}

std::string status_words(const ActionHistory& h) {
  auto s = last_state(h);
  if (!s) return outcome_name(h.decision.outcome);
  return state_name(*s);
}

// When the VM was seen healed, if it was.
std::optional<Time> healed_at(const ActionHistory& h) {
  const StoredTransition* ok = find_state(h, ActionState::kSucceeded);
  if (!ok) return std::nullopt;
  medic::v1::ActionResult r;
  const StoredEvidence* e = nullptr;
  if (action_result(h, &r, &e) && r.healed() && r.finished_at_ns() != 0) {
    return from_ns(r.finished_at_ns());
  }
  return ok->at;
}

std::string comma_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

std::string rstrip(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string pad(std::string s, size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

std::string target(const Decision& d) {
  return d.verb + " vm " + (d.vm.empty() ? "-" : d.vm) + " on host " +
         (d.host.empty() ? "-" : d.host);
}

Json decision_json(const StoredDecision& d) {
  Json refs = Json::array();
  for (const auto& r : d.evidence) refs.push_back({{"evidence", r.evidence}, {"event", r.event_index}});
  return {{"seq", d.seq},
          {"decision_id", d.id},
          {"action_id", d.action_id},
          {"at", iso(d.at)},
          {"at_ns", to_ns(d.at)},
          {"rule", d.rule},
          {"rule_version", d.rule_version},
          {"vm", d.vm},
          {"host", d.host},
          {"verb", d.verb},
          {"ladder_step", d.ladder_step},
          {"outcome", outcome_name(d.outcome)},
          {"policy", d.policy},
          {"reason", d.reason},
          {"policies_passed", d.policies_passed},
          {"evidence", std::move(refs)},
          {"expires_at_ns", to_ns(d.action_expires_at)}};
}

Json transitions_json(const ActionHistory& h) {
  Json a = Json::array();
  for (const auto& t : h.transitions) {
    a.push_back({{"seq", t.seq},
                 {"at", iso(t.at)},
                 {"at_ns", to_ns(t.at)},
                 {"state", state_name(t.state)},
                 {"actor", t.actor},
                 {"detail", t.detail},
                 {"ref", t.ref}});
  }
  return a;
}

Json requests_json(const ActionHistory& h) {
  Json a = Json::array();
  for (const auto& q : h.requests) {
    a.push_back({{"seq", q.seq},
                 {"at", iso(q.received_at)},
                 {"operator", q.operator_name},
                 {"key", fabric::key_id(q.sender)},
                 {"verb", q.verb},
                 {"target", q.target},
                 {"accepted", q.accepted},
                 {"detail", q.detail}});
  }
  return a;
}

Json evidence_json(const std::vector<EvidenceLine>& lines) {
  Json a = Json::array();
  for (const auto& l : lines) {
    a.push_back({{"evidence", l.seq},
                 {"event", l.index},
                 {"observed_at", iso(l.observed)},
                 {"what", l.what},
                 {"vm", l.vm},
                 {"host", l.host},
                 {"sender", l.sender_name},
                 {"sender_key", l.sender_key},
                 {"signature_ok", l.signature_ok}});
  }
  return a;
}

}  // namespace

std::string list_text(const std::vector<ActionSummary>& rows) {
  if (rows.empty()) return "No decisions match.\n";
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"TIME (UTC)", "ACTION", "VM", "HOST", "RULE", "VERB", "STATUS"});
  for (const auto& r : rows) {
    const auto& d = r.decision;
    std::string status = r.state ? state_name(*r.state) : outcome_name(d.outcome);
    if (d.outcome == DecisionOutcome::kSuppressed && !d.policy.empty()) status += " by " + d.policy;
    cells.push_back({utc(d.at).substr(0, 19), d.action_id.empty() ? d.id : d.action_id, d.vm,
                     d.host, d.rule, d.verb, status});
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& row : cells) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : cells) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += i + 1 < row.size() ? pad(row[i], width[i] + 2) : row[i];
    }
    out += rstrip(line) + "\n";
  }
  return out;
}

std::string list_json(const std::vector<ActionSummary>& rows) {
  Json a = Json::array();
  for (const auto& r : rows) {
    a.push_back({{"decision", decision_json(r.decision)},
                 {"status", r.state ? state_name(*r.state) : outcome_name(r.decision.outcome)},
                 {"updated_at", iso(r.updated_at)}});
  }
  return dump_json(a) + "\n";
}

std::string show_text(const ActionHistory& h) {
  const auto& d = h.decision;
  std::string s;
  s +=
      "Action " +
      (d.action_id.empty() ? std::string("(none: ") + outcome_name(d.outcome) + ")" : d.action_id) +
      ": " + target(d) + " -- " + status_words(h) + "\n";
  s += "  decision:  " + d.id + " at " + utc(d.at) + " (row " + std::to_string(d.seq) + ")\n";
  s += "  rule:      " + d.rule + " version " + (d.rule_version.empty() ? "-" : d.rule_version) +
       ", ladder step " + std::to_string(d.ladder_step + 1) + "\n";
  s += "  outcome:   " + std::string(outcome_name(d.outcome));
  if (!d.policy.empty()) s += " by policy " + d.policy;
  if (!d.reason.empty()) s += ": " + d.reason;
  s += "\n";
  s += "  policies:  " + (d.policies_passed.empty() ? "-" : comma_list(d.policies_passed));
  s += "\n";
  if (to_ns(d.action_expires_at)) s += "  expires:   " + utc(d.action_expires_at) + "\n";
  s += "  evidence:  " + (d.evidence.empty() ? "-" : internal::encode_refs(d.evidence)) + "\n";
  if (!h.transitions.empty()) {
    s += "  history:\n";
    for (const auto& t : h.transitions) {
      std::string line =
          "    " + utc(t.at) + "  " + pad(state_name(t.state), 17) + pad(t.actor, 12);
      if (!t.detail.empty()) line += " " + t.detail;
      if (t.ref) line += " [row " + std::to_string(t.ref) + "]";
      s += rstrip(line) + "\n";
    }
  }
  for (const auto& q : h.requests) {
    s += "  request:   row " + std::to_string(q.seq) + " " + utc(q.received_at) + " " +
         q.operator_name + " " + q.verb + " " + q.target + " -- " +
         (q.accepted ? "accepted" : "refused") + (q.detail.empty() ? "" : ": " + q.detail) + "\n";
  }
  return s;
}

std::string show_json(const ActionHistory& h) {
  Json o = {{"decision", decision_json(h.decision)},
            {"status", status_words(h)},
            {"transitions", transitions_json(h)},
            {"evidence", evidence_json(evidence_lines(h))},
            {"requests", requests_json(h)}};
  return dump_json(o) + "\n";
}

namespace {

// The sections of why_text, each ending in a newline.
std::string why_evidence(const std::vector<EvidenceLine>& lines) {
  std::string s = "1. Evidence (" + std::to_string(lines.size()) + " signed event" +
                  (lines.size() == 1 ? "" : "s") + "):\n";
  if (lines.empty()) s += "   none recorded\n";
  for (const auto& l : lines) {
    s += "   " + utc(l.observed) + "  " + l.what;
    if (!l.vm.empty()) s += ", vm " + l.vm;
    if (!l.host.empty()) s += " on " + l.host;
    s += "\n      signed by " + (l.sender_name.empty() ? "?" : l.sender_name) + " (key " +
         l.sender_key + "), signature " + (l.signature_ok ? "valid" : "INVALID") + "; row " +
         std::to_string(l.seq) + (l.index >= 0 ? " event " + std::to_string(l.index) : "") + "\n";
  }
  return s;
}

std::string why_rule_and_policies(const StoredDecision& d) {
  std::string s = "2. Rule: " + d.rule + ", version " +
                  (d.rule_version.empty() ? "-" : d.rule_version) + ", chose " + d.verb +
                  " (ladder step " + std::to_string(d.ladder_step + 1) + ") at " + utc(d.at) +
                  "\n";
  s += "3. Policies: ";
  if (d.policies_passed.empty()) {
    s += "none checked";
  } else {
    s += "passed " + comma_list(d.policies_passed);
  }
  if (d.outcome == DecisionOutcome::kSuppressed) {
    s += "; STOPPED by " + d.policy + (d.reason.empty() ? "" : ": " + d.reason);
  }
  if (d.outcome == DecisionOutcome::kDryRun) s += "; dry-run rule: nothing was executed";
  s += "\n";
  return s;
}

// The signed request behind an approval or denial `t`: the one its row
// reference names, else the accepted request for this action by the same person.
const StoredRequest* approval_request(const ActionHistory& h, const StoredTransition& t,
                                      bool approved) {
  const StoredRequest* q = find_request(h, t.ref);
  if (q) return q;
  for (const auto& r : h.requests) {
    if (r.accepted && r.operator_name == t.actor && r.verb == (approved ? "approve" : "deny")) {
      q = &r;
    }
  }
  return q;
}

std::string why_approval(const ActionHistory& h) {
  const auto& d = h.decision;
  std::string s = "4. Approval: ";
  const StoredTransition* pending = find_state(h, ActionState::kPendingApproval);
  const StoredTransition* approved = find_state(h, ActionState::kApproved);
  const StoredTransition* denied = find_state(h, ActionState::kDenied);
  if (approved || denied) {
    const StoredTransition* t = approved ? approved : denied;
    s += std::string(approved ? "approved" : "denied") + " by " + t->actor + " at " + utc(t->at);
    if (!t->detail.empty()) s += " (\"" + t->detail + "\")";
    if (const StoredRequest* q = approval_request(h, *t, approved != nullptr)) {
      s +=
          "\n   signed request row " + std::to_string(q->seq) + " from key " + short_key(q->sender);
    }
  } else if (pending) {
    const StoredTransition* exp = find_state(h, ActionState::kExpired);
    s += exp ? "required, none came; expired at " + utc(exp->at) : "required, still waiting";
  } else {
    s += d.outcome == DecisionOutcome::kDryRun ? "not applicable" : "not required by the rule";
  }
  s += "\n";
  for (const auto& q : h.requests) {
    if (!q.accepted) {
      s += "   refused request from " + q.operator_name + " (" + q.verb + "): " + q.detail + "\n";
    }
  }
  return s;
}

std::string why_actuator(const ActionHistory& h) {
  std::string s = "5. Actuator: ";
  medic::v1::ActionResult result;
  const StoredEvidence* result_ev = nullptr;
  const StoredTransition* acked = find_state(h, ActionState::kAcked);
  const StoredTransition* dispatched = find_state(h, ActionState::kDispatched);
  if (action_result(h, &result, &result_ev)) {
    s += std::string(result_words(result.outcome()));
    if (!result.reason().empty()) s += ": " + result.reason();
    s += std::string("; VM healed: ") + (result.healed() ? "yes" : "no");
    s += "\n   reported by " + result_ev->sender_name + " (key " + short_key(result_ev->sender) +
         ", signed result row " + std::to_string(result_ev->seq) + ")";
    if (result.executed_at_ns()) s += ", executed " + utc(from_ns(result.executed_at_ns()));
    if (result.finished_at_ns()) s += ", finished " + utc(from_ns(result.finished_at_ns()));
    if (!result.output().empty()) s += "\n   output: " + result.output();
  } else if (!h.transitions.empty() && is_terminal(h.transitions.back().state) && dispatched) {
    const auto& t = h.transitions.back();
    s += std::string(state_name(t.state)) + " (" + t.actor + ")" +
         (t.detail.empty() ? "" : ": " + t.detail);
  } else if (acked) {
    s += "acknowledged by " + acked->actor + " at " + utc(acked->at) + ", no result yet";
  } else if (dispatched) {
    s += "dispatched at " + utc(dispatched->at) + ", not acknowledged yet";
  } else {
    s += "never dispatched";
  }
  s += "\n";
  return s;
}

std::string why_time_to_heal(const ActionHistory& h, const std::vector<EvidenceLine>& lines,
                             const std::optional<Time>& healed) {
  std::string s = "6. Time to heal: ";
  if (healed && !lines.empty()) {
    s += span(*healed - lines.front().observed) + " from first evidence (" +
         utc(lines.front().observed) + ") to healed (" + utc(*healed) + ")";
  } else if (healed) {
    s += "healed at " + utc(*healed) + "; no evidence time recorded";
  } else if (h.decision.outcome == DecisionOutcome::kDryRun) {
    s += "not applicable (dry run)";
  } else if (!h.transitions.empty() && !is_terminal(h.transitions.back().state)) {
    s += std::string("not healed yet (the action is ") + state_name(h.transitions.back().state) +
         ")";
  } else {
    s += "not healed";
  }
  s += "\n";
  return s;
}

std::string why_timeline(const ActionHistory& h) {
  std::string s = "\nTimeline:\n";
  if (h.transitions.empty()) s += "  none: no action was created\n";
  for (const auto& t : h.transitions) {
    std::string line = "  " + utc(t.at) + "  " + pad(state_name(t.state), 17) + pad(t.actor, 12);
    if (!t.detail.empty()) line += " " + t.detail;
    s += rstrip(line) + "\n";
  }
  return s;
}

}  // namespace

std::string why_text(const ActionHistory& h) {
  const auto& d = h.decision;
  std::string s;
  auto lines = evidence_lines(h);
  auto healed = healed_at(h);

  // The answer first.
  s += "Why " + (d.action_id.empty() ? d.id : d.action_id) + ": " + target(d) + "\n";
  s += "  Outcome: " + status_words(h);
  if (healed) s += " -- the VM was healed";
  s += "\n\n";
  s += why_evidence(lines);
  s += why_rule_and_policies(d);
  s += why_approval(h);
  s += why_actuator(h);
  s += why_time_to_heal(h, lines, healed);
  s += why_timeline(h);
  return s;
}

std::string why_json(const ActionHistory& h) {
  const auto& d = h.decision;
  auto lines = evidence_lines(h);
  auto healed = healed_at(h);
  Json o = {{"action_id", d.action_id},  {"decision_id", d.id}, {"status", status_words(h)},
            {"evidence", evidence_json(lines)}, {"rule", d.rule}, {"rule_version", d.rule_version},
            {"verb", d.verb}, {"vm", d.vm}, {"host", d.host},
            {"policies_passed", d.policies_passed}};
  if (d.outcome == DecisionOutcome::kSuppressed) {
    o["suppressed_by"] = d.policy;
    o["reason"] = d.reason;
  }
  const StoredTransition* approved = find_state(h, ActionState::kApproved);
  const StoredTransition* denied = find_state(h, ActionState::kDenied);
  if (approved) o["approved_by"] = approved->actor;
  if (denied) o["denied_by"] = denied->actor;
  medic::v1::ActionResult result;
  const StoredEvidence* ev = nullptr;
  if (action_result(h, &result, &ev)) {
    o["actuator"] = {{"outcome", result_words(result.outcome())},
                     {"reason", result.reason()},
                     {"healed", result.healed()},
                     {"reported_by", ev->sender_name},
                     {"evidence", ev->seq}};
  }
  if (healed && !lines.empty()) {
    o["healed_at"] = iso(*healed);
    o["time_to_heal_ms"] = (*healed - lines.front().observed).count() / 1'000'000;
  }
  o["transitions"] = transitions_json(h);
  return dump_json(o) + "\n";
}

}  // namespace medic::audit
