// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside
// <regex>'s std::function; the pragma must come before <regex> is included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "core/text.h"
#include "rules/expr_ast.h"

namespace medic::rules {

namespace {

class Checker {
 public:
  explicit Checker(std::vector<ExprError>* errors) : errors_(errors) {}

  // Sets n.type bottom-up; reports each mismatch once.
  void check(Node& n) {
    switch (n.op) {
      case Op::kLit:
      case Op::kField:
        return;
      case Op::kNot:
        check(*n.lhs);
        need_bool(*n.lhs, "not");
        n.type = Type::kBool;
        return;
      case Op::kAnd:
      case Op::kOr: {
        check(*n.lhs);
        check(*n.rhs);
        const char* op = n.op == Op::kAnd ? "and" : "or";
        need_bool(*n.lhs, op);
        need_bool(*n.rhs, op);
        n.type = Type::kBool;
        return;
      }
      case Op::kCmp:
        check_cmp(n);
        return;
      case Op::kIn:
        check_in(n);
        return;
      case Op::kMatches:
        check(*n.lhs);
        if (n.lhs->type != Type::kString && !n.lhs->unknown) {
          err(n.lhs->offset, "matches needs a string on its left, got " + what(*n.lhs));
        }
        n.type = Type::kBool;
        return;
    }
  }

  static std::string what(const Node& n) {
    std::string t = type_name(n.type);
    if (n.op == Op::kField) return n.field_name + " (a " + t + ")";
    if (n.op == Op::kLit) return "a " + t + " literal";
    return "a " + t;
  }

 private:
  void err(size_t off, std::string m) { errors_->push_back({off, std::move(m)}); }

  void need_bool(const Node& n, const char* op) {
    if (n.type != Type::kBool && !n.unknown) {
      err(n.offset, std::string(op) + " needs true/false operands, got " + what(n) +
                        "; compare it, e.g. " + (n.op == Op::kField ? n.field_name : "x") +
                        " == ...");
    }
  }

  static const char* cmp_text(Cmp c) {
    switch (c) {
      case Cmp::kEq:
        return "==";
      case Cmp::kNe:
        return "!=";
      case Cmp::kLt:
        return "<";
      case Cmp::kLe:
        return "<=";
      case Cmp::kGt:
        return ">";
      case Cmp::kGe:
        return ">=";
    }
    return "?";
  }

  // Known vocabularies: a literal compared with vm.state or event.type must be
  // a real state or event type, so a typo is a load error, not a dead rule.
  void check_vocabulary(const Node& field, const Literal& lit) {
    if (field.op != Op::kField || lit.type != Type::kString) return;
    if (field.field == FieldId::kVmState && !is_vm_state_name(lit.str)) {
      err(lit.offset, unknown_name("VM state", lit.str, vm_state_names()));
    }
    if (field.field == FieldId::kEventType && !event_type_from_name(lit.str)) {
      err(lit.offset, unknown_name("event type", lit.str, event_type_names()));
    }
  }

  void check_cmp(Node& n) {
    check(*n.lhs);
    check(*n.rhs);
    n.type = Type::kBool;
    if (n.lhs->unknown || n.rhs->unknown) return;  // already reported
    Type a = n.lhs->type, b = n.rhs->type;
    if (a != b) {
      std::string hint;
      if ((a == Type::kDuration && b == Type::kNumber) ||
          (a == Type::kNumber && b == Type::kDuration)) {
        hint = "; write a duration with its unit, such as 30s";
      } else if ((a == Type::kDuration || b == Type::kDuration) &&
                 (a == Type::kString || b == Type::kString)) {
        hint = "; write the duration without quotes, such as 30s";
      }
      err(n.offset, std::string("cannot compare ") + what(*n.lhs) + " with " + what(*n.rhs) +
                        " using " + cmp_text(n.cmp) + hint);
      return;
    }
    if (n.cmp != Cmp::kEq && n.cmp != Cmp::kNe && a != Type::kNumber && a != Type::kDuration) {
      err(n.offset,
          std::string(cmp_text(n.cmp)) + " needs numbers or durations, got " + what(*n.lhs));
      return;
    }
    if (n.rhs->op == Op::kLit) check_vocabulary(*n.lhs, n.rhs->lit);
    if (n.lhs->op == Op::kLit) check_vocabulary(*n.rhs, n.lhs->lit);
  }

  void check_in(Node& n) {
    check(*n.lhs);
    n.type = Type::kBool;
    if (n.lhs->unknown) return;  // already reported
    for (const auto& l : n.list) {
      if (l.type != n.lhs->type) {
        err(l.offset, std::string("list item is a ") + type_name(l.type) + " but " + what(*n.lhs) +
                          " needs " + type_name(n.lhs->type) + " items");
      } else {
        check_vocabulary(*n.lhs, l);
      }
    }
  }

  std::vector<ExprError>* errors_;
};

}  // namespace

void check_expr(Node& root, std::vector<ExprError>* errors) {
  Checker c(errors);
  c.check(root);
}

std::string describe_node(const Node& n) { return Checker::what(n); }

}  // namespace medic::rules
