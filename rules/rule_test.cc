#include "rules/rule_test.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "core/config.h"
#include "core/duration.h"
#include "rules/engine.h"
#include "rules/loader.h"

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

namespace {

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
  ActionOutcome outcome = ActionOutcome::kSucceeded;
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

std::string at_text(Duration d) { return format_duration(d); }

std::optional<Outcome> outcome_from(const std::string& s) {
  for (auto o : {Outcome::kProposed, Outcome::kSuppressed, Outcome::kPendingApproval,
                 Outcome::kApproved, Outcome::kDenied, Outcome::kExpired, Outcome::kDryRun}) {
    if (outcome_name(o) == s) return o;
  }
  return std::nullopt;
}

std::optional<Policy> policy_from(const std::string& s) {
  for (auto p : {Policy::kSilence, Policy::kHostSilent, Policy::kStormGuard, Policy::kCooldown,
                 Policy::kBudget, Policy::kVmInFlight, Policy::kHostConcurrency,
                 Policy::kFleetConcurrency, Policy::kApproval}) {
    if (policy_name(p) == s) return p;
  }
  return std::nullopt;
}

std::optional<ActionOutcome> action_outcome_from(const std::string& s) {
  if (s == "succeeded") return ActionOutcome::kSucceeded;
  if (s == "failed") return ActionOutcome::kFailed;
  if (s == "rejected") return ActionOutcome::kRejected;
  if (s == "timed_out") return ActionOutcome::kTimedOut;
  return std::nullopt;
}

std::string pad(std::string s, size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

std::string subject(const std::optional<std::string>& vm, const std::optional<std::string>& host) {
  if (vm && !vm->empty()) return "vm " + *vm;
  if (host && !host->empty()) return "host " + *host;
  if (host || vm) return "fleet";
  return "";
}

std::string describe(const Decision& d, Time start) {
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

std::string describe(const Expect& e) {
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

bool matches(const Expect& e, const Decision& d, Time start) {
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

  void run() {
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

 private:
  void file_error(const std::string& msg) {
    ++sum_->errors;
    out_ << "ERROR " << path_ << ": " << msg << "\n";
  }

  void report_diags() {
    for (const auto& d : r_.diagnostics()) out_ << d.to_string() << "\n";
    file_error("the test file has errors");
  }

  int line_of(const YAML::Node& n) const { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }

  void parse_options(const YAML::Node& n, EngineOptions* o) { read_engine_options(r_, n, o); }

  std::optional<Step> step_of(const YAML::Node& n, const char* key) {
    auto s = r_.string(n, key, true);
    if (!s) return std::nullopt;
    auto st = step_from_name(*s);
    if (!st)
      r_.error(n[key], "unknown step \"" + *s +
                           "\" (expected reboot, reset, restart, stop, start or notify)");
    return st;
  }

  const VmSpec* vm_of(TestCase& t, const YAML::Node& n) {
    auto v = r_.string(n, "vm", true);
    if (!v) return nullptr;
    auto it = t.vms.find(*v);
    if (it == t.vms.end()) {
      r_.error(n["vm"], "unknown VM \"" + *v + "\" (declare it under vms:)");
      return nullptr;
    }
    return &it->second;
  }

  bool build_event(const VmSpec& vm, const YAML::Node& n, medic::v1::Event* e) {
    auto type_name = r_.string(n, "event", true);
    if (!type_name) return false;
    auto type = event_type_from_name(*type_name);
    if (!type) {
      r_.error(n["event"], "unknown event type \"" + *type_name + "\"");
      return false;
    }
    e->set_host(vm.host);
    e->set_vm(vm.id);
    using medic::v1::Lifecycle;
    static const std::map<EventType, Lifecycle> kLife = {
        {EventType::kVmPanicked, medic::v1::LIFECYCLE_PANICKED},
        {EventType::kVmWatchdog, medic::v1::LIFECYCLE_WATCHDOG},
        {EventType::kVmStopped, medic::v1::LIFECYCLE_STOPPED},
        {EventType::kVmShutdown, medic::v1::LIFECYCLE_SHUTDOWN},
        {EventType::kVmReset, medic::v1::LIFECYCLE_RESET},
        {EventType::kVmCrashed, medic::v1::LIFECYCLE_CRASHED},
        {EventType::kVmResumed, medic::v1::LIFECYCLE_RESUMED},
        {EventType::kVmStarted, medic::v1::LIFECYCLE_STARTED},
    };
    if (auto it = kLife.find(*type); it != kLife.end()) {
      e->mutable_lifecycle()->set_what(it->second);
      if (auto d = r_.string(n, "detail", false)) e->mutable_lifecycle()->set_detail(*d);
    } else if (*type == EventType::kVmHeartbeat) {
      e->mutable_heartbeat()->set_source("test");
    } else if (*type == EventType::kVmState) {
      auto* s = e->mutable_state();
      std::string st = r_.string(n, "state", false).value_or("running");
      bool found = false;
      for (int i = 0; i <= 7; ++i) {
        if (vm_state_name(static_cast<medic::v1::VmState>(i)) == st) {
          s->set_state(static_cast<medic::v1::VmState>(i));
          found = true;
        }
      }
      if (!found)
        r_.error(n["state"], "unknown VM state \"" + st + "\" (expected one of " +
                                 std::string(vm_state_names_joined()) + ")");
      for (const auto& [k, v] : vm.labels) {
        auto* l = s->add_labels();
        l->set_key(k);
        l->set_value(v);
      }
      if (auto c = r_.number(n, "cpu_percent", false)) s->set_cpu_percent(*c);
      if (auto u = r_.duration(n, "uptime", false)) s->set_uptime_ns(u->count());
    } else {
      auto* p = e->mutable_probe();
      p->set_ok(*type == EventType::kProbeOk);
      p->set_probe(r_.string(n, "probe", false).value_or("probe"));
      p->set_status(static_cast<uint32_t>(r_.integer(n, "status", false, 0, 999).value_or(0)));
      if (auto l = r_.duration(n, "latency", false)) p->set_latency_ns(l->count());
      p->set_reason(r_.string(n, "reason", false).value_or(""));
    }
    return true;
  }

  void add_series(TestCase& t, const YAML::Node& n, const std::string& text, ItemKind kind,
                  const std::string& host, const VmSpec* vm) {
    auto times = parse_series(text, t.run_for);
    if (!times.ok()) {
      r_.error(n, times.status().message());
      return;
    }
    for (Duration at : *times) {
      Item it;
      it.at = at;
      it.kind = kind;
      it.line = line_of(n);
      it.host = host;
      if (vm) {
        it.event.set_host(vm->host);
        it.event.set_vm(vm->id);
        it.event.mutable_heartbeat()->set_source("test");
      }
      t.items.push_back(std::move(it));
    }
  }

  Duration latest_time(const YAML::Node& t) {
    Duration latest{0};
    for (const char* k : {"input", "results", "operator", "expect"}) {
      YAML::Node l = t[k];
      if (!l.IsDefined() || !l.IsSequence()) continue;
      for (const auto& i : l) {
        if (!i.IsMap() || !i["at"].IsScalar()) continue;
        auto d = parse_duration(i["at"].Scalar());
        if (d.ok()) latest = std::max(latest, *d);
      }
    }
    return latest;
  }

  TestCase parse_test(const YAML::Node& n, const EngineOptions& base) {
    TestCase t;
    t.opt = base;
    t.line = line_of(n);
    if (!r_.expect_map(n, "a test")) return t;
    r_.check_keys(n, {"name", "options", "vms", "hosts", "heartbeats", "input", "results",
                      "operator", "expect", "run_for"});
    t.name = r_.string(n, "name", true).value_or("?");
    if (n["options"].IsDefined()) parse_options(n["options"], &t.opt);
    t.run_for = r_.duration(n, "run_for", false).value_or(latest_time(n) + std::chrono::minutes(1));

    YAML::Node vms = n["vms"];
    if (!vms.IsDefined() || !vms.IsMap() || vms.size() == 0) {
      r_.error(vms.IsDefined() ? vms : n,
               "expected vms: a map of VM id to {host: H, labels: {...}}");
      return t;
    }
    for (const auto& kv : vms) {
      VmSpec v;
      v.id = kv.first.Scalar();
      if (!r_.expect_map(kv.second, "VM " + v.id)) continue;
      r_.check_keys(kv.second, {"host", "labels"});
      v.host = r_.string(kv.second, "host", true).value_or("");
      if (YAML::Node l = kv.second["labels"]; l.IsDefined() && l.IsMap()) {
        for (const auto& lv : l) v.labels.emplace_back(lv.first.Scalar(), lv.second.Scalar());
      }
      t.vms.emplace(v.id, v);
    }
    std::size_t order = 0;
    // Every VM reports its state (and labels) at 0s, as a collector would.
    for (const auto& [id, v] : t.vms) {
      Item it;
      it.kind = ItemKind::kEvent;
      it.event.set_host(v.host);
      it.event.set_vm(v.id);
      auto* s = it.event.mutable_state();
      s->set_state(medic::v1::VM_STATE_RUNNING);
      for (const auto& [k, val] : v.labels) {
        auto* l = s->add_labels();
        l->set_key(k);
        l->set_value(val);
      }
      t.items.push_back(std::move(it));
    }
    // Hosts report every 5s for the whole test unless hosts: says otherwise.
    std::map<std::string, std::string> liveness;
    for (const auto& [id, v] : t.vms) liveness[v.host] = "every 5s";
    if (YAML::Node h = n["hosts"]; h.IsDefined()) {
      if (r_.expect_map(h, "hosts")) {
        for (const auto& kv : h) {
          std::string series = kv.second.IsScalar() ? kv.second.Scalar() : "";
          if (!liveness.count(kv.first.Scalar()))
            r_.error(kv.first, "host \"" + kv.first.Scalar() + "\" has no VM under vms:");
          liveness[kv.first.Scalar()] = series;
        }
      }
    }
    for (const auto& [host, series] : liveness) {
      if (!series.empty() && series != "none")
        add_series(t, h_node(n, host), series, ItemKind::kHostSeen, host, nullptr);
    }
    if (YAML::Node hb = n["heartbeats"]; hb.IsDefined() && r_.expect_map(hb, "heartbeats")) {
      for (const auto& kv : hb) {
        std::string who = kv.first.Scalar();
        std::string series = kv.second.IsScalar() ? kv.second.Scalar() : "";
        if (who == "all") {
          for (const auto& [id, v] : t.vms)
            add_series(t, kv.second, series, ItemKind::kEvent, "", &v);
        } else if (auto it = t.vms.find(who); it != t.vms.end()) {
          add_series(t, kv.second, series, ItemKind::kEvent, "", &it->second);
        } else {
          r_.error(kv.first, "unknown VM \"" + who + "\" (declare it under vms:, or use all)");
        }
      }
    }
    parse_input(t, n["input"]);
    parse_results(t, n["results"]);
    parse_operator(t, n["operator"]);
    parse_expect(t, n["expect"]);
    for (auto& it : t.items) it.order = order++;
    std::stable_sort(t.items.begin(), t.items.end(), [](const Item& a, const Item& b) {
      if (a.at != b.at) return a.at < b.at;
      return static_cast<int>(a.kind) < static_cast<int>(b.kind);
    });
    return t;
  }

  static YAML::Node h_node(const YAML::Node& n, const std::string& host) {
    YAML::Node h = n["hosts"];
    if (h.IsDefined() && h.IsMap() && h[host].IsDefined()) return h[host];
    return n;
  }

  std::optional<Duration> at_of(const YAML::Node& i) { return r_.duration(i, "at", true); }

  void parse_input(TestCase& t, const YAML::Node& l) {
    if (!l.IsDefined()) return;
    if (!l.IsSequence())
      return r_.error(l, "expected input: a list of {at: T, vm: V, event: TYPE, ...}");
    for (const auto& i : l) {
      if (!r_.expect_map(i, "an input event")) continue;
      r_.check_keys(i, {"at", "vm", "event", "state", "probe", "status", "latency", "reason",
                        "detail", "cpu_percent", "uptime"});
      Item it;
      it.kind = ItemKind::kEvent;
      it.line = line_of(i);
      auto at = at_of(i);
      const VmSpec* vm = vm_of(t, i);
      bool event_ok = vm && build_event(*vm, i, &it.event);
      if (!at || !event_ok) continue;
      it.at = *at;
      t.items.push_back(std::move(it));
    }
  }

  void parse_results(TestCase& t, const YAML::Node& l) {
    if (!l.IsDefined()) return;
    if (!l.IsSequence())
      return r_.error(l,
                      "expected results: a list of {at: T, vm: V, step: S, outcome: O, healed: B}");
    for (const auto& i : l) {
      if (!r_.expect_map(i, "an action result")) continue;
      r_.check_keys(i, {"at", "vm", "step", "outcome", "healed", "reason"});
      Item it;
      it.kind = ItemKind::kResult;
      it.line = line_of(i);
      auto at = at_of(i);
      const VmSpec* vm = vm_of(t, i);
      auto step = step_of(i, "step");
      std::string o = r_.string(i, "outcome", false).value_or("succeeded");
      auto outcome = action_outcome_from(o);
      if (!outcome)
        r_.error(i["outcome"], "unknown outcome \"" + o +
                                   "\" (expected succeeded, failed, rejected or timed_out)");
      it.healed = r_.boolean(i, "healed", false).value_or(false);
      it.reason = r_.string(i, "reason", false).value_or("");
      if (!at || !vm || !step || !outcome) continue;
      it.at = *at;
      it.vm = vm->id;
      it.step = *step;
      it.outcome = *outcome;
      t.items.push_back(std::move(it));
    }
  }

  void parse_operator(TestCase& t, const YAML::Node& l) {
    if (!l.IsDefined()) return;
    if (!l.IsSequence())
      return r_.error(l, "expected operator: a list of approve/deny/silence/unfreeze requests");
    for (const auto& i : l) {
      if (!r_.expect_map(i, "an operator request")) continue;
      r_.check_keys(i, {"at", "approve", "deny", "silence", "unfreeze", "by", "reason"});
      Item it;
      it.line = line_of(i);
      auto at = at_of(i);
      it.by = r_.string(i, "by", false).value_or("operator");
      it.reason = r_.string(i, "reason", false).value_or("");
      if (YAML::Node a = i["approve"].IsDefined() ? i["approve"] : i["deny"]; a.IsDefined()) {
        it.kind = i["approve"].IsDefined() ? ItemKind::kApprove : ItemKind::kDeny;
        if (!r_.expect_map(a, "approve/deny")) continue;
        const VmSpec* vm = vm_of(t, a);
        auto step = step_of(a, "step");
        if (!vm || !step) continue;
        it.vm = vm->id;
        it.step = *step;
      } else if (YAML::Node s = i["silence"]; s.IsDefined()) {
        it.kind = ItemKind::kSilence;
        if (!r_.expect_map(s, "silence")) continue;
        r_.check_keys(s, {"vm", "host", "rule", "label", "for"});
        it.silence.vm = r_.string(s, "vm", false).value_or("");
        it.silence.host = r_.string(s, "host", false).value_or("");
        it.silence.rule = r_.string(s, "rule", false).value_or("");
        if (auto lab = r_.string(s, "label", false)) {
          auto eq = lab->find('=');
          if (eq == std::string::npos)
            r_.error(s["label"], "label: must be KEY=VALUE");
          else {
            it.silence.label_key = lab->substr(0, eq);
            it.silence.label_value = lab->substr(eq + 1);
          }
        }
        it.silence.reason = it.reason;
        it.silence.by = it.by;
        auto f = r_.duration(s, "for", true);
        if (!f) continue;
        it.silence_for = *f;
      } else if (i["unfreeze"].IsDefined()) {
        it.kind = ItemKind::kUnfreeze;
        std::string h = r_.string(i, "unfreeze", true).value_or("");
        it.host = h == "fleet" ? "" : h;
      } else {
        r_.error(i, "expected one of approve:, deny:, silence: or unfreeze:");
        continue;
      }
      if (!at) continue;
      it.at = *at;
      t.items.push_back(std::move(it));
    }
  }

  void parse_expect(TestCase& t, const YAML::Node& l) {
    if (!l.IsDefined() || l.IsNull()) return;  // expecting no decision at all
    if (!l.IsSequence())
      return r_.error(l, "expected expect: a list of {at: T, vm: V, step: S, outcome: O, ...}");
    for (const auto& i : l) {
      if (!r_.expect_map(i, "an expected decision")) continue;
      r_.check_keys(
          i, {"at", "vm", "host", "fleet", "step", "outcome", "policy", "rule", "ladder_step"});
      Expect e;
      e.line = line_of(i);
      auto at = at_of(i);
      auto step = step_of(i, "step");
      if (auto v = r_.string(i, "vm", false)) {
        if (!t.vms.count(*v))
          r_.error(i["vm"], "unknown VM \"" + *v + "\" (declare it under vms:)");
        e.vm = *v;
      }
      if (auto h = r_.string(i, "host", false)) e.host = *h;
      if (r_.boolean(i, "fleet", false).value_or(false)) e.host = "";
      std::string o = r_.string(i, "outcome", false).value_or("proposed");
      auto outcome = outcome_from(o);
      if (!outcome)
        r_.error(i["outcome"], "unknown outcome \"" + o +
                                   "\" (expected proposed, suppressed, pending_approval, approved, "
                                   "denied, expired or dry_run)");
      if (auto p = r_.string(i, "policy", false)) {
        e.policy = policy_from(*p);
        if (!e.policy)
          r_.error(i["policy"],
                   "unknown policy \"" + *p +
                       "\" (expected silence, host-silent, storm-guard, cooldown, budget, "
                       "vm-in-flight, host-concurrency, fleet-concurrency or approval)");
      }
      if (auto r = r_.string(i, "rule", false)) e.rule = *r;
      if (auto s = r_.integer(i, "ladder_step", false, 1, 100))
        e.ladder_step = static_cast<uint32_t>(*s);
      if (!at || !step || !outcome) continue;
      e.at = *at;
      e.step = *step;
      e.outcome = *outcome;
      t.expects.push_back(std::move(e));
    }
  }

  const Decision* find_action(const Recorder& rec, const Item& it,
                              std::initializer_list<Outcome> outcomes) {
    for (auto d = rec.all.rbegin(); d != rec.all.rend(); ++d) {
      if (d->vm == it.vm && d->step == it.step &&
          std::find(outcomes.begin(), outcomes.end(), d->outcome) != outcomes.end()) {
        return &*d;
      }
    }
    return nullptr;
  }

  void run_test(const TestCase& t, const std::shared_ptr<const RuleSet>& rules) {
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

  void compare(const TestCase& t, const Recorder& rec, Time start,
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

  std::string path_;
  const TestRunOptions& opts_;
  std::ostream& out_;
  TestSummary* sum_;
  ConfigReader r_;
};

}  // namespace

TestSummary run_rule_test_files(const std::vector<std::string>& paths, const TestRunOptions& opts,
                                std::ostream& out) {
  TestSummary sum;
  for (const auto& p : paths) {
    try {
      FileRunner(p, opts, out, &sum).run();
    } catch (const YAML::Exception& e) {
      // Our boundary with yaml-cpp: a shape we did not foresee is a file error.
      ++sum.errors;
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
