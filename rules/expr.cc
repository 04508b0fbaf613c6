// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside
// <regex>'s std::function; the pragma must come before <regex> is included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "rules/expr.h"

#include "rules/expr_ast.h"

namespace medic::rules {

namespace {

void collect_labels(const Node* n, std::vector<Expr::LabelRead>* out) {
  if (!n) return;
  collect_labels(n->lhs.get(), out);
  if (n->op == Op::kField && n->field == FieldId::kVmLabel) out->push_back({n->label, n->offset});
  collect_labels(n->rhs.get(), out);
}

}  // namespace

std::vector<Expr::LabelRead> Expr::labels_read() const {
  std::vector<LabelRead> out;
  collect_labels(root_.get(), &out);
  return out;
}

CompileResult compile_expr(std::string_view text, const Scope& scope) {
  CompileResult out;
  auto root = parse_expr(text, scope, &out.errors);
  if (!root) {
    if (out.errors.empty()) out.errors.push_back({0, "empty expression", true});
    return out;
  }
  check_expr(*root, &out.errors);
  if (out.errors.empty() && root->type != Type::kBool) {
    out.errors.push_back({root->offset, "a condition must be true or false, got " +
                                            describe_node(*root) +
                                            "; compare it with == or use in / matches"});
  }
  if (out.ok()) out.expr = Expr(std::shared_ptr<const Node>(std::move(root)));
  return out;
}

}  // namespace medic::rules
