// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside
// <regex>'s std::function; the pragma must come before <regex> is included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>

#include "rules/expr_ast.h"

namespace medic::rules {

namespace {

// A value read at evaluation time; strings are views into the event or facts.
struct Val {
  bool b = false;
  double num = 0;
  int64_t ns = 0;
  std::string_view s;
};

// The value of `key` in an alert's labels or annotations; "" when absent.
std::string_view alert_value(const google::protobuf::RepeatedPtrField<medic::v1::Label>& kv,
                             const std::string& key) {
  for (const auto& l : kv) {
    if (l.key() == key) return l.value();
  }
  return {};
}

// The fields an event carries (event.*, probe.*, heartbeat.*, alert.*).
Val read_event_field(const Node& n, const EvalInput& in) {
  Val v;
  const medic::v1::Event* ev = in.event;
  switch (n.field) {
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
    case FieldId::kAlertName:
      v.s = ev->alert().name();
      break;
    case FieldId::kAlertLabel:
      v.s = alert_value(ev->alert().labels(), n.label);
      break;
    case FieldId::kAlertAnnotation:
      v.s = alert_value(ev->alert().annotations(), n.label);
      break;
    default:
      break;
  }
  return v;
}

Val read_field(const Node& n, const EvalInput& in) {
  Val v;
  const VmFacts& vm = *in.vm;
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
    default:
      return read_event_field(n, in);
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

}  // namespace

bool eval_node(const Node& n, const EvalInput& in) { return eval_bool(n, in); }

bool Expr::eval(const EvalInput& in) const { return eval_bool(*root_, in); }

}  // namespace medic::rules
