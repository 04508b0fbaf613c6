// The one vocabulary of an action's life, shared by rules (results fed back),
// audit (stored transitions), actuators (dispatch events) and node (the
// pipeline that connects them), and of what a decision decided.
//
// Contract:
// - The names are the stored and printed form (audit rows, `medic audit`,
//   rule-test files); they never change once written.
// - parse_action_state / parse_decision_outcome are strict: a name that is not
//   one of the names below is an error, never a default.
// - The lifecycle:
//     proposed -> suppressed
//     proposed -> pending_approval -> approved | denied | expired
//     approved -> suppressed (stopped by a fact no approval overrides: a
//       silent host, another action on the VM)
//     proposed | approved -> dispatched -> acked -> succeeded | failed | timed_out | rejected
//   plus the shortcuts an unreliable network makes real: proposed/approved ->
//   expired, dispatched -> expired (never acknowledged before its expiry) and
//   dispatched -> succeeded | failed | timed_out | rejected (ack lost).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/status.h"

namespace medic {

// Where an action stands. The numbers are stable (stored by the benches'
// fixtures and compared in tests); the names are what the audit log stores.
enum class ActionState : uint8_t {
  kProposed = 1,
  kSuppressed = 2,
  kPendingApproval = 3,
  kApproved = 4,
  kDenied = 5,
  kExpired = 6,
  kDispatched = 7,
  kAcked = 8,
  kSucceeded = 9,
  kFailed = 10,
  kTimedOut = 11,
  kRejected = 12,
};
inline constexpr ActionState kAllActionStates[] = {
    ActionState::kProposed,  ActionState::kSuppressed, ActionState::kPendingApproval,
    ActionState::kApproved,  ActionState::kDenied,     ActionState::kExpired,
    ActionState::kDispatched, ActionState::kAcked,     ActionState::kSucceeded,
    ActionState::kFailed,    ActionState::kTimedOut,   ActionState::kRejected,
};

// "proposed", "pending_approval", "timed_out", ...
const char* state_name(ActionState s);
// kInvalidArgument naming the unknown value and the known ones.
Result<ActionState> parse_action_state(std::string_view name);
// suppressed, denied, expired, succeeded, failed, timed_out, rejected.
bool is_terminal(ActionState s);
// What an actuator can report as the end of an executed (or refused) action:
// succeeded, failed, rejected, timed_out. The rules engine takes only these.
bool is_result(ActionState s);
// Whether an action may move from `from` (nullopt: the action does not exist
// yet) to `to`.
bool transition_allowed(std::optional<ActionState> from, ActionState to);

// What the engine decided to do with a rule firing: a separate concept from an
// action's state (a dry-run decision creates no action at all).
enum class DecisionOutcome : uint8_t {
  kProposed = 1,         // an action was proposed and will be dispatched
  kSuppressed = 2,       // a safety policy stopped it (policy + reason say which and why)
  kPendingApproval = 3,  // the rule needs an operator approval first
  kDryRun = 4,           // the rule is in dry-run mode: recorded, never executed
};
inline constexpr DecisionOutcome kAllDecisionOutcomes[] = {
    DecisionOutcome::kProposed, DecisionOutcome::kSuppressed, DecisionOutcome::kPendingApproval,
    DecisionOutcome::kDryRun};

// "proposed", "suppressed", "pending_approval", "dry_run".
const char* outcome_name(DecisionOutcome o);
Result<DecisionOutcome> parse_decision_outcome(std::string_view name);

}  // namespace medic
