// Inside expressions (rules/expr.h): the fields they may read, the syntax
// tree the parser builds, and the stages between text and a compiled Expr.
// Not for use outside rules/expr*.cc.
//
// Stages: lex (rules/expr_lexer.h) -> parse (expr_parser.cc) -> type check
// (expr_check.cc) -> evaluate (expr_eval.cc); folding (expr_fold.cc) finds
// conditions that can never hold and the label a rule requires.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "rules/expr.h"

namespace medic::rules {

enum class FieldId : uint8_t {
  kVmId,
  kVmHost,
  kVmState,
  kVmLabel,
  kVmCpu,
  kVmRss,
  kVmUptime,
  kVmHeartbeatAge,
  kEventType,
  kEventDetail,
  kProbeName,
  kProbeOk,
  kProbeStatus,
  kProbeLatency,
  kProbeReason,
  kHeartbeatSource,
  kHeartbeatCounter,
  kAlertName,
  kAlertLabel,       // alert.labels.KEY
  kAlertAnnotation,  // alert.annotations.KEY
};

// Which triggers provide a field.
enum class Avail : uint8_t { kAlways, kEvent, kLifecycle, kProbe, kHeartbeat, kAlert };

struct FieldDef {
  std::string_view name;
  FieldId id;
  Type type;
  Avail avail;
};

// vm.labels, alert.labels, alert.annotations: read with a key.
bool is_map_field(FieldId id);
// The field of that name (as written: "vm.id"); null when there is none.
const FieldDef* find_field(std::string_view name);
// "; did you mean vm.id?" for a near miss, else "".
std::string suggest_field(std::string_view name);

enum class Op : uint8_t { kLit, kField, kNot, kAnd, kOr, kCmp, kIn, kMatches };
enum class Cmp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

struct Literal {
  Type type = Type::kBool;
  bool b = false;
  double num = 0;
  int64_t ns = 0;
  std::string str;
  size_t offset = 0;

  bool operator==(const Literal& o) const {
    if (type != o.type) return false;
    switch (type) {
      case Type::kBool:
        return b == o.b;
      case Type::kNumber:
        return num == o.num;
      case Type::kString:
        return str == o.str;
      case Type::kDuration:
        return ns == o.ns;
    }
    return false;
  }
};

struct Node {
  Op op = Op::kLit;
  Type type = Type::kBool;
  size_t offset = 0;
  Literal lit;                     // kLit
  FieldId field = FieldId::kVmId;  // kField
  std::string field_name;          // kField: as written, vm.labels.KEY resolved
  std::string label;               // kField of a map (kVmLabel, kAlertLabel, ...): its key
  Cmp cmp = Cmp::kEq;              // kCmp
  bool negate = false;             // kIn: "not in"
  std::vector<Literal> list;       // kIn
  std::unique_ptr<std::regex> re;  // kMatches
  std::unique_ptr<Node> lhs, rhs;
  // Stands in for an unknown field or function, already reported: a bool
  // literal that the checker never blames, so one mistake is one error.
  bool unknown = false;
};

// Parses `text`; null (with errors appended) when it does not parse. Unknown
// fields and functions are reported and replaced by an `unknown` node so
// checking can go on.
std::unique_ptr<Node> parse_expr(std::string_view text, const Scope& scope,
                                 std::vector<ExprError>* errors);
// Sets every node's type bottom-up; appends each mismatch once.
void check_expr(Node& root, std::vector<ExprError>* errors);
// Evaluates a node of type bool.
bool eval_node(const Node& n, const EvalInput& in);
// What a node is, in words, for errors.
std::string describe_node(const Node& n);

}  // namespace medic::rules
