// The rule expression language: a small typed language compiled once when
// rules load, so a rule that loads never meets a type error at run time.
//
//   expr    := or ;  or := and ("or" and)* ;  and := not ("and" not)*
//   not     := "not" not | cmp
//   cmp     := primary [ (== != < <= > >=) primary | ["not"] "in" list | "matches" STRING ]
//   primary := literal | field | "(" expr ")"
//   list    := "[" [literal ("," literal)*] "]"
//   literal := STRING | NUMBER | DURATION | true | false
//   field   := vm.id | vm.host | vm.state | vm.labels.KEY | vm.labels["KEY"] | ...
//
// Types are bool, number, string and duration; comparisons need equal types,
// ordering needs numbers or durations, `matches` takes a regular expression
// literal (compiled at load). Which fields exist depends on the trigger: a rule
// on `vm.heartbeat` cannot read probe.status. Errors carry a byte offset into
// the expression text; the loader maps it to file:line:col.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "medic/v1/events.pb.h"
#include "rules/event_types.h"

namespace medic::rules {

enum class Type : uint8_t { kBool, kNumber, kString, kDuration };
const char* type_name(Type t);

// What the engine knows about one VM, kept between events. Compact on
// purpose: the engine holds one per VM of the fleet.
struct VmFacts {
  std::string id;
  std::string_view host;                                    // owned by the engine's host table
  std::vector<std::pair<std::string, std::string>> labels;  // from the last state report
  int64_t last_heartbeat_ns = 0;
  int64_t uptime_ns = 0;
  uint64_t rss_bytes = 0;
  float cpu_percent = 0;
  medic::v1::VmState state = medic::v1::VM_STATE_UNSPECIFIED;

  std::string_view label(std::string_view key) const {
    for (const auto& kv : labels) {
      if (kv.first == key) return kv.second;
    }
    return {};
  }
};

// What an expression is evaluated against. `event` is null for absence
// triggers (nothing arrived: that is the point).
struct EvalInput {
  const VmFacts* vm = nullptr;
  const medic::v1::Event* event = nullptr;
  EventType type = EventType::kVmState;
  Time now{};
};

// Where an expression is used, which decides the fields it may read.
struct Scope {
  // The event types the rule can be evaluated on; empty for an absence
  // trigger (no event).
  std::vector<EventType> events;
  // False when the rule's trigger names no event type (an error reported
  // elsewhere): every field is then taken as available, so that one mistake
  // does not come back as an error on each field the condition reads.
  bool trigger_known = true;
};

struct ExprError {
  size_t offset = 0;  // byte offset into the expression text
  std::string message;
  bool syntax = false;  // a parse error (else a type or name error)
};

struct Node;

// A condition every match needs: `vm.labels.KEY == "v"` or
// `vm.labels.KEY in ["v", ...]` as the whole expression or as one conjunct of
// its top-level `and`. The rule set indexes rules by it, so an event meets
// only the rules whose label value its VM has.
struct LabelRequirement {
  std::string key;
  std::vector<std::string> values;  // one of them must equal the label ("" = label absent)
};

// A compiled expression. Cheap to evaluate, immutable, shareable.
class Expr {
 public:
  Expr() = default;
  explicit Expr(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  bool empty() const { return root_ == nullptr; }
  // REQUIRES: !empty() and the expression compiled to bool.
  bool eval(const EvalInput& in) const;
  // True when constant folding or a simple contradiction check (x == "a" and
  // x == "b") proves the expression is always false.
  bool never_true() const;
  // The most selective label requirement among the top-level conjuncts (the
  // one with the fewest values), or nullopt when there is none.
  std::optional<LabelRequirement> required_label() const;
  // Every label the expression reads (vm.labels.KEY), in text order, with
  // the byte offset of the field in the expression text.
  struct LabelRead {
    std::string key;
    size_t offset = 0;
  };
  std::vector<LabelRead> labels_read() const;
  const Node* root() const { return root_.get(); }

 private:
  std::shared_ptr<const Node> root_;
};

// Compiles `text` as a bool expression in `scope`. On failure returns every
// error found (a syntax error stops parsing; type errors are all reported).
struct CompileResult {
  Expr expr;
  std::vector<ExprError> errors;
  bool ok() const { return errors.empty(); }
};
CompileResult compile_expr(std::string_view text, const Scope& scope);

}  // namespace medic::rules
