// Dispatcher and actuator together over tcp loopback with CURVE: the engine
// restarted mid-flight resumes its actions and they complete, each executed
// once; and a panic flows to a reset and a healed report.
#include <gtest/gtest.h>

#include "actuators/actuator.h"
#include "actuators/dispatcher.h"
#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"

namespace medic::actuators {
namespace {

using namespace medic::actuators::testing;
using Strings = std::vector<std::string>;

class ActuatorDispatch : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = fabric::Context::create(keys.trust);
    ASSERT_OK(c);
    ctx = std::move(c).value();
  }
  void start_engine(const std::string& endpoint, uint64_t epoch) {
    auto o = dispatcher_options();
    o.endpoint = endpoint;
    o.epoch = epoch;
    auto d = Dispatcher::create(o, {*ctx, keys.engine, keys.trust, clock}, log.sink());
    ASSERT_OK(d);
    disp = std::move(d).value();
  }
  void start_actuator() {
    auto o = actuator_options(keys, disp->endpoint(), dir.file("journal.db"));
    auto a = Actuator::create(o, {*ctx, keys.host_a, keys.trust, clock}, hv);
    ASSERT_OK(a);
    act = std::move(a).value();
  }
  void step() {
    if (disp) disp->run_once(2ms);
    if (act) act->run_once(2ms);
  }
  // Waits for `cond`, moving virtual time by `tick` per step so that
  // backoffs and watches progress.
  bool wait(const std::function<bool()>& cond, Duration tick = 50ms) {
    return pump(
        [&] {
          step();
          clock.advance(tick);
        },
        cond, 10000ms);
  }

  medic::testing::TempDir dir;
  Keys keys;
  VirtualClock clock;
  FakeHypervisor hv{"host-a", clock};
  EventLog log;
  std::unique_ptr<fabric::Context> ctx;
  DispatcherPtr disp;
  ActuatorPtr act;
};

TEST_F(ActuatorDispatch, EngineRestartedMidFlightResumesActionsAndTheyCompleteOnce) {
  hv.add_vm("vm-1", medic::v1::VM_STATE_PANICKED);
  hv.add_vm("vm-2", medic::v1::VM_STATE_PANICKED);
  start_engine("tcp://127.0.0.1:*", 1000);
  const std::string endpoint = disp->endpoint();
  start_actuator();

  // a1: executed, still being watched when the engine goes down.
  auto a1 = make_action("a1", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESET, 120s, 20s);
  ASSERT_OK(disp->dispatch(a1));
  ASSERT_TRUE(wait([&] { return act->watching() == 1; }));
  // a2: finished, but the engine dies before recording the result.
  auto a2 = make_action("a2", "host-a", "vm-2", clock.now(), medic::v1::VERB_RESET, 120s, 1s);
  ASSERT_OK(disp->dispatch(a2));
  ASSERT_TRUE(wait([&] { return log.ended("a2"); }));
  EXPECT_EQ(hv.executed, (Strings{"reset vm-1", "reset vm-2"}));

  disp.reset();  // engine down
  log.events.clear();
  hv.heartbeat("vm-1");  // the guest recovers while no engine listens
  for (int i = 0; i < 20; ++i) {
    act->run_once(1ms);
    clock.advance(100ms);
  }

  // The restarted engine re-dispatches what its outbox says is in flight.
  start_engine(endpoint, 2000);
  ASSERT_OK(disp->dispatch(a1));
  ASSERT_OK(disp->dispatch(a2));
  ASSERT_TRUE(wait([&] { return log.ended("a1") && log.ended("a2"); }));
  EXPECT_EQ(log.last("a1")->state, ActionState::kSucceeded);
  EXPECT_TRUE(log.last("a1")->result->healed());
  EXPECT_EQ(log.last("a2")->state, ActionState::kSucceeded);
  EXPECT_EQ(hv.executed, (Strings{"reset vm-1", "reset vm-2"})) << "nothing ran twice";
  EXPECT_EQ(act->stats().executed, 2u);
  EXPECT_EQ(disp->in_flight(), 0u);
  ASSERT_TRUE(wait([&] { return act->results_unacked() == 0; }));
}

TEST_F(ActuatorDispatch, PanicLeadsToResetAndAHealedReport) {
  hv.add_vm("vm-1");
  hv.boot_time = 3s;
  start_engine("tcp://127.0.0.1:*", 0);
  start_actuator();
  // A one-rule engine: a panicked guest gets a reset.
  int n = 0;
  hv.subscribe([&](const vmm::VmEvent& ev) {
    if (ev.type == vmm::VmEvent::Type::kLifecycle && ev.what == medic::v1::LIFECYCLE_PANICKED) {
      auto a = make_action("panic-" + std::to_string(++n), "host-a", ev.vm, clock.now(),
                           medic::v1::VERB_RESET, 60s, 30s);
      ASSERT_OK(disp->dispatch(a));
    }
  });
  const Time panicked_at = clock.now();
  hv.panic("vm-1");
  ASSERT_TRUE(wait([&] { return log.ended("panic-1"); }, 100ms));
  EXPECT_EQ(log.names("panic-1"), (Strings{"dispatched", "acked", "succeeded"}));
  const DispatchEvent* end = log.last("panic-1");
  ASSERT_TRUE(end->result.has_value());
  EXPECT_TRUE(end->result->healed());
  EXPECT_EQ(hv.executed, Strings{"reset vm-1"});
  EXPECT_EQ(hv.vms["vm-1"].state, medic::v1::VM_STATE_RUNNING);
  // Healed is reported once the guest booted (3 s), not at the 30 s watch end.
  EXPECT_GE(end->at - panicked_at, 3s);
  EXPECT_LT(end->at - panicked_at, 10s);
}

}  // namespace
}  // namespace medic::actuators
