// The storm guard sees a storm coming (settle windows), pages once per storm,
// and leaves an isolated failure alone: no latency on the single-panic path.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "rules/engine.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::heartbeat;
using testing::lifecycle;
using testing::state;

constexpr const char* kPanicRule = "rules:\n  - {name: p, on: vm.panicked, do: reset}\n";
constexpr auto kPanic = medic::v1::LIFECYCLE_PANICKED;

// `hosts` hosts of `per_host` VMs each (h1/v1-1 ...), all known to the engine.
void make_fleet(Harness& h, int hosts, int per_host) {
  for (int i = 1; i <= hosts; ++i) {
    for (int j = 1; j <= per_host; ++j) {
      std::string host = "h" + std::to_string(i);
      h.send(state(host, "v" + std::to_string(i) + "-" + std::to_string(j),
                   medic::v1::VM_STATE_RUNNING));
    }
  }
}

size_t pages(const Harness& h) {
  size_t n = 0;
  for (const auto& d : h.sink.decisions) {
    n += d.step == Step::kNotify && d.policy == Policy::kStormGuard;
  }
  return n;
}

size_t actions(const Harness& h) { return h.count(Step::kReset, Outcome::kProposed); }

TEST(StormSettle, AnIsolatedPanicIsActedOnAtOnce) {
  Harness h(kPanicRule);
  make_fleet(h, 4, 5);
  h.send(lifecycle("h1", "v1-1", kPanic));
  auto ds = h.take();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kProposed) << ds[0].reason;
  EXPECT_EQ(ds[0].at, h.clock.now()) << "no settle on the single-panic path";
}

TEST(StormSettle, EightPanicsOnOneHostAtOnceTakeOneActionAndOnePage) {
  Harness h(kPanicRule);
  make_fleet(h, 6, 8);
  for (int j = 1; j <= 8; ++j) h.send(lifecycle("h1", "v1-" + std::to_string(j), kPanic));
  EXPECT_EQ(actions(h), 1u) << "the first acted at once; the rest waited for the guard";
  EXPECT_TRUE(h.engine.frozen("h1"));
  EXPECT_FALSE(h.engine.frozen("")) << "8 of 48 is no fleet storm";
  EXPECT_EQ(pages(h), 0u) << "the host's page waits for the fleet's settle to end";
  h.advance(1min);
  EXPECT_EQ(actions(h), 1u) << "frozen: the settle's end does not act";
  EXPECT_EQ(pages(h), 1u) << "one page, the host's";
}

TEST(StormSettle, EightOfTwentyGoingSilentOneEveryTwoSecondsTakeOneActionAndOnePage) {
  Harness h("rules:\n  - {name: hang, absent: vm.heartbeat, for: 30s, do: reboot}\n");
  std::vector<std::pair<std::string, std::string>> beating;
  for (int i = 1; i <= 4; ++i) {
    for (int j = 1; j <= 5; ++j) {
      beating.emplace_back("h" + std::to_string(i), "v" + std::to_string(i) + "-" +
                                                        std::to_string(j));
    }
  }
  std::vector<std::string> hosts = {"h1", "h2", "h3", "h4"};
  h.run(1min, 1s, beating, hosts);
  // Eight VMs, two per host, stop beating one every 2 s: no host is over
  // its share (2 of 5), the fleet is (5 of 20 > 20%) from the fifth.
  for (int k = 0; k < 8; ++k) {
    std::pair<std::string, std::string> vm{"h" + std::to_string(k % 4 + 1),
                                           "v" + std::to_string(k % 4 + 1) + "-" +
                                               std::to_string(k / 4 + 1)};
    beating.erase(std::find(beating.begin(), beating.end(), vm));
    h.run(2s, 1s, beating, hosts);
  }
  h.run(1min, 1s, beating, hosts);
  EXPECT_LE(h.count(Step::kReboot, Outcome::kProposed), 1u);
  EXPECT_EQ(pages(h), 1u);
  EXPECT_TRUE(h.engine.frozen(""));
}

TEST(StormSettle, TwoFailuresCloseTogetherWaitForTheSettleThenActWhenNoStormFollows) {
  Harness h(kPanicRule);
  make_fleet(h, 4, 5);
  h.send(lifecycle("h1", "v1-1", kPanic));
  h.advance(3s);
  h.send(lifecycle("h2", "v2-1", kPanic));
  auto held = h.with(Outcome::kSuppressed);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].vm, "v2-1");
  EXPECT_EQ(held[0].policy, Policy::kStormGuard);
  EXPECT_NE(held[0].reason.find("the storm guard is settling"), std::string::npos)
      << held[0].reason;
  h.advance(10s);
  ASSERT_EQ(actions(h), 2u) << "no storm came: the held step went ahead";
  const Decision& later = h.sink.decisions.back();
  EXPECT_EQ(later.vm, "v2-1");
  EXPECT_EQ(later.outcome, Outcome::kProposed);
  EXPECT_EQ(later.at - held[0].at, 10s) << "held exactly one settle";
  bool released = false;
  for (const auto& v : h.sink.verdicts) {
    released |= v.decision_id == held[0].id && v.next == later.id &&
                v.detail.find("settled with no storm") != std::string::npos;
  }
  EXPECT_TRUE(released) << "the held decision's verdict names the step that followed";
  EXPECT_EQ(pages(h), 0u);
}

TEST(StormSettle, AHostStormThatAlsoTripsTheFleetPagesOnceNamingTheHost) {
  Harness h(kPanicRule);
  make_fleet(h, 2, 4);  // 8 VMs: 3 bad trip h1 (>50%) and the fleet (>20%)
  for (int j = 1; j <= 3; ++j) h.send(lifecycle("h1", "v1-" + std::to_string(j), kPanic));
  EXPECT_TRUE(h.engine.frozen("h1"));
  EXPECT_TRUE(h.engine.frozen(""));
  ASSERT_EQ(pages(h), 1u);
  for (const auto& d : h.sink.decisions) {
    if (d.policy != Policy::kStormGuard || d.step != Step::kNotify) continue;
    EXPECT_EQ(d.host, "") << "the fleet's page";
    EXPECT_NE(d.reason.find("(hosts h1 (3 of 4))"), std::string::npos) << d.reason;
  }
}

TEST(StormSettle, AScopeThatStaysBadIsNotPagedAgainAtEveryQuietPeriod) {
  Harness h("rules:\n  - {name: hang, absent: vm.heartbeat, for: 30s, do: reboot}\n");
  std::vector<std::pair<std::string, std::string>> beating;
  for (int j = 1; j <= 10; ++j) beating.emplace_back("h1", "v" + std::to_string(j));
  h.run(1min, 5s, beating, {"h1"});
  beating.erase(beating.begin(), beating.begin() + 6);  // 6 of 10 stop beating together
  h.run(40min, 5s, beating, {"h1"});
  EXPECT_EQ(pages(h), 1u) << "same storm, same VMs: one page, not one per quiet period";
  EXPECT_EQ(h.count(Step::kReboot, Outcome::kProposed), 0u);
  // A change (more VMs bad than the page named) is news.
  beating.erase(beating.begin(), beating.begin() + 3);
  h.run(10min, 5s, beating, {"h1"});
  EXPECT_EQ(pages(h), 2u);
}

TEST(StormSettle, ARuleWithoutTheStormGuardNeverFreezesOrPages) {
  Harness h("rules:\n  - {name: fence, on: vm.panicked, do: reset, storm_guard: false}\n");
  make_fleet(h, 2, 4);
  for (int j = 1; j <= 4; ++j) h.send(lifecycle("h1", "v1-" + std::to_string(j), kPanic));
  EXPECT_EQ(actions(h), 2u) << "two act at once, two wait for a slot (host concurrency 2)";
  EXPECT_EQ(pages(h), 0u);
  EXPECT_FALSE(h.engine.frozen("h1"));
  EXPECT_FALSE(h.engine.frozen(""));
}

TEST(StormSettle, SettleAndRepeatAreReadFromTheOptionsAndCheckedAgainstTheWindow) {
  auto node = load_yaml_string(
      "storm: {host_settle: 5s, fleet_settle: 0s, repeat_interval: 1h}\n", "engine.yaml");
  ASSERT_TRUE(node.ok());
  ConfigReader r("engine.yaml");
  EngineOptions o;
  read_engine_options(r, *node, &o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(o.storm.host_settle, 5s);
  EXPECT_EQ(o.storm.fleet_settle, 0s);
  EXPECT_EQ(o.storm.repeat_interval, 1h);
  auto bad = load_yaml_string("storm: {window: 30s, host_settle: 1m}\n", "bad.yaml");
  ASSERT_TRUE(bad.ok());
  ConfigReader rb("bad.yaml");
  read_engine_options(rb, *bad, &o);
  EXPECT_NE(rb.status().message().find(
                "bad.yaml:1:35: error: host_settle must not be longer than the storm window"),
            std::string::npos)
      << rb.status().message();
}

}  // namespace
}  // namespace medic::rules
