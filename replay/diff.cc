// Comparing a replay's decisions with the live engine's (replay/replay.h).
#include <algorithm>

#include "audit/log.h"
#include "replay/replay.h"

namespace medic::replay {
namespace {

// The audit log keeps decisions with these outcomes as decision rows (see
// node/engine_outbox.cc); the others are transitions of an existing action.
std::optional<std::string> row_outcome(rules::Outcome o) {
  switch (o) {
    case rules::Outcome::kProposed:
    case rules::Outcome::kSuppressed:
    case rules::Outcome::kPendingApproval:
    case rules::Outcome::kDryRun:
      return std::string(rules::outcome_name(o));
    default:
      return std::nullopt;
  }
}

bool same_decision(const DecisionLine& a, const DecisionLine& b) {
  return a.rule == b.rule && a.verb == b.verb && a.ladder_step == b.ladder_step &&
         a.outcome == b.outcome && a.policy == b.policy;
}

std::string or_none(const std::string& s) { return s.empty() ? "(none)" : s; }

std::vector<std::string> changes_between(const DecisionLine& live, const DecisionLine& cand) {
  std::vector<std::string> out;
  auto add = [&](const char* what, const std::string& a, const std::string& b) {
    if (a != b) out.push_back(std::string(what) + " " + or_none(a) + " -> " + or_none(b));
  };
  add("verb", live.verb, cand.verb);
  add("step", std::to_string(live.ladder_step), std::to_string(cand.ladder_step));
  add("outcome", live.outcome, cand.outcome);
  add("policy", live.policy, cand.policy);
  return out;
}

Duration distance(Time a, Time b) { return a > b ? a - b : b - a; }

// The unused live decision nearest in time to `c` within `tolerance` that
// `fits`; -1 when none.
template <typename Fits>
int nearest(const DecisionLine& c, const std::vector<DecisionLine>& live,
            const std::vector<bool>& used, Duration tolerance, Fits fits) {
  int best = -1;
  for (size_t i = 0; i < live.size(); ++i) {
    if (used[i] || !fits(live[i]) || distance(live[i].at, c.at) > tolerance) continue;
    if (best < 0 || distance(live[i].at, c.at) < distance(live[best].at, c.at)) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

Time entry_time(const DiffEntry& e) { return e.candidate ? e.candidate->at : e.live->at; }

// The differences of one subject, in time order.
std::vector<DiffEntry> diff_subject(const std::vector<DecisionLine>& cand,
                                    const std::vector<DecisionLine>& live, Duration tolerance,
                                    size_t* same) {
  std::vector<bool> cand_done(cand.size(), false), live_used(live.size(), false);
  std::vector<DiffEntry> out;
  for (size_t i = 0; i < cand.size(); ++i) {
    int j = nearest(cand[i], live, live_used, tolerance,
                    [&](const DecisionLine& l) { return same_decision(cand[i], l); });
    if (j < 0) continue;
    live_used[j] = cand_done[i] = true;
    ++*same;
  }
  for (size_t i = 0; i < cand.size(); ++i) {
    if (cand_done[i]) continue;
    int j = nearest(cand[i], live, live_used, tolerance,
                    [&](const DecisionLine& l) { return l.rule == cand[i].rule; });
    cand_done[i] = true;
    if (j < 0) {
      out.push_back({DiffEntry::Kind::kAdded, cand[i], std::nullopt, {}});
      continue;
    }
    live_used[j] = true;
    out.push_back({DiffEntry::Kind::kChanged, cand[i], live[j], changes_between(live[j], cand[i])});
  }
  for (size_t j = 0; j < live.size(); ++j) {
    if (!live_used[j]) out.push_back({DiffEntry::Kind::kRemoved, std::nullopt, live[j], {}});
  }
  std::stable_sort(out.begin(), out.end(), [](const DiffEntry& a, const DiffEntry& b) {
    return entry_time(a) < entry_time(b);
  });
  return out;
}

}  // namespace

std::string DecisionLine::subject() const {
  if (!vm.empty()) return "vm " + vm;
  if (!host.empty()) return "host " + host;
  return "fleet";
}

const char* diff_kind_name(DiffEntry::Kind k) {
  switch (k) {
    case DiffEntry::Kind::kAdded:
      return "added";
    case DiffEntry::Kind::kRemoved:
      return "removed";
    case DiffEntry::Kind::kChanged:
      return "changed";
  }
  return "?";
}

std::vector<DecisionLine> decision_lines(const std::vector<rules::Decision>& decisions) {
  std::vector<DecisionLine> out;
  for (const auto& d : decisions) {
    auto outcome = row_outcome(d.outcome);
    if (!outcome) continue;
    DecisionLine l;
    l.at = d.at;
    l.vm = d.vm;
    l.host = d.host;
    l.rule = d.rule.empty() ? "(engine)" : d.rule;
    l.verb = std::string(rules::step_name(d.step));
    l.ladder_step = d.ladder_step;
    l.outcome = *outcome;
    l.policy = std::string(rules::policy_name(d.policy));
    l.id = d.id;
    l.reason = d.reason.empty() && !d.trigger.empty() ? "trigger: " + d.trigger : d.reason;
    out.push_back(std::move(l));
  }
  return out;
}

Result<std::vector<DecisionLine>> read_audit_decisions(const std::string& db, Time from,
                                                       Time until) {
  auto reader = audit::AuditReader::open(db);
  if (!reader.ok()) return reader.status().with_context("audit log " + db);
  audit::ListFilter filter;
  filter.since = from;
  filter.until = until + Duration(1);  // list()'s until is exclusive
  filter.limit = 0;
  auto rows = reader->list(filter);
  if (!rows.ok()) return rows.status().with_context("audit log " + db);
  std::vector<DecisionLine> out;
  for (auto it = rows->rbegin(); it != rows->rend(); ++it) {
    const audit::StoredDecision& d = it->decision;
    DecisionLine l;
    l.at = d.at;
    l.vm = d.vm;
    l.host = d.host;
    l.rule = d.rule;
    l.verb = d.verb;
    l.ladder_step = d.rule == "(engine)" ? 0 : static_cast<uint32_t>(d.ladder_step) + 1;
    l.outcome = outcome_name(d.outcome);
    l.policy = d.policy;
    l.id = d.id;
    l.reason = d.reason;
    out.push_back(std::move(l));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const DecisionLine& a, const DecisionLine& b) { return a.at < b.at; });
  return out;
}

// The node writes this for a result whose actuator saw the VM healthy
// (node/engine_outbox.cc, on_dispatch_event).
constexpr std::string_view kHealedDetail = "executed; the actuator saw the VM healthy";

Result<std::vector<LiveResult>> read_audit_results(const std::string& db, Time since) {
  auto reader = audit::AuditReader::open(db);
  if (!reader.ok()) return reader.status().with_context("audit log " + db);
  audit::ListFilter filter;
  filter.since = since;
  filter.limit = 0;
  auto rows = reader->list(filter);
  if (!rows.ok()) return rows.status().with_context("audit log " + db);
  std::vector<LiveResult> out;
  for (auto it = rows->rbegin(); it != rows->rend(); ++it) {
    const audit::StoredDecision& d = it->decision;
    if (d.verb == "notify" || d.action_id.empty() || !it->state || !is_result(*it->state)) continue;
    auto history = reader->history(d.action_id);
    if (!history.ok()) return history.status().with_context("audit log " + db);
    for (const auto& t : history->transitions) {
      if (!is_result(t.state)) continue;
      LiveResult r;
      r.decision.at = d.at;
      r.decision.vm = d.vm;
      r.decision.host = d.host;
      r.decision.rule = d.rule;
      r.decision.verb = d.verb;
      r.decision.ladder_step = static_cast<uint32_t>(d.ladder_step) + 1;
      r.decision.id = d.id;
      r.after = t.at - d.at;
      r.outcome = t.state;
      r.healed = t.state == ActionState::kSucceeded &&
                 std::string_view(t.detail).substr(0, kHealedDetail.size()) == kHealedDetail;
      r.detail = t.detail;
      out.push_back(std::move(r));
      break;
    }
  }
  return out;
}

DiffReport diff_decisions(const std::vector<DecisionLine>& candidate,
                          const std::vector<DecisionLine>& live, Duration tolerance) {
  std::map<std::string, std::pair<std::vector<DecisionLine>, std::vector<DecisionLine>>> subjects;
  for (const auto& c : candidate) subjects[c.subject()].first.push_back(c);
  for (const auto& l : live) subjects[l.subject()].second.push_back(l);
  DiffReport report;
  for (const auto& [subject, sides] : subjects) {
    auto entries = diff_subject(sides.first, sides.second, tolerance, &report.same);
    for (const auto& e : entries) {
      if (e.kind == DiffEntry::Kind::kAdded) ++report.added;
      if (e.kind == DiffEntry::Kind::kRemoved) ++report.removed;
      if (e.kind == DiffEntry::Kind::kChanged) ++report.changed;
    }
    if (!entries.empty()) report.by_subject[subject] = std::move(entries);
  }
  return report;
}

}  // namespace medic::replay
