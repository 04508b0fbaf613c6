// The rules engine against the simulator on one VirtualClock: what the
// simulated fleet does is fed to the engine as a collector would report it,
// and every proposed verb is carried out on the simulated host, whose faults
// heal only with the right verbs. So the scenarios test the policies against
// truthful consequences, not against a script.
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "rules/loader.h"
#include "vmm/sim/sim.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using vmm::sim::FaultKind;

constexpr const char* kRules = R"(rules:
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 10s
    where: vm.state == "running"
    do: [reboot, reset, restart, notify]
    heal_within: 30s
    cooldown: 5s
  - name: guest-panicked
    on: vm.panicked
    do: reset
    cooldown: 5s
    budget: 3 per 1h
)";

class SimLoop final : public rules::DecisionSink {
 public:
  explicit SimLoop(vmm::sim::SimOptions so, rules::EngineOptions eo = {})
      : fleet_(clock_, std::move(so)) {
    auto loaded = rules::load_rule_text(kRules, "scenario.rules.yaml");
    EXPECT_OK(loaded) << loaded.text();
    eo.host_silent_after = 5s;
    engine_ = std::make_unique<rules::Engine>(clock_, loaded.rules, eo, *this);
    for (size_t i = 0; i < fleet_.host_count(); ++i) {
      vmm::sim::SimHost& h = fleet_.host(i);
      h.subscribe([this, &h](const vmm::VmEvent& e) { on_vm_event(h.host(), e); });
    }
    report_every_second();
  }

  // What a collector would send: every second, each reachable host's VM
  // states (heartbeats and lifecycle events go out as they happen).
  void report_every_second() {
    clock_.schedule_after(1s, [this] {
      for (size_t i = 0; i < fleet_.host_count(); ++i) {
        vmm::sim::SimHost& h = fleet_.host(i);
        auto vms = h.list();
        if (!vms.ok()) continue;  // partitioned or lost: the engine hears nothing
        engine_->host_seen(h.host(), clock_.now());
        for (const auto& vm : *vms) {
          medic::v1::Event e;
          e.set_host(h.host());
          e.set_vm(vm.id);
          e.set_observed_at_ns(to_ns(clock_.now()));
          e.mutable_state()->set_state(vm.state);
          engine_->ingest(e, 0);
        }
      }
      report_every_second();
    });
  }

  void on_vm_event(const std::string& host, const vmm::VmEvent& v) {
    medic::v1::Event e;
    e.set_host(host);
    e.set_vm(v.vm);
    e.set_observed_at_ns(to_ns(v.at));
    if (v.type == vmm::VmEvent::Type::kHeartbeat) {
      e.mutable_heartbeat()->set_counter(v.counter);
    } else {
      e.mutable_lifecycle()->set_what(v.what);
    }
    engine_->ingest(e, 0);
  }

  // The actuator's part, done on the clock (a sink must not call back into
  // the engine): execute now, report after the rule's heal window.
  void on_decision(const rules::Decision& d) override {
    decisions.push_back(d);
    if (d.step == rules::Step::kNotify) return;
    if (d.outcome != rules::Outcome::kProposed && d.outcome != rules::Outcome::kApproved) return;
    clock_.schedule_after(1ms, [this, d] {
      auto report = [this, d](Status s) {
        clock_.schedule_after(d.heal_within > Duration(0) ? d.heal_within : 30s, [this, d, s] {
          engine_->on_action_result(d.id,
                                    s.ok() ? ActionState::kSucceeded
                                           : ActionState::kFailed,
                                    fleet_.is_healthy(d.vm), s.message());
        });
      };
      vmm::sim::SimHost* h = fleet_.find_host(d.host);
      if (!h) return report(not_found(d.host));
      h->execute(rules::step_verb(d.step), d.vm, 30s, report);
    });
  }

  size_t count(rules::Step step, rules::Outcome outcome, const std::string& vm = "") const {
    size_t n = 0;
    for (const auto& d : decisions) {
      n += d.step == step && d.outcome == outcome && (vm.empty() || d.vm == vm);
    }
    return n;
  }
  size_t verbs_proposed() const {
    size_t n = 0;
    for (const auto& d : decisions) n += d.step != rules::Step::kNotify && d.outcome == rules::Outcome::kProposed;
    return n;
  }

  VirtualClock clock_;
  vmm::sim::SimFleet fleet_;
  std::unique_ptr<rules::Engine> engine_;
  std::vector<rules::Decision> decisions;
};

vmm::sim::SimOptions fleet(int hosts, int vms) {
  vmm::sim::SimOptions o;
  o.hosts = hosts;
  o.vms_per_host = vms;
  o.seed = 42;
  o.boot_time = 5s;
  o.shutdown_time = 2s;
  o.partition_duration = 10min;
  return o;
}

TEST(SimScenario, HostPartitionRestartsNoneOfItsVms) {
  SimLoop loop(fleet(3, 10));
  loop.clock_.advance(30s);
  ASSERT_OK(loop.fleet_.inject(FaultKind::kPartition, "host-02"));
  loop.clock_.advance(3min);
  for (const auto& d : loop.decisions) {
    if (d.host == "host-02" && d.step != rules::Step::kNotify) {
      EXPECT_NE(d.outcome, rules::Outcome::kProposed) << d.id << " acted on a silent host's VM";
    }
  }
  EXPECT_EQ(loop.fleet_.total_executed(medic::v1::VERB_RESTART), 0u);
  EXPECT_EQ(loop.fleet_.total_executed(medic::v1::VERB_START), 0u);
  size_t notices = 0;
  for (const auto& d : loop.decisions) notices += d.step == rules::Step::kNotify && d.host == "host-02";
  EXPECT_EQ(notices, 1u) << "one host-silent notice per silent spell";
}

TEST(SimScenario, ThirtyPercentOfTheFleetHangingAtOnceFreezesWithExactlyOneNotify) {
  SimLoop loop(fleet(3, 10));
  loop.clock_.advance(30s);
  auto ids = loop.fleet_.vm_ids();
  for (size_t i = 0; i < 9; ++i) {  // 9 of 30, spread over the hosts
    const std::string& vm = ids[i * 3 + 1];
    ASSERT_OK(loop.fleet_.inject(FaultKind::kHang, loop.fleet_.host_of(vm), vm));
  }
  loop.clock_.advance(2min);
  EXPECT_TRUE(loop.engine_->frozen(""));
  // Deadlines fall up to one report interval apart, so the first few may be
  // acted on before the storm is recognised; never more than the storm
  // threshold (20% of 30 VMs), and nothing after the freeze.
  EXPECT_LE(loop.verbs_proposed(), 6u);
  size_t fleet_notices = 0;
  for (const auto& d : loop.decisions) {
    fleet_notices += d.step == rules::Step::kNotify && d.outcome == rules::Outcome::kProposed &&
                     d.policy == rules::Policy::kStormGuard;
  }
  EXPECT_EQ(fleet_notices, 1u);
  // Every hung VM was seen: acted on before the freeze, or held back by it.
  for (size_t i = 0; i < 9; ++i) {
    const std::string& vm = ids[i * 3 + 1];
    EXPECT_GE(loop.count(rules::Step::kReboot, rules::Outcome::kSuppressed, vm) +
                  loop.count(rules::Step::kReboot, rules::Outcome::kProposed, vm),
              1u)
        << vm;
  }
}

TEST(SimScenario, FlappingGuestIsStoppedByTheBudgetAndNotifiesOnce) {
  SimLoop loop(fleet(2, 5));
  loop.clock_.advance(30s);
  const std::string vm = loop.fleet_.vm_ids()[3];
  // A guest that keeps panicking: every reset heals it, until the budget
  // (3 per hour) says a person must look.
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK(loop.fleet_.inject(FaultKind::kPanic, loop.fleet_.host_of(vm), vm));
    loop.clock_.advance(2min);
  }
  EXPECT_EQ(loop.fleet_.verbs_executed(vm, medic::v1::VERB_RESET), 3u);
  EXPECT_EQ(loop.count(rules::Step::kReset, rules::Outcome::kSuppressed, vm), 1u)
      << "the fourth panic is held by the budget; the fifth and sixth join it";
  size_t budget_notices = 0;
  for (const auto& d : loop.decisions) {
    budget_notices += d.step == rules::Step::kNotify && d.policy == rules::Policy::kBudget;
  }
  EXPECT_EQ(budget_notices, 1u);
  EXPECT_FALSE(loop.fleet_.is_healthy(vm)) << "medic did less and told a person";
}

TEST(SimScenario, HangIsNotHealedByRebootButByResetAndTheLadderStopsThere) {
  SimLoop loop(fleet(2, 5));
  loop.clock_.advance(30s);
  const std::string vm = loop.fleet_.vm_ids()[7];
  ASSERT_OK(loop.fleet_.inject(FaultKind::kHang, loop.fleet_.host_of(vm), vm));
  loop.clock_.advance(5min);
  EXPECT_EQ(loop.fleet_.verbs_executed(vm, medic::v1::VERB_REBOOT), 1u);
  EXPECT_EQ(loop.fleet_.verbs_executed(vm, medic::v1::VERB_RESET), 1u);
  EXPECT_EQ(loop.fleet_.verbs_executed(vm, medic::v1::VERB_RESTART), 0u);
  EXPECT_TRUE(loop.fleet_.is_healthy(vm));
  EXPECT_EQ(loop.count(rules::Step::kNotify, rules::Outcome::kProposed, vm), 0u);
}

}  // namespace
}  // namespace medic
