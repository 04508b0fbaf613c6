// What the engine decides, and the vocabulary of its safety policies. Shared
// by the engine's parts (rules/policy.h, rules/engine.h) and its callers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "rules/rule.h"

namespace medic::rules {

// Opaque id of the signed envelope an event came in; 0 when unknown.
using EvidenceRef = uint64_t;

enum class Outcome : uint8_t {
  kProposed,
  kSuppressed,
  kPendingApproval,
  kApproved,
  kDenied,
  kExpired,
  kDryRun,
};
std::string_view outcome_name(Outcome o);

// A safety policy: the one that stopped (or holds) a decision, or one that a
// decision met on its way (Decision::checks).
enum class Policy : uint8_t {
  kNone,
  kSilence,
  kDryRun,
  kHostSilent,
  kStormGuard,
  kCooldown,
  kBudget,
  kVmInFlight,
  kHostConcurrency,
  kFleetConcurrency,
  kApproval,
};
std::string_view policy_name(Policy p);

// What one policy answered about one step:
// - pass: go on to the next policy;
// - suppress: not now, and the incident closes (a trigger that still holds
//   opens a fresh one);
// - hold: not while the cause lasts (a silence, a silent host, a storm, a
//   cooldown, a spent budget); the incident absorbs repeated triggers, with
//   no decision for each, until the cause lifts; then it closes, and a
//   trigger that still holds opens a fresh one;
// - wait: not yet (a free action slot, an operator's answer); the step is
//   tried again when the thing waited for comes;
// - dry_run: record what would have happened and carry on as if it had.
enum class Verdict : uint8_t { kPass, kSuppress, kHold, kWait, kDryRun };
std::string_view verdict_name(Verdict v);

struct PolicyCheck {
  Policy policy = Policy::kNone;
  Verdict verdict = Verdict::kPass;
  std::string reason;  // empty for a plain pass
  // hold: when the cause lifts by itself (the cooldown or the silence ends,
  // the budget has room again), ns since epoch; 0 when an event lifts it (the
  // host speaks again, the storm is over). Not part of the audit record.
  int64_t until_ns = 0;

  bool operator==(const PolicyCheck&) const = default;
};

struct Decision {
  std::string id;  // unique; for verbs the action id (kept from pending to approved)
  Time at{};
  std::string rule;  // empty for the engine's own notices (storm guard, budget)
  std::string rule_version;
  std::string vm;  // empty for host- or fleet-wide notices
  std::string host;
  Step step = Step::kNotify;
  uint32_t ladder_step = 0;  // 1-based; 0 for the engine's own notices
  uint32_t ladder_size = 0;
  std::vector<EvidenceRef> evidence;
  std::string trigger;  // what fired: "vm.panicked", "no vm.heartbeat for 30s", ...
  Outcome outcome = Outcome::kProposed;
  Policy policy = Policy::kNone;
  std::string reason;       // why suppressed / denied / expired; the notice text for notify
  std::string by;           // the operator, for approved / denied
  // It answers an action already recorded as pending_approval (approved, or
  // stopped after the approval), under that action's id.
  bool answers_pending = false;
  Duration heal_within{0};  // how long to watch the VM after a verb
  Time expires_at{};        // the action's expiry, for dispatch
  // The policies this step met, in chain order, ending at the one that
  // stopped it if any. Empty for the engine's own notices and for answers
  // that did not run the chain (denied, expired).
  std::vector<PolicyCheck> checks;
};

// A silence or maintenance window: decisions it matches are suppressed.
// Empty matchers match anything; all given matchers must match.
struct Silence {
  std::string vm;
  std::string host;
  std::string rule;
  std::string label_key, label_value;
  Time until{};
  std::string reason;
  std::string by;
};

// What the engine's watch concluded about one ladder step of an incident:
// healed (its heal signal came, or the actuator saw the VM healthy) or not
// (the watch ran out, the action failed, timed out or was refused). This, not
// a verb's success, is whether the step healed the VM.
struct HealVerdict {
  std::string decision_id;  // the step's decision (for verbs also its action id)
  Time at{};
  std::string rule;
  std::string vm;
  bool healed = false;
  std::string detail;         // how the heal was seen, or why the step did not heal
  std::string next;           // not healed: the next ladder step's decision id; "" when none
  EvidenceRef evidence = 0;   // healed by an event: the event that showed it
};

class DecisionSink {
 public:
  virtual ~DecisionSink() = default;
  virtual void on_decision(const Decision& d) = 0;
  // Called once per step that ends (healed, or not healed and climbing or
  // giving up), before the next step's decision when it climbs. Optional.
  virtual void on_heal_verdict(const HealVerdict&) {}
};

}  // namespace medic::rules
