#include "rules/loader.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"

namespace medic::rules {
namespace {

std::string messages(const LoadResult& r) { return r.text(); }

bool has(const LoadResult& r, const std::string& needle) {
  return messages(r).find(needle) != std::string::npos;
}

TEST(Loader, LoadsTheDesignExample) {
  auto r = load_rule_text(R"(rules:
  - name: guest-panicked
    on: vm.panicked
    where: vm.labels.tier != "batch"
    do: reset
    cooldown: 2m
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    key: vm.id
    do: [reboot, reset, restart, notify]
    budget: 3 per 1h
    approval: none
  - name: crash-loop
    on: vm.crashed
    count: 3
    within: 10m
    do: notify
)",
                          "r.yaml");
  ASSERT_TRUE(r.ok()) << messages(r);
  ASSERT_EQ(r.rules->size(), 3u);
  const Rule& a = *r.rules->rules()[0];
  EXPECT_EQ(a.trigger, TriggerKind::kOn);
  EXPECT_EQ(a.event, EventType::kVmPanicked);
  EXPECT_EQ(a.cooldown, std::chrono::minutes(2));
  EXPECT_EQ(a.version.size(), 12u);
  const Rule& b = *r.rules->rules()[1];
  EXPECT_EQ(b.trigger, TriggerKind::kAbsent);
  EXPECT_EQ(b.absent_for, std::chrono::seconds(30));
  EXPECT_EQ(b.ladder.size(), 4u);
  EXPECT_EQ(b.budget->count, 3u);
  EXPECT_EQ(b.healed_by, EventType::kVmHeartbeat);
  const Rule& c = *r.rules->rules()[2];
  EXPECT_EQ(c.trigger, TriggerKind::kCount);
  EXPECT_EQ(c.count, 3u);
  EXPECT_EQ(r.rules->triggered_by(EventType::kVmPanicked).size(), 1u);
  EXPECT_EQ(r.rules->triggered_by(EventType::kVmCrashed).size(), 1u);
  EXPECT_EQ(r.rules->absence_signalled_by(EventType::kVmHeartbeat).size(), 1u);
  EXPECT_TRUE(r.rules->triggered_by(EventType::kVmHeartbeat).empty());
}

TEST(Loader, VersionChangesWhenTheRuleChanges) {
  auto a = load_rule_text("rules:\n  - {name: x, on: vm.panicked, do: reset}\n", "a");
  auto b = load_rule_text("rules:\n  - {name: x, on: vm.panicked, do: reboot}\n", "b");
  auto c = load_rule_text("rules:\n  - {name: x, on: vm.panicked, do: reset}\n", "c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_NE(a.rules->rules()[0]->version, b.rules->rules()[0]->version);
  EXPECT_EQ(a.rules->rules()[0]->version, c.rules->rules()[0]->version);
}

TEST(Loader, MapsExpressionErrorsToTheFilePositionInsideThePlainScalar) {
  auto r = load_rule_text(
      "rules:\n  - name: x\n    on: vm.panicked\n    where: vm.uptime > 30\n    do: reset\n",
      "r.yaml");
  ASSERT_FALSE(r.ok());
  // "    where: " is 11 characters; '>' is at offset 10 of the expression.
  EXPECT_TRUE(has(
      r, "r.yaml:4:22: error: cannot compare vm.uptime (a duration) with a number literal using >"))
      << messages(r);
  EXPECT_TRUE(has(r, "[expr-type]"));
}

TEST(Loader, MapsExpressionErrorsInsideQuotedAndBlockScalars) {
  auto q = load_rule_text(
      "rules:\n  - name: x\n    on: vm.panicked\n    where: 'vm.nope == 1'\n    do: reset\n",
      "q.yaml");
  EXPECT_TRUE(has(q, "q.yaml:4:13: error: unknown field \"vm.nope\"")) << messages(q);
  auto b = load_rule_text(
      "rules:\n  - name: x\n    on: vm.panicked\n    where: |\n      vm.id == \"a\"\n        and "
      "vm.cpu_percent > \"high\"\n    do: reset\n",
      "b.yaml");
  // Second line of the block, the > is at column 28.
  EXPECT_TRUE(has(b, "b.yaml:6:28: error: cannot compare vm.cpu_percent")) << messages(b);
  auto f = load_rule_text(
      "rules:\n  - name: x\n    on: vm.panicked\n    where: >-\n      vm.id == \"a\" and\n      "
      "vm.bogus\n    do: reset\n",
      "f.yaml");
  EXPECT_TRUE(has(f, "f.yaml:6:7: error: unknown field \"vm.bogus\"")) << messages(f);
}

TEST(Loader, ReportsEveryProblemOfEveryRuleInOnePass) {
  testing::TempDir dir;
  std::string a = dir.write("a.yaml", R"(rules:
  - name: one
    on: vm.panicd
    do: reset
  - name: two
    absent: vm.heartbeat
    do: [reboot, explode]
  - name: three
    on: vm.watchdog
    where: vm.id ==
    do: reset
    budget: lots
    approval: maybe
    mode: yolo
    colour: red
)");
  std::string b = dir.write("b.yaml",
                            "rules:\n  - name: four\n    do: reset\n  - name: one\n    on: "
                            "vm.crashed\n    do: restart\n");
  auto r = load_rule_files({a, b, dir.file("missing.yaml")});
  EXPECT_FALSE(r.ok());
  std::string m = messages(r);
  EXPECT_TRUE(
      has(r, a + ":3:9: error: unknown event type \"vm.panicd\" in on:; did you mean vm.panicked?"))
      << m;
  EXPECT_TRUE(has(r, "[unknown-event-type]")) << m;
  EXPECT_TRUE(has(r, a + ":6:13: error: absent: needs for: DURATION")) << m;
  EXPECT_TRUE(has(r, a + ":7:18: error: unknown step \"explode\" (expected reboot, reset, restart, "
                         "stop, start or notify) [action]"))
      << m;
  EXPECT_TRUE(has(r, a + ":10:20: error: expected a field or a value, got the end of the "
                         "expression [expr-syntax]"))
      << m;
  EXPECT_TRUE(has(r, a + ":12:13: error: invalid budget \"lots\" (expected N per DURATION, such as "
                         "3 per 1h) [policy]"))
      << m;
  EXPECT_TRUE(has(r, a + ":13:15: error: approval: must be none or required")) << m;
  EXPECT_TRUE(has(r, a + ":14:11: error: mode: must be enforce or dry-run")) << m;
  EXPECT_TRUE(has(r, a + ":15:5: error: unknown rule key \"colour\"")) << m;
  EXPECT_TRUE(has(r, b + ":2:5: error: missing trigger: expected on: EVENT")) << m;
  EXPECT_TRUE(has(r, b + ":4:11: warning: rule name \"one\" is also used at " + a + ":2")) << m;
  EXPECT_TRUE(has(r, dir.file("missing.yaml") + ": error: cannot read the file [read-file]")) << m;
  EXPECT_FALSE(r.rules);
}

TEST(Loader, ReportsYamlSyntaxWithPosition) {
  auto r = load_rule_text("rules:\n  - name: x\n    on: [vm.panicked\n", "s.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r, "s.yaml:4:1: error: YAML syntax")) << messages(r);
  EXPECT_TRUE(has(r, "[yaml-parse]"));
}

TEST(Loader, RejectsBadTriggerCombinations) {
  auto r = load_rule_text(R"(rules:
  - {name: a, on: vm.panicked, absent: vm.heartbeat, do: reset}
  - {name: b, on: vm.crashed, count: 3, do: reset}
  - {name: c, on: vm.crashed, count: 0, within: 1m, do: reset}
  - {name: d, on: vm.crashed, for: 1m, do: reset}
  - {name: e, absent: vm.heartbeat, for: 0s, do: reset}
  - {name: f, absent: vm.heartbeat, for: 30s, key: vm.host, do: notify}
  - {name: g, on: vm.crashed, key: vm.host, do: restart}
  - {name: h, on: vm.crashed, healed_by: vm.fine, do: restart}
  - {name: i, on: vm.crashed, key: probe.name, do: notify}
)",
                          "t.yaml");
  std::string m = messages(r);
  EXPECT_TRUE(has(r, "one trigger: on: or absent:, not both [trigger]")) << m;
  EXPECT_TRUE(has(r, "count: and within: go together")) << m;
  EXPECT_TRUE(has(r, "count: must be a whole number from 1 to 10000")) << m;
  EXPECT_TRUE(has(r, "for: goes with absent:, not with on:")) << m;
  EXPECT_TRUE(has(r, "for: must be longer than 0s")) << m;
  EXPECT_TRUE(has(r, "an absent: rule is keyed by vm.id")) << m;
  EXPECT_TRUE(has(r, "step restart needs a VM, but the rule's key has no vm.id")) << m;
  EXPECT_TRUE(has(r, "unknown event type \"vm.fine\" in healed_by: (expected one of vm.state, "))
      << m;
  EXPECT_TRUE(has(r, "key: probe.name exists only for rules on probe.ok or probe.failed")) << m;
  EXPECT_EQ(r.error_count(), 9u) << m;
}

TEST(Loader, WarnsAboutRulesThatCanNeverFireAndUnreachableSteps) {
  auto r = load_rule_text(R"(rules:
  - name: never
    on: vm.panicked
    where: vm.labels.tier == "a" and vm.labels.tier == "b"
    do: reset
  - name: long-ladder
    absent: vm.heartbeat
    for: 30s
    do: [reboot, notify, reset, restart]
    budget: 2 per 1h
)",
                          "w.yaml");
  ASSERT_TRUE(r.ok()) << messages(r);
  EXPECT_EQ(r.warning_count(), 2u) << messages(r);
  EXPECT_TRUE(has(r,
                  "w.yaml:4:12: warning: where: is always false, so rule \"never\" can never fire "
                  "[never-fires]"))
      << messages(r);
  EXPECT_TRUE(has(r,
                  "w.yaml:9:33: warning: step 4 (restart) is unreachable: the budget allows 2 "
                  "actions per 1h [unreachable-step]"))
      << messages(r);
  EXPECT_EQ(r.rules->size(), 2u);  // warnings do not stop loading
}

TEST(Loader, WarnsAboutFilesWithoutRules) {
  auto r = load_rule_text("rules: []\n", "e.yaml");
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(has(r, "[no-rules]"));
  auto t = load_rule_text("checks: []\n", "t.yaml");
  EXPECT_TRUE(has(t, "unknown top-level key \"checks\" (expected rules)")) << messages(t);
}

TEST(Loader, ParsesBudgets) {
  auto b = parse_budget("3 per 1h");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->count, 3u);
  EXPECT_EQ(b->window, std::chrono::hours(1));
  EXPECT_FALSE(parse_budget("3/1h").ok());
  EXPECT_FALSE(parse_budget("0 per 1h").ok());
  EXPECT_FALSE(parse_budget("3 per soon").ok());
}

TEST(Loader, DefaultsHealSignalFromTheTrigger) {
  auto r = load_rule_text(R"(rules:
  - {name: p, on: probe.failed, key: [vm.id, probe.name], do: restart}
  - {name: a, absent: probe.ok, for: 1m, do: restart}
  - {name: w, on: vm.watchdog, do: reset, healed_by: vm.state}
)",
                          "h.yaml");
  ASSERT_TRUE(r.ok()) << messages(r);
  EXPECT_EQ(r.rules->rules()[0]->healed_by, EventType::kProbeOk);
  EXPECT_EQ(r.rules->rules()[1]->healed_by, EventType::kProbeOk);
  EXPECT_EQ(r.rules->rules()[2]->healed_by, EventType::kVmState);
}

}  // namespace
}  // namespace medic::rules
