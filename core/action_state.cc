#include "core/action_state.h"

#include <string>

namespace medic {
namespace {

template <typename Enum, size_t N>
std::string known_names(const Enum (&all)[N], const char* (*name)(Enum)) {
  std::string out;
  for (Enum e : all) out += (out.empty() ? "" : ", ") + std::string(name(e));
  return out;
}

}  // namespace

const char* state_name(ActionState s) {
  switch (s) {
    case ActionState::kProposed: return "proposed";
    case ActionState::kSuppressed: return "suppressed";
    case ActionState::kPendingApproval: return "pending_approval";
    case ActionState::kApproved: return "approved";
    case ActionState::kDenied: return "denied";
    case ActionState::kExpired: return "expired";
    case ActionState::kDispatched: return "dispatched";
    case ActionState::kAcked: return "acked";
    case ActionState::kSucceeded: return "succeeded";
    case ActionState::kFailed: return "failed";
    case ActionState::kTimedOut: return "timed_out";
    case ActionState::kRejected: return "rejected";
  }
  return "unknown";
}

Result<ActionState> parse_action_state(std::string_view name) {
  for (ActionState s : kAllActionStates) {
    if (name == state_name(s)) return s;
  }
  return invalid_argument("unknown action state \"" + std::string(name) + "\" (known: " +
                          known_names(kAllActionStates, &state_name) + ")");
}

bool is_terminal(ActionState s) {
  switch (s) {
    case ActionState::kSuppressed:
    case ActionState::kDenied:
    case ActionState::kExpired:
    case ActionState::kSucceeded:
    case ActionState::kFailed:
    case ActionState::kTimedOut:
    case ActionState::kRejected: return true;
    default: return false;
  }
}

bool is_result(ActionState s) {
  return s == ActionState::kSucceeded || s == ActionState::kFailed ||
         s == ActionState::kRejected || s == ActionState::kTimedOut;
}

bool transition_allowed(std::optional<ActionState> from, ActionState to) {
  using S = ActionState;
  if (!from) return to == S::kProposed;
  switch (*from) {
    case S::kProposed:
      return to == S::kSuppressed || to == S::kPendingApproval || to == S::kDispatched ||
             to == S::kExpired;
    case S::kPendingApproval: return to == S::kApproved || to == S::kDenied || to == S::kExpired;
    case S::kApproved:
      return to == S::kDispatched || to == S::kExpired || to == S::kSuppressed;
    case S::kDispatched:
      return to == S::kAcked || to == S::kExpired || is_result(to);
    case S::kAcked: return is_result(to);
    default: return false;  // terminal
  }
}

const char* outcome_name(DecisionOutcome o) {
  switch (o) {
    case DecisionOutcome::kProposed: return "proposed";
    case DecisionOutcome::kSuppressed: return "suppressed";
    case DecisionOutcome::kPendingApproval: return "pending_approval";
    case DecisionOutcome::kDryRun: return "dry_run";
  }
  return "unknown";
}

Result<DecisionOutcome> parse_decision_outcome(std::string_view name) {
  for (DecisionOutcome o : kAllDecisionOutcomes) {
    if (name == outcome_name(o)) return o;
  }
  return invalid_argument("unknown decision outcome \"" + std::string(name) + "\" (known: " +
                          known_names(kAllDecisionOutcomes, &outcome_name) + ")");
}

}  // namespace medic
