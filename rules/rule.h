// A compiled rule and the indexed set of them the engine runs. Produced by the
// loader (rules/loader.h); immutable once built, shared by reference so a
// reload can swap sets while decisions in flight keep their rule alive.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/duration.h"
#include "medic/v1/actions.pb.h"
#include "rules/event_types.h"
#include "rules/expr.h"

namespace medic::rules {

// What one ladder step does. Verbs go to an actuator; notify goes to people.
// clone and delete come only from requests (medic request), never from a
// rule's ladder: automation heals VMs, it does not make or destroy them.
enum class Step : uint8_t { kReboot, kReset, kRestart, kStop, kStart, kNotify, kClone, kDelete };
std::string_view step_name(Step s);
std::optional<Step> step_from_name(std::string_view name);
// Every step's name, in enum order ("reboot", "reset", ...).
const std::array<std::string_view, 8>& step_names();
// True for the steps only a request may take (clone, delete).
inline bool request_only(Step s) { return s == Step::kClone || s == Step::kDelete; }
// The names a rule's ladder may use: step_names() without clone and delete.
std::vector<std::string_view> rule_step_names();
// The wire verb; VERB_UNSPECIFIED for notify.
medic::v1::Verb step_verb(Step s);

enum class TriggerKind : uint8_t { kOn, kAbsent, kCount };
enum class Mode : uint8_t { kEnforce, kDryRun };

// `budget: 3 per 1h`: at most `count` actions per VM in any `window`.
using Budget = CountPer;

// Which key fields identify an incident (`key:`), default vm.id.
enum class KeyField : uint8_t { kVmId, kVmHost, kProbeName, kAlertName };

struct Rule {
  std::string name;
  std::string version;  // content hash of the rule's YAML: changes when the rule does
  std::string file;
  int line = 0;
  std::string description;
  std::vector<std::pair<std::string, std::string>> labels;

  TriggerKind trigger = TriggerKind::kOn;
  EventType event = EventType::kVmState;  // on: / count: event, or absent: signal
  Duration absent_for{0};                 // absent
  uint32_t count = 0;                     // count
  Duration within{0};                     // count
  Expr where;                             // empty = always
  std::vector<KeyField> key = {KeyField::kVmId};

  std::vector<Step> ladder;
  EventType healed_by = EventType::kVmHeartbeat;
  Duration heal_within{0};
  // A VM that shows progress after a step (reports booting, was reset or
  // started, or beats when the heal signal is another) is watched up to this
  // long after the step before the ladder climbs; at least heal_within.
  Duration boot_timeout{0};
  std::string message;  // notify text; empty = a generated sentence

  // Policy overrides; nullopt = the engine default.
  std::optional<Duration> cooldown;
  std::optional<Budget> budget;
  bool approval_required = false;
  std::optional<Duration> approval_timeout;
  Mode mode = Mode::kEnforce;
  bool storm_guard = true;
  // Built in, not loaded: the rule a person's request runs under
  // (rules/engine.h Request). Its steps are proposed, not approved: no
  // pending action was answered, the request itself is the yes.
  bool request = false;
};

using RulePtr = std::shared_ptr<const Rule>;

// Rules indexed by what can wake them: an event only meets the rules that name
// its type (as `on:`/`count:` event, as `absent:` signal, or as `healed_by:`),
// and, among rules that require a label value (`where: vm.labels.tier == "a"
// and ...`), only those whose value its VM has.
class RuleSet {
 public:
  RuleSet() = default;
  explicit RuleSet(std::vector<RulePtr> rules);

  const std::vector<RulePtr>& rules() const { return rules_; }
  size_t size() const { return rules_.size(); }
  // Indices of on:/count: rules triggered by `t`.
  const std::vector<uint32_t>& triggered_by(EventType t) const { return on_[idx(t)]; }
  // The on:/count: rules triggered by `t` that can match an event about a VM
  // with these facts, in rule order: a subset of triggered_by(t) holding every
  // rule whose `where` could be true. The result is either an internal list or
  // `*scratch`, filled here.
  const std::vector<uint32_t>& candidates(EventType t, const VmFacts& vm,
                                          std::vector<uint32_t>* scratch) const;
  // Indices of absent: rules whose signal is `t`.
  const std::vector<uint32_t>& absence_signalled_by(EventType t) const { return absent_[idx(t)]; }
  // Indices of absent: rules.
  const std::vector<uint32_t>& absence_rules() const { return all_absent_; }
  const Rule* find(std::string_view name) const;

 private:
  static size_t idx(EventType t) { return static_cast<size_t>(t); }
  void add_to_index(uint32_t i);
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Rules requiring a value of one label key, by that value.
  struct LabelIndex {
    std::string key;
    std::unordered_map<std::string, std::vector<uint32_t>, StringHash, std::equal_to<>> by_value;
  };
  struct TypeIndex {
    std::vector<uint32_t> open;  // no label requirement: always evaluated
    std::vector<LabelIndex> by_label;
  };
  std::vector<RulePtr> rules_;
  std::array<TypeIndex, kEventTypeCount> index_;
  std::array<std::vector<uint32_t>, kEventTypeCount> on_;
  std::array<std::vector<uint32_t>, kEventTypeCount> absent_;
  std::vector<uint32_t> all_absent_;
};

}  // namespace medic::rules

namespace medic::rules {

// Policy defaults that apply when a rule does not override them. The loader
// needs them too: it warns about ladder steps the budget can never reach.
struct PolicyDefaults {
  Duration cooldown = std::chrono::minutes(2);
  Budget budget{5, std::chrono::hours(1)};
  Duration approval_timeout = std::chrono::minutes(15);
  Duration heal_within = std::chrono::minutes(1);
  Duration boot_timeout = std::chrono::minutes(5);
};

}  // namespace medic::rules
