#include "app/timeline.h"

#include <gtest/gtest.h>

#include <sstream>

namespace medic::app {
namespace {

using namespace std::chrono_literals;

TEST(Timeline, IncidentLinesAndTimeToHeal) {
  std::ostringstream out;
  Time t0 = from_ns(1'000'000'000'000);
  Timeline tl(out, false, t0);
  tl.fault_injected(t0 + 1s, "web-1", "panic");
  tl.detected(t0 + 1s + 2ms, "web-1", "vm.panicked event from host-01");
  tl.decided(t0 + 1s + 3ms, "web-1", "guest-panicked", "reset", "cooldown ok, budget 1/3");
  tl.dispatched(t0 + 1s + 4ms, "web-1", "a-1", "reset");
  tl.executed(t0 + 1s + 6ms, "web-1", "a-1", Timeline::Ran::kHealed);
  tl.healed(t0 + 3s + 500ms, "web-1");
  std::string s = out.str();
  EXPECT_NE(s.find("   1.00s  FAULT       web-1: panic injected"), std::string::npos) << s;
  EXPECT_NE(s.find("DECISION    web-1: reset by rule guest-panicked (cooldown ok, budget 1/3)"),
            std::string::npos);
  EXPECT_NE(s.find("HEALED      web-1 in 2.50s"), std::string::npos) << s;
  EXPECT_NE(s.find("EXECUTED    web-1: action a-1 ran; the VM is healthy again"), std::string::npos)
      << s;
  EXPECT_EQ(s.find("\033["), std::string::npos) << "no colour when not asked";
  EXPECT_EQ(tl.summary().healed, 1u);
  EXPECT_EQ(tl.summary().percentile(50), 2500ms);
}

TEST(Timeline, SummaryCountsSuppressionsAndOpenFaultsAndPercentiles) {
  std::ostringstream out;
  Time t0 = from_ns(0);
  Timeline tl(out, true, t0);
  for (int i = 1; i <= 10; ++i) {
    std::string vm = "vm-" + std::to_string(i);
    tl.fault_injected(t0, vm, "hang");
    if (i <= 9) tl.healed(t0 + std::chrono::seconds(i), vm);
  }
  tl.suppressed(t0, "vm-10", "guest-unresponsive", "restart", "storm_guard", "30% of host-02 bad");
  tl.suppressed(t0, "vm-10", "guest-unresponsive", "restart", "storm_guard", "");
  tl.suppressed(t0, "vm-10", "guest-unresponsive", "restart", "budget", "");
  tl.print_summary(t0 + 60s, {"Try: medic audit why a-1"});
  const auto& sum = tl.summary();
  EXPECT_EQ(sum.faults, 10u);
  EXPECT_EQ(sum.healed, 9u);
  EXPECT_EQ(sum.open, 1u);
  EXPECT_EQ(sum.percentile(50), 5s);
  EXPECT_EQ(sum.percentile(99), 9s);
  EXPECT_EQ(sum.suppressed_by_policy.at("storm_guard"), 2u);
  std::string s = out.str();
  EXPECT_NE(s.find("actions suppressed   3"), std::string::npos) << s;
  EXPECT_NE(s.find("by storm_guard: 2"), std::string::npos);
  EXPECT_NE(s.find("Try: medic audit why a-1"), std::string::npos);
  EXPECT_NE(s.find("\033[31m"), std::string::npos) << "colour when asked";
}

TEST(Timeline, HealWithoutAFaultIsShownButNotTimed) {
  std::ostringstream out;
  Timeline tl(out, false, from_ns(0));
  tl.healed(from_ns(5), "vm-x");
  EXPECT_EQ(tl.summary().healed, 0u);
  EXPECT_EQ(tl.summary().percentile(50), Duration(0));
}

TEST(Timeline, AnActionThatRanWithoutHealingIsNotCalledASuccess) {
  std::ostringstream out;
  Timeline tl(out, false, from_ns(0));
  tl.executed(from_ns(0), "web-2", "a-2", Timeline::Ran::kNotHealed);
  tl.executed(from_ns(0), "web-3", "a-3", Timeline::Ran::kFailed, "VM is stopped");
  tl.print_summary(from_ns(0), {});
  std::string s = out.str();
  EXPECT_NE(s.find("web-2: action a-2 ran, but the VM is not healthy yet"), std::string::npos) << s;
  EXPECT_NE(s.find("web-3: action a-3 failed: VM is stopped"), std::string::npos) << s;
  EXPECT_EQ(s.find("succeeded"), std::string::npos) << s;
  EXPECT_NE(s.find("actions dispatched   0 (healed 0, ran but not healed 1, failed 1)"),
            std::string::npos) << s;
}

TEST(Timeline, MillisecondsInReasonsAreWrittenAsSecondsLikeTheRest) {
  std::ostringstream out;
  Timeline tl(out, false, from_ns(0));
  tl.suppressed(from_ns(0), "vm-1", "r", "reboot", "host-silent",
                "silent for 2569ms (limit 2500ms), 10ms2 stays, 1.5ms stays");
  std::string s = out.str();
  EXPECT_NE(s.find("silent for 2.57s (limit 2.50s), 10ms2 stays, 1.5ms stays"), std::string::npos)
      << s;
}

TEST(Timeline, LinesThatDifferOnlyInVmAndNumbersCollapseIntoOneWithACount) {
  std::ostringstream out;
  Time t0 = from_ns(0);
  Timeline tl(out, false, t0);
  for (int i = 1; i <= 20; ++i) {
    std::string vm = "host-03-vm-" + std::to_string(100 + i);
    tl.suppressed(t0 + std::chrono::milliseconds(i), vm, "guest-unresponsive", "reboot",
                  "host-silent", "host host-03 silent for " + std::to_string(i) + "s");
  }
  tl.note(t0 + 1s, "something else");
  std::string s = out.str();
  EXPECT_NE(s.find("host-03-vm-101: reboot by rule guest-unresponsive held back by host-silent"),
            std::string::npos) << s;
  EXPECT_EQ(s.find("host-03-vm-102: reboot"), std::string::npos) << s;
  EXPECT_NE(s.find("SUPPRESSED  ... and 19 more like it: host-03-vm-102, host-03-vm-103, "
                   "host-03-vm-104, ..., host-03-vm-120"),
            std::string::npos) << s;
  EXPECT_LT(s.find("19 more"), s.find("something else")) << "the count comes before what follows";
  EXPECT_EQ(tl.summary().suppressed_by_policy.at("host-silent"), 20u) << "all are counted";
  // A different suppression is a line of its own (positive control).
  tl.suppressed(t0 + 2s, "host-03-vm-101", "guest-unresponsive", "reboot", "budget", "3 per 10m");
  tl.suppressed(t0 + 2s, "host-03-vm-102", "guest-unresponsive", "reboot", "host-silent", "x");
  s = out.str();
  EXPECT_NE(s.find("held back by budget"), std::string::npos) << s;
  EXPECT_NE(s.find("host-03-vm-102: reboot by rule guest-unresponsive held back by host-silent: x"),
            std::string::npos) << s;
}

}  // namespace
}  // namespace medic::app
