#include "rules/rule_test.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "tests/testing/testing.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;

// medic_binary() relies on $MEDIC_BINARY; tests/CMakeLists.txt currently
// passes only the first variable of its ENVIRONMENT list (the ';' splits it),
// so fall back to the binary next to this test executable's build tree.
std::string medic() {
  const char* env = std::getenv("MEDIC_BINARY");
  if (env && *env) return env;
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  return (self.parent_path().parent_path() / "app" / "medic").string();
}

std::string testdata(const std::string& name) {
  return medic::testing::source_dir() + "/tests/unit/rules/testdata/" + name;
}

TEST(Series, ReadsEveryFromUntilAndCounts) {
  auto a = parse_series("every 5s until 20s", 1h);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, (std::vector<Duration>{0s, 5s, 10s, 15s}));
  auto b = parse_series("every 1m from 2m", 4min);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<Duration>{2min, 3min, 4min}));
  auto c = parse_series("10s+1s x3, every 10s until 11s", 1h);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, (std::vector<Duration>{0s, 10s, 10s, 11s, 12s}));
}

TEST(Series, RejectsWhatItCannotRead) {
  for (const char* bad : {"", "every", "every soon", "every 5s during 1m", "every 0s", "5s x3",
                          "0s+5s x0", "0s+5s y3", "every 5s from"}) {
    auto r = parse_series(bad, 1h);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("expected e.g."), std::string::npos) << r.status();
    }
  }
}

TEST(RuleTests, FailingTestShowsExpectedVersusProduced) {
  std::ostringstream out;
  auto sum = run_rule_test_files({testdata("failing.test.yaml")}, {}, out);
  EXPECT_FALSE(sum.ok());
  EXPECT_EQ(sum.tests, 1u);
  EXPECT_EQ(sum.failed, 1u);
  std::string s = out.str();
  EXPECT_NE(s.find("FAIL " + testdata("failing.test.yaml") + ":4: a hung guest is reset"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("  expected, not produced:\n    at 1m      reset   vm web-1"), std::string::npos)
      << s;
  EXPECT_NE(s.find("  produced, not expected:\n    at 1m25s   reboot  vm web-1"), std::string::npos)
      << s;
  EXPECT_NE(s.find("at 2m25s   reset   vm web-1        proposed"), std::string::npos) << s;
  EXPECT_NE(s.find("1 tests in 1 files: 0 passed, 1 failed"), std::string::npos) << s;
}

TEST(RuleTests, BrokenTestFileReportsEveryProblemWithPositions) {
  std::ostringstream out;
  auto sum = run_rule_test_files({testdata("broken.test.yaml")}, {}, out);
  EXPECT_EQ(sum.errors, 1u);
  EXPECT_FALSE(sum.ok());
  std::string s = out.str();
  std::string f = testdata("broken.test.yaml");
  EXPECT_NE(s.find(f + ":7:14: error: invalid series \"every often\""), std::string::npos) << s;
  EXPECT_NE(s.find(f + ":9:23: error: unknown VM \"web-9\" (declare it under vms:)"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find(f + ":10:14: error: \"at\""), std::string::npos) << s;
  EXPECT_NE(s.find(f + ":10:38: error: unknown event type \"vm.exploded\""), std::string::npos)
      << s;
  EXPECT_NE(s.find(f + ":12:51: error: unknown outcome \"maybe\""), std::string::npos) << s;
  EXPECT_NE(s.find("ERROR " + f + ": the test file has errors"), std::string::npos) << s;
}

TEST(RuleTests, RuleFilesThatDoNotLoadAreAnError) {
  medic::testing::TempDir dir;
  dir.write("bad.rules.yaml", "rules:\n  - {name: x, on: vm.nope, do: reset}\n");
  std::string t =
      dir.write("t.test.yaml",
                "rule_files: [bad.rules.yaml]\ntests:\n  - name: t\n    vms: {a: {host: h}}\n");
  std::ostringstream out;
  auto sum = run_rule_test_files({t}, {}, out);
  EXPECT_EQ(sum.errors, 1u);
  EXPECT_NE(out.str().find("unknown event type \"vm.nope\""), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("the rule files do not load"), std::string::npos) << out.str();
}

TEST(RuleTests, ResultForAnActionNeverProposedFailsTheTest) {
  medic::testing::TempDir dir;
  dir.write("r.yaml", "rules:\n  - {name: p, on: vm.panicked, do: reset}\n");
  std::string t = dir.write("t.test.yaml", R"(rule_files: [r.yaml]
tests:
  - name: t
    vms: {a: {host: h}}
    results:
      - {at: 5s, vm: a, step: reboot, outcome: succeeded}
    operator:
      - {at: 6s, approve: {vm: a, step: reset}}
)");
  std::ostringstream out;
  auto sum = run_rule_test_files({t}, {}, out);
  EXPECT_EQ(sum.failed, 1u);
  EXPECT_NE(out.str().find("result at 5s: no reboot of a was proposed or approved before"),
            std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("no reset of a is pending approval"), std::string::npos) << out.str();
}

TEST(RuleTests, SuggestsWhatAMisspeltNameInATestFileMeant) {
  medic::testing::TempDir dir;
  dir.write("r.yaml", "rules:\n  - {name: p, on: vm.panicked, do: reset}\n");
  std::string t = dir.write("t.test.yaml", R"(rule_files: [r.yaml]
tests:
  - name: t
    vms: {web-1: {host: h1}}
    input:
      - {at: 5s, vm: web-l, event: vm.panicked}
      - {at: 6s, vm: web-1, event: vm.panickd}
      - {at: 7s, vm: web-1, event: vm.state, state: runing}
    results:
      - {at: 8s, vm: web-1, step: rebot, outcome: succeded}
    expect:
      - {at: 1m, vm: web-1, step: reset, outcom: proposed, policy: cooldwon}
    heartbeats: {web-2: every 5s}
)");
  std::ostringstream out;
  auto sum = run_rule_test_files({t}, {}, out);
  EXPECT_EQ(sum.errors, 1u);
  const std::string s = out.str();
  for (const std::string& want : {
           t + ":6:22: error: unknown VM \"web-l\" (declare it under vms:); did you mean web-1?",
           t + ":7:36: error: unknown event type \"vm.panickd\"; did you mean vm.panicked?",
           t + ":8:53: error: unknown VM state \"runing\"; did you mean running?",
           t + ":10:35: error: unknown step \"rebot\"; did you mean reboot?",
           t + ":10:51: error: unknown outcome \"succeded\"; did you mean succeeded?",
           t + ":12:42: error: unknown key \"outcom\"; did you mean outcome?",
           t + ":12:68: error: unknown policy \"cooldwon\"; did you mean cooldown?",
           t + ":13:18: error: unknown VM \"web-2\" (declare it under vms:, or use all); did "
               "you mean web-1?",
       }) {
    EXPECT_NE(s.find(want + "\n"), std::string::npos) << want << "\n" << s;
  }
}

TEST(RuleTests, FarNamesInATestFileGetTheListNotAGuess) {
  medic::testing::TempDir dir;
  dir.write("r.yaml", "rules:\n  - {name: p, on: vm.panicked, do: reset}\n");
  std::string t = dir.write("t.test.yaml", R"(rule_files: [r.yaml]
tests:
  - name: t
    vms: {web-1: {host: h1}}
    results:
      - {at: 8s, vm: web-1, step: explode, outcome: succeeded}
)");
  std::ostringstream out;
  run_rule_test_files({t}, {}, out);
  EXPECT_NE(out.str().find(t + ":6:35: error: unknown step \"explode\" (expected reboot, reset, "
                                "restart, stop, start or notify)\n"),
            std::string::npos)
      << out.str();
  EXPECT_EQ(out.str().find("did you mean"), std::string::npos) << out.str();
}

// The shipped examples pass through the real binary: `make test` runs them.
TEST(RulesCommand, ExampleRuleTestsPass) {
  std::string ex = medic::testing::source_dir() + "/examples/rules/";
  auto r = medic::testing::run_command(
      {medic(), "rules", "test", ex + "fleet.test.yaml", ex + "storm.test.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("0 failed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
}

TEST(RulesCommand, ExampleRulesCheckClean) {
  auto r = medic::testing::run_command(
      {medic(), "rules", "check", "--strict",
       medic::testing::source_dir() + "/examples/rules/fleet.rules.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("0 error(s), 0 warning(s), 9 rule(s) OK"), std::string::npos) << r.err;
}

TEST(RulesCommand, CheckPrintsCompilerStyleErrorsAndExitsOne) {
  medic::testing::TempDir dir;
  std::string f = dir.write(
      "bad.yaml",
      "rules:\n  - name: x\n    on: vm.panicked\n    where: vm.uptime > 30\n    do: reset\n");
  auto r = medic::testing::run_command({medic(), "rules", "check", f});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(
      r.err.find(f + ":4:22: error: cannot compare vm.uptime (a duration) with a number literal"),
      std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("1 error(s), 0 warning(s)"), std::string::npos) << r.err;
}

TEST(RulesCommand, StrictCheckFailsOnWarnings) {
  medic::testing::TempDir dir;
  std::string f =
      dir.write("w.yaml", "rules:\n  - {name: x, on: vm.panicked, where: 'false', do: reset}\n");
  auto plain = medic::testing::run_command({medic(), "rules", "check", f});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.err.find("warning: where: is always false"), std::string::npos) << plain.err;
  auto strict = medic::testing::run_command({medic(), "rules", "check", "--strict", f});
  EXPECT_EQ(strict.exit_code, 1);
}

TEST(RulesCommand, CheckReportsAMissingFileWithTheOthersAndExitsOne) {
  medic::testing::TempDir dir;
  std::string bad = dir.write("bad.yaml", "rules:\n  - {name: x, on: vm.panicked, do: rebot}\n");
  auto r = medic::testing::run_command(
      {medic(), "rules", "check", dir.file("missing.yaml"), bad});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err, dir.file("missing.yaml") +
                       ": error: cannot read the file: No such file or directory [read-file]\n" +
                       bad +
                       ":2:36: error: unknown step \"rebot\"; did you mean reboot? [action]\n"
                       "2 files: 2 error(s), 0 warning(s)\n");
}

TEST(RulesCommand, CheckWarnsAboutLabelKeysNoVmOfTheLabelsFileHas) {
  medic::testing::TempDir dir;
  std::string f = dir.write("l.yaml",
                            "rules:\n  - {name: x, on: vm.panicked, where: 'vm.labels.teir == "
                            "\"web\"', do: reset}\n");
  const std::string vms = medic::testing::source_dir() + "/examples/qemu-vms.yaml";
  auto r = medic::testing::run_command({medic(), "rules", "check", "--labels", vms, f});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, f +
                       ":2:40: warning: no VM has the label \"teir\", so vm.labels.teir is always "
                       "\"\"; did you mean tier? [unknown-label]\n"
                       "1 file: 0 error(s), 1 warning(s), 1 rule(s) OK\n");
  auto strict =
      medic::testing::run_command({medic(), "rules", "check", "--strict", "--labels", vms, f});
  EXPECT_EQ(strict.exit_code, 1) << strict.err;
  // Positive control: the same rule with the right key is clean.
  std::string ok = dir.write("ok.yaml",
                             "rules:\n  - {name: x, on: vm.panicked, where: 'vm.labels.tier == "
                             "\"web\"', do: reset}\n");
  auto clean =
      medic::testing::run_command({medic(), "rules", "check", "--strict", "--labels", vms, ok});
  EXPECT_EQ(clean.exit_code, 0) << clean.err;
  EXPECT_EQ(clean.err, "1 file: 0 error(s), 0 warning(s), 1 rule(s) OK\n");
  // A labels file that cannot be read is an error like any other.
  auto missing = medic::testing::run_command(
      {medic(), "rules", "check", "--labels", dir.file("vms.yaml"), ok});
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_EQ(missing.err.rfind(dir.file("vms.yaml") +
                                  ": error: cannot read the file: No such file or directory "
                                  "[read-file]\n",
                              0),
            0u)
      << missing.err;
}

TEST(RulesCommand, TestReportsAMissingFileAndExitsOne) {
  medic::testing::TempDir dir;
  auto r = medic::testing::run_command({medic(), "rules", "test", dir.file("missing.test.yaml")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("ERROR " + dir.file("missing.test.yaml") + ": "), std::string::npos)
      << r.out << r.err;
}

TEST(RulesCommand, FailingRuleTestExitsOne) {
  auto r = medic::testing::run_command({medic(), "rules", "test", testdata("failing.test.yaml")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("expected, not produced"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace medic::rules
