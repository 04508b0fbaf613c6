// Inside `medic rules test` (rules/rule_test.h): a test file's cases as
// values, and the FileRunner that parses one file (rule_test_parse.cc) and
// runs its cases on a VirtualClock (rule_test.cc). Not for use outside
// rules/rule_test*.cc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/config.h"
#include "core/duration.h"
#include "rules/engine.h"
#include "rules/loader.h"
#include "rules/rule_test.h"

namespace medic::rules::ruletest {

struct VmSpec {
  std::string id;
  std::string host;
  std::vector<std::pair<std::string, std::string>> labels;
};

enum class ItemKind : uint8_t { kHostSeen, kEvent, kResult, kApprove, kDeny, kSilence, kUnfreeze };

struct Item {
  Duration at{0};
  ItemKind kind = ItemKind::kEvent;
  size_t order = 0;
  int line = 0;
  std::string host, vm, by, reason;
  medic::v1::Event event;
  Step step = Step::kReset;
  ActionState outcome = ActionState::kSucceeded;
  bool healed = false;
  Silence silence;
  Duration silence_for{0};
};

struct Expect {
  Duration at{0};
  int line = 0;
  std::optional<std::string> vm, host, rule;
  Step step = Step::kReset;
  Outcome outcome = Outcome::kProposed;
  std::optional<Policy> policy;
  std::optional<uint32_t> ladder_step;
};

struct TestCase {
  std::string name;
  int line = 0;
  std::map<std::string, VmSpec> vms;
  std::vector<Item> items;
  std::vector<Expect> expects;
  Duration run_for{0};
  EngineOptions opt;
};

class Recorder : public DecisionSink {
 public:
  void on_decision(const Decision& d) override { all.push_back(d); }
  std::vector<Decision> all;
};

inline std::string at_text(Duration d) { return format_duration(d); }

inline std::optional<Outcome> outcome_from(const std::string& s) {
  for (auto o : {Outcome::kProposed, Outcome::kSuppressed, Outcome::kPendingApproval,
                 Outcome::kApproved, Outcome::kDenied, Outcome::kExpired, Outcome::kDryRun}) {
    if (outcome_name(o) == s) return o;
  }
  return std::nullopt;
}

inline std::optional<Policy> policy_from(const std::string& s) {
  for (auto p : {Policy::kSilence, Policy::kHostSilent, Policy::kStormGuard, Policy::kCooldown,
                 Policy::kBudget, Policy::kVmInFlight, Policy::kHostConcurrency,
                 Policy::kFleetConcurrency, Policy::kApproval}) {
    if (policy_name(p) == s) return p;
  }
  return std::nullopt;
}

// A result an actuator can report (core/action_state.h is_result), by name.
inline std::optional<ActionState> action_outcome_from(const std::string& s) {
  auto st = parse_action_state(s);
  if (!st.ok() || !is_result(*st)) return std::nullopt;
  return *st;
}

inline std::string pad(std::string s, size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

inline std::string subject(const std::optional<std::string>& vm,
                           const std::optional<std::string>& host) {
  if (vm && !vm->empty()) return "vm " + *vm;
  if (host && !host->empty()) return "host " + *host;
  if (host || vm) return "fleet";
  return "";
}

inline std::string describe(const Decision& d, Time start) {
  std::string s =
      "at " + pad(at_text(d.at - start), 8) + pad(std::string(step_name(d.step)), 8) +
      pad(d.vm.empty() ? (d.host.empty() ? "fleet" : "host " + d.host) : "vm " + d.vm, 16) +
      pad(std::string(outcome_name(d.outcome)) +
              (d.policy != Policy::kNone ? "/" + std::string(policy_name(d.policy)) : ""),
          28);
  if (!d.rule.empty())
    s += "rule " + d.rule + " step " + std::to_string(d.ladder_step) + "/" +
         std::to_string(d.ladder_size);
  return s;
}

inline std::string describe(const Expect& e) {
  std::string s = "at " + pad(at_text(e.at), 8) + pad(std::string(step_name(e.step)), 8) +
                  pad(subject(e.vm, e.host), 16) +
                  pad(std::string(outcome_name(e.outcome)) +
                          (e.policy ? "/" + std::string(policy_name(*e.policy)) : ""),
                      28);
  if (e.rule) s += "rule " + *e.rule;
  if (e.ladder_step)
    s += (e.rule ? " " : "") + std::string("step ") + std::to_string(*e.ladder_step);
  return s;
}

inline bool matches(const Expect& e, const Decision& d, Time start) {
  if (d.at - start != e.at || d.step != e.step || d.outcome != e.outcome) return false;
  if (e.vm && d.vm != *e.vm) return false;
  if (e.host && d.host != *e.host) return false;
  if (!e.vm && !d.vm.empty()) return false;  // host: and fleet: mean notices about no VM
  if (e.rule && d.rule != *e.rule) return false;
  if (e.policy && d.policy != *e.policy) return false;
  if (e.ladder_step && d.ladder_step != *e.ladder_step) return false;
  return true;
}

class FileRunner {
 public:
  FileRunner(std::string path, const TestRunOptions& opts, std::ostream& out, TestSummary* sum)
      : path_(std::move(path)), opts_(opts), out_(out), sum_(sum), r_(path_) {}

  void run();

 private:
  void file_error(const std::string& msg);
  void report_diags();

  int line_of(const YAML::Node& n) const { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }

  void parse_options(const YAML::Node& n, EngineOptions* o) { read_engine_options(r_, n, o); }

  std::optional<Step> step_of(const YAML::Node& n, const char* key);
  const VmSpec* vm_of(TestCase& t, const YAML::Node& n);

  bool build_event(const VmSpec& vm, const YAML::Node& n, medic::v1::Event* e);
  void build_alert(EventType type, const YAML::Node& n, medic::v1::Alert* a);
  void add_series(TestCase& t, const YAML::Node& n, const std::string& text, ItemKind kind,
                  const std::string& host, const VmSpec* vm);
  Duration latest_time(const YAML::Node& t);

  TestCase parse_test(const YAML::Node& n, const EngineOptions& base);
  bool parse_vms(TestCase& t, const YAML::Node& n);
  void add_initial_states(TestCase& t);
  void parse_hosts(TestCase& t, const YAML::Node& n);
  void parse_heartbeats(TestCase& t, const YAML::Node& n);
  static YAML::Node h_node(const YAML::Node& n, const std::string& host);

  std::optional<Duration> at_of(const YAML::Node& i) { return r_.duration(i, "at", true); }

  void parse_input(TestCase& t, const YAML::Node& l);
  void parse_results(TestCase& t, const YAML::Node& l);

  void parse_operator(TestCase& t, const YAML::Node& l);
  void parse_expect(TestCase& t, const YAML::Node& l);

  const Decision* find_action(const Recorder& rec, const Item& it,
                              std::initializer_list<Outcome> outcomes);
  void run_test(const TestCase& t, const std::shared_ptr<const RuleSet>& rules);

  void compare(const TestCase& t, const Recorder& rec, Time start,
               std::vector<std::string>& problems);
  std::string path_;
  const TestRunOptions& opts_;
  std::ostream& out_;
  TestSummary* sum_;
  ConfigReader r_;
};

}  // namespace medic::rules::ruletest
