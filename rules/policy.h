// A safety policy: one rule of the engine's safety argument ("no more than
// two actions in flight per host"), as one class that owns the state it
// needs and answers, for one ladder step, pass / suppress / hold / wait /
// dry_run with a reason (rules/decision.h).
//
// Contract:
// - check() is called by the PolicyChain (rules/policy_chain.h) in chain
//   order until one does not pass. It may emit a notice (a Decision of its
//   own, through the Notices it was given) but changes no incident.
// - The on_*() hooks tell every policy what became of a step that passed
//   the whole chain, so that each keeps its own books (cooldown: the last
//   action; budget: action times; concurrency: slots in use).
// - When the step was approved by an operator (PolicyContext::approved_by),
//   a policy that a person's yes overrides (storm guard, cooldown, budget,
//   silence) passes; one that facts rule (host silent, VM in flight, slots)
//   still answers.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "rules/decision.h"
#include "rules/rule.h"

namespace medic::rules {

struct Incident;

// What a policy may read about the step at hand.
struct PolicyContext {
  const Rule& rule;
  const Incident& incident;
  uint32_t vm;    // Fleet index
  uint32_t host;  // Fleet index
  Step step;
  int64_t now;  // ns since epoch
  // The decision as drafted (rule, VM, evidence, trigger), for notices.
  const Decision& draft;
  // Who approved this step; empty when nobody did.
  std::string_view approved_by;

  bool verb() const { return step != Step::kNotify; }
  bool approved() const { return !approved_by.empty(); }
};

// Where policies send notices of their own (a storm froze a host, a VM used
// its budget). The receiver stamps id and time and emits them.
using Notices = std::function<void(Decision)>;

class SafetyPolicy {
 public:
  virtual ~SafetyPolicy() = default;
  virtual Policy id() const = 0;
  // Whether it has a say on notify steps (most policies guard verbs only).
  virtual bool guards_notify() const { return false; }
  // Whether it keeps books of remediation only (cooldown, budget): a clone
  // or a delete (request_only steps) neither meets it nor counts in it, so
  // a new VM that fails at once is healed at once, and a delete right
  // after a clone is not "too soon".
  virtual bool books_remediation() const { return false; }
  virtual PolicyCheck check(const PolicyContext& c) = 0;

  // A verb on `vm` (on `host`) was dispatched at `now`.
  virtual void on_dispatched(uint32_t /*vm*/, uint32_t /*host*/, int64_t /*now*/) {}
  // The action on `vm` (on `host`) finished: a result, or its timeout.
  virtual void on_finished(uint32_t /*vm*/, uint32_t /*host*/) {}
  // A step on `vm` started (+1) or stopped (-1) waiting for approval.
  virtual void on_awaiting(uint32_t /*vm*/, int /*delta*/) {}

 protected:
  PolicyCheck pass() const { return {id(), Verdict::kPass, {}}; }
  PolicyCheck answer(Verdict v, std::string reason) const { return {id(), v, std::move(reason)}; }
  // A hold that lifts by itself at `until_ns`.
  PolicyCheck hold_until(int64_t until_ns, std::string reason) const {
    return {id(), Verdict::kHold, std::move(reason), until_ns};
  }
};

}  // namespace medic::rules
