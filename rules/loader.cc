#include "rules/loader.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "core/duration.h"
#include "core/text.h"

namespace medic::rules {

const char* load_code_name(LoadCode c) {
  switch (c) {
    case LoadCode::kReadFile:
      return "read-file";
    case LoadCode::kYamlParse:
      return "yaml-parse";
    case LoadCode::kSchema:
      return "schema";
    case LoadCode::kTrigger:
      return "trigger";
    case LoadCode::kUnknownEventType:
      return "unknown-event-type";
    case LoadCode::kExprSyntax:
      return "expr-syntax";
    case LoadCode::kExprType:
      return "expr-type";
    case LoadCode::kAction:
      return "action";
    case LoadCode::kPolicy:
      return "policy";
    case LoadCode::kDuplicateName:
      return "duplicate-name";
    case LoadCode::kUnreachableStep:
      return "unreachable-step";
    case LoadCode::kNeverFires:
      return "never-fires";
    case LoadCode::kNoRules:
      return "no-rules";
  }
  return "?";
}

bool is_warning(LoadCode c) { return c >= LoadCode::kDuplicateName; }

std::string LoadMessage::to_string() const {
  return diag.to_string() + " [" + load_code_name(code) + "]";
}

size_t LoadResult::error_count() const {
  size_t n = 0;
  for (const auto& m : messages) n += !m.diag.warning;
  return n;
}

size_t LoadResult::warning_count() const { return messages.size() - error_count(); }

std::string LoadResult::text() const {
  std::string out;
  for (const auto& m : messages) out += m.to_string() + "\n";
  return out;
}

Result<Budget> parse_budget(std::string_view text) {
  auto bad = [&] {
    return invalid_argument("invalid budget \"" + std::string(text) +
                            "\" (expected N per DURATION, such as 3 per 1h)");
  };
  size_t sp = text.find(" per ");
  if (sp == std::string_view::npos) return bad();
  std::string n(text.substr(0, sp));
  uint32_t count = 0;
  try {
    size_t used = 0;
    long v = std::stol(n, &used);
    if (used != n.size() || v < 1 || v > 1'000'000) return bad();
    count = static_cast<uint32_t>(v);
  } catch (const std::exception&) {
    return bad();
  }
  auto w = parse_duration(text.substr(sp + 5));
  if (!w.ok() || w->count() <= 0) return bad();
  return Budget{count, *w};
}

namespace {

const std::vector<std::string> kRuleKeys = {
    "name",   "description", "labels",           "on",      "absent",
    "for",    "count",       "within",           "where",   "key",
    "do",     "healed_by",   "heal_within",      "message", "cooldown",
    "budget", "approval",    "approval_timeout", "mode",    "storm_guard",
};

std::string fnv_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static const char* kHex = "0123456789abcdef";
  std::string out(12, '0');
  for (int i = 11; i >= 0; --i) {
    out[i] = kHex[h & 0xf];
    h >>= 4;
  }
  return out;
}


// " (did you mean X?)" for a near miss, else "".
template <typename List>
std::string did_you_mean(std::string_view name, const List& candidates) {
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    size_t d = edit_distance(name, c);
    if (d < best_d) {
      best_d = d;
      best = std::string(c);
    }
  }
  return best.empty() ? "" : "; did you mean " + best + "?";
}

std::string event_list() {
  std::string s;
  for (auto n : event_type_names()) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

class FileLoader {
 public:
  FileLoader(std::string file, std::string text, const LoadOptions& opts,
             std::vector<LoadMessage>* out, std::map<std::string, std::string>* names,
             std::vector<RulePtr>* rules)
      : file_(std::move(file)),
        text_(std::move(text)),
        opts_(opts),
        out_(out),
        names_(names),
        rules_(rules),
        first_message_(out->size()) {}

  void run() {
    YAML::Node root;
    try {
      root = YAML::Load(text_);
    } catch (const YAML::Exception& e) {
      Diagnostic d{file_, e.mark.line + 1, e.mark.column + 1, "YAML syntax: " + e.msg};
      if (e.mark.is_null()) d.line = d.col = 0;
      out_->push_back({LoadCode::kYamlParse, d});
      return;
    }
    if (!root.IsDefined() || root.IsNull()) {
      warn(LoadCode::kNoRules, root,
           "the file defines no rules (expected a top-level rules: list)");
      return;
    }
    if (!root.IsMap()) {
      error(LoadCode::kSchema, root, "expected a map with a rules: list at the top level");
      return;
    }
    for (const auto& kv : root) {
      if (kv.first.Scalar() != "rules") {
        error(LoadCode::kSchema, kv.first,
              "unknown top-level key \"" + kv.first.Scalar() + "\" (expected rules)");
      }
    }
    YAML::Node list = root["rules"];
    if (!list.IsDefined() || list.IsNull() || (list.IsSequence() && list.size() == 0)) {
      warn(LoadCode::kNoRules, root,
           "the file defines no rules (the rules: list is empty or missing)");
      return;
    }
    if (!list.IsSequence()) {
      error(LoadCode::kSchema, list,
            "expected rules: to be a list of rules (items starting with -)");
      return;
    }
    for (const auto& item : list) load_rule(item);
    // Expression errors are found per rule, not in position order.
    std::stable_sort(out_->begin() + static_cast<std::ptrdiff_t>(first_message_), out_->end(),
                     [](const LoadMessage& a, const LoadMessage& b) {
                       return std::tie(a.diag.line, a.diag.col) < std::tie(b.diag.line, b.diag.col);
                     });
  }

 private:
  void add(LoadCode code, const YAML::Node& at, const std::string& msg, int line = 0, int col = 0) {
    Diagnostic d{file_, line, col, msg, is_warning(code)};
    if (line == 0 && at.IsDefined() && !at.Mark().is_null()) {
      d.line = at.Mark().line + 1;
      d.col = at.Mark().column + 1;
    }
    out_->push_back({code, d});
    if (!is_warning(code)) rule_ok_ = false;
  }
  void error(LoadCode code, const YAML::Node& at, const std::string& msg) { add(code, at, msg); }
  void warn(LoadCode code, const YAML::Node& at, const std::string& msg) { add(code, at, msg); }

  // The file position of byte `offset` of a scalar's value. The scalar may be
  // quoted, folded or a block, so walk the source from the node's mark and
  // match the value character by character; a folded line break in the value
  // is a space, and indentation in the source is skipped.
  std::pair<int, int> locate(const YAML::Node& n, size_t offset) const {
    const std::string& v = n.Scalar();
    size_t p = n.Mark().pos;
    int line = n.Mark().line + 1, col = n.Mark().column + 1;
    auto step = [&] {
      if (text_[p] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
      ++p;
    };
    auto matches = [&](char c) { return text_[p] == c || (c == ' ' && text_[p] == '\n'); };
    if (p < text_.size() && (text_[p] == '|' || text_[p] == '>')) {
      while (p < text_.size() && text_[p] != '\n') step();
    } else if (p < text_.size() && (text_[p] == '"' || text_[p] == '\'')) {
      step();
    }
    size_t stop = std::min(offset, v.size());
    for (size_t i = 0; i <= stop && p < text_.size(); ++i) {
      if (i == v.size()) break;
      while (p < text_.size() && !matches(v[i])) step();
      if (i == stop || p >= text_.size()) break;
      step();
    }
    return {line, col};
  }

  std::optional<EventType> event_type(const YAML::Node& n, const char* key) {
    if (!n.IsScalar()) {
      error(LoadCode::kSchema, n, std::string(key) + ": must be an event type such as vm.panicked");
      return std::nullopt;
    }
    auto t = event_type_from_name(n.Scalar());
    if (!t) {
      std::string hint = did_you_mean(n.Scalar(), event_type_names());
      error(LoadCode::kUnknownEventType, n,
            "unknown event type \"" + n.Scalar() + "\" in " + key + ":" +
                (hint.empty() ? " (expected one of " + event_list() + ")" : hint));
    }
    return t;
  }

  std::optional<Duration> duration(const YAML::Node& map, const char* key, bool positive) {
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    if (!n.IsScalar()) {
      error(LoadCode::kSchema, n, std::string(key) + ": must be a duration such as 30s");
      return std::nullopt;
    }
    auto d = parse_duration(n.Scalar());
    if (!d.ok()) {
      error(LoadCode::kSchema, n, std::string(key) + ": " + d.status().message());
      return std::nullopt;
    }
    if (positive && d->count() <= 0) {
      error(LoadCode::kSchema, n, std::string(key) + ": must be longer than 0s");
      return std::nullopt;
    }
    return *d;
  }

  std::optional<std::string> scalar(const YAML::Node& map, const char* key) {
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    if (!n.IsScalar()) {
      error(LoadCode::kSchema, n, std::string(key) + ": must be a single value, not a list or map");
      return std::nullopt;
    }
    return n.Scalar();
  }

  void check_keys(const YAML::Node& m) {
    for (const auto& kv : m) {
      const std::string k = kv.first.Scalar();
      if (std::find(kRuleKeys.begin(), kRuleKeys.end(), k) == kRuleKeys.end()) {
        std::string list;
        for (const auto& x : kRuleKeys) list += (list.empty() ? "" : ", ") + x;
        error(LoadCode::kSchema, kv.first,
              "unknown rule key \"" + k + "\" (expected one of: " + list + ")");
      }
    }
  }

  void load_trigger(const YAML::Node& m, Rule& r) {
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

  void load_where(const YAML::Node& m, Rule& r) {
    YAML::Node w = m["where"];
    if (!w.IsDefined() || w.IsNull()) return;
    if (!w.IsScalar()) {
      error(LoadCode::kSchema, w,
            "where: must be an expression, such as vm.labels.tier != \"batch\"");
      return;
    }
    Scope scope;
    if (r.trigger != TriggerKind::kAbsent) scope.events.push_back(r.event);
    auto c = compile_expr(w.Scalar(), scope);
    for (const auto& e : c.errors) {
      auto [line, col] = locate(w, e.offset);
      add(e.syntax ? LoadCode::kExprSyntax : LoadCode::kExprType, w, e.message, line, col);
    }
    if (!c.ok()) return;
    r.where = c.expr;
    if (r.where.never_true()) {
      warn(LoadCode::kNeverFires, w,
           "where: is always false, so rule \"" + r.name + "\" can never fire");
    }
  }

  void load_key(const YAML::Node& m, Rule& r) {
    YAML::Node k = m["key"];
    if (!k.IsDefined() || k.IsNull()) return;
    std::vector<YAML::Node> items;
    if (k.IsScalar())
      items.push_back(k);
    else if (k.IsSequence())
      for (const auto& i : k) items.push_back(i);
    else {
      error(LoadCode::kSchema, k,
            "key: must be a field or a list of fields (vm.id, vm.host, probe.name)");
      return;
    }
    r.key.clear();
    for (const auto& i : items) {
      std::string s = i.IsScalar() ? i.Scalar() : "";
      if (s == "vm.id")
        r.key.push_back(KeyField::kVmId);
      else if (s == "vm.host")
        r.key.push_back(KeyField::kVmHost);
      else if (s == "probe.name" && is_probe(r.event) && r.trigger != TriggerKind::kAbsent)
        r.key.push_back(KeyField::kProbeName);
      else if (s == "probe.name")
        error(LoadCode::kSchema, i,
              "key: probe.name exists only for rules on probe.ok or probe.failed");
      else
        error(LoadCode::kSchema, i,
              "key: \"" + s + "\" is not a key field (expected vm.id, vm.host or probe.name)");
    }
    if (r.trigger == TriggerKind::kAbsent && (r.key.size() != 1 || r.key[0] != KeyField::kVmId)) {
      error(LoadCode::kSchema, k, "an absent: rule is keyed by vm.id (absence is tracked per VM)");
    }
  }

  void load_ladder(const YAML::Node& m, Rule& r) {
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
        std::string name = i.IsScalar() ? i.Scalar() : std::string("?");
        static const std::vector<std::string> kSteps = {"reboot", "reset", "restart",
                                                        "stop",   "start", "notify"};
        error(LoadCode::kAction, i,
              "unknown step \"" + name +
                  "\" (expected reboot, reset, restart, stop, start or notify)" +
                  did_you_mean(name, kSteps));
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

  void load_policies(const YAML::Node& m, Rule& r) {
    if (auto d = duration(m, "cooldown", false)) r.cooldown = *d;
    if (auto d = duration(m, "approval_timeout", true)) r.approval_timeout = *d;
    if (auto d = duration(m, "heal_within", true))
      r.heal_within = *d;
    else
      r.heal_within = opts_.defaults.heal_within;
    if (auto b = scalar(m, "budget")) {
      auto parsed = parse_budget(*b);
      if (!parsed.ok())
        error(LoadCode::kPolicy, m["budget"], parsed.status().message());
      else
        r.budget = *parsed;
    }
    if (auto a = scalar(m, "approval")) {
      if (*a == "required")
        r.approval_required = true;
      else if (*a != "none")
        error(LoadCode::kPolicy, m["approval"],
              "approval: must be none or required, got \"" + *a + "\"");
    }
    if (auto mo = scalar(m, "mode")) {
      if (*mo == "dry-run")
        r.mode = Mode::kDryRun;
      else if (*mo != "enforce")
        error(LoadCode::kPolicy, m["mode"],
              "mode: must be enforce or dry-run, got \"" + *mo + "\"");
    }
    if (auto s = scalar(m, "storm_guard")) {
      bool v = true;
      if (!YAML::convert<bool>::decode(m["storm_guard"], v)) {
        error(LoadCode::kPolicy, m["storm_guard"],
              "storm_guard: must be true or false, got \"" + *s + "\"");
      }
      r.storm_guard = v;
    }
    if (YAML::Node h = m["healed_by"]; h.IsDefined() && !h.IsNull()) {
      if (auto t = event_type(h, "healed_by")) r.healed_by = *t;
    } else if (r.trigger == TriggerKind::kAbsent) {
      r.healed_by = r.event;
    } else if (r.event == EventType::kProbeFailed) {
      r.healed_by = EventType::kProbeOk;
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

  // A budget of N actions per window lets at most N verb steps of one
  // incident run; later steps wait forever.
  void check_ladder_reach(const Rule& r) {
    Budget b = r.budget.value_or(opts_.defaults.budget);
    uint32_t verbs = 0;
    for (size_t i = 0; i < r.ladder.size(); ++i) {
      if (r.ladder[i] == Step::kNotify) continue;
      if (++verbs > b.count) {
        warn(LoadCode::kUnreachableStep, step_nodes_[i],
             "step " + std::to_string(i + 1) + " (" + std::string(step_name(r.ladder[i])) +
                 ") is unreachable: the budget allows " + std::to_string(b.count) +
                 " actions per " + format_duration(b.window));
      }
    }
  }

  void load_rule(const YAML::Node& m) {
    rule_ok_ = true;
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
      std::string here = file_ + ":" + std::to_string(name.Mark().line + 1);
      auto [it, fresh] = names_->emplace(r->name, here);
      if (!fresh) {
        warn(LoadCode::kDuplicateName, name,
             "rule name \"" + r->name + "\" is also used at " + it->second +
                 "; decisions and the audit will not tell them apart by name");
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

  std::string file_;
  std::string text_;
  const LoadOptions& opts_;
  std::vector<LoadMessage>* out_;
  std::map<std::string, std::string>* names_;
  std::vector<RulePtr>* rules_;
  bool rule_ok_ = true;
  std::vector<YAML::Node> step_nodes_;
  size_t first_message_;
};

// yaml-cpp throws on shapes we did not foresee; that is a schema error in the
// file, never a crash.
void run_guarded(const std::string& name, std::string text, const LoadOptions& opts,
                 std::vector<LoadMessage>* msgs, std::map<std::string, std::string>* names,
                 std::vector<RulePtr>* rules) {
  try {
    FileLoader(name, std::move(text), opts, msgs, names, rules).run();
  } catch (const YAML::Exception& e) {
    Diagnostic d{name, e.mark.line + 1, e.mark.column + 1, "unexpected YAML shape: " + e.msg};
    if (e.mark.is_null()) d.line = d.col = 0;
    msgs->push_back({LoadCode::kSchema, d});
  }
}

LoadResult finish(std::vector<LoadMessage> messages, std::vector<RulePtr> rules) {
  LoadResult res;
  res.messages = std::move(messages);
  if (res.ok()) res.rules = std::make_shared<const RuleSet>(std::move(rules));
  return res;
}

}  // namespace

LoadResult load_rule_text(const std::string& text, const std::string& name,
                          const LoadOptions& opts) {
  std::vector<LoadMessage> msgs;
  std::map<std::string, std::string> names;
  std::vector<RulePtr> rules;
  run_guarded(name, text, opts, &msgs, &names, &rules);
  return finish(std::move(msgs), std::move(rules));
}

LoadResult load_rule_files(const std::vector<std::string>& paths, const LoadOptions& opts) {
  std::vector<LoadMessage> msgs;
  std::map<std::string, std::string> names;
  std::vector<RulePtr> rules;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    if (!in || in.bad()) {
      msgs.push_back({LoadCode::kReadFile, Diagnostic{p, 0, 0, "cannot read the file", false}});
      continue;
    }
    run_guarded(p, ss.str(), opts, &msgs, &names, &rules);
  }
  return finish(std::move(msgs), std::move(rules));
}

}  // namespace medic::rules
