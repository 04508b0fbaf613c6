#include "rules/expr.h"

#include <gtest/gtest.h>

namespace medic::rules {
namespace {

Scope on(EventType t) { return Scope{{t}}; }

struct Fixture {
  VmFacts vm;
  medic::v1::Event ev;
  Fixture() {
    vm.id = "vm-1";
    vm.host = "h1";
    vm.state = medic::v1::VM_STATE_RUNNING;
    vm.labels = {{"tier", "web"}, {"app.kubernetes.io/name", "shop"}};
    vm.cpu_percent = 93.5;
    vm.uptime_ns = std::chrono::nanoseconds(std::chrono::minutes(10)).count();
    ev.set_host("h1");
    ev.set_vm("vm-1");
    auto* p = ev.mutable_probe();
    p->set_probe("http");
    p->set_ok(false);
    p->set_status(503);
    p->set_latency_ns(std::chrono::nanoseconds(std::chrono::milliseconds(2500)).count());
    p->set_reason("Service Unavailable");
  }
  bool eval(const std::string& text, EventType t = EventType::kProbeFailed) {
    auto c = compile_expr(text, on(t));
    EXPECT_TRUE(c.ok()) << text << ": " << (c.errors.empty() ? "" : c.errors[0].message);
    if (!c.ok()) return false;
    return c.expr.eval(EvalInput{&vm, &ev, t, Time{}});
  }
};

TEST(Expr, EvaluatesComparisonsOfEveryType) {
  Fixture f;
  EXPECT_TRUE(f.eval("vm.labels.tier == \"web\""));
  EXPECT_FALSE(f.eval("vm.labels.tier != 'web'"));
  EXPECT_TRUE(f.eval("vm.labels[\"app.kubernetes.io/name\"] == \"shop\""));
  EXPECT_TRUE(f.eval("vm.labels.missing == \"\""));
  EXPECT_TRUE(f.eval("vm.cpu_percent > 90 and vm.cpu_percent <= 93.5"));
  EXPECT_TRUE(f.eval("vm.uptime >= 10m and vm.uptime < 1h"));
  EXPECT_TRUE(f.eval("probe.status >= 500 and probe.latency > 2s"));
  EXPECT_TRUE(f.eval("not probe.ok"));
  EXPECT_TRUE(f.eval("probe.ok == false"));
  EXPECT_TRUE(f.eval("vm.state == \"running\""));
  EXPECT_TRUE(f.eval("event.type == \"probe.failed\""));
}

TEST(Expr, EvaluatesInMatchesAndPrecedence) {
  Fixture f;
  EXPECT_TRUE(f.eval("vm.labels.tier in [\"web\", \"api\"]"));
  EXPECT_FALSE(f.eval("vm.labels.tier not in [\"web\", \"api\"]"));
  EXPECT_TRUE(f.eval("probe.status in [502, 503]"));
  EXPECT_TRUE(f.eval("probe.reason matches \"^Service\\\\s\""));
  EXPECT_FALSE(f.eval("vm.id matches \"^db-\""));
  // and binds tighter than or
  EXPECT_TRUE(f.eval("vm.id == \"x\" and vm.id == \"y\" or vm.labels.tier == \"web\""));
  EXPECT_FALSE(f.eval("vm.id == \"x\" and (vm.id == \"y\" or vm.labels.tier == \"web\")"));
  EXPECT_TRUE(f.eval("not not true"));
}

TEST(Expr, HeartbeatAgeOfAVmNeverHeardIsInfinite) {
  Fixture f;
  auto c = compile_expr("vm.heartbeat_age > 1d", Scope{});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(
      c.expr.eval(EvalInput{&f.vm, nullptr, EventType::kVmHeartbeat, from_ns(1'000'000'000)}));
  f.vm.last_heartbeat_ns = 1'000'000'000;
  EXPECT_FALSE(
      c.expr.eval(EvalInput{&f.vm, nullptr, EventType::kVmHeartbeat, from_ns(2'000'000'000)}));
}

struct ErrorCase {
  std::string text;
  size_t offset;
  std::string message;
  bool syntax;
};

class ExprErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ExprErrors, ReportOffsetAndWhatWasExpected) {
  const auto& c = GetParam();
  auto r = compile_expr(c.text, on(EventType::kVmPanicked));
  ASSERT_FALSE(r.ok()) << c.text;
  EXPECT_EQ(r.errors[0].offset, c.offset) << r.errors[0].message;
  EXPECT_NE(r.errors[0].message.find(c.message), std::string::npos) << r.errors[0].message;
  EXPECT_EQ(r.errors[0].syntax, c.syntax);
}

INSTANTIATE_TEST_SUITE_P(
    All, ExprErrors,
    ::testing::Values(
        ErrorCase{"vm.id ==", 8, "expected a field or a value, got the end", true},
        ErrorCase{"vm.id = \"a\"", 6, "use == to compare", true},
        ErrorCase{"vm.id == \"a\" && true", 13, "use and", true},
        ErrorCase{"vm.id == \"a", 9, "unterminated string", true},
        ErrorCase{"(vm.id == \"a\"", 13, "expected ) to close", true},
        ErrorCase{"vm.id in \"a\"", 9, "expected [ to start the list", true},
        ErrorCase{"vm.id in [\"a\" \"b\"]", 14, "expected , or ]", true},
        ErrorCase{"vm.id matches vm.host", 14, "regular expression in quotes", true},
        ErrorCase{"vm.id == \"a\" vm.host", 13, "expected and, or, or the end", true},
        ErrorCase{"vm.uptime > 3parsecs", 12, "invalid duration", true},
        ErrorCase{"vm.lables.tier == \"a\"", 0, "unknown field \"vm.lables.tier\"", false},
        ErrorCase{"vm.stat == \"running\"", 0, "did you mean vm.state?", false},
        ErrorCase{"vm.uptime > 30", 10,
                  "cannot compare vm.uptime (a duration) with a number literal", false},
        ErrorCase{"vm.uptime > \"30s\"", 10, "without quotes", false},
        ErrorCase{"vm.id < \"b\"", 6, "< needs numbers or durations", false},
        ErrorCase{"vm.id and true", 0, "and needs true/false operands", false},
        ErrorCase{"vm.id", 0, "a condition must be true or false", false},
        ErrorCase{"vm.state == \"runing\"", 12, "unknown VM state \"runing\"", false},
        ErrorCase{"event.type == \"vm.panic\"", 14, "unknown event type \"vm.panic\"", false},
        ErrorCase{"vm.cpu_percent in [1, \"x\"]", 22, "list item is a string", false},
        ErrorCase{"vm.id matches \"(\"", 14, "invalid regular expression", false},
        ErrorCase{"vm.cpu_percent matches \"x\"", 0, "matches needs a string", false},
        ErrorCase{"probe.status == 500", 0, "probe.status exists only on probe.ok and probe.failed",
                  false}));

TEST(Expr, EventFieldsAreNotAvailableToAbsenceRules) {
  auto r = compile_expr("event.type == \"vm.heartbeat\"", Scope{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("an absent: rule has no event"), std::string::npos)
      << r.errors[0].message;
}

TEST(Expr, ReportsEveryTypeErrorNotJustTheFirst) {
  auto r = compile_expr("vm.uptime > 5 and vm.id < \"x\" and vm.nope", on(EventType::kVmPanicked));
  EXPECT_EQ(r.errors.size(), 3u);
}

TEST(Expr, DetectsExpressionsThatAreNeverTrue) {
  auto never = [](const std::string& t) {
    auto c = compile_expr(t, on(EventType::kVmPanicked));
    EXPECT_TRUE(c.ok()) << t;
    return c.expr.never_true();
  };
  EXPECT_TRUE(never("false"));
  EXPECT_TRUE(never("1 > 2"));
  EXPECT_TRUE(never("vm.labels.tier == \"a\" and vm.labels.tier == \"b\""));
  EXPECT_TRUE(never("vm.id == \"a\" and vm.cpu_percent > 3 and \"a\" != vm.id"));
  EXPECT_TRUE(never("vm.id in []"));
  EXPECT_TRUE(never("not true or false"));
  EXPECT_FALSE(never("vm.labels.tier == \"a\" or vm.labels.tier == \"b\""));
  EXPECT_FALSE(never("vm.labels.tier == \"a\" and vm.labels.zone == \"b\""));
  EXPECT_FALSE(never("true"));
}

}  // namespace
}  // namespace medic::rules

namespace medic::rules {
namespace {

// Arbitrary input never crashes the compiler, and what compiles evaluates.
// Half the inputs are random characters (almost none compile), half random
// sequences of the language's own tokens (many do), so both the error paths
// and evaluation are exercised.
TEST(Expr, SurvivesRandomInput) {
  const std::string alphabet =
      "vm.labels[]\"'()=!<>&| andornotinmatches0123456789sm.,_-tierstate\\";
  const std::vector<std::string> tokens = {
      "vm.id", "vm.labels.tier", "vm.labels[\"a b\"]", "vm.cpu_percent", "vm.uptime",
      "event.type", "==", "!=", "<", ">=", "and", "or", "not", "in", "matches", "(", ")", "[",
      "]", ",", "\"a\"", "\"^a.*\"", "3", "2.5", "10s", "true", "false"};
  uint64_t x = 88172645463325252ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  VmFacts vm;
  vm.id = "a";
  vm.labels = {{"tier", "a"}};
  medic::v1::Event ev;
  size_t compiled = 0, rejected = 0, true_seen = 0;
  for (int i = 0; i < 6000; ++i) {
    std::string text;
    if (i % 2 == 0) {
      size_t len = next() % 40;
      for (size_t j = 0; j < len; ++j) text += alphabet[next() % alphabet.size()];
    } else {
      size_t len = 1 + next() % 7;
      for (size_t j = 0; j < len; ++j) text += tokens[next() % tokens.size()] + " ";
    }
    auto c = compile_expr(text, Scope{{EventType::kVmPanicked}});
    if (c.ok()) {
      ++compiled;
      true_seen += c.expr.eval(EvalInput{&vm, &ev, EventType::kVmPanicked, Time{}});
    } else {
      ++rejected;
      ASSERT_FALSE(c.errors.empty()) << "rejected without a reason: " << text;
      for (const auto& e : c.errors) EXPECT_LE(e.offset, text.size()) << text;
    }
  }
  // Guards against a vacuous pass: evaluation must actually have run, on
  // conditions that came out both ways.
  EXPECT_GE(compiled, 20u);  // 35 with this seed
  EXPECT_GE(rejected, 3000u);
  EXPECT_GT(true_seen, 0u);
  EXPECT_LT(true_seen, compiled);
}

}  // namespace
}  // namespace medic::rules
