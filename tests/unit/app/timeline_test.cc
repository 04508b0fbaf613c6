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
  tl.executed(t0 + 1s + 6ms, "web-1", "a-1", true, "");
  tl.healed(t0 + 3s + 500ms, "web-1");
  std::string s = out.str();
  EXPECT_NE(s.find("   1.00s  FAULT       web-1: panic injected"), std::string::npos) << s;
  EXPECT_NE(s.find("DECISION    web-1: reset by rule guest-panicked (cooldown ok, budget 1/3)"),
            std::string::npos);
  EXPECT_NE(s.find("HEALED      web-1 in 2.50s"), std::string::npos) << s;
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

}  // namespace
}  // namespace medic::app
