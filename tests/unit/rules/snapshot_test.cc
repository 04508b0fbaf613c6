// Engine::snapshot() / restore(): an engine restored mid-incident on a fresh
// clock makes the same decisions as one that never stopped.
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::heartbeat;
using testing::lifecycle;
using testing::RecordingSink;

constexpr auto kPanic = medic::v1::LIFECYCLE_PANICKED;
constexpr auto kCrash = medic::v1::LIFECYCLE_CRASHED;
constexpr auto kWatchdog = medic::v1::LIFECYCLE_WATCHDOG;

const char* kRules = R"(rules:
  - {name: panic-reset, on: vm.panicked, do: [reset, notify], heal_within: 1m, cooldown: 10m}
  - {name: crash-restart, on: vm.crashed, do: restart, approval: required, approval_timeout: 10m}
  - {name: watchdog-reboot, on: vm.watchdog, do: reboot, cooldown: 0s, budget: 1 per 1h}
)";

EngineOptions options() {
  EngineOptions o;
  o.storm.min_vms = 3;
  o.storm.host_fraction = 0.5;
  o.storm.fleet_fraction = 0.9;
  // The scenario staggers its failures by seconds on purpose; settles are
  // tested (and restored) in storm_settle_test.cc and held_test.cc.
  o.storm.host_settle = std::chrono::seconds(0);
  o.storm.fleet_settle = std::chrono::seconds(0);
  return o;
}

const std::vector<std::string> kHosts = {"h1", "h2", "h3"};
// h1 has eight VMs, so that its three bad ones do not freeze it; h3 has
// four, so that its three bad ones do.
const std::vector<std::pair<std::string, std::string>> kVms = {
    {"h1", "vm1"},  {"h1", "vm2"},  {"h1", "vm3"},  {"h1", "vm4"},  {"h1", "vm10"},
    {"h1", "vm11"}, {"h1", "vm12"}, {"h1", "vm13"}, {"h2", "vm5"},  {"h2", "vm6"},
    {"h3", "vm7"},  {"h3", "vm8"},  {"h3", "vm9"},  {"h3", "vm14"}};

// An engine on its own VirtualClock starting at `start`.
struct Rig {
  explicit Rig(Time start, std::shared_ptr<const RuleSet> rules)
      : clock(start), engine(clock, std::move(rules), options(), sink) {}
  // Every host reports every 5 s for `d`.
  void advance(Duration d) {
    Time end = clock.now() + d;
    while (clock.now() < end) {
      for (const auto& h : kHosts) engine.host_seen(h, clock.now());
      clock.advance(std::min<Duration>(5s, end - clock.now()));
    }
  }
  std::string id_of(const std::string& vm, Outcome o) const {
    for (const auto& d : sink.decisions) {
      if (d.vm == vm && d.outcome == o) return d.id;
    }
    ADD_FAILURE() << "no " << outcome_name(o) << " decision for " << vm;
    return "";
  }

  VirtualClock clock;
  RecordingSink sink;
  Engine engine;
};

// Mid-incident: vm1's reset in flight, vm2 just acted on (cooldown), vm3
// waiting for approval, vm4 silenced, vm5's budget used, host h3 frozen by
// the storm guard with vm7 and vm8's resets in flight and vm9 held.
void before(Rig& r) {
  for (const auto& [h, v] : kVms) r.engine.ingest(heartbeat(h, v), 1);
  r.advance(10s);
  r.engine.ingest(lifecycle("h1", "vm1", kPanic), 2);
  r.engine.ingest(lifecycle("h1", "vm2", kPanic), 3);
  r.engine.on_action_result(r.id_of("vm2", Outcome::kProposed), ActionState::kSucceeded, true);
  r.engine.ingest(lifecycle("h1", "vm3", kCrash), 4);
  Silence s;
  s.vm = "vm4";
  s.until = r.clock.now() + 1h;
  s.reason = "kernel upgrade";
  s.by = "ana";
  EXPECT_EQ(r.engine.silence(s), "s-1");
  r.engine.ingest(lifecycle("h2", "vm5", kWatchdog), 5);
  r.engine.on_action_result(r.id_of("vm5", Outcome::kProposed), ActionState::kSucceeded, true);
  for (const char* vm : {"vm7", "vm8", "vm9"}) r.engine.ingest(lifecycle("h3", vm, kPanic), 6);
  r.advance(20s);
  EXPECT_TRUE(r.engine.frozen("h3"));
}

// What comes next touches each piece of kept state once.
void after(Rig& r, const std::string& a1, const std::string& p1) {
  r.engine.ingest(lifecycle("h1", "vm2", kPanic), 10);                        // cooldown
  r.engine.on_action_result(a1, ActionState::kFailed, false, "qmp error");  // in flight
  EXPECT_TRUE(r.engine.approve(p1, "bo").ok());                               // pending approval
  r.engine.ingest(lifecycle("h1", "vm4", kPanic), 11);                        // silence
  r.engine.ingest(lifecycle("h2", "vm5", kWatchdog), 12);                     // budget
  r.engine.ingest(lifecycle("h3", "vm9", kPanic), 13);  // still held: absorbed
  r.engine.ingest(lifecycle("h3", "vm14", kPanic), 15);  // the freeze holds it
  Silence s;
  s.host = "h2";
  s.until = r.clock.now() + 1h;
  EXPECT_EQ(r.engine.silence(s), "s-2");                // the silence counter
  r.advance(10min);                                     // the storm freeze lifts after 5m quiet
  r.engine.ingest(lifecycle("h3", "vm9", kPanic), 14);  // acts again
  r.advance(10min);
}

std::string describe(const Decision& d) {
  std::string s = d.id + " " + std::string(outcome_name(d.outcome)) + " " + d.rule + " " + d.vm +
                  " " + std::string(step_name(d.step)) + " " + std::string(policy_name(d.policy)) +
                  " [" + d.reason + "] by=" + d.by + " at=" + std::to_string(to_ns(d.at)) +
                  " expires=" + std::to_string(to_ns(d.expires_at)) + " checks:";
  for (const auto& c : d.checks) {
    s += " " + std::string(policy_name(c.policy)) + "=" + std::string(verdict_name(c.verdict));
  }
  return s;
}

std::vector<std::string> describe_all(const std::vector<Decision>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(describe(d));
  return out;
}

TEST(Snapshot, ARestoredEngineDecidesAsOneThatNeverStopped) {
  auto rules = testing::must_load(kRules);
  Rig kept(VirtualClock().now(), rules);
  before(kept);
  std::string a1 = kept.id_of("vm1", Outcome::kProposed);
  std::string p1 = kept.id_of("vm3", Outcome::kPendingApproval);
  EngineState state = kept.engine.snapshot();
  kept.sink.decisions.clear();

  Rig restored(kept.clock.now(), testing::must_load(kRules));
  ASSERT_TRUE(restored.engine.restore(state).ok());
  EXPECT_EQ(restored.engine.stats().open_incidents, kept.engine.stats().open_incidents);
  EXPECT_EQ(restored.engine.stats().in_flight, kept.engine.stats().in_flight);
  EXPECT_TRUE(restored.engine.frozen("h3"));

  after(kept, a1, p1);
  after(restored, a1, p1);
  auto want = describe_all(kept.sink.decisions);
  EXPECT_EQ(describe_all(restored.sink.decisions), want);

  // The run covers what it claims to: each kept piece of state decided something.
  auto has = [&](const std::string& needle) {
    return std::any_of(want.begin(), want.end(),
                       [&](const std::string& s) { return s.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(has("suppressed panic-reset vm2 reset cooldown")) << "cooldown";
  EXPECT_TRUE(has("proposed panic-reset vm1 notify")) << "in flight: the failed reset escalated";
  EXPECT_TRUE(has(p1 + " approved crash-restart vm3 restart")) << "pending approval";
  EXPECT_TRUE(has("suppressed panic-reset vm4 reset silence")) << "silence";
  EXPECT_TRUE(has("suppressed watchdog-reboot vm5 reboot budget")) << "budget";
  EXPECT_TRUE(has("suppressed panic-reset vm14 reset storm-guard")) << "freeze";
  EXPECT_TRUE(has("proposed panic-reset vm9 reset")) << "the freeze lifted on time";
  EXPECT_EQ(restored.engine.snapshot().hosts.size(), kept.engine.snapshot().hosts.size());
}

TEST(Snapshot, APendingApprovalKeepsItsOriginalExpiry) {
  auto rules = testing::must_load(kRules);
  Rig kept(VirtualClock().now(), rules);
  before(kept);
  std::string p1 = kept.id_of("vm3", Outcome::kPendingApproval);
  Time expiry{};
  for (const auto& d : kept.sink.decisions) {
    if (d.id == p1) expiry = d.expires_at;
  }
  ASSERT_GT(expiry, kept.clock.now());
  EngineState state = kept.engine.snapshot();
  Rig restored(kept.clock.now(), rules);
  ASSERT_TRUE(restored.engine.restore(state).ok());
  auto about_p1 = [&] {
    std::vector<Decision> out;
    for (const auto& d : restored.sink.decisions) {
      if (d.id == p1) out.push_back(d);
    }
    return out;
  };
  restored.advance(expiry - restored.clock.now() - 1s);
  EXPECT_TRUE(about_p1().empty());
  restored.advance(2s);
  auto ds = about_p1();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].outcome, Outcome::kExpired);
  EXPECT_EQ(ds[0].at, expiry);
}

TEST(Snapshot, RestoreIsRefusedOnceTheEngineWasFed) {
  auto rules = testing::must_load(kRules);
  Rig kept(VirtualClock().now(), rules);
  before(kept);
  EngineState state = kept.engine.snapshot();
  Rig used(kept.clock.now(), rules);
  used.engine.host_seen("h1", used.clock.now());
  Status st = used.engine.restore(state);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("already been fed"), std::string::npos) << st.message();
  Rig fresh(kept.clock.now(), rules);
  EXPECT_TRUE(fresh.engine.restore(state).ok()) << "control: a fresh engine takes it";
}

TEST(Snapshot, RestoreRefusesAnIncidentWhoseRuleIsGone) {
  auto rules = testing::must_load(kRules);
  Rig kept(VirtualClock().now(), rules);
  before(kept);
  EngineState state = kept.engine.snapshot();
  Rig other(kept.clock.now(), testing::must_load(R"(rules:
  - {name: something-else, on: vm.panicked, do: notify}
)"));
  Status st = other.engine.restore(state);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find("no rule"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace medic::rules

namespace medic::rules {
namespace {

TEST(Snapshot, RestoreRefusesAnIncidentItCannotPlace) {
  auto rules = testing::must_load(kRules);
  Rig kept(VirtualClock().now(), rules);
  before(kept);
  EngineState state = kept.engine.snapshot();
  ASSERT_FALSE(state.incidents.empty());
  EngineState bad_state = state;
  bad_state.incidents[0].state = 9;
  Rig a(kept.clock.now(), rules);
  Status st = a.engine.restore(bad_state);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("no state 9"), std::string::npos) << st.message();
  EngineState bad_step = state;
  bad_step.incidents[0].step = 7;
  Rig b(kept.clock.now(), rules);
  st = b.engine.restore(bad_step);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("has no step 8"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace medic::rules
