// `medic audit why`, story by story, against golden files: each test records
// a log with a real engine pipeline (tests/integration/why_story_log.h) and
// compares the text and the JSON story of one decision with
// tests/golden/why/<story>.txt and .json.
//
// To regenerate the golden files after a deliberate change of the story:
//   MEDIC_UPDATE_GOLDEN=1 ctest -R integration_why_golden
// then read the diff (git diff tests/golden) before committing it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/integration/why_story_log.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using testing::StoryLog;

constexpr const char* kWeb1 = "4c1f0e2a-7d3b-4f6e-9a1c-2b8d5e6f7a01";
constexpr const char* kWeb2 = "9e2d4b6a-1c3f-4a5e-8b7d-0f1e2d3c4b02";

std::string golden_path(const std::string& name) {
  return testing::source_dir() + "/tests/golden/why/" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Compares `got` with the golden file, or rewrites it when asked to.
void expect_golden(const std::string& name, const std::string& got) {
  const std::string path = golden_path(name);
  const char* update = std::getenv("MEDIC_UPDATE_GOLDEN");
  if (update && *update) {
    std::ofstream(path, std::ios::trunc) << got;
    return;
  }
  const std::string want = read_file(path);
  ASSERT_FALSE(want.empty()) << path << " is missing; run with MEDIC_UPDATE_GOLDEN=1";
  EXPECT_EQ(got, want) << "the story differs from " << path
                       << " (MEDIC_UPDATE_GOLDEN=1 rewrites it)";
}

void expect_story(StoryLog& log, const std::string& id, const std::string& name) {
  ASSERT_FALSE(id.empty()) << "no decision for the story " << name;
  const std::string text = log.why(id, false);
  const std::string json = log.why(id, true);
  expect_golden(name + ".txt", text);
  expect_golden(name + ".json", json);
}

// The first decision `policy` stopped.
std::string stopped_by(const StoryLog& log, rules::Policy policy) {
  for (const auto& d : log.decisions()) {
    if (d.outcome == rules::Outcome::kSuppressed && d.policy == policy) return d.id;
  }
  return "";
}

// A VM with a recent heartbeat, known to the engine.
void healthy(StoryLog& log, const std::string& vm, const std::string& name,
             const std::string& host = "host-a") {
  log.state(vm, name, medic::v1::VM_STATE_RUNNING, log.now(), host);
  log.heartbeat(vm, host);
}

constexpr const char* kPanicRule =
    "rules:\n"
    "  - {name: guest-panicked, on: vm.panicked, do: reset, heal_within: 1m}\n";

TEST(WhyGolden, APanicResetThatHealed) {
  StoryLog log(kPanicRule);
  healthy(log, kWeb1, "web-1");
  log.advance(5s);
  log.panic({kWeb1});
  const std::string id = log.take_action();
  log.succeed(id, false);
  log.advance(6s);
  log.heartbeat(kWeb1);
  expect_story(log, id, "healed");
}

constexpr const char* kLadderRule =
    "rules:\n"
    "  - {name: guest-unresponsive, absent: vm.heartbeat, for: 30s,"
    " do: [reboot, reset], heal_within: 30s}\n";

// Step 1 (reboot) runs but the heartbeat never comes back; step 2 (reset)
// heals the VM. One log, two stories.
void record_ladder(StoryLog& log, std::string* step1, std::string* step2) {
  healthy(log, kWeb1, "web-1");
  const Time last_beat = log.now();
  for (int i = 0; i < 3; ++i) {
    log.advance(10s);
    log.state(kWeb1, "web-1", medic::v1::VM_STATE_RUNNING, last_beat);
  }
  log.advance(1s);
  *step1 = log.take_action();
  log.succeed(*step1, false);
  log.pass(30s, kWeb1, "web-1", medic::v1::VM_STATE_RUNNING, last_beat);
  log.advance(1s);
  *step2 = log.take_action();
  log.succeed(*step2, false);
  log.advance(4s);
  log.heartbeat(kWeb1);
}

TEST(WhyGolden, ARebootThatDidNotHealAndClimbedTheLadder) {
  StoryLog log(kLadderRule);
  std::string step1, step2;
  record_ladder(log, &step1, &step2);
  expect_story(log, step1, "not-healed-escalated");
}

TEST(WhyGolden, TheResetTheLadderClimbedToNamesTheStepBefore) {
  StoryLog log(kLadderRule);
  std::string step1, step2;
  record_ladder(log, &step1, &step2);
  expect_story(log, step2, "escalated-step-healed");
}

TEST(WhyGolden, ASecondPanicWithinTheCooldownIsSuppressed) {
  StoryLog log(
      "rules:\n"
      "  - {name: guest-panicked, on: vm.panicked, do: reset, cooldown: 10m,"
      " heal_within: 1m}\n");
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  log.succeed(log.take_action(), true);
  log.pass(40s, kWeb1, "web-1", medic::v1::VM_STATE_RUNNING, log.now());
  log.panic({kWeb1});
  expect_story(log, stopped_by(log, rules::Policy::kCooldown), "suppressed-cooldown");
}

TEST(WhyGolden, APanicOverTheBudgetIsSuppressed) {
  StoryLog log(
      "rules:\n"
      "  - {name: guest-panicked, on: vm.panicked, do: reset, cooldown: 1s,"
      " budget: 1 per 1h, heal_within: 1m}\n");
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  log.succeed(log.take_action(), true);
  log.pass(2min, kWeb1, "web-1", medic::v1::VM_STATE_RUNNING, log.now());
  log.panic({kWeb1});
  expect_story(log, stopped_by(log, rules::Policy::kBudget), "suppressed-budget");
}

TEST(WhyGolden, APanicOnASilencedVmIsSuppressed) {
  StoryLog log(kPanicRule);
  healthy(log, kWeb1, "web-1");
  log.silence_vm(kWeb1, 2h, "kernel upgrade in progress");
  log.advance(3s);
  log.panic({kWeb1});
  expect_story(log, log.decision(kWeb1), "suppressed-silence");
}

TEST(WhyGolden, AnotherRuleOnAVmWithAnActionInFlightIsSuppressed) {
  StoryLog log(
      "rules:\n"
      "  - {name: guest-panicked, on: vm.panicked, do: reset, heal_within: 1m}\n"
      "  - {name: panic-restart, on: vm.panicked, do: restart, cooldown: 0s}\n");
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  expect_story(log, stopped_by(log, rules::Policy::kVmInFlight), "suppressed-vm-in-flight");
}

// host-a stops talking: the engine notices (a notice of its own), and the
// absence that follows is held: no facts, no action.
void record_silent_host(StoryLog& log) {
  healthy(log, kWeb1, "web-1");
  log.state(kWeb2, "web-2", medic::v1::VM_STATE_RUNNING, log.now());
  log.heartbeat(kWeb2);
  for (int i = 0; i < 8; ++i) log.advance(5s);
}

TEST(WhyGolden, AnAbsenceOnASilentHostIsHeld) {
  StoryLog log(kLadderRule);
  record_silent_host(log);
  expect_story(log, log.decision(kWeb1), "suppressed-host-silent");
}

TEST(WhyGolden, TheEnginesHostSilentNoticeReadsAsANotice) {
  StoryLog log(kLadderRule);
  record_silent_host(log);
  expect_story(log, log.decision("host-a"), "notice-host-silent");
}

TEST(WhyGolden, ManyVmsOfOneHostPanickingAtOnceAreFrozenByTheStormGuard) {
  StoryLog log(kPanicRule);
  const std::vector<std::string> vms = {
      "b1000000-0000-4000-8000-000000000001", "b1000000-0000-4000-8000-000000000002",
      "b1000000-0000-4000-8000-000000000003", "b1000000-0000-4000-8000-000000000004"};
  for (size_t i = 0; i < vms.size(); ++i) {
    healthy(log, vms[i], "db-" + std::to_string(i + 1), "host-b");
  }
  log.advance(2s);
  log.panic({vms[0], vms[1], vms[2]}, "host-b");
  // The guard lets the first through and freezes the rest.
  expect_story(log, stopped_by(log, rules::Policy::kStormGuard), "suppressed-storm-guard");
}

constexpr const char* kApprovalRule =
    "rules:\n"
    "  - {name: db-panicked, on: vm.panicked, do: reset, approval: required,"
    " approval_timeout: 10m, heal_within: 1m}\n";

TEST(WhyGolden, AnApprovedResetCarriesTheApproversComment) {
  StoryLog log(kApprovalRule);
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  const std::string id = log.decision(kWeb1);
  log.pass(45s, kWeb1, "web-1", medic::v1::VM_STATE_PANICKED, log.now() - 5s);
  EXPECT_EQ(log.approve(id, "checked the console: kernel oops, reset is safe"), "approved " + id);
  log.succeed(log.take_action(), false);
  log.advance(5s);
  log.heartbeat(kWeb1);
  expect_story(log, id, "approved-with-comment");
}

// Approved after the host fell silent: the approval does not override the
// missing facts, and the one action ends suppressed, saying so.
TEST(WhyGolden, AnApprovalWhileTheHostIsSilentEndsSuppressed) {
  StoryLog log(kApprovalRule);
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  const std::string id = log.decision(kWeb1);
  for (int i = 0; i < 6; ++i) log.advance(5s);  // host-a says nothing for 30 s
  EXPECT_EQ(log.approve(id, "reset it, the host is fine"), "approved " + id);
  expect_story(log, id, "approved-host-silent");
}

TEST(WhyGolden, ADeniedResetSaysWhoAndWhy) {
  StoryLog log(kApprovalRule);
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  const std::string id = log.decision(kWeb1);
  log.pass(20s, kWeb1, "web-1", medic::v1::VM_STATE_PANICKED, log.now());
  EXPECT_EQ(log.deny(id, "the database is failing over; leave it"), "denied " + id);
  expect_story(log, id, "denied");
}

TEST(WhyGolden, AnApprovalThatNeverCameExpires) {
  StoryLog log(kApprovalRule);
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  const std::string id = log.decision(kWeb1);
  log.advance(10min);
  log.advance(1s);
  expect_story(log, id, "expired");
}

TEST(WhyGolden, ADryRunRuleRecordsWhatItWouldHaveDone) {
  StoryLog log(
      "rules:\n"
      "  - {name: guest-panicked, on: vm.panicked, do: reset, mode: dry-run,"
      " heal_within: 1m}\n");
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  log.pass(20s, kWeb1, "web-1", medic::v1::VM_STATE_PANICKED, log.now());
  log.heartbeat(kWeb1);
  expect_story(log, log.decision(kWeb1), "dry-run");
}

TEST(WhyGolden, ANotifyStepReadsAsANoticeWithItsText) {
  StoryLog log(
      "rules:\n"
      "  - {name: page-on-panic, on: vm.panicked, do: notify,"
      " message: 'web-1 panicked: look at its console', heal_within: 1m}\n");
  healthy(log, kWeb1, "web-1");
  log.panic({kWeb1});
  log.pass(30s, kWeb1, "web-1", medic::v1::VM_STATE_PANICKED, log.now());
  log.heartbeat(kWeb1);
  expect_story(log, log.decision(kWeb1), "notice-rule");
}

}  // namespace
}  // namespace medic
