// What `medic rules replay` prints (replay/replay.h), as text and JSON.
#include "audit/render_parts.h"
#include "core/duration.h"
#include "core/json.h"
#include "replay/replay.h"

namespace medic::replay {
namespace {

using audit::internal::pad;
using audit::internal::utc;

// "7.07s" under a minute, else "1h0m0s" to the second.
std::string span(Duration d) {
  if (d < std::chrono::minutes(1)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fs", std::chrono::duration<double>(d).count());
    return buf;
  }
  return format_duration(std::chrono::round<std::chrono::seconds>(d));
}

std::string plural(uint64_t n, const std::string& one) {
  return std::to_string(n) + " " + one + (n == 1 ? "" : "s");
}

std::string outcome_words(const std::string& outcome, const std::string& policy) {
  return policy.empty() ? outcome : outcome + "/" + policy;
}

std::string line_text(const DecisionLine& l) {
  std::string s = utc(l.at) + "  " + pad(l.verb, 8) + pad(outcome_words(l.outcome, l.policy), 28);
  s += l.rule == "(engine)" ? std::string("the engine's notice")
                            : "rule " + l.rule + " step " + std::to_string(l.ladder_step);
  return s;
}

Json line_json(const DecisionLine& l) {
  return Json{{"at", utc(l.at)},
              {"at_ns", to_ns(l.at)},
              {"vm", l.vm},
              {"host", l.host},
              {"rule", l.rule},
              {"verb", l.verb},
              {"ladder_step", l.ladder_step},
              {"outcome", l.outcome},
              {"policy", l.policy},
              {"id", l.id},
              {"reason", l.reason}};
}

std::string decision_text(const rules::Decision& d) {
  std::string who =
      d.vm.empty() ? (d.host.empty() ? "fleet" : "host " + d.host) : "vm " + d.vm + " on " + d.host;
  std::string s = utc(d.at) + "  " + pad(std::string(rules::step_name(d.step)), 8) +
                  pad(outcome_words(std::string(rules::outcome_name(d.outcome)),
                                    std::string(rules::policy_name(d.policy))),
                      28) +
                  who;
  if (!d.rule.empty()) {
    s += "  rule " + d.rule + " step " + std::to_string(d.ladder_step) + "/" +
         std::to_string(d.ladder_size);
  } else {
    s += "  the engine's notice";
  }
  const std::string& why = d.reason.empty() ? d.trigger : d.reason;
  if (!why.empty()) s += "\n      " + why;
  return s;
}

Json decision_json(const rules::Decision& d) {
  return Json{{"id", d.id},
              {"at", utc(d.at)},
              {"at_ns", to_ns(d.at)},
              {"vm", d.vm},
              {"host", d.host},
              {"rule", d.rule.empty() ? "(engine)" : d.rule},
              {"rule_version", d.rule_version},
              {"verb", std::string(rules::step_name(d.step))},
              {"ladder_step", d.ladder_step},
              {"ladder_size", d.ladder_size},
              {"outcome", std::string(rules::outcome_name(d.outcome))},
              {"policy", std::string(rules::policy_name(d.policy))},
              {"trigger", d.trigger},
              {"reason", d.reason}};
}

std::string summary_line(const ReplayResult& r, const std::string& recording) {
  std::string s = "replayed " + recording + ": " + plural(r.segments.size(), "segment") + ", " +
                  plural(r.frames, "frame") + " (" + std::to_string(r.batches) + " verified, " +
                  std::to_string(r.refused) + " refused), " + plural(r.events, "event");
  if (r.frames > 0) {
    s += ", " + utc(r.first) + " to " + utc(r.last) + " (" + span(r.last - r.first) + ")";
  }
  return s + "\n";
}

}  // namespace

std::string replay_text(const ReplayResult& r, const std::string& recording) {
  std::string out = summary_line(r, recording);
  if (r.refused > 0) {
    out += "refused frames (their events were not replayed):";
    for (const auto& [cause, n] : r.refused_by_cause) out += " " + std::to_string(n) + " " + cause;
    out += "\n";
    for (const auto& f : r.refusals)
      out += "  " + f.where + ": " + f.cause + ": " + f.detail + "\n";
    if (r.refusals.size() < r.refused) {
      out += "  ... and " + std::to_string(r.refused - r.refusals.size()) + " more\n";
    }
  }
  for (const auto& p : r.read_problems) out += "damaged recording: " + p.text() + "\n";
  if (r.answered_as_live > 0) {
    out += "actions answered as live: " + std::to_string(r.answered_as_live) +
           "; by the stand-in (succeeded): " + std::to_string(r.answered_by_stand_in) + "\n";
  }
  out += "decisions (" + std::to_string(r.decisions.size()) + "):\n";
  for (const auto& d : r.decisions) out += "  " + decision_text(d) + "\n";
  return out;
}

Json replay_json(const ReplayResult& r, const std::string& recording) {
  Json refusals = Json::array();
  for (const auto& f : r.refusals) {
    refusals.push_back({{"where", f.where}, {"cause", f.cause}, {"detail", f.detail}});
  }
  Json by_cause = Json::object();
  for (const auto& [cause, n] : r.refused_by_cause) by_cause[cause] = n;
  Json problems = Json::array();
  for (const auto& p : r.read_problems) {
    problems.push_back({{"file", p.file},
                        {"offset", p.offset},
                        {"kind", read_problem_name(p.kind)},
                        {"what", p.what}});
  }
  Json decisions = Json::array();
  for (const auto& d : r.decisions) decisions.push_back(decision_json(d));
  return Json{{"recording", recording},
              {"segments", r.segments.size()},
              {"frames", r.frames},
              {"verified", r.batches},
              {"refused", r.refused},
              {"refused_by_cause", by_cause},
              {"refusals", refusals},
              {"damaged", problems},
              {"events", r.events},
              {"answered_as_live", r.answered_as_live},
              {"answered_by_stand_in", r.answered_by_stand_in},
              {"first", utc(r.first)},
              {"last", utc(r.last)},
              {"decisions", decisions}};
}

std::string diff_text(const DiffReport& d, const std::string& audit_db) {
  std::string out = "compared with " + audit_db + ": " + std::to_string(d.same) + " the same";
  if (d.empty()) return out + ", no differences\n";
  out += ", " + std::to_string(d.added) + " added, " + std::to_string(d.removed) + " removed, " +
         std::to_string(d.changed) + " changed\n";
  for (const auto& [subject, entries] : d.by_subject) {
    out += subject + ":\n";
    for (const auto& e : entries) {
      switch (e.kind) {
        case DiffEntry::Kind::kAdded:
          out += "  + " + line_text(*e.candidate) + "  (the candidate only)\n";
          break;
        case DiffEntry::Kind::kRemoved:
          out += "  - " + line_text(*e.live) + "  (live only: " + e.live->id + ")\n";
          break;
        case DiffEntry::Kind::kChanged: {
          std::string what;
          for (size_t i = 0; i < e.changes.size(); ++i) what += (i ? ", " : "") + e.changes[i];
          out += "  ~ " + line_text(*e.live) + "  (live: " + e.live->id + ")\n";
          out += "    now " + what + "\n";
          break;
        }
      }
    }
  }
  return out;
}

Json diff_json(const DiffReport& d, const std::string& audit_db) {
  Json subjects = Json::object();
  for (const auto& [subject, entries] : d.by_subject) {
    Json list = Json::array();
    for (const auto& e : entries) {
      Json j{{"kind", diff_kind_name(e.kind)}};
      if (e.candidate) j["candidate"] = line_json(*e.candidate);
      if (e.live) j["live"] = line_json(*e.live);
      if (e.kind == DiffEntry::Kind::kChanged) j["changes"] = e.changes;
      list.push_back(std::move(j));
    }
    subjects[subject] = std::move(list);
  }
  return Json{{"audit_db", audit_db}, {"same", d.same},       {"added", d.added},
              {"removed", d.removed}, {"changed", d.changed}, {"differences", subjects}};
}

}  // namespace medic::replay
