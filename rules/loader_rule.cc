// FileLoader's stages for one rule: trigger, where, key, ladder, policies.
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "core/duration.h"
#include "core/text.h"
#include "rules/engine.h"
#include "rules/file_loader.h"

namespace medic::rules {

void FileLoader::load_trigger(const YAML::Node& m, Rule& r) {
  YAML::Node on = m["on"], absent = m["absent"], count = m["count"], within = m["within"],
             forn = m["for"];
  bool has_on = on.IsDefined(), has_absent = absent.IsDefined();
  if (has_on && has_absent) {
    error(LoadCode::kTrigger, absent, "a rule has one trigger: on: or absent:, not both");
    return;
  }
  if (!has_on && !has_absent) {
    error(LoadCode::kTrigger, m,
          "missing trigger: expected on: EVENT, absent: SIGNAL with for: DURATION, or on: EVENT "
          "with count: N and within: DURATION");
    return;
  }
  if (has_absent) {
    if (count.IsDefined() || within.IsDefined()) {
      error(LoadCode::kTrigger, count.IsDefined() ? count : within,
            "count:/within: go with on:, not with absent:");
    }
    r.trigger = TriggerKind::kAbsent;
    if (auto t = event_type(absent, "absent")) r.event = *t;
    if (!forn.IsDefined()) {
      error(LoadCode::kTrigger, absent,
            "absent: needs for: DURATION (how long the signal may be missing)");
    } else if (auto d = duration(m, "for", true)) {
      r.absent_for = *d;
    }
    return;
  }
  if (auto t = event_type(on, "on")) r.event = *t;
  if (forn.IsDefined()) error(LoadCode::kTrigger, forn, "for: goes with absent:, not with on:");
  if (count.IsDefined() != within.IsDefined()) {
    error(LoadCode::kTrigger, count.IsDefined() ? count : within,
          "count: and within: go together (count: N within: DURATION)");
    return;
  }
  if (!count.IsDefined()) return;
  r.trigger = TriggerKind::kCount;
  long n = 0;
  if (!count.IsScalar() || !YAML::convert<long>::decode(count, n) || n < 1 || n > 10000) {
    error(LoadCode::kTrigger, count, "count: must be a whole number from 1 to 10000");
  } else {
    r.count = static_cast<uint32_t>(n);
  }
  if (auto d = duration(m, "within", true)) r.within = *d;
}

void FileLoader::load_where(const YAML::Node& m, Rule& r) {
  YAML::Node w = m["where"];
  if (!w.IsDefined() || w.IsNull()) return;
  if (!w.IsScalar()) {
    error(LoadCode::kSchema, w,
          "where: must be an expression, such as vm.labels.tier != \"batch\"");
    return;
  }
  Scope scope;
  if (r.trigger != TriggerKind::kAbsent) scope.events.push_back(r.event);
  scope.trigger_known = event_known_;
  auto c = compile_expr(w.Scalar(), scope);
  for (const auto& e : c.errors) {
    auto [line, col] = locate(w, e.offset);
    add(e.syntax ? LoadCode::kExprSyntax : LoadCode::kExprType, w, e.message, line, col);
  }
  if (!c.ok()) return;
  r.where = c.expr;
  check_label_keys(w, r.where);
  if (r.where.never_true()) {
    warn(LoadCode::kNeverFires, w,
         "where: is always false, so rule \"" + r.name + "\" can never fire");
  }
}

void FileLoader::check_label_keys(const YAML::Node& w, const Expr& where) {
  if (!opts_.label_keys) return;
  const std::set<std::string>& known = *opts_.label_keys;
  for (const auto& l : where.labels_read()) {
    if (known.count(l.key)) continue;
    auto [line, col] = locate(w, l.offset);
    std::string hint = did_you_mean(l.key, known);
    if (hint.empty()) hint = known.empty() ? "; the VMs have no labels" : "; the VMs have " + join_names(known, " and ");
    add(LoadCode::kUnknownLabel, w,
        "no VM has the label \"" + l.key + "\", so vm.labels." + l.key + " is always \"\"" + hint,
        line, col);
  }
}

void FileLoader::load_key(const YAML::Node& m, Rule& r) {
  YAML::Node k = m["key"];
  // An alert rule is keyed by the VM and the alert's name by default, so one
  // alert's resolution heals its own incident, not another alert's.
  if (r.event == EventType::kAlertFiring && r.trigger != TriggerKind::kAbsent)
    r.key = {KeyField::kVmId, KeyField::kAlertName};
  if (!k.IsDefined() || k.IsNull()) return;
  std::vector<YAML::Node> items;
  if (k.IsScalar())
    items.push_back(k);
  else if (k.IsSequence())
    for (const auto& i : k) items.push_back(i);
  else {
    error(LoadCode::kSchema, k,
          "key: must be a field or a list of fields (vm.id, vm.host, probe.name, alert.name)");
    return;
  }
  static const std::vector<std::string_view> kKeyFields = {"vm.id", "vm.host", "probe.name",
                                                           "alert.name"};
  std::vector<KeyField> key;
  bool key_ok = true;
  for (const auto& i : items) {
    std::string s = i.IsScalar() ? i.Scalar() : "";
    if (s == "vm.id") {
      key.push_back(KeyField::kVmId);
    } else if (s == "vm.host") {
      key.push_back(KeyField::kVmHost);
    } else if (s == "probe.name" && (!event_known_ || (is_probe(r.event) &&
                                                        r.trigger != TriggerKind::kAbsent))) {
      key.push_back(KeyField::kProbeName);
    } else if (s == "probe.name") {
      key_ok = false;
      error(LoadCode::kSchema, i,
            "key: probe.name exists only for rules on probe.ok or probe.failed");
    } else if (s == "alert.name" &&
               (!event_known_ || (is_alert(r.event) && r.trigger != TriggerKind::kAbsent))) {
      key.push_back(KeyField::kAlertName);
    } else if (s == "alert.name") {
      key_ok = false;
      error(LoadCode::kSchema, i,
            "key: alert.name exists only for rules on alert.firing or alert.resolved");
    } else {
      key_ok = false;
      error(LoadCode::kSchema, i, "key: " + unknown_name("key field", s, kKeyFields));
    }
  }
  // After a bad item the rule keeps its default key, so the ladder is not
  // blamed for a key it never had.
  if (!key_ok) return;
  r.key = std::move(key);
  if (r.trigger == TriggerKind::kAbsent && (r.key.size() != 1 || r.key[0] != KeyField::kVmId)) {
    error(LoadCode::kSchema, k, "an absent: rule is keyed by vm.id (absence is tracked per VM)");
  }
}

void FileLoader::load_ladder(const YAML::Node& m, Rule& r) {
  YAML::Node d = m["do"];
  if (!d.IsDefined() || d.IsNull()) {
    error(LoadCode::kAction, m,
          "missing do: (expected a step or a ladder such as [reboot, reset, notify])");
    return;
  }
  std::vector<YAML::Node> items;
  if (d.IsScalar())
    items.push_back(d);
  else if (d.IsSequence())
    for (const auto& i : d) items.push_back(i);
  if (items.empty()) {
    error(LoadCode::kAction, d, "do: must be a step or a non-empty list of steps");
    return;
  }
  bool keyed_by_vm = std::find(r.key.begin(), r.key.end(), KeyField::kVmId) != r.key.end();
  for (const auto& i : items) {
    auto s = i.IsScalar() ? step_from_name(i.Scalar()) : std::nullopt;
    if (!s) {
      error(LoadCode::kAction, i,
            unknown_name("step", i.IsScalar() ? i.Scalar() : std::string("?"), rule_step_names()));
      continue;
    }
    if (request_only(*s)) {
      error(LoadCode::kAction, i,
            "step " + std::string(step_name(*s)) +
                " is not a rule's: only a requester asks for it (medic request " +
                std::string(step_name(*s)) + ")");
      continue;
    }
    if (*s != Step::kNotify && !keyed_by_vm) {
      error(LoadCode::kAction, i,
            "step " + std::string(step_name(*s)) +
                " needs a VM, but the rule's key has no vm.id; only notify can act on it");
    }
    r.ladder.push_back(*s);
    step_nodes_.push_back(i);
  }
}

void FileLoader::load_policies(const YAML::Node& m, Rule& r) {
  if (auto d = duration(m, "cooldown", false)) r.cooldown = *d;
  if (auto d = duration(m, "approval_timeout", true)) r.approval_timeout = *d;
  if (auto d = duration(m, "heal_within", true))
    r.heal_within = *d;
  else
    r.heal_within = opts_.defaults.heal_within;
  if (auto d = duration(m, "boot_timeout", true)) {
    if (*d < r.heal_within) {
      error(LoadCode::kPolicy, m["boot_timeout"],
            "boot_timeout must be at least heal_within (" + format_duration(r.heal_within) + ")");
    }
    r.boot_timeout = *d;
  } else {
    r.boot_timeout = std::max(opts_.defaults.boot_timeout, r.heal_within);
  }
  if (auto b = scalar(m, "budget")) {
    auto parsed = parse_budget(*b);
    if (!parsed.ok())
      error(LoadCode::kPolicy, m["budget"], parsed.status().message());
    else
      r.budget = *parsed;
  }
  if (auto a = choice(m, "approval", {"none", "required"})) r.approval_required = *a == "required";
  if (auto mo = choice(m, "mode", {"enforce", "dry-run"}); mo && *mo == "dry-run") {
    r.mode = Mode::kDryRun;
  }
  if (auto s = scalar(m, "storm_guard")) {
    bool v = true;
    if (!YAML::convert<bool>::decode(m["storm_guard"], v)) {
      error(LoadCode::kPolicy, m["storm_guard"],
            "storm_guard: must be true or false, got \"" + *s + "\"" +
                did_you_mean(*s, std::vector<std::string_view>{"true", "false"}));
    }
    r.storm_guard = v;
  }
  if (YAML::Node h = m["healed_by"]; h.IsDefined() && !h.IsNull()) {
    if (auto t = event_type(h, "healed_by")) r.healed_by = *t;
  } else if (r.trigger == TriggerKind::kAbsent) {
    r.healed_by = r.event;
  } else if (r.event == EventType::kProbeFailed) {
    r.healed_by = EventType::kProbeOk;
  } else if (r.event == EventType::kAlertFiring) {
    r.healed_by = EventType::kAlertResolved;
  }
  if (auto msg = scalar(m, "message")) r.message = *msg;
  if (auto desc = scalar(m, "description")) r.description = *desc;
  if (YAML::Node l = m["labels"]; l.IsDefined() && !l.IsNull()) {
    if (!l.IsMap())
      error(LoadCode::kSchema, l, "labels: must be a map of name: value");
    else
      for (const auto& kv : l)
        r.labels.emplace_back(kv.first.Scalar(), kv.second.IsScalar() ? kv.second.Scalar() : "");
  }
}

void FileLoader::check_ladder_reach(const Rule& r) {
  Budget b = r.budget.value_or(opts_.defaults.budget);
  uint32_t verbs = 0;
  for (size_t i = 0; i < r.ladder.size(); ++i) {
    if (r.ladder[i] == Step::kNotify) continue;
    if (++verbs > b.count) {
      warn(LoadCode::kUnreachableStep, step_nodes_[i],
           "step " + std::to_string(i + 1) + " (" + std::string(step_name(r.ladder[i])) +
               ") is unreachable: the budget allows " + std::to_string(b.count) + " actions per " +
               format_duration(b.window));
    }
  }
}

void FileLoader::load_rule(const YAML::Node& m) {
  rule_ok_ = true;
  event_known_ = true;
  step_nodes_.clear();
  if (!m.IsMap()) {
    error(LoadCode::kSchema, m, "expected a rule (a map with name:, a trigger and do:)");
    return;
  }
  auto r = std::make_shared<Rule>();
  r->file = file_;
  r->line = m.Mark().line + 1;
  check_keys(m);
  YAML::Node name = m["name"];
  if (!name.IsDefined() || !name.IsScalar() || name.Scalar().empty()) {
    error(LoadCode::kSchema, name.IsDefined() ? name : m,
          "missing name: (every rule needs a unique name)");
  } else {
    r->name = name.Scalar();
    if (is_request_rule(r->name)) {
      error(LoadCode::kSchema, name,
            "rule name \"" + r->name +
                "\": names beginning \"request:\" are medic's own (the requests of `medic vm "
                "start|stop`)");
    }
    std::string here = file_ + ":" + std::to_string(name.Mark().line + 1);
    auto [it, fresh] = names_->emplace(r->name, here);
    if (!fresh) {
      error(LoadCode::kDuplicateName, name,
            "rule name \"" + r->name + "\" is already used at " + it->second +
                "; every rule needs a unique name (decisions, silences and the audit name rules)");
    }
  }
  load_trigger(m, *r);
  load_key(m, *r);
  load_where(m, *r);
  load_ladder(m, *r);
  load_policies(m, *r);
  if (!rule_ok_) return;
  check_ladder_reach(*r);
  YAML::Emitter e;
  e << m;
  r->version = fnv_hex(e.c_str());
  rules_->push_back(std::move(r));
}

}  // namespace medic::rules
