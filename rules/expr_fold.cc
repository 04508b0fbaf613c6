// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside
// <regex>'s std::function; the pragma must come before <regex> is included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "rules/expr_ast.h"

namespace medic::rules {

namespace {

// 1 always true, 0 always false, -1 depends on the input.
int truth(const Node& n);

// Conjuncts of an and-chain.
void conjuncts(const Node& n, std::vector<const Node*>* out) {
  if (n.op == Op::kAnd) {
    conjuncts(*n.lhs, out);
    conjuncts(*n.rhs, out);
  } else {
    out->push_back(&n);
  }
}

bool same_field(const Node& a, const Node& b) {
  return a.op == Op::kField && b.op == Op::kField && a.field == b.field && a.label == b.label;
}

// field == literal, in either order.
bool field_eq(const Node& n, const Node** field, const Literal** lit, bool* ne) {
  if (n.op != Op::kCmp || (n.cmp != Cmp::kEq && n.cmp != Cmp::kNe)) return false;
  if (n.lhs->op == Op::kField && n.rhs->op == Op::kLit) {
    *field = n.lhs.get();
    *lit = &n.rhs->lit;
  } else if (n.rhs->op == Op::kField && n.lhs->op == Op::kLit) {
    *field = n.rhs.get();
    *lit = &n.lhs->lit;
  } else {
    return false;
  }
  *ne = n.cmp == Cmp::kNe;
  return true;
}

bool contradicts(const Node& n) {
  std::vector<const Node*> cs;
  conjuncts(n, &cs);
  for (size_t i = 0; i < cs.size(); ++i) {
    for (size_t j = i + 1; j < cs.size(); ++j) {
      const Node *fa, *fb;
      const Literal *la, *lb;
      bool na, nb;
      if (!field_eq(*cs[i], &fa, &la, &na) || !field_eq(*cs[j], &fb, &lb, &nb)) continue;
      if (!same_field(*fa, *fb)) continue;
      if (!na && !nb && !(*la == *lb)) return true;  // x == a and x == b
      if (na != nb && *la == *lb) return true;       // x == a and x != a
    }
  }
  return false;
}

int truth(const Node& n) {
  switch (n.op) {
    case Op::kLit:
      return n.type == Type::kBool ? (n.lit.b ? 1 : 0) : -1;
    case Op::kField:
      return -1;
    case Op::kNot: {
      int t = truth(*n.lhs);
      return t < 0 ? -1 : 1 - t;
    }
    case Op::kAnd: {
      int a = truth(*n.lhs), b = truth(*n.rhs);
      if (a == 0 || b == 0 || contradicts(n)) return 0;
      return a == 1 && b == 1 ? 1 : -1;
    }
    case Op::kOr: {
      int a = truth(*n.lhs), b = truth(*n.rhs);
      if (a == 1 || b == 1) return 1;
      return a == 0 && b == 0 ? 0 : -1;
    }
    case Op::kCmp:
      if (n.lhs->op == Op::kLit && n.rhs->op == Op::kLit) {
        EvalInput none;
        return eval_node(n, none) ? 1 : 0;
      }
      return -1;
    case Op::kIn:
      if (n.list.empty()) return n.negate ? 1 : 0;
      return -1;
    case Op::kMatches:
      return -1;
  }
  return -1;
}

}  // namespace

bool Expr::never_true() const { return root_ && truth(*root_) == 0; }

std::optional<LabelRequirement> Expr::required_label() const {
  if (!root_) return std::nullopt;
  std::vector<const Node*> cs;
  conjuncts(*root_, &cs);
  std::optional<LabelRequirement> best;
  for (const Node* c : cs) {
    LabelRequirement req;
    const Node* field = nullptr;
    const Literal* lit = nullptr;
    bool ne = false;
    if (field_eq(*c, &field, &lit, &ne)) {
      if (ne) continue;
      req.values.push_back(lit->str);
    } else if (c->op == Op::kIn && !c->negate && c->lhs->op == Op::kField) {
      field = c->lhs.get();
      for (const auto& l : c->list) req.values.push_back(l.str);
    } else {
      continue;
    }
    if (field->field != FieldId::kVmLabel) continue;
    req.key = field->label;
    if (!best || req.values.size() < best->values.size()) best = std::move(req);
  }
  return best;
}

}  // namespace medic::rules
