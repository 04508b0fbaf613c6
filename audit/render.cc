// What `medic audit list/show` print: short lines, UTC times, plain words,
// the answer first; and the same facts as JSON. `why` is why_story.cc and
// why_render.cc.
#include <algorithm>

#include "audit/chain.h"
#include "audit/log.h"
#include "audit/render_parts.h"
#include "core/json.h"

namespace medic::audit {

using namespace internal;

namespace {

std::string target(const Decision& d, const std::string& vm_name) {
  return d.verb + " vm " + vm_words(d.vm, vm_name) + " on host " + (d.host.empty() ? "-" : d.host);
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
    cells.push_back({utc(d.at).substr(0, 19), d.action_id.empty() ? d.id : d.action_id,
                     vm_words(d.vm, r.vm_name), d.host, d.rule, d.verb, status});
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
                 {"vm_name", r.vm_name},
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
      ": " + target(d, vm_name_in(h, d.vm)) + " -- " + status_words(h) + "\n";
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
  s += "  evidence:  " + (d.evidence.empty() ? "-" : encode_refs(d.evidence)) + "\n";
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
  for (const auto& v : h.verdicts) {
    s += "  verdict:   row " + std::to_string(v.seq) + " " + utc(v.at) + " " +
         (v.healed ? "healed" : "not healed") + (v.detail.empty() ? "" : ": " + v.detail) +
         (v.next.empty() ? "" : "; next step " + v.next) + "\n";
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
            {"evidence", evidence_json(evidence_lines(h, h.decision.evidence))},
            {"requests", requests_json(h)},
            {"verdicts", verdicts_json(h)}};
  return dump_json(o) + "\n";
}

}  // namespace medic::audit
