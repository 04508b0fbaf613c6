// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside
// <regex>'s std::function; the pragma must come before <regex> is included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "rules/expr.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <optional>

#include "core/duration.h"
#include "core/text.h"

namespace medic::rules {

const char* type_name(Type t) {
  switch (t) {
    case Type::kBool:
      return "bool";
    case Type::kNumber:
      return "number";
    case Type::kString:
      return "string";
    case Type::kDuration:
      return "duration";
  }
  return "?";
}

namespace {

// ---------------------------------------------------------------- fields

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
};

// Which triggers provide a field.
enum class Avail : uint8_t { kAlways, kEvent, kLifecycle, kProbe, kHeartbeat };

struct FieldDef {
  std::string_view name;
  FieldId id;
  Type type;
  Avail avail;
};

constexpr FieldDef kFields[] = {
    {"vm.id", FieldId::kVmId, Type::kString, Avail::kAlways},
    {"vm.host", FieldId::kVmHost, Type::kString, Avail::kAlways},
    {"vm.state", FieldId::kVmState, Type::kString, Avail::kAlways},
    {"vm.cpu_percent", FieldId::kVmCpu, Type::kNumber, Avail::kAlways},
    {"vm.rss_bytes", FieldId::kVmRss, Type::kNumber, Avail::kAlways},
    {"vm.uptime", FieldId::kVmUptime, Type::kDuration, Avail::kAlways},
    {"vm.heartbeat_age", FieldId::kVmHeartbeatAge, Type::kDuration, Avail::kAlways},
    {"event.type", FieldId::kEventType, Type::kString, Avail::kEvent},
    {"event.detail", FieldId::kEventDetail, Type::kString, Avail::kLifecycle},
    {"probe.name", FieldId::kProbeName, Type::kString, Avail::kProbe},
    {"probe.ok", FieldId::kProbeOk, Type::kBool, Avail::kProbe},
    {"probe.status", FieldId::kProbeStatus, Type::kNumber, Avail::kProbe},
    {"probe.latency", FieldId::kProbeLatency, Type::kDuration, Avail::kProbe},
    {"probe.reason", FieldId::kProbeReason, Type::kString, Avail::kProbe},
    {"heartbeat.source", FieldId::kHeartbeatSource, Type::kString, Avail::kHeartbeat},
    {"heartbeat.counter", FieldId::kHeartbeatCounter, Type::kNumber, Avail::kHeartbeat},
};

const FieldDef* find_field(std::string_view name) {
  for (const auto& f : kFields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string suggest_field(std::string_view name) {
  std::string best;
  size_t best_d = 4;
  for (const auto& f : kFields) {
    size_t d = edit_distance(name, f.name);
    if (d < best_d) {
      best_d = d;
      best = std::string(f.name);
    }
  }
  if (name.substr(0, 7) != "vm.labe" &&
      edit_distance(name.substr(0, std::min<size_t>(name.size(), 10)), "vm.labels.") <= 2) {
    best = "vm.labels.KEY";
  }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

// ---------------------------------------------------------------- lexer

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kString,
  kNumber,
  kDuration,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kError,
};

struct Token {
  Tok kind = Tok::kEnd;
  size_t offset = 0;
  std::string text;  // identifier, decoded string, or the literal as written
  double num = 0;
  int64_t ns = 0;
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  Token next() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    Token t;
    t.offset = i_;
    if (i_ >= s_.size()) return t;
    char c = s_[i_];
    auto one = [&](Tok k) {
      ++i_;
      t.kind = k;
      t.text = std::string(1, c);
      return t;
    };
    switch (c) {
      case '(':
        return one(Tok::kLParen);
      case ')':
        return one(Tok::kRParen);
      case '[':
        return one(Tok::kLBracket);
      case ']':
        return one(Tok::kRBracket);
      case ',':
        return one(Tok::kComma);
      case '.':
        return one(Tok::kDot);
      case '"':
      case '\'':
        return string_token(t, c);
      default:
        break;
    }
    if (c == '=' || c == '!' || c == '<' || c == '>' || c == '&' || c == '|') return op_token(t);
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))) {
      return number_token(t);
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = i_;
      while (i_ < s_.size() &&
             (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '-')) {
        ++i_;
      }
      t.kind = Tok::kIdent;
      t.text = std::string(s_.substr(start, i_ - start));
      return t;
    }
    t.kind = Tok::kError;
    t.text = "unexpected character '" + std::string(1, c) + "'";
    return t;
  }

 private:
  Token string_token(Token t, char quote) {
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != quote) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
        ++i_;
        char e = s_[i_];
        // Regex escapes such as \d pass through untouched.
        if (e == quote || e == '\\') {
          out += e;
        } else if (e == 'n') {
          out += '\n';
        } else if (e == 't') {
          out += '\t';
        } else {
          out += '\\';
          out += e;
        }
      } else {
        out += s_[i_];
      }
      ++i_;
    }
    if (i_ >= s_.size()) {
      t.kind = Tok::kError;
      t.text = std::string("unterminated string: expected a closing ") + quote;
      return t;
    }
    ++i_;
    t.kind = Tok::kString;
    t.text = std::move(out);
    return t;
  }

  Token op_token(Token t) {
    char c = s_[i_];
    char n = i_ + 1 < s_.size() ? s_[i_ + 1] : '\0';
    auto take = [&](Tok k, size_t len) {
      t.kind = k;
      t.text = std::string(s_.substr(i_, len));
      i_ += len;
      return t;
    };
    if (c == '=' && n == '=') return take(Tok::kEq, 2);
    if (c == '!' && n == '=') return take(Tok::kNe, 2);
    if (c == '<' && n == '=') return take(Tok::kLe, 2);
    if (c == '>' && n == '=') return take(Tok::kGe, 2);
    if (c == '<') return take(Tok::kLt, 1);
    if (c == '>') return take(Tok::kGt, 1);
    t.kind = Tok::kError;
    if (c == '=')
      t.text = "'=' is not an operator: use == to compare";
    else if (c == '&')
      t.text = "'&&' is not an operator: use and";
    else if (c == '|')
      t.text = "'||' is not an operator: use or";
    else
      t.text = "'!' is not an operator: use not, or != to compare";
    return t;
  }

  Token number_token(Token t) {
    size_t start = i_;
    if (s_[i_] == '-') ++i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.'))
      ++i_;
    bool duration = i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]));
    while (i_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[i_]))) ++i_;
    t.text = std::string(s_.substr(start, i_ - start));
    if (duration) {
      auto d = parse_duration(t.text);
      if (!d.ok()) {
        t.kind = Tok::kError;
        t.text = d.status().message();
        return t;
      }
      t.kind = Tok::kDuration;
      t.ns = d->count();
      return t;
    }
    try {
      size_t used = 0;
      t.num = std::stod(t.text, &used);
      if (used != t.text.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      t.kind = Tok::kError;
      t.text = "invalid number \"" + t.text + "\"";
      return t;
    }
    t.kind = Tok::kNumber;
    return t;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

// ---------------------------------------------------------------- AST

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
  std::string label;               // kField with kVmLabel
  Cmp cmp = Cmp::kEq;              // kCmp
  bool negate = false;             // kIn: "not in"
  std::vector<Literal> list;       // kIn
  std::unique_ptr<std::regex> re;  // kMatches
  std::unique_ptr<Node> lhs, rhs;
};

namespace {

// A value read at evaluation time; strings are views into the event or facts.
struct Val {
  bool b = false;
  double num = 0;
  int64_t ns = 0;
  std::string_view s;
};

Val read_field(const Node& n, const EvalInput& in) {
  Val v;
  const VmFacts& vm = *in.vm;
  const medic::v1::Event* ev = in.event;
  switch (n.field) {
    case FieldId::kVmId:
      v.s = vm.id;
      break;
    case FieldId::kVmHost:
      v.s = vm.host;
      break;
    case FieldId::kVmState:
      v.s = vm_state_name(vm.state);
      break;
    case FieldId::kVmLabel:
      v.s = vm.label(n.label);
      break;
    case FieldId::kVmCpu:
      v.num = vm.cpu_percent;
      break;
    case FieldId::kVmRss:
      v.num = static_cast<double>(vm.rss_bytes);
      break;
    case FieldId::kVmUptime:
      v.ns = vm.uptime_ns;
      break;
    case FieldId::kVmHeartbeatAge:
      v.ns = vm.last_heartbeat_ns == 0 ? std::numeric_limits<int64_t>::max()
                                       : to_ns(in.now) - vm.last_heartbeat_ns;
      break;
    case FieldId::kEventType:
      v.s = event_type_name(in.type);
      break;
    case FieldId::kEventDetail:
      v.s = ev->lifecycle().detail();
      break;
    case FieldId::kProbeName:
      v.s = ev->probe().probe();
      break;
    case FieldId::kProbeOk:
      v.b = ev->probe().ok();
      break;
    case FieldId::kProbeStatus:
      v.num = ev->probe().status();
      break;
    case FieldId::kProbeLatency:
      v.ns = ev->probe().latency_ns();
      break;
    case FieldId::kProbeReason:
      v.s = ev->probe().reason();
      break;
    case FieldId::kHeartbeatSource:
      v.s = ev->heartbeat().source();
      break;
    case FieldId::kHeartbeatCounter:
      v.num = static_cast<double>(ev->heartbeat().counter());
      break;
  }
  return v;
}

Val value_of(const Node& n, const EvalInput& in);
bool eval_bool(const Node& n, const EvalInput& in);

Val lit_val(const Literal& l) {
  Val v;
  v.b = l.b;
  v.num = l.num;
  v.ns = l.ns;
  v.s = l.str;
  return v;
}

Val value_of(const Node& n, const EvalInput& in) {
  if (n.op == Op::kLit) return lit_val(n.lit);
  if (n.op == Op::kField) return read_field(n, in);
  Val v;
  v.b = eval_bool(n, in);
  return v;
}

template <typename T>
bool order(Cmp c, const T& a, const T& b) {
  switch (c) {
    case Cmp::kEq:
      return a == b;
    case Cmp::kNe:
      return !(a == b);
    case Cmp::kLt:
      return a < b;
    case Cmp::kLe:
      return a <= b;
    case Cmp::kGt:
      return a > b;
    case Cmp::kGe:
      return a >= b;
  }
  return false;
}

bool equal(Type t, const Val& a, const Val& b) {
  switch (t) {
    case Type::kBool:
      return a.b == b.b;
    case Type::kNumber:
      return a.num == b.num;
    case Type::kString:
      return a.s == b.s;
    case Type::kDuration:
      return a.ns == b.ns;
  }
  return false;
}

bool eval_bool(const Node& n, const EvalInput& in) {
  switch (n.op) {
    case Op::kLit:
      return n.lit.b;
    case Op::kField:
      return read_field(n, in).b;
    case Op::kNot:
      return !eval_bool(*n.lhs, in);
    case Op::kAnd:
      return eval_bool(*n.lhs, in) && eval_bool(*n.rhs, in);
    case Op::kOr:
      return eval_bool(*n.lhs, in) || eval_bool(*n.rhs, in);
    case Op::kCmp: {
      Val a = value_of(*n.lhs, in);
      Val b = value_of(*n.rhs, in);
      switch (n.lhs->type) {
        case Type::kBool:
          return order(n.cmp, a.b, b.b);
        case Type::kNumber:
          return order(n.cmp, a.num, b.num);
        case Type::kString:
          return order(n.cmp, a.s, b.s);
        case Type::kDuration:
          return order(n.cmp, a.ns, b.ns);
      }
      return false;
    }
    case Op::kIn: {
      Val a = value_of(*n.lhs, in);
      bool found = false;
      for (const auto& l : n.list) {
        if (equal(n.lhs->type, a, lit_val(l))) {
          found = true;
          break;
        }
      }
      return found != n.negate;
    }
    case Op::kMatches: {
      Val a = value_of(*n.lhs, in);
      return std::regex_search(a.s.begin(), a.s.end(), *n.re);
    }
  }
  return false;
}

// ---------------------------------------------------------------- parser

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
      if (name == "vm.labels") break;
    }
    if (failed_) return nullptr;
    if (name == "vm.labels") {
      // vm.labels.KEY or vm.labels["KEY"]: the key may hold any character.
      if (tok_.kind == Tok::kDot) {
        advance();
        if (tok_.kind != Tok::kIdent) {
          fail(tok_.offset, "expected a label name after vm.labels., got " + describe(tok_));
          return nullptr;
        }
        n->label = tok_.text;
        advance();
      } else if (tok_.kind == Tok::kLBracket) {
        advance();
        if (tok_.kind != Tok::kString) {
          fail(tok_.offset,
               "expected a label name in quotes inside vm.labels[...], got " + describe(tok_));
          return nullptr;
        }
        n->label = tok_.text;
        advance();
        if (tok_.kind != Tok::kRBracket) {
          fail(tok_.offset, "expected ] after the label name, got " + describe(tok_));
          return nullptr;
        }
        advance();
      } else {
        fail(tok_.offset, "expected .KEY or [\"KEY\"] after vm.labels, got " + describe(tok_));
        return nullptr;
      }
      n->field = FieldId::kVmLabel;
      n->type = Type::kString;
      n->field_name = "vm.labels." + n->label;
      return n;
    }
    n->field_name = name;
    const FieldDef* def = find_field(name);
    if (!def) {
      errors_->push_back({n->offset, "unknown field \"" + name + "\"" + suggest_field(name)});
      n->type = Type::kBool;
      n->op = Op::kLit;  // keeps type checking going without a cascade
      n->lit.type = Type::kBool;
      unknown_ = true;
      return n;
    }
    n->field = def->id;
    n->type = def->type;
    check_available(*def, n->offset);
    return n;
  }

  void check_available(const FieldDef& def, size_t offset) {
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
    }
    std::string why = scope_.events.empty()
                          ? "; an absent: rule has no event to read it from (only vm.* fields)"
                          : "; this rule triggers on " + trigger();
    errors_->push_back({offset, std::string(def.name) + " exists only on " + need + why});
  }

 public:
  bool unknown_field() const { return unknown_; }

 private:
  Lexer lex_;
  const Scope& scope_;
  std::vector<ExprError>* errors_;
  Token tok_;
  bool failed_ = false;
  bool unknown_ = false;
};

// ---------------------------------------------------------------- types

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
        if (n.lhs->type != Type::kString) {
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
    if (n.type != Type::kBool) {
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
      err(lit.offset, "unknown VM state \"" + lit.str + "\" (expected one of " +
                          std::string(vm_state_names_joined()) + ")");
    }
    if (field.field == FieldId::kEventType && !event_type_from_name(lit.str)) {
      err(lit.offset, "unknown event type \"" + lit.str + "\"");
    }
  }

  void check_cmp(Node& n) {
    check(*n.lhs);
    check(*n.rhs);
    n.type = Type::kBool;
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

// ---------------------------------------------------------------- folding

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
        return eval_bool(n, none) ? 1 : 0;
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

bool Expr::eval(const EvalInput& in) const { return eval_bool(*root_, in); }

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

CompileResult compile_expr(std::string_view text, const Scope& scope) {
  CompileResult out;
  Parser p(text, scope, &out.errors);
  auto root = p.parse_all();
  if (!root) {
    if (out.errors.empty()) out.errors.push_back({0, "empty expression", true});
    return out;
  }
  Checker c(&out.errors);
  c.check(*root);
  if (out.errors.empty() && root->type != Type::kBool) {
    out.errors.push_back({root->offset, "a condition must be true or false, got " +
                                            Checker::what(*root) +
                                            "; compare it with == or use in / matches"});
  }
  if (out.ok()) out.expr = Expr(std::shared_ptr<const Node>(std::move(root)));
  return out;
}

}  // namespace medic::rules
