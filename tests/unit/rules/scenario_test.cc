// Fleet scenarios driven with synthetic event timelines: what the simulator
// will do later, written against the engine alone so they run today.
#include <gtest/gtest.h>

#include <set>

#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::lifecycle;

const char* kFleetRules = R"(rules:
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    do: [reboot, reset, restart, notify]
    heal_within: 1m
  - name: guest-panicked
    on: vm.panicked
    do: reset
    budget: 3 per 1h
)";

// hosts h0..h{n-1}, each with vms h<i>-vm<j>.
struct Fleet {
  std::vector<std::string> hosts;
  std::vector<std::pair<std::string, std::string>> vms;
  Fleet(int nhosts, int per_host) {
    for (int i = 0; i < nhosts; ++i) {
      hosts.push_back("h" + std::to_string(i));
      for (int j = 0; j < per_host; ++j)
        vms.emplace_back(hosts.back(), hosts.back() + "-vm" + std::to_string(j));
    }
  }
  auto vms_except(const std::set<std::string>& gone) const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& hv : vms) {
      if (!gone.count(hv.first) && !gone.count(hv.second)) out.push_back(hv);
    }
    return out;
  }
  auto hosts_except(const std::set<std::string>& gone) const {
    std::vector<std::string> out;
    for (const auto& h : hosts) {
      if (!gone.count(h)) out.push_back(h);
    }
    return out;
  }
};

size_t verbs_proposed(const std::vector<Decision>& ds) {
  size_t n = 0;
  for (const auto& d : ds) n += d.step != Step::kNotify && d.outcome == Outcome::kProposed;
  return n;
}

TEST(Scenario, HostPartitionRestartsNoneOfItsVms) {
  Fleet f(3, 10);
  Harness h(kFleetRules);
  h.run(1min, 5s, f.vms, f.hosts);
  // h1 drops off the network: no events, no liveness, for five minutes.
  h.run(5min, 5s, f.vms_except({"h1"}), f.hosts_except({"h1"}));
  auto during = h.take();
  EXPECT_EQ(verbs_proposed(during), 0u);
  size_t silent_notices = 0, suppressed = 0;
  for (const auto& d : during) {
    EXPECT_EQ(d.host, "h1");
    EXPECT_EQ(d.policy, Policy::kHostSilent) << d.reason;
    if (d.step == Step::kNotify)
      ++silent_notices;
    else
      ++suppressed;
  }
  EXPECT_EQ(silent_notices, 1u);
  // Every VM of h1 once: later absences join the held incident instead of
  // filling the audit with one suppression per VM every 30s.
  EXPECT_EQ(suppressed, 10u);
  EXPECT_FALSE(h.engine.frozen("h1")) << "a silent host's VMs counted toward a storm";
  // The partition heals: the collector reports and guests heartbeat again.
  h.run(5min, 5s, f.vms, f.hosts);
  EXPECT_TRUE(h.take().empty()) << "acted on VMs right after the partition healed";
}

TEST(Scenario, ThirtyPercentOfTheFleetSilentFreezesWithExactlyOneNotify) {
  Fleet f(10, 10);
  Harness h(kFleetRules);
  h.run(1min, 5s, f.vms, f.hosts);
  std::set<std::string> gone;
  for (int i = 0; i < 10; ++i) {
    for (int j = 0; j < 3; ++j) gone.insert("h" + std::to_string(i) + "-vm" + std::to_string(j));
  }
  h.run(5min, 5s, f.vms_except(gone), f.hosts);
  auto ds = h.take();
  EXPECT_EQ(verbs_proposed(ds), 0u);
  size_t notices = 0;
  for (const auto& d : ds) {
    if (d.step == Step::kNotify) {
      ++notices;
      EXPECT_EQ(d.policy, Policy::kStormGuard);
      EXPECT_EQ(d.host, "");
      EXPECT_NE(d.reason.find("30 of 100 VMs of the fleet"), std::string::npos) << d.reason;
    } else {
      EXPECT_EQ(d.policy, Policy::kStormGuard) << d.reason;
    }
  }
  EXPECT_EQ(notices, 1u);
  EXPECT_TRUE(h.engine.frozen(""));
  EXPECT_FALSE(h.engine.frozen("h0")) << "3 of 10 is under the host threshold";

  // They come back; after a quiet period the freeze lifts by itself and a
  // single hang is handled again.
  h.run(6min, 5s, f.vms, f.hosts);
  EXPECT_FALSE(h.engine.frozen(""));
  h.take();
  h.run(2min, 5s, f.vms_except({"h4-vm7"}), f.hosts);
  auto after = h.take();
  ASSERT_EQ(verbs_proposed(after), 1u);
  EXPECT_EQ(after[0].vm, "h4-vm7");
}

TEST(Scenario, HostStormFreezesThatHostOnlyUntilAnOperatorUnfreezes) {
  Fleet f(4, 4);
  EngineOptions opt;
  opt.storm.fleet_fraction = 0.9;
  Harness h(kFleetRules, opt);
  h.run(1min, 5s, f.vms, f.hosts);
  h.run(1min, 5s, f.vms_except({"h2-vm0", "h2-vm1", "h2-vm2"}), f.hosts);
  auto ds = h.take();
  EXPECT_EQ(verbs_proposed(ds), 0u);
  EXPECT_TRUE(h.engine.frozen("h2"));
  EXPECT_FALSE(h.engine.frozen(""));
  // One page, the host's (sent when the fleet's settle ended with no fleet
  // storm).
  size_t pages = 0;
  for (const auto& d : ds) {
    if (d.step != Step::kNotify) continue;
    ++pages;
    EXPECT_EQ(d.host, "h2");
  }
  EXPECT_EQ(pages, 1u);
  // A hang elsewhere is still handled.
  h.run(40s, 5s, f.vms_except({"h2-vm0", "h2-vm1", "h2-vm2", "h0-vm0"}), f.hosts);
  auto other = h.take();
  ASSERT_EQ(verbs_proposed(other), 1u);
  for (const auto& d : other) {
    if (d.outcome == Outcome::kProposed) {
      EXPECT_EQ(d.vm, "h0-vm0");
    }
  }
  EXPECT_EQ(h.engine.unfreeze("h3", "alice").code(), Code::kFailedPrecondition);
  ASSERT_TRUE(h.engine.unfreeze("h2", "alice").ok());
  EXPECT_FALSE(h.engine.frozen("h2"));
  h.run(31s, 5s, f.vms_except({"h2-vm0", "h2-vm1", "h2-vm2", "h0-vm0"}), f.hosts);
  size_t on_h2 = 0;
  for (const auto& d : h.take()) on_h2 += d.host == "h2" && d.outcome == Outcome::kProposed;
  EXPECT_GE(on_h2, 1u) << "unfreeze did not let actions through";
}

TEST(Scenario, OneGuestFailingRepeatedlyIsNoStorm) {
  // A single VM that panics, is reset, heals and panics again within the storm
  // window is one bad VM, not many: the storm guard must not freeze its host.
  Fleet f(1, 4);
  EngineOptions opt;
  opt.storm.min_vms = 2;
  opt.defaults.cooldown = 1s;
  Harness h(kFleetRules, opt);
  h.run(1min, 5s, f.vms, f.hosts);
  for (int i = 0; i < 3; ++i) {
    h.send(lifecycle("h0", "h0-vm1", medic::v1::LIFECYCLE_PANICKED));
    for (const auto& d : h.sink.decisions) {
      if (d.outcome == Outcome::kProposed && d.step == Step::kReset) {
        h.engine.on_action_result(d.id, ActionState::kSucceeded, true);
      }
    }
    h.run(5s, 5s, f.vms, f.hosts);
  }
  EXPECT_FALSE(h.engine.frozen("h0"));
  EXPECT_EQ(h.count(Step::kReset, Outcome::kProposed), 3u);
}

TEST(Scenario, FlappingGuestIsStoppedByTheBudgetWithOneNotify) {
  Fleet f(2, 5);
  Harness h(kFleetRules);
  h.run(1min, 5s, f.vms, f.hosts);
  for (int i = 0; i < 8; ++i) {
    h.send(lifecycle("h0", "h0-vm3", medic::v1::LIFECYCLE_PANICKED));
    for (const auto& d : h.sink.decisions) {
      if (d.outcome == Outcome::kProposed && d.step == Step::kReset && d.vm == "h0-vm3") {
        h.engine.on_action_result(d.id, ActionState::kSucceeded, true);
      }
    }
    h.run(3min, 5s, f.vms, f.hosts);
  }
  EXPECT_EQ(h.count(Step::kReset, Outcome::kProposed), 3u);
  EXPECT_EQ(h.count(Step::kReset, Outcome::kSuppressed), 5u);
  EXPECT_EQ(h.count(Step::kNotify, Outcome::kProposed), 1u);
  auto notices = h.with(Outcome::kProposed);
  for (const auto& d : notices) {
    if (d.step == Step::kNotify) {
      EXPECT_EQ(d.policy, Policy::kBudget);
      EXPECT_NE(d.reason.find("needs a person"), std::string::npos);
    }
  }
}

TEST(Scenario, HangRebootDoesNotHealResetDoesLadderStops) {
  Fleet f(2, 5);
  Harness h(kFleetRules);
  h.run(1min, 5s, f.vms, f.hosts);
  auto hung = f.vms_except({"h1-vm2"});
  h.run(35s, 5s, hung, f.hosts);
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].step, Step::kReboot);
  h.run(20s, 5s, hung, f.hosts);
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);  // still hung
  h.run(65s, 5s, hung, f.hosts);
  ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].step, Step::kReset);
  h.run(10s, 5s, hung, f.hosts);
  h.engine.on_action_result(ds[0].id, ActionState::kSucceeded, false);
  h.run(10s, 5s, f.vms, f.hosts);  // heartbeats return: the reset healed it
  h.run(10min, 5s, f.vms, f.hosts);
  EXPECT_TRUE(h.take().empty()) << "ladder continued to restart after the reset healed";
  EXPECT_EQ(h.engine.stats().open_incidents, 0u);
}

TEST(Scenario, ADeadGuestRunsTheWholeLadderThenNotifiesWhatWasTried) {
  Fleet f(1, 5);
  Harness h(kFleetRules);
  h.run(1min, 5s, f.vms, f.hosts);
  auto dead = f.vms_except({"h0-vm0"});
  std::vector<Step> steps;
  for (int i = 0; i < 40 && steps.size() < 4; ++i) {
    h.run(10s, 5s, dead, f.hosts);
    for (const auto& d : h.take()) {
      ASSERT_EQ(d.outcome, Outcome::kProposed) << d.reason;
      steps.push_back(d.step);
      if (d.step != Step::kNotify)
        h.engine.on_action_result(d.id, ActionState::kSucceeded, false);
      else
        EXPECT_NE(d.reason.find("tried reboot reset restart without healing it"), std::string::npos)
            << d.reason;
    }
  }
  EXPECT_EQ(steps, (std::vector<Step>{Step::kReboot, Step::kReset, Step::kRestart, Step::kNotify}));
}

}  // namespace
}  // namespace medic::rules
