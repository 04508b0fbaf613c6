// `medic audit why` as text and as JSON, both printed from one WhyStory
// (audit/why_story.h), so they cannot tell different stories.
#include <cctype>

#include "audit/log.h"
#include "audit/why_story.h"
#include "core/json.h"

namespace medic::audit {

using namespace internal;

namespace {

std::string evidence_text(const WhyStory& s) {
  std::string out = "Evidence (" + std::to_string(s.evidence.size()) + " signed event" +
                    (s.evidence.size() == 1 ? "" : "s") + "):\n";
  if (s.evidence.empty()) out += "  none recorded\n";
  for (const auto& l : s.evidence) {
    out += "  " + utc(l.observed) + "  " + l.what;
    if (!l.vm.empty()) {
      const bool same = l.vm == s.vm && l.vm_name.empty();
      out += ", vm " + vm_words(l.vm, same ? s.vm_name : l.vm_name);
    }
    if (!l.host.empty()) out += " on " + l.host;
    out += "\n    signed by " + (l.sender_name.empty() ? "?" : l.sender_name) + " (key " +
           l.sender_key + "), signature " + (l.signature_ok ? "valid" : "INVALID") + "; row " +
           std::to_string(l.seq) + (l.index >= 0 ? " event " + std::to_string(l.index) : "") +
           "\n";
  }
  return out;
}

std::string rule_text(const WhyStory& s) {
  if (s.rule == "(engine)") {
    return "Rule: none: the engine's own notice, decided " + utc(s.decided_at) + "\n" +
           (s.notice.empty() ? "" : "Notice: " + s.notice + "\n");
  }
  std::string out = "Rule: " + s.rule + " version " +
                    (s.rule_version.empty() ? "-" : s.rule_version) + ", ladder step " +
                    std::to_string(s.ladder_step) + " (" + s.verb + "), decided " +
                    utc(s.decided_at) + "\n";
  if (s.previous) {
    out += "  climbed from step " + std::to_string(s.previous->ladder_step) + " (" +
           s.previous->verb + ", " + s.previous->id + "), which did not heal the VM: " +
           s.previous->why + " (judged " + utc(s.previous->at) + ")\n";
  }
  if (!s.notice.empty()) out += "Notice: " + s.notice + "\n";
  return out;
}

std::string policies_text(const WhyStory& s) {
  std::string out = "Policies:";
  if (s.policies.empty()) return out + " none apply to this decision\n";
  out += "\n";
  for (const auto& p : s.policies) {
    std::string verdict = p.verdict;  // what did not pass stands out
    if (verdict != "passed") {
      for (char& c : verdict) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    out += rstrip("  " + pad(p.name, 18) + verdict + (p.reason.empty() ? "" : ": " + p.reason)) +
           "\n";
  }
  return out;
}

std::string approval_text(const WhyStory& s) {
  const ApprovalPart& a = s.approval;
  std::string out = "Approval: ";
  if (a.state == "approved" || a.state == "denied") {
    out += a.state + " by " + a.by + " at " + utc(a.at);
    if (!a.comment.empty()) out += ", comment: \"" + a.comment + "\"";
    if (a.state == "denied" && !a.detail.empty()) out += ", reason: \"" + a.detail + "\"";
    if (a.request) {
      out += "\n  signed request row " + std::to_string(a.request) + ", key " + a.key;
    }
    if (a.state == "approved" && !a.detail.empty()) {
      out += "\n  on approval the step met the policies again: " + a.detail;
    }
  } else if (a.state == "requested") {
    out += "asked for by " + a.by + " at " + utc(a.at) +
           " (the request is the approval)\n  signed request row " + std::to_string(a.request) +
           ", key " + a.key;
  } else if (a.state == "asked") {
    out += "not required; asked for by " + a.by + " at " + utc(a.at) + "\n  signed request row " +
           std::to_string(a.request) + ", key " + a.key;
  } else if (a.state == "expired") {
    out += "required; none came: expired at " + utc(a.at) + (a.detail.empty() ? "" : ": " + a.detail);
  } else if (a.state == "waiting") {
    out += "required; waiting until " + utc(a.until);
  } else {
    out += a.state;
  }
  out += "\n";
  for (const auto& r : s.refused) out += "  refused request from " + r + "\n";
  return out;
}

std::string actuator_text(const WhyStory& s) {
  const ActuatorPart& a = s.actuator;
  if (!a.reported) return "Actuator: " + a.summary + "\n";
  std::string out = "Actuator: " + a.outcome + (a.reason.empty() ? "" : ": " + a.reason) +
                    "\n  reported by " + a.by + " (key " + a.key + ", signed result row " +
                    std::to_string(a.row) + ")";
  if (to_ns(a.executed)) out += ", executed " + utc(a.executed);
  if (to_ns(a.finished)) out += ", finished " + utc(a.finished);
  const bool stop = s.verb == "stop";  // its goal is a stopped VM, not a healthy one
  out += std::string("\n  the actuator's own look after the verb: ") +
         (stop ? (a.saw_healthy ? "VM stopped" : "VM not stopped yet")
               : (a.saw_healthy ? "VM healthy" : "VM not healthy yet"));
  if (!a.output.empty()) out += "\n  output: " + a.output;
  return out + "\n";
}

std::string heal_text(const WhyStory& s) {
  const HealPart& h = s.heal;
  std::string out = "Healed: ";
  if (h.state == "healed") {
    out += "yes, at " + utc(h.at) + ": " + h.detail;
    if (h.evidence) out += " (signed evidence row " + std::to_string(h.evidence) + ")";
    if (h.took) {
      out += "\n  time to heal: " + span(*h.took) + ", from the problem's start (" +
             utc(*h.since) + ") to healed";
    }
  } else if (h.state == "not healed") {
    out += "no, judged " + utc(h.at) + ": " + h.detail;
    if (s.next) {
      out += "\n  the engine climbed to step " + std::to_string(s.next->ladder_step) + " (" +
             s.next->verb + ", " + s.next->id + ")";
    }
  } else {
    out += h.state + ": " + h.detail;
  }
  return out + "\n";
}

std::string timeline_text(const WhyStory& s) {
  std::string out = "Timeline:\n";
  if (s.transitions.empty() && s.verdicts.empty()) out += "  none: no action was created\n";
  size_t v = 0;
  auto verdict_line = [&](const StoredVerdict& x) {
    out += rstrip("  " + utc(x.at) + "  " + pad(x.healed ? "healed" : "not healed", 17) +
                  pad("engine", 12) + " " + x.detail) +
           "\n";
  };
  for (const auto& t : s.transitions) {
    while (v < s.verdicts.size() && s.verdicts[v].seq < t.seq) verdict_line(s.verdicts[v++]);
    std::string line = "  " + utc(t.at) + "  " + pad(state_name(t.state), 17) + pad(t.actor, 12);
    if (!t.detail.empty()) line += " " + t.detail;
    out += rstrip(line) + "\n";
  }
  while (v < s.verdicts.size()) verdict_line(s.verdicts[v++]);
  return out;
}

Json step_json(const std::optional<StepLink>& l) {
  if (!l) return nullptr;
  return {{"id", l->id}, {"verb", l->verb}, {"ladder_step", l->ladder_step},
          {"judged_at", iso(l->at)}, {"why", l->why}};
}

Json policies_json(const WhyStory& s) {
  Json a = Json::array();
  for (const auto& p : s.policies) {
    a.push_back({{"policy", p.name}, {"verdict", p.verdict}, {"reason", p.reason}});
  }
  return a;
}

Json approval_json(const ApprovalPart& a) {
  return {{"state", a.state},     {"by", a.by},           {"at", to_ns(a.at) ? iso(a.at) : ""},
          {"comment", a.comment}, {"detail", a.detail},   {"request", a.request},
          {"key", a.key},         {"until", to_ns(a.until) ? iso(a.until) : ""}};
}

Json actuator_json(const ActuatorPart& a) {
  if (!a.reported) return {{"reported", false}, {"summary", a.summary}};
  return {{"reported", true},           {"outcome", a.outcome},
          {"reason", a.reason},         {"saw_vm_healthy", a.saw_healthy},
          {"reported_by", a.by},        {"key", a.key},
          {"evidence", a.row},          {"executed_at", iso(a.executed)},
          {"finished_at", iso(a.finished)}, {"output", a.output}};
}

Json heal_json(const HealPart& h) {
  Json o = {{"state", h.state}, {"detail", h.detail}, {"evidence", h.evidence}};
  o["at"] = to_ns(h.at) ? iso(h.at) : "";
  o["problem_since"] = h.since ? iso(*h.since) : "";
  if (h.took) o["time_to_heal_ms"] = h.took->count() / 1'000'000;
  return o;
}

}  // namespace

std::string why_text(const ActionHistory& h) {
  WhyStory s = why_story(h);
  std::string out = "Why " + s.id + ": " + s.verb + " vm " + vm_words(s.vm, s.vm_name) +
                    " on host " + (s.host.empty() ? "-" : s.host) +
                    (s.kind == "action" ? "" : " (" + s.kind + ")") + "\n";
  out += "  Answer: " + s.answer + "\n\n";
  if (!s.trigger.empty()) out += "Trigger: " + s.trigger + "\n";
  out += evidence_text(s) + rule_text(s) + policies_text(s) + approval_text(s) +
         actuator_text(s) + heal_text(s) + "\n" + timeline_text(s);
  return out;
}

std::string why_json(const ActionHistory& h) {
  WhyStory s = why_story(h);
  Json o = {{"id", s.id},
            {"decision_id", s.decision_id},
            {"kind", s.kind},
            {"verb", s.verb},
            {"vm", s.vm},
            {"vm_name", s.vm_name},
            {"host", s.host},
            {"status", s.status},
            {"answer", s.answer},
            {"trigger", s.trigger},
            {"notice", s.notice},
            {"evidence", evidence_json(s.evidence)},
            {"rule", s.rule},
            {"rule_version", s.rule_version},
            {"ladder_step", s.ladder_step},
            {"decided_at", iso(s.decided_at)},
            {"previous_step", step_json(s.previous)},
            {"next_step", step_json(s.next)},
            {"policies", policies_json(s)},
            {"approval", approval_json(s.approval)},
            {"refused_requests", s.refused},
            {"actuator", actuator_json(s.actuator)},
            {"healed", heal_json(s.heal)},
            {"transitions", transitions_json(h)},
            {"verdicts", verdicts_json(h)}};
  return dump_json(o) + "\n";
}

}  // namespace medic::audit
