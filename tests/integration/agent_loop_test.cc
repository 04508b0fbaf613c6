// The collector and the actuator of one host on one EventLoop, as in
// `medic agent`: a verb that takes a long time must not stop the collector's
// state reports.
#include <gtest/gtest.h>

#include "actuators/actuator.h"
#include "collectors/collector.h"
#include "core/event_loop.h"
#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"
#include "tests/unit/collectors/fakes.h"
#include "vmm/sim/sim.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using actuators::testing::FakeEngine;
using actuators::testing::make_action;

class AgentLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    vmm::sim::SimOptions so;
    so.host_names = {"host-a"};
    so.vms_per_host = 2;
    so.verb_time = 30s;
    fleet_ = std::make_unique<vmm::sim::SimFleet>(clock_, so);
    host_ = &fleet_->host(0);
    auto vms = host_->list();
    ASSERT_TRUE(vms.ok() && vms->size() == 2u);
    vm_ = (*vms)[0].id;

    auto c = fabric::Context::create(keys_.trust);
    ASSERT_TRUE(c.ok()) << c.status();
    ctx_ = std::move(c).value();
    engine_ = std::make_unique<FakeEngine>(*ctx_, keys_, clock_);

    collectors::CollectorDeps cd;
    cd.hypervisor = host_;
    cd.clock = &clock_;
    cd.identity = &keys_.host_a;
    cd.publisher = &pub_;
    cd.loop = &loop_;
    collectors::CollectorOptions co;
    co.host = "host-a";
    co.interval = 1s;
    auto col = collectors::Collector::create(co, cd);
    ASSERT_TRUE(col.ok()) << col.status();
    collector_ = std::move(col).value();

    auto opts = actuators::testing::actuator_options(keys_, engine_->endpoint(),
                                                     dir_.file("journal.db"));
    opts.execute_timeout = 60s;
    auto act = actuators::Actuator::create(opts, {*ctx_, keys_.host_a, keys_.trust, clock_}, *host_,
                                           &loop_);
    ASSERT_TRUE(act.ok()) << act.status();
    actuator_ = std::move(act).value();
    collector_->start();
    // One backend, two listeners, as the agent wires them.
    host_->subscribe([this](const vmm::VmEvent& e) {
      collector_->on_vm_event(e);
      actuator_->on_vm_event(e);
    });
  }

  void step() {
    loop_.run_once(2ms);
    engine_->poll();
  }

  // The VMs reported in each state report (bulk batch) published so far,
  // from `from` on.
  std::vector<size_t> states_per_report(size_t from) {
    fabric::Opener opener(keys_.trust, clock_);
    std::vector<size_t> out;
    for (size_t i = from; i < pub_.bulk.size(); ++i) {
      medic::v1::EventBatch b;
      Status s = testing::open_batch(opener, pub_.bulk[i], &b);
      EXPECT_TRUE(s.ok()) << s;
      size_t states = 0;
      for (const auto& e : b.events()) states += e.has_state();
      out.push_back(states);
    }
    return out;
  }

  VirtualClock clock_;
  EventLoop loop_{clock_};
  actuators::testing::Keys keys_;
  testing::TempDir dir_;
  testing::RecordingPublisher pub_;
  std::unique_ptr<vmm::sim::SimFleet> fleet_;
  vmm::sim::SimHost* host_ = nullptr;
  std::string vm_;
  std::unique_ptr<fabric::Context> ctx_;
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<collectors::Collector> collector_;
  std::unique_ptr<actuators::Actuator> actuator_;
};

TEST_F(AgentLoop, StateReportsKeepTheirCadenceWhileAThirtySecondVerbRuns) {
  auto action = make_action("slow", "host-a", vm_, clock_.now(), medic::v1::VERB_RESTART, 120s);
  ASSERT_TRUE(engine_->send_frame(engine_->seal_action(action), [&] { step(); }));
  ASSERT_TRUE(actuators::testing::pump([&] { step(); },
                                       [&] { return actuator_->stats().executed == 1; }));
  const Time verb_started = clock_.now();
  const size_t reports_before = pub_.bulk.size();
  const uint64_t flushes_before = collector_->counters().flushes;

  // 29 s of the verb, in steps of 100 ms: a report every second, each with
  // both VMs, and the verb not done yet.
  for (int i = 0; i < 290; ++i) {
    clock_.advance(100ms);
    loop_.run_once(Duration::zero());
  }
  EXPECT_EQ(fleet_->verbs_executed(vm_, medic::v1::VERB_RESTART), 0u);  // still running
  EXPECT_EQ(collector_->counters().flushes - flushes_before, 29u);
  EXPECT_EQ(states_per_report(reports_before), std::vector<size_t>(29, 2u));

  // At 30 s the verb completes, and the reports go on.
  clock_.advance(verb_started + 30s - clock_.now());
  loop_.run_once(Duration::zero());
  EXPECT_EQ(fleet_->verbs_executed(vm_, medic::v1::VERB_RESTART), 1u);
  EXPECT_EQ(collector_->counters().flushes - flushes_before, 30u);
  for (int i = 0; i < 10; ++i) {
    clock_.advance(100ms);
    loop_.run_once(Duration::zero());
  }
  EXPECT_EQ(collector_->counters().flushes - flushes_before, 31u);
}

TEST_F(AgentLoop, AVerbLongerThanItsTimeoutFailsWithTimeoutOnTheClock) {
  bool done = false;
  Status got;
  host_->execute(medic::v1::VERB_RESTART, vm_, 10s, [&](Status s) {
    done = true;
    got = s;
  });
  clock_.advance(9s);
  EXPECT_FALSE(done);
  clock_.advance(1s);
  ASSERT_TRUE(done);
  EXPECT_EQ(got.code(), Code::kTimeout) << got;
  EXPECT_EQ(fleet_->verbs_executed(vm_, medic::v1::VERB_RESTART), 0u);
}

}  // namespace
}  // namespace medic
