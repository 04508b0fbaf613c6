// Times, spans, evidence in words and history lookups for the audit renderers.
#include "audit/render_parts.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

#include "core/duration.h"
#include "core/json.h"
#include "fabric/envelope.h"
#include "medic/v1/control.pb.h"
#include "medic/v1/envelope.pb.h"
#include "medic/v1/events.pb.h"

namespace medic::audit::internal {

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

std::string pad(std::string s, size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

std::string rstrip(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string comma_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}


namespace {

const char* verb_words(medic::v1::Verb v) {
  switch (v) {
    case medic::v1::VERB_REBOOT:
      return "reboot";
    case medic::v1::VERB_RESET:
      return "reset";
    case medic::v1::VERB_RESTART:
      return "restart";
    case medic::v1::VERB_START:
      return "start";
    case medic::v1::VERB_STOP:
      return "stop";
    case medic::v1::VERB_CLONE:
      return "clone";
    case medic::v1::VERB_DELETE:
      return "delete";
    default:
      return "an unknown verb for";
  }
}

const char* vm_state_words(medic::v1::VmState s) {
  switch (s) {
    case medic::v1::VM_STATE_RUNNING: return "running";
    case medic::v1::VM_STATE_PAUSED: return "paused";
    case medic::v1::VM_STATE_STOPPED: return "stopped";
    case medic::v1::VM_STATE_PANICKED: return "panicked";
    case medic::v1::VM_STATE_CRASHED: return "crashed";
    case medic::v1::VM_STATE_BOOTING: return "booting";
    case medic::v1::VM_STATE_SHUTTING_DOWN: return "shutting down";
    case medic::v1::VM_STATE_UNRESPONSIVE: return "unresponsive";
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
    case medic::v1::LIFECYCLE_UNRESPONSIVE: return "VM process stopped answering";
    default: return "lifecycle event";
  }
}

std::string state_report_words(const medic::v1::Event& e) {
  std::string s = std::string("state report: ") + vm_state_words(e.state().state());
  if (e.state().last_heartbeat_ns() == 0) {
    s += ", no heartbeat ever seen";
  } else if (e.observed_at_ns() > e.state().last_heartbeat_ns()) {
    s += ", last heartbeat " +
         span(Duration(e.observed_at_ns() - e.state().last_heartbeat_ns())) + " before";
  }
  return s;
}

// "alert AppUnresponsive firing (summary: ...; from alertmanager receiver medic)".
std::string alert_words(const medic::v1::Alert& a) {
  std::string s = "alert " + a.name() + (a.firing() ? " firing" : " resolved");
  std::string more;
  for (const auto& kv : a.annotations()) {
    if (kv.key() == "summary" || kv.key() == "description")
      more += (more.empty() ? "" : "; ") + kv.key() + ": " + kv.value();
  }
  if (!a.receiver().empty())
    more += (more.empty() ? "" : "; ") + std::string("receiver ") + a.receiver();
  if (!a.fingerprint().empty())
    more += (more.empty() ? "" : "; ") + std::string("fingerprint ") + a.fingerprint();
  return more.empty() ? s : s + " (" + more + ")";
}

std::string event_words(const medic::v1::Event& e) {
  switch (e.body_case()) {
    case medic::v1::Event::kAlert:
      return alert_words(e.alert());
    case medic::v1::Event::kState: return state_report_words(e);
    case medic::v1::Event::kLifecycle: {
      std::string s = lifecycle_words(e.lifecycle().what());
      if (!e.lifecycle().detail().empty()) s += " (" + e.lifecycle().detail() + ")";
      return s;
    }
    case medic::v1::Event::kHeartbeat: return "heartbeat from " + e.heartbeat().source();
    case medic::v1::Event::kGuestPing: return "guest agent answered a ping";
    case medic::v1::Event::kProbe: {
      std::string s = "probe " + e.probe().probe() + (e.probe().ok() ? " ok" : " failed");
      if (!e.probe().reason().empty()) s += ": " + e.probe().reason();
      return s;
    }
    default: return "event";
  }
}

std::string name_label(const medic::v1::Event& e) {
  if (e.has_lifecycle()) return e.lifecycle().vm_name();
  if (!e.has_state()) return "";
  for (const auto& l : e.state().labels()) {
    if (l.key() == "name") return l.value();
  }
  return "";
}

bool signature_ok(const medic::v1::Envelope& env) {
  fabric::PublicKey pk;
  if (env.sender().size() != 32 || env.signature().size() != 64) return false;
  std::copy(env.sender().begin(), env.sender().end(), pk.begin());
  std::string buf;
  fabric::signing_input(env, &buf);
  return fabric::verify_signature(pk, reinterpret_cast<const uint8_t*>(buf.data()), buf.size(),
                                  reinterpret_cast<const uint8_t*>(env.signature().data()));
}

// The events of one batch that `ref` names, each as a line built on `base`.
void batch_lines(const EvidenceLine& base, const medic::v1::EventBatch& batch, int32_t index,
                 std::vector<EvidenceLine>* out) {
  std::vector<int> indexes;
  if (index >= 0) {
    indexes.push_back(index);
  } else {
    for (int i = 0; i < batch.events_size(); ++i) indexes.push_back(i);
  }
  for (int i : indexes) {
    EvidenceLine l = base;
    l.index = i;
    if (i >= batch.events_size()) {
      l.what = "(event " + std::to_string(i) + " is not in the batch)";
    } else {
      const auto& ev = batch.events(i);
      l.what = event_words(ev);
      l.vm = ev.vm();
      l.vm_name = name_label(ev);
      l.observed = from_ns(ev.observed_at_ns());
      if (ev.has_state()) l.last_heartbeat = from_ns(ev.state().last_heartbeat_ns());
    }
    out->push_back(l);
  }
}

void ref_lines(const ActionHistory& h, const EvidenceRef& ref, std::vector<EvidenceLine>* out) {
  EvidenceLine line;
  line.seq = ref.evidence;
  line.index = ref.event_index;
  const StoredEvidence* e = find_evidence(h, ref.evidence);
  if (!e) {
    line.what = "(evidence row missing)";
    out->push_back(line);
    return;
  }
  line.sender_name = e->sender_name;
  line.sender_key = fabric::short_key_id(e->sender);
  line.host = e->host;
  line.observed = e->received_at;
  medic::v1::Envelope env;
  if (!env.ParseFromString(e->envelope)) {
    line.what = "(unreadable envelope)";
    out->push_back(line);
    return;
  }
  line.signature_ok = signature_ok(env);
  medic::v1::EventBatch batch;
  if (env.kind() == medic::v1::KIND_EVENT_BATCH && batch.ParseFromString(env.payload())) {
    batch_lines(line, batch, ref.event_index, out);
    return;
  }
  medic::v1::ControlRequest req;
  if (env.kind() == medic::v1::KIND_CONTROL_REQUEST && req.ParseFromString(env.payload()) &&
      (req.has_vm_action() || req.has_request())) {
    // `medic vm start|stop` (VmAction) or `medic request` (ActionRequest).
    const bool vm_action = req.has_vm_action();
    const medic::v1::Verb v = vm_action ? req.vm_action().verb() : req.request().verb();
    const std::string& vm = vm_action ? req.vm_action().vm() : req.request().vm();
    const std::string& label = vm_action ? "" : req.request().label();
    const std::string& reason = vm_action ? req.vm_action().reason() : req.request().reason();
    const medic::v1::ActionRequest& q = req.request();
    const std::string whom =
        v == medic::v1::VERB_CLONE && !vm_action
            ? " of template " + q.template_name() + " on host " + q.host() + " as " + q.vm_name()
        : vm.empty() ? " VMs with label " + label
                     : " VM " + vm;
    line.what = "signed request " + req.request_id() + ": " + verb_words(v) + whom +
                (reason.empty() ? "" : " (reason: " + reason + ")");
    out->push_back(line);
    return;
  }
  line.what = "signed " + std::string(fabric::kind_tag(env.kind())) + " message";
  out->push_back(line);
}

}  // namespace

std::vector<EvidenceLine> evidence_lines(const ActionHistory& h,
                                         const std::vector<EvidenceRef>& refs) {
  std::vector<EvidenceLine> out;
  for (const EvidenceRef& ref : refs) ref_lines(h, ref, &out);
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.observed < b.observed; });
  return out;
}

std::string vm_name_in(const ActionHistory& h, const std::string& vm) {
  if (vm.empty()) return "";
  for (const auto& e : h.evidence) {
    std::vector<EvidenceLine> lines;
    ref_lines(h, EvidenceRef{e.seq, -1}, &lines);
    for (const auto& l : lines) {
      if (l.vm == vm && !l.vm_name.empty()) return l.vm_name;
    }
  }
  return "";
}

const StoredEvidence* find_evidence(const ActionHistory& h, Seq seq) {
  for (const auto& e : h.evidence) {
    if (e.seq == seq) return &e;
  }
  return nullptr;
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

std::string status_words(const ActionHistory& h) {
  if (h.transitions.empty()) return outcome_name(h.decision.outcome);
  return state_name(h.transitions.back().state);
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
          {"ladder_step", d.ladder_step + 1},
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
                 {"vm_name", l.vm_name},
                 {"host", l.host},
                 {"sender", l.sender_name},
                 {"sender_key", l.sender_key},
                 {"signature_ok", l.signature_ok}});
  }
  return a;
}

Json verdicts_json(const ActionHistory& h) {
  Json a = Json::array();
  for (const auto& v : h.verdicts) {
    a.push_back({{"seq", v.seq},
                 {"at", iso(v.at)},
                 {"healed", v.healed},
                 {"detail", v.detail},
                 {"next", v.next},
                 {"ref", v.ref}});
  }
  return a;
}

}  // namespace medic::audit::internal
