#include "rules/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

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
  EXPECT_TRUE(has(r, b + ":4:11: error: rule name \"one\" is already used at " + a +
                         ":2; every rule needs a unique name (decisions, silences and the audit "
                         "name rules) [duplicate-name]"))
      << m;
  EXPECT_TRUE(has(r, dir.file("missing.yaml") +
                         ": error: cannot read the file: No such file or directory [read-file]"))
      << m;
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

// The lines of a result's text, for exact comparison.
std::vector<std::string> lines(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& m : r.messages) out.push_back(m.to_string());
  return out;
}

using ::testing::ElementsAre;

TEST(LoaderSuggestions, SuggestsTheRuleKeyAMisspeltKeyMeant) {
  auto r = load_rule_text(R"(rules:
  - name: x
    on: vm.panicked
    do: reset
    cooldwon: 5m
    aproval: required
    colour: red
)",
                          "k.yaml");
  EXPECT_THAT(lines(r),
              ElementsAre("k.yaml:5:5: error: unknown rule key \"cooldwon\"; did you mean cooldown? "
                          "[schema]",
                          "k.yaml:6:5: error: unknown rule key \"aproval\"; did you mean approval? "
                          "[schema]",
                          "k.yaml:7:5: error: unknown rule key \"colour\" (expected name, "
                          "description, labels, on, absent, for, count, within, where, key, do, "
                          "healed_by, heal_within, message, cooldown, budget, approval, "
                          "approval_timeout, mode, storm_guard or boot_timeout) [schema]"));
}

TEST(LoaderSuggestions, SuggestsTheTopLevelKeyStepKeyFieldAndPolicyValue) {
  auto top = load_rule_text("rule:\n  - {name: x, on: vm.panicked, do: reset}\n", "t.yaml");
  EXPECT_EQ(top.messages.at(0).to_string(),
            "t.yaml:1:1: error: unknown top-level key \"rule\"; did you mean rules? [schema]");
  auto r = load_rule_text(R"(rules:
  - name: x
    on: vm.panicked
    key: vm.hots
    do: [rebot, reset]
    approval: requird
    mode: dry-rn
    storm_guard: ture
)",
                          "p.yaml");
  // key: is wrong, yet the ladder's verbs are not blamed for a missing vm.id.
  EXPECT_THAT(lines(r),
              ElementsAre(
                  "p.yaml:4:10: error: key: unknown key field \"vm.hots\"; did you mean vm.host? "
                  "[schema]",
                  "p.yaml:5:10: error: unknown step \"rebot\"; did you mean reboot? [action]",
                  "p.yaml:6:15: error: approval: must be none or required, got \"requird\"; did "
                  "you mean required? [policy]",
                  "p.yaml:7:11: error: mode: must be enforce or dry-run, got \"dry-rn\"; did you "
                  "mean dry-run? [policy]",
                  "p.yaml:8:18: error: storm_guard: must be true or false, got \"ture\"; did you "
                  "mean true? [policy]"));
}

TEST(LoaderSuggestions, SuggestsTheFieldStateAndEventTypeInAnExpression) {
  auto r = load_rule_text(R"(rules:
  - name: a
    on: vm.state
    where: vm.state == "runing"
    do: reset
  - name: b
    on: vm.state
    where: vm.cpu > 90
    do: reset
  - name: c
    on: vm.panicked
    where: event.type in ["vm.panickd"] and vm.label.tier == "web"
    do: reset
)",
                          "e.yaml");
  // One error per mistake: the unknown vm.cpu is not also "a bool literal".
  EXPECT_THAT(
      lines(r),
      ElementsAre(
          "e.yaml:4:24: error: unknown VM state \"runing\"; did you mean running? [expr-type]",
          "e.yaml:8:12: error: unknown field \"vm.cpu\"; did you mean vm.cpu_percent? "
          "[expr-type]",
          "e.yaml:12:27: error: unknown event type \"vm.panickd\"; did you mean vm.panicked? "
          "[expr-type]",
          "e.yaml:12:45: error: unknown field \"vm.label.tier\"; did you mean vm.labels.tier? "
          "[expr-type]"));
}

TEST(LoaderSuggestions, ReportsAFunctionCallOnceAndKeepsChecking) {
  auto r = load_rule_text(R"(rules:
  - name: f
    on: vm.state
    where: lower(vm.labels.tier) == "web" and vm.cpu_percent > "high"
    do: reset
)",
                          "f.yaml");
  EXPECT_THAT(lines(r),
              ElementsAre("f.yaml:4:12: error: unknown function \"lower\" (conditions have no "
                          "functions: compare a field with ==, !=, <, >, in [...] or matches "
                          "\"regex\") [expr-type]",
                          "f.yaml:4:62: error: cannot compare vm.cpu_percent (a number) with a "
                          "string literal using > [expr-type]"));
  auto open = load_rule_text("rules:\n  - {name: g, on: vm.state, where: 'lower(vm.id', do: reset}\n",
                             "g.yaml");
  EXPECT_EQ(open.error_count(), 2u) << open.text();
  EXPECT_NE(open.text().find("expected ) to close the ( of lower( [expr-syntax]"),
            std::string::npos)
      << open.text();
}

TEST(LoaderSuggestions, AMisspeltTriggerIsNotBlamedAgainOnTheFieldsItWouldProvide) {
  auto r = load_rule_text(R"(rules:
  - name: p
    on: probe.faild
    where: probe.status >= 500
    key: [vm.id, probe.name]
    do: restart
)",
                          "t.yaml");
  EXPECT_THAT(lines(r), ElementsAre("t.yaml:3:9: error: unknown event type \"probe.faild\" in on:; "
                                    "did you mean probe.failed? [unknown-event-type]"));
}

TEST(LoaderSuggestions, CorrectNamesGetNoSuggestionAndFarNamesGetTheList) {
  // Positive control: the right names load without a message.
  auto good = load_rule_text(R"(rules:
  - name: ok
    on: vm.state
    where: vm.state == "running" and vm.cpu_percent > 90 and vm.labels.tier == "web"
    key: vm.host
    do: notify
    cooldown: 5m
    approval: required
    mode: dry-run
)",
                             "g.yaml");
  EXPECT_TRUE(good.ok()) << good.text();
  EXPECT_TRUE(good.messages.empty()) << good.text();
  auto far = load_rule_text(R"(rules:
  - name: far
    on: vm.state
    where: banana.split == "x" or vm.state == "asleep"
    key: colour
    do: explode
    mode: yolo
)",
                            "f.yaml");
  const std::string t = far.text();
  EXPECT_EQ(t.find("did you mean"), std::string::npos) << t;
  EXPECT_NE(t.find("f.yaml:4:12: error: unknown field \"banana.split\" [expr-type]"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("f.yaml:4:47: error: unknown VM state \"asleep\" (expected unknown, running, "
                   "paused, stopped, panicked, crashed, booting, shutting_down or unresponsive) "
                   "[expr-type]"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("f.yaml:5:10: error: key: unknown key field \"colour\" (expected vm.id, "
                   "vm.host, probe.name or alert.name) [schema]"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("f.yaml:7:11: error: mode: must be enforce or dry-run, got \"yolo\" [policy]"),
            std::string::npos)
      << t;
  EXPECT_EQ(far.error_count(), 5u) << t;
}

TEST(LoaderFiles, ReportsMissingAndUnreadableFilesWithTheOthers) {
  testing::TempDir dir;
  std::string good = dir.write("good.yaml", "rules:\n  - {name: x, on: vm.panicked, do: reset}\n");
  std::string bad = dir.write("bad.yaml", "rules:\n  - {name: y, on: vm.panikd, do: reset}\n");
  auto r = load_rule_files({dir.file("nope.yaml"), good, dir.path(), bad});
  EXPECT_THAT(lines(r),
              ElementsAre(dir.file("nope.yaml") +
                              ": error: cannot read the file: No such file or directory [read-file]",
                          dir.path() + ": error: cannot read the file: it is a directory [read-file]",
                          bad + ":2:19: error: unknown event type \"vm.panikd\" in on:; did you "
                                "mean vm.panicked? [unknown-event-type]"));
  EXPECT_FALSE(r.rules);
}

TEST(LoaderFiles, ADuplicateRuleNameIsAnError) {
  auto r = load_rule_text(R"(rules:
  - {name: same, on: vm.panicked, do: reset}
  - {name: same, on: vm.crashed, do: restart}
  - {name: other, on: vm.crashed, do: restart}
)",
                          "d.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(lines(r),
              ElementsAre("d.yaml:3:12: error: rule name \"same\" is already used at d.yaml:2; "
                          "every rule needs a unique name (decisions, silences and the audit name "
                          "rules) [duplicate-name]"));
}

TEST(LoaderLabels, WarnsAboutALabelKeyNoVmHas) {
  LoadOptions opts;
  opts.label_keys = std::set<std::string>{"team", "tier"};
  auto r = load_rule_text(R"(rules:
  - name: l
    on: vm.panicked
    where: vm.labels.tiers == "web" or vm.labels["colour"] == "red" or vm.labels.team == "a"
    do: reset
)",
                          "l.yaml", opts);
  EXPECT_TRUE(r.ok()) << r.text();  // a warning: the rule still loads
  EXPECT_THAT(lines(r),
              ElementsAre("l.yaml:4:12: warning: no VM has the label \"tiers\", so "
                          "vm.labels.tiers is always \"\"; did you mean tier? [unknown-label]",
                          "l.yaml:4:40: warning: no VM has the label \"colour\", so "
                          "vm.labels.colour is always \"\"; the VMs have team and tier "
                          "[unknown-label]"));
  // Without label keys nothing is checked.
  auto unchecked = load_rule_text(
      "rules:\n  - {name: l, on: vm.panicked, where: vm.labels.tiers == \"a\", do: reset}\n",
      "u.yaml");
  EXPECT_TRUE(unchecked.messages.empty()) << unchecked.text();
}

TEST(LoaderLabels, ReadsLabelKeysFromAVmSpecOrAList) {
  std::vector<LoadMessage> problems;
  auto keys = read_label_keys(testing::source_dir() + "/examples/qemu-vms.yaml", &problems);
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(keys, (std::set<std::string>{"team", "tier"}));
  testing::TempDir dir;
  auto list = read_label_keys(dir.write("k.yaml", "label_keys: [tier, zone]\n"), &problems);
  EXPECT_EQ(list, (std::set<std::string>{"tier", "zone"}));
  auto map = read_label_keys(
      dir.write("m.yaml", "vms:\n  web-1: {host: h1, labels: {tier: web}}\n  db-1: {host: h1}\n"),
      &problems);
  EXPECT_EQ(map, (std::set<std::string>{"tier"}));
  EXPECT_TRUE(problems.empty());
}

TEST(LoaderLabels, ReportsABadLabelsFileWithPosition) {
  testing::TempDir dir;
  std::vector<LoadMessage> problems;
  const std::string p = dir.write("bad.yaml", "vm:\n  - labels: {tier: web}\nvms: 3\n");
  read_label_keys(p, &problems);
  std::vector<std::string> got;
  for (const auto& m : problems) got.push_back(m.to_string());
  EXPECT_THAT(got, ElementsAre(p + ":1:1: error: unknown key \"vm\"; did you mean vms? [schema]",
                               p + ":3:6: error: vms: must be a list of VMs or a map of VM id to VM "
                                   "[schema]"));
  problems.clear();
  read_label_keys(dir.file("absent.yaml"), &problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].to_string(), dir.file("absent.yaml") +
                                         ": error: cannot read the file: No such file or "
                                         "directory [read-file]");
}

}  // namespace
}  // namespace medic::rules
