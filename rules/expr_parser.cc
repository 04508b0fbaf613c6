// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside
// <regex>'s std::function; the pragma must come before <regex> is included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <optional>

#include "rules/expr_ast.h"
#include "rules/expr_lexer.h"

namespace medic::rules {

namespace {

class Parser {
 public:
  Parser(std::string_view text, const Scope& scope, std::vector<ExprError>* errors)
      : lex_(text), scope_(scope), errors_(errors) {
    advance();
  }

  std::unique_ptr<Node> parse_all() {
    auto n = parse_or();
    if (!failed_ && tok_.kind != Tok::kEnd) {
      fail(tok_.offset, "expected and, or, or the end of the expression, got " + describe(tok_));
    }
    return failed_ ? nullptr : std::move(n);
  }

 private:
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd:
        return "the end of the expression";
      case Tok::kString:
        return "the string \"" + t.text + "\"";
      case Tok::kIdent:
        return "\"" + t.text + "\"";
      default:
        return "\"" + t.text + "\"";
    }
  }

  void advance() {
    tok_ = lex_.next();
    if (tok_.kind == Tok::kError) fail(tok_.offset, tok_.text);
  }

  void fail(size_t offset, std::string msg) {
    if (failed_) return;
    failed_ = true;
    errors_->push_back({offset, std::move(msg), true});
  }

  bool is_kw(const char* kw) const { return tok_.kind == Tok::kIdent && tok_.text == kw; }

  std::unique_ptr<Node> binary(Op op, std::unique_ptr<Node> l, std::unique_ptr<Node> r,
                               size_t off) {
    auto n = std::make_unique<Node>();
    n->op = op;
    n->offset = off;
    n->lhs = std::move(l);
    n->rhs = std::move(r);
    return n;
  }

  std::unique_ptr<Node> parse_or() {
    auto l = parse_and();
    while (!failed_ && is_kw("or")) {
      size_t off = tok_.offset;
      advance();
      auto r = parse_and();
      if (failed_) return nullptr;
      l = binary(Op::kOr, std::move(l), std::move(r), off);
    }
    return l;
  }

  std::unique_ptr<Node> parse_and() {
    auto l = parse_not();
    while (!failed_ && is_kw("and")) {
      size_t off = tok_.offset;
      advance();
      auto r = parse_not();
      if (failed_) return nullptr;
      l = binary(Op::kAnd, std::move(l), std::move(r), off);
    }
    return l;
  }

  std::unique_ptr<Node> parse_not() {
    if (is_kw("not")) {
      size_t off = tok_.offset;
      advance();
      auto inner = parse_not();
      if (failed_) return nullptr;
      return binary(Op::kNot, std::move(inner), nullptr, off);
    }
    return parse_cmp();
  }

  std::unique_ptr<Node> parse_cmp() {
    auto l = parse_primary();
    if (failed_) return nullptr;
    size_t off = tok_.offset;
    Cmp c;
    switch (tok_.kind) {
      case Tok::kEq:
        c = Cmp::kEq;
        break;
      case Tok::kNe:
        c = Cmp::kNe;
        break;
      case Tok::kLt:
        c = Cmp::kLt;
        break;
      case Tok::kLe:
        c = Cmp::kLe;
        break;
      case Tok::kGt:
        c = Cmp::kGt;
        break;
      case Tok::kGe:
        c = Cmp::kGe;
        break;
      default:
        if (is_kw("in")) return parse_in(std::move(l), false);
        if (is_kw("not")) {
          advance();
          if (!is_kw("in")) {
            fail(tok_.offset, "expected in after not, got " + describe(tok_));
            return nullptr;
          }
          return parse_in(std::move(l), true);
        }
        if (is_kw("matches")) return parse_matches(std::move(l));
        return l;
    }
    advance();
    auto r = parse_primary();
    if (failed_) return nullptr;
    auto n = binary(Op::kCmp, std::move(l), std::move(r), off);
    n->cmp = c;
    return n;
  }

  std::unique_ptr<Node> parse_in(std::unique_ptr<Node> l, bool negate) {
    auto n = std::make_unique<Node>();
    n->op = Op::kIn;
    n->offset = tok_.offset;
    n->negate = negate;
    n->lhs = std::move(l);
    advance();
    if (tok_.kind != Tok::kLBracket) {
      fail(tok_.offset, "expected [ to start the list after in, got " + describe(tok_));
      return nullptr;
    }
    advance();
    while (!failed_ && tok_.kind != Tok::kRBracket) {
      auto lit = literal();
      if (!lit) {
        fail(tok_.offset,
             "expected a literal (string, number, duration, true or false) in the list, got " +
                 describe(tok_));
        return nullptr;
      }
      n->list.push_back(*lit);
      advance();
      if (tok_.kind == Tok::kComma) {
        advance();
      } else if (tok_.kind != Tok::kRBracket) {
        fail(tok_.offset, "expected , or ] in the list, got " + describe(tok_));
        return nullptr;
      }
    }
    if (failed_) return nullptr;
    advance();
    return n;
  }

  std::unique_ptr<Node> parse_matches(std::unique_ptr<Node> l) {
    auto n = std::make_unique<Node>();
    n->op = Op::kMatches;
    n->offset = tok_.offset;
    n->lhs = std::move(l);
    advance();
    if (tok_.kind != Tok::kString) {
      fail(tok_.offset,
           "expected a regular expression in quotes after matches, got " + describe(tok_));
      return nullptr;
    }
    n->lit.type = Type::kString;
    n->lit.str = tok_.text;
    n->lit.offset = tok_.offset;
    try {
      n->re =
          std::make_unique<std::regex>(tok_.text, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      errors_->push_back(
          {tok_.offset, "invalid regular expression \"" + tok_.text + "\": " + e.what()});
      n->re = std::make_unique<std::regex>("");
    }
    advance();
    return n;
  }

  std::optional<Literal> literal() const {
    Literal l;
    l.offset = tok_.offset;
    switch (tok_.kind) {
      case Tok::kString:
        l.type = Type::kString;
        l.str = tok_.text;
        return l;
      case Tok::kNumber:
        l.type = Type::kNumber;
        l.num = tok_.num;
        return l;
      case Tok::kDuration:
        l.type = Type::kDuration;
        l.ns = tok_.ns;
        return l;
      case Tok::kIdent:
        if (tok_.text == "true" || tok_.text == "false") {
          l.type = Type::kBool;
          l.b = tok_.text == "true";
          return l;
        }
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }

  std::unique_ptr<Node> parse_primary() {
    if (tok_.kind == Tok::kLParen) {
      advance();
      auto n = parse_or();
      if (failed_) return nullptr;
      if (tok_.kind != Tok::kRParen) {
        fail(tok_.offset, "expected ) to close the parenthesis, got " + describe(tok_));
        return nullptr;
      }
      advance();
      return n;
    }
    if (auto lit = literal()) {
      auto n = std::make_unique<Node>();
      n->op = Op::kLit;
      n->offset = tok_.offset;
      n->lit = *lit;
      n->type = lit->type;
      advance();
      return n;
    }
    if (tok_.kind == Tok::kIdent) {
      static const char* kKeywords[] = {"and", "or", "not", "in", "matches"};
      for (const char* kw : kKeywords) {
        if (tok_.text == kw) {
          fail(tok_.offset, "expected a field or a value, got the keyword " + tok_.text);
          return nullptr;
        }
      }
      return parse_field();
    }
    fail(tok_.offset, "expected a field or a value, got " + describe(tok_));
    return nullptr;
  }

  // MAP.KEY or MAP["KEY"] after a map field's name (vm.labels, alert.labels,
  // alert.annotations); the quoted key may hold any character.
  std::unique_ptr<Node> parse_map_key(std::unique_ptr<Node> n, const FieldDef& def) {
    const std::string map(def.name);
    if (tok_.kind == Tok::kDot) {
      advance();
      if (tok_.kind != Tok::kIdent) {
        fail(tok_.offset, "expected a key after " + map + "., got " + describe(tok_));
        return nullptr;
      }
      n->label = tok_.text;
      advance();
    } else if (tok_.kind == Tok::kLBracket) {
      advance();
      if (tok_.kind != Tok::kString) {
        fail(tok_.offset,
             "expected a key in quotes inside " + map + "[...], got " + describe(tok_));
        return nullptr;
      }
      n->label = tok_.text;
      advance();
      if (tok_.kind != Tok::kRBracket) {
        fail(tok_.offset, "expected ] after the key, got " + describe(tok_));
        return nullptr;
      }
      advance();
    } else {
      fail(tok_.offset, "expected .KEY or [\"KEY\"] after " + map + ", got " + describe(tok_));
      return nullptr;
    }
    n->field = def.id;
    n->type = Type::kString;
    n->field_name = map + "." + n->label;
    check_available(def, n->offset);
    return n;
  }

  std::unique_ptr<Node> parse_field() {
    auto n = std::make_unique<Node>();
    n->op = Op::kField;
    n->offset = tok_.offset;
    std::string name = tok_.text;
    advance();
    while (!failed_ && tok_.kind == Tok::kDot) {
      advance();
      if (tok_.kind != Tok::kIdent) {
        fail(tok_.offset, "expected a field name after '.', got " + describe(tok_));
        return nullptr;
      }
      name += "." + tok_.text;
      advance();
      if (const FieldDef* m = find_field(name); m && is_map_field(m->id)) break;
    }
    if (failed_) return nullptr;
    if (tok_.kind == Tok::kLParen) return parse_call(std::move(n), name);
    const FieldDef* def = find_field(name);
    if (def && is_map_field(def->id)) return parse_map_key(std::move(n), *def);
    n->field_name = name;
    if (!def) {
      errors_->push_back({n->offset, "unknown field \"" + name + "\"" + suggest_field(name)});
      return make_unknown(std::move(n));
    }
    n->field = def->id;
    n->type = def->type;
    check_available(*def, n->offset);
    return n;
  }

  // Keeps type checking going after an unknown name without a cascade.
  std::unique_ptr<Node> make_unknown(std::unique_ptr<Node> n) {
    n->op = Op::kLit;
    n->type = Type::kBool;
    n->lit.type = Type::kBool;
    n->unknown = true;
    return n;
  }

  // NAME(...): the language has no functions. One error at the name; the
  // arguments are skipped to the matching ) so parsing goes on after them.
  std::unique_ptr<Node> parse_call(std::unique_ptr<Node> n, const std::string& name) {
    const size_t open = tok_.offset;
    errors_->push_back({n->offset, "unknown function \"" + name +
                                       "\" (conditions have no functions: compare a field with "
                                       "==, !=, <, >, in [...] or matches \"regex\")"});
    for (int depth = 0;;) {
      if (tok_.kind == Tok::kLParen) ++depth;
      if (tok_.kind == Tok::kRParen && --depth == 0) break;
      if (tok_.kind == Tok::kEnd) {
        fail(open, "expected ) to close the ( of " + name + "(");
        return nullptr;
      }
      advance();
      if (failed_) return nullptr;
    }
    advance();
    return make_unknown(std::move(n));
  }

  void check_available(const FieldDef& def, size_t offset) {
    if (!scope_.trigger_known) return;
    auto trigger = [&] {
      std::string s;
      for (auto t : scope_.events) s += (s.empty() ? "" : ", ") + std::string(event_type_name(t));
      return s;
    };
    auto all = [&](bool (*pred)(EventType)) {
      if (scope_.events.empty()) return false;
      for (auto t : scope_.events) {
        if (!pred(t)) return false;
      }
      return true;
    };
    std::string need;
    switch (def.avail) {
      case Avail::kAlways:
        return;
      case Avail::kEvent:
        if (!scope_.events.empty()) return;
        need = "events";
        break;
      case Avail::kLifecycle:
        if (all(&is_lifecycle)) return;
        need = "lifecycle events (vm.panicked, vm.watchdog, ...)";
        break;
      case Avail::kProbe:
        if (all(&is_probe)) return;
        need = "probe.ok and probe.failed events";
        break;
      case Avail::kHeartbeat:
        if (all(+[](EventType t) { return t == EventType::kVmHeartbeat; })) return;
        need = "vm.heartbeat events";
        break;
      case Avail::kAlert:
        if (all(&is_alert)) return;
        need = "alert.firing and alert.resolved events";
        break;
    }
    std::string why = scope_.events.empty()
                          ? "; an absent: rule has no event to read it from (only vm.* fields)"
                          : "; this rule triggers on " + trigger();
    errors_->push_back({offset, std::string(def.name) + " exists only on " + need + why});
  }

  Lexer lex_;
  const Scope& scope_;
  std::vector<ExprError>* errors_;
  Token tok_;
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<Node> parse_expr(std::string_view text, const Scope& scope,
                                 std::vector<ExprError>* errors) {
  Parser p(text, scope, errors);
  return p.parse_all();
}

}  // namespace medic::rules
