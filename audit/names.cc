// Names of outcomes and states, and the lifecycle's legal moves.
#include "audit/log.h"

namespace medic::audit {

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kProposed: return "proposed";
    case Outcome::kSuppressed: return "suppressed";
    case Outcome::kPendingApproval: return "pending_approval";
    case Outcome::kDryRun: return "dry_run";
  }
  return "unknown";
}

std::optional<Outcome> outcome_from_name(std::string_view name) {
  for (Outcome o :
       {Outcome::kProposed, Outcome::kSuppressed, Outcome::kPendingApproval, Outcome::kDryRun}) {
    if (name == outcome_name(o)) return o;
  }
  return std::nullopt;
}

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

std::optional<ActionState> state_from_name(std::string_view name) {
  for (int i = 1; i <= 12; ++i) {
    auto s = static_cast<ActionState>(i);
    if (name == state_name(s)) return s;
  }
  return std::nullopt;
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

bool transition_allowed(std::optional<ActionState> from, ActionState to) {
  using S = ActionState;
  if (!from) return to == S::kProposed;
  switch (*from) {
    case S::kProposed:
      return to == S::kSuppressed || to == S::kPendingApproval || to == S::kDispatched ||
             to == S::kExpired;
    case S::kPendingApproval: return to == S::kApproved || to == S::kDenied || to == S::kExpired;
    case S::kApproved: return to == S::kDispatched || to == S::kExpired;
    case S::kDispatched:
      return to == S::kAcked || to == S::kExpired || to == S::kSucceeded || to == S::kFailed ||
             to == S::kTimedOut || to == S::kRejected;
    case S::kAcked:
      return to == S::kSucceeded || to == S::kFailed || to == S::kTimedOut || to == S::kRejected;
    default: return false;  // terminal
  }
}

Record Record::of(Evidence e) {
  Record r;
  r.type = Type::kEvidence;
  r.evidence = std::move(e);
  return r;
}

Record Record::of(Decision d) {
  Record r;
  r.type = Type::kDecision;
  r.decision = std::move(d);
  return r;
}

Record Record::of(Transition t) {
  Record r;
  r.type = Type::kTransition;
  r.transition = std::move(t);
  return r;
}

Record Record::of(OperatorRequest q) {
  Record r;
  r.type = Type::kRequest;
  r.request = std::move(q);
  return r;
}

}  // namespace medic::audit
