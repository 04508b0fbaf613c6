// Record constructors, and the strict reading of stored names (the names
// themselves: core/action_state.h).
#include "audit/log.h"
#include "audit/sqlite_db.h"

namespace medic::audit {

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

Record Record::of(HealVerdict v) {
  Record r;
  r.type = Type::kVerdict;
  r.verdict = std::move(v);
  return r;
}

namespace internal {

Result<ActionState> stored_state(std::string_view name, int64_t seq) {
  auto s = parse_action_state(name);
  if (!s.ok()) return s.status().with_context("audit row " + std::to_string(seq));
  return s;
}

Result<DecisionOutcome> stored_outcome(std::string_view name, int64_t seq) {
  auto o = parse_decision_outcome(name);
  if (!o.ok()) return o.status().with_context("audit row " + std::to_string(seq));
  return o;
}

}  // namespace internal

}  // namespace medic::audit
