#include "rules/rule_test.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/config.h"
#include "core/duration.h"
#include "rules/engine.h"
#include "rules/loader.h"
#include "rules/rule_test_case.h"

namespace medic::rules {

Result<std::vector<Duration>> parse_series(const std::string& text, Duration end) {
  std::vector<Duration> out;
  auto bad = [&](const std::string& why) {
    return invalid_argument(
        "invalid series \"" + text + "\": " + why +
        " (expected e.g. \"every 5s\", \"every 5s from 1m until 3m\" or \"0s+5s x12\")");
  };
  if (text.find_first_not_of(" \t") == std::string::npos) return bad("empty");
  std::stringstream all(text);
  std::string seg;
  while (std::getline(all, seg, ',')) {
    std::stringstream ws(seg);
    std::vector<std::string> w;
    for (std::string x; ws >> x;) w.push_back(x);
    if (w.empty()) return bad("empty segment");
    Duration from{0}, step{0}, until = end + Duration(1);
    int64_t count = -1;
    if (w[0] == "every") {
      if (w.size() < 2) return bad("every needs a duration");
      auto s = parse_duration(w[1]);
      if (!s.ok()) return bad(s.status().message());
      step = *s;
      for (size_t i = 2; i < w.size(); i += 2) {
        if (i + 1 >= w.size()) return bad("\"" + w[i] + "\" needs a time");
        auto t = parse_duration(w[i + 1]);
        if (!t.ok()) return bad(t.status().message());
        if (w[i] == "from")
          from = *t;
        else if (w[i] == "until")
          until = *t;
        else
          return bad("unknown word \"" + w[i] + "\"");
      }
    } else {
      // START+STEP xCOUNT
      size_t plus = w[0].find('+');
      if (plus == std::string::npos || w.size() != 2 || w[1].size() < 2 || w[1][0] != 'x') {
        return bad("cannot read \"" + seg + "\"");
      }
      auto f = parse_duration(w[0].substr(0, plus));
      auto s = parse_duration(w[0].substr(plus + 1));
      if (!f.ok() || !s.ok()) return bad("cannot read the times in \"" + w[0] + "\"");
      from = *f;
      step = *s;
      try {
        count = std::stoll(w[1].substr(1));
      } catch (const std::exception&) {
        return bad("cannot read the count \"" + w[1] + "\"");
      }
      if (count < 1 || count > 1'000'000) return bad("the count must be 1 to 1000000");
    }
    if (step.count() <= 0) return bad("the step must be longer than 0s");
    for (Duration t = from; count < 0 ? t < until && t <= end : count-- > 0; t += step) {
      out.push_back(t);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace ruletest {

void FileRunner::run() {
  ++sum_->files;
  auto root = load_yaml_file(path_);
  if (!root.ok()) return file_error(root.status().message());
  const YAML::Node& n = *root;
  if (!r_.expect_map(n, "a rule test file")) return report_diags();
  r_.check_keys(n, {"rule_files", "options", "tests"});
  auto files = r_.string_list(n, "rule_files", true);
  EngineOptions base;
  if (n["options"].IsDefined()) parse_options(n["options"], &base);
  std::vector<TestCase> tests;
  YAML::Node list = n["tests"];
  if (!list.IsDefined() || !list.IsSequence() || list.size() == 0) {
    r_.error(list.IsDefined() ? list : n, "expected tests: to be a non-empty list of tests");
  } else {
    for (const auto& t : list) tests.push_back(parse_test(t, base));
  }
  if (!r_.ok()) return report_diags();
  std::vector<std::string> paths;
  auto dir = std::filesystem::path(path_).parent_path();
  for (const auto& f : *files)
    paths.push_back(std::filesystem::path(f).is_absolute() ? f : (dir / f).string());
  auto loaded = load_rule_files(paths);
  if (!loaded.ok()) {
    out_ << loaded.text();
    return file_error("the rule files do not load");
  }
  for (auto& t : tests) run_test(t, loaded.rules);
}

void FileRunner::file_error(const std::string& msg) {
  ++sum_->errors;
  sum_->error_messages.push_back(path_ + ": " + msg);
  out_ << "ERROR " << path_ << ": " << msg << "\n";
}

void FileRunner::report_diags() {
  for (const auto& d : r_.diagnostics()) out_ << d.to_string() << "\n";
  file_error("the test file has errors");
}

const Decision* FileRunner::find_action(const Recorder& rec, const Item& it,
                                        std::initializer_list<Outcome> outcomes) {
  for (auto d = rec.all.rbegin(); d != rec.all.rend(); ++d) {
    if (d->vm == it.vm && d->step == it.step &&
        std::find(outcomes.begin(), outcomes.end(), d->outcome) != outcomes.end()) {
      return &*d;
    }
  }
  return nullptr;
}

void FileRunner::run_test(const TestCase& t, const std::shared_ptr<const RuleSet>& rules) {
  ++sum_->tests;
  VirtualClock clock;
  Time start = clock.now();
  Recorder rec;
  Engine engine(clock, rules, t.opt, rec);
  std::vector<std::string> problems;
  uint64_t ref = 0;
  for (const auto& it : t.items) {
    clock.advance_to(start + it.at);
    switch (it.kind) {
      case ItemKind::kHostSeen:
        engine.host_seen(it.host, clock.now());
        break;
      case ItemKind::kEvent:
        engine.ingest(it.event, ++ref);
        break;
      case ItemKind::kResult: {
        const Decision* d = find_action(rec, it, {Outcome::kProposed, Outcome::kApproved});
        if (!d) {
          problems.push_back(path_ + ":" + std::to_string(it.line) + ": result at " +
                             at_text(it.at) + ": no " + std::string(step_name(it.step)) + " of " +
                             it.vm + " was proposed or approved before");
          break;
        }
        engine.on_action_result(d->id, it.outcome, it.healed, it.reason);
        break;
      }
      case ItemKind::kApprove:
      case ItemKind::kDeny: {
        const Decision* d = find_action(rec, it, {Outcome::kPendingApproval});
        Status s = !d ? not_found("no " + std::string(step_name(it.step)) + " of " + it.vm +
                                  " is pending approval")
                   : it.kind == ItemKind::kApprove ? engine.approve(d->id, it.by)
                                                   : engine.deny(d->id, it.by, it.reason);
        if (!s.ok())
          problems.push_back(path_ + ":" + std::to_string(it.line) + ": at " + at_text(it.at) +
                             ": " + s.message());
        break;
      }
      case ItemKind::kSilence: {
        Silence s = it.silence;
        s.until = clock.now() + it.silence_for;
        engine.silence(s);
        break;
      }
      case ItemKind::kUnfreeze: {
        Status s = engine.unfreeze(it.host, it.by);
        if (!s.ok())
          problems.push_back(path_ + ":" + std::to_string(it.line) + ": at " + at_text(it.at) +
                             ": " + s.message());
        break;
      }
    }
  }
  clock.advance_to(start + t.run_for);
  compare(t, rec, start, problems);
}

void FileRunner::compare(const TestCase& t, const Recorder& rec, Time start,
                         std::vector<std::string>& problems) {
  std::vector<bool> used(rec.all.size(), false);
  std::vector<const Expect*> missing;
  for (const auto& e : t.expects) {
    bool found = false;
    for (size_t i = 0; i < rec.all.size() && !found; ++i) {
      if (!used[i] && matches(e, rec.all[i], start)) used[i] = found = true;
    }
    if (!found) missing.push_back(&e);
  }
  std::vector<const Decision*> unexpected;
  for (size_t i = 0; i < rec.all.size(); ++i) {
    if (!used[i]) unexpected.push_back(&rec.all[i]);
  }
  bool pass = missing.empty() && unexpected.empty() && problems.empty();
  out_ << (pass ? "PASS " : "FAIL ") << path_ << ":" << t.line << ": " << t.name << "\n";
  if (!pass) ++sum_->failed;
  TestOutcome& o = sum_->outcomes.emplace_back();
  o.file = path_;
  o.line = t.line;
  o.name = t.name;
  o.passed = pass;
  o.problems = problems;
  for (const Expect* e : missing) o.missing.push_back(describe(*e));
  for (const Decision* d : unexpected) o.unexpected.push_back(describe(*d, start));
  for (const auto& p : problems) out_ << "  " << p << "\n";
  if (!missing.empty()) {
    out_ << "  expected, not produced:\n";
    for (const Expect* e : missing)
      out_ << "    " << describe(*e) << "   (line " << e->line << ")\n";
  }
  if (!unexpected.empty()) {
    out_ << "  produced, not expected:\n";
    for (const Decision* d : unexpected) out_ << "    " << describe(*d, start) << "\n";
  }
  if (!pass || opts_.verbose) {
    out_ << "  all decisions (" << rec.all.size() << "):\n";
    for (const auto& d : rec.all) {
      out_ << "    " << describe(d, start) << "\n";
      if (opts_.verbose || !d.reason.empty())
        out_ << "        " << (d.reason.empty() ? d.trigger : d.reason) << "\n";
    }
  }
}

}  // namespace ruletest

TestSummary run_rule_test_files(const std::vector<std::string>& paths, const TestRunOptions& opts,
                                std::ostream& out) {
  TestSummary sum;
  for (const auto& p : paths) {
    try {
      ruletest::FileRunner(p, opts, out, &sum).run();
    } catch (const YAML::Exception& e) {
      // Our boundary with yaml-cpp: a shape we did not foresee is a file error.
      ++sum.errors;
      sum.error_messages.push_back(p + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
      out << "ERROR " << p << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": " << e.msg
          << "\n";
    }
  }
  out << sum.tests << " tests in " << sum.files << " files: " << (sum.tests - sum.failed)
      << " passed, " << sum.failed << " failed";
  if (sum.errors) out << ", " << sum.errors << " could not run";
  out << "\n";
  return sum;
}

}  // namespace medic::rules
