// FileRunner's parsing of a test file: fleet, inputs, results, operator
// requests and expectations into TestCase values.
#include <algorithm>
#include <map>

#include <yaml-cpp/yaml.h>

#include "core/duration.h"
#include "core/text.h"
#include "rules/rule_test_case.h"

namespace medic::rules::ruletest {

namespace {

const std::vector<std::string_view> kResultNames = {"succeeded", "failed", "rejected",
                                                    "timed_out"};

const std::vector<std::string_view>& outcome_names() {
  static const std::vector<std::string_view> v = [] {
  std::vector<std::string_view> v;
  for (auto o : {Outcome::kProposed, Outcome::kSuppressed, Outcome::kPendingApproval,
                 Outcome::kApproved, Outcome::kDenied, Outcome::kExpired, Outcome::kDryRun}) {
    v.emplace_back(outcome_name(o));
  }
  return v;
  }();
  return v;
}

const std::vector<std::string_view>& policy_names() {
  static const std::vector<std::string_view> v = [] {
  std::vector<std::string_view> v;
  for (auto p : {Policy::kSilence, Policy::kHostSilent, Policy::kStormGuard, Policy::kCooldown,
                 Policy::kBudget, Policy::kVmInFlight, Policy::kHostConcurrency,
                 Policy::kFleetConcurrency, Policy::kApproval}) {
    v.emplace_back(policy_name(p));
  }
  return v;
  }();
  return v;
}

// `unknown VM "web-l" (declare it under vms:); did you mean web-1?`: the
// test's own VMs are the names it may mean.
std::string unknown_vm(const TestCase& t, const std::string& name,
                       const char* where = "under vms:") {
  std::vector<std::string_view> ids;
  for (const auto& [id, v] : t.vms) ids.emplace_back(id);
  return "unknown VM \"" + name + "\" (declare it " + where + ")" + did_you_mean(name, ids);
}

}  // namespace

std::optional<Step> FileRunner::step_of(const YAML::Node& n, const char* key) {
  auto s = r_.string(n, key, true);
  if (!s) return std::nullopt;
  auto st = step_from_name(*s);
  if (!st) r_.error(n[key], unknown_name("step", *s, rule_step_names()));
  return st;
}

const VmSpec* FileRunner::vm_of(TestCase& t, const YAML::Node& n) {
  auto v = r_.string(n, "vm", true);
  if (!v) return nullptr;
  auto it = t.vms.find(*v);
  if (it == t.vms.end()) {
    r_.error(n["vm"], unknown_vm(t, *v));
    return nullptr;
  }
  return &it->second;
}

// alert.firing / alert.resolved: {alert: NAME, labels: {K: V}, annotations: {K: V}}.
void FileRunner::build_alert(EventType type, const YAML::Node& n, medic::v1::Alert* a) {
  a->set_firing(type == EventType::kAlertFiring);
  a->set_name(r_.string(n, "alert", false).value_or("alert"));
  auto pairs = [&](const char* key, auto add) {
    YAML::Node m = n[key];
    if (!m.IsDefined() || m.IsNull()) return;
    if (!m.IsMap()) return r_.error(m, std::string(key) + ": must be a map of name: value");
    for (const auto& kv : m) {
      auto* l = add();
      l->set_key(kv.first.Scalar());
      l->set_value(kv.second.IsScalar() ? kv.second.Scalar() : "");
    }
  };
  pairs("labels", [&] { return a->add_labels(); });
  pairs("annotations", [&] { return a->add_annotations(); });
  auto* name = a->add_labels();
  name->set_key("alertname");
  name->set_value(a->name());
}

bool FileRunner::build_event(const VmSpec& vm, const YAML::Node& n, medic::v1::Event* e) {
  auto type_name = r_.string(n, "event", true);
  if (!type_name) return false;
  auto type = event_type_from_name(*type_name);
  if (!type) {
    r_.error(n["event"], unknown_name("event type", *type_name, event_type_names()));
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
      {EventType::kVmUnresponsive, medic::v1::LIFECYCLE_UNRESPONSIVE},
  };
  if (auto it = kLife.find(*type); it != kLife.end()) {
    e->mutable_lifecycle()->set_what(it->second);
    if (auto d = r_.string(n, "detail", false)) e->mutable_lifecycle()->set_detail(*d);
  } else if (*type == EventType::kVmHeartbeat) {
    e->mutable_heartbeat()->set_source("test");
  } else if (*type == EventType::kVmGuestPing) {
    e->mutable_guest_ping();
  } else if (is_alert(*type)) {
    build_alert(*type, n, e->mutable_alert());
  } else if (*type == EventType::kVmState) {
    auto* s = e->mutable_state();
    std::string st = r_.string(n, "state", false).value_or("running");
    bool found = false;
    for (int i = 0; i < static_cast<int>(vm_state_names().size()); ++i) {
      if (vm_state_name(static_cast<medic::v1::VmState>(i)) == st) {
        s->set_state(static_cast<medic::v1::VmState>(i));
        found = true;
      }
    }
    if (!found) r_.error(n["state"], unknown_name("VM state", st, vm_state_names()));
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

void FileRunner::add_series(TestCase& t, const YAML::Node& n, const std::string& text,
                            ItemKind kind, const std::string& host, const VmSpec* vm) {
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

Duration FileRunner::latest_time(const YAML::Node& t) {
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

TestCase FileRunner::parse_test(const YAML::Node& n, const EngineOptions& base) {
  TestCase t;
  t.opt = base;
  t.line = line_of(n);
  if (!r_.expect_map(n, "a test")) return t;
  r_.check_keys(n, {"name", "options", "vms", "hosts", "heartbeats", "input", "results", "operator",
                    "expect", "run_for"});
  t.name = r_.string(n, "name", true).value_or("?");
  if (n["options"].IsDefined()) parse_options(n["options"], &t.opt);
  t.run_for = r_.duration(n, "run_for", false).value_or(latest_time(n) + std::chrono::minutes(1));
  if (!parse_vms(t, n)) return t;
  add_initial_states(t);
  parse_hosts(t, n);
  parse_heartbeats(t, n);
  parse_input(t, n["input"]);
  parse_results(t, n["results"]);
  parse_operator(t, n["operator"]);
  parse_expect(t, n["expect"]);
  std::size_t order = 0;
  for (auto& it : t.items) it.order = order++;
  std::stable_sort(t.items.begin(), t.items.end(), [](const Item& a, const Item& b) {
    if (a.at != b.at) return a.at < b.at;
    return static_cast<int>(a.kind) < static_cast<int>(b.kind);
  });
  return t;
}

bool FileRunner::parse_vms(TestCase& t, const YAML::Node& n) {
  YAML::Node vms = n["vms"];
  if (!vms.IsDefined() || !vms.IsMap() || vms.size() == 0) {
    r_.error(vms.IsDefined() ? vms : n, "expected vms: a map of VM id to {host: H, labels: {...}}");
    return false;
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
  return true;
}

// Every VM reports its state (and labels) at 0s, as a collector would.
void FileRunner::add_initial_states(TestCase& t) {
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
}

// Hosts report every 5s for the whole test unless hosts: says otherwise.
void FileRunner::parse_hosts(TestCase& t, const YAML::Node& n) {
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
}

void FileRunner::parse_heartbeats(TestCase& t, const YAML::Node& n) {
  YAML::Node hb = n["heartbeats"];
  if (!hb.IsDefined() || !r_.expect_map(hb, "heartbeats")) return;
  for (const auto& kv : hb) {
    std::string who = kv.first.Scalar();
    std::string series = kv.second.IsScalar() ? kv.second.Scalar() : "";
    if (who == "all") {
      for (const auto& [id, v] : t.vms) add_series(t, kv.second, series, ItemKind::kEvent, "", &v);
    } else if (auto it = t.vms.find(who); it != t.vms.end()) {
      add_series(t, kv.second, series, ItemKind::kEvent, "", &it->second);
    } else {
      r_.error(kv.first, unknown_vm(t, who, "under vms:, or use all"));
    }
  }
}

YAML::Node FileRunner::h_node(const YAML::Node& n, const std::string& host) {
  YAML::Node h = n["hosts"];
  if (h.IsDefined() && h.IsMap() && h[host].IsDefined()) return h[host];
  return n;
}

void FileRunner::parse_input(TestCase& t, const YAML::Node& l) {
  if (!l.IsDefined()) return;
  if (!l.IsSequence())
    return r_.error(l, "expected input: a list of {at: T, vm: V, event: TYPE, ...}");
  for (const auto& i : l) {
    if (!r_.expect_map(i, "an input event")) continue;
    r_.check_keys(i, {"at", "vm", "event", "state", "probe", "status", "latency", "reason",
                      "detail", "cpu_percent", "uptime", "alert", "labels", "annotations"});
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

void FileRunner::parse_results(TestCase& t, const YAML::Node& l) {
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
    if (!outcome) r_.error(i["outcome"], unknown_name("outcome", o, kResultNames));
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

void FileRunner::parse_operator(TestCase& t, const YAML::Node& l) {
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

void FileRunner::parse_expect(TestCase& t, const YAML::Node& l) {
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
      if (!t.vms.count(*v)) r_.error(i["vm"], unknown_vm(t, *v));
      e.vm = *v;
    }
    if (auto h = r_.string(i, "host", false)) e.host = *h;
    if (r_.boolean(i, "fleet", false).value_or(false)) e.host = "";
    std::string o = r_.string(i, "outcome", false).value_or("proposed");
    auto outcome = outcome_from(o);
    if (!outcome) r_.error(i["outcome"], unknown_name("outcome", o, outcome_names()));
    if (auto p = r_.string(i, "policy", false)) {
      e.policy = policy_from(*p);
      if (!e.policy) r_.error(i["policy"], unknown_name("policy", *p, policy_names()));
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

}  // namespace medic::rules::ruletest
