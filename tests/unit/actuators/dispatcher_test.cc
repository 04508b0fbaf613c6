#include "actuators/dispatcher.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"

namespace medic::actuators {
namespace {

using namespace medic::actuators::testing;
using medic::v1::ActionResult;
using Strings = std::vector<std::string>;

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = fabric::Context::create(keys.trust);
    ASSERT_OK(c);
    ctx = std::move(c).value();
    auto d = Dispatcher::create(dispatcher_options(), {*ctx, keys.engine, keys.trust, clock},
                                log.sink());
    ASSERT_OK(d);
    disp = std::move(d).value();
    hv.add_vm("vm-1", medic::v1::VM_STATE_PANICKED);
  }

  void start_actuator() {
    auto o = actuator_options(keys, disp->endpoint(), dir.file("journal.db"));
    auto a = Actuator::create(o, {*ctx, keys.host_a, keys.trust, clock}, hv);
    ASSERT_OK(a);
    act = std::move(a).value();
  }
  void start_fake() {
    fake = std::make_unique<FakeActuator>(*ctx, keys, keys.host_a, "host-a", disp->endpoint(),
                                          clock);
  }
  void step() {
    disp->run_once(2ms);
    if (act) act->run_once(2ms);
    if (fake) fake->poll();
  }
  bool wait(const std::function<bool()>& cond) { return pump([&] { step(); }, cond); }
  void settle() {
    for (int i = 0; i < 25; ++i) step();
  }
  // Dispatch while the peer's connection may still be coming up: a send to a
  // not-yet-connected host is retried by the dispatcher's own timer.
  void dispatch_connected(const medic::v1::Action& a, size_t* received) {
    ASSERT_OK(disp->dispatch(a));
    ASSERT_TRUE(wait([&] {
      if (*received > 0) return true;
      clock.advance(100ms);
      return false;
    }));
  }

  medic::testing::TempDir dir;
  Keys keys;
  VirtualClock clock;
  FakeHypervisor hv{"host-a", clock};
  EventLog log;
  std::unique_ptr<fabric::Context> ctx;
  DispatcherPtr disp;
  std::unique_ptr<FakeActuator> fake;
  ActuatorPtr act;
};

TEST_F(DispatcherTest, DeliversAnActionAndReportsEachTransition) {
  hv.heal_on_execute = true;
  start_actuator();
  auto a = make_action("d1", "host-a", "vm-1", clock.now());
  ASSERT_OK(disp->dispatch(a));
  ASSERT_TRUE(wait([&] {
    if (log.ended("d1")) return true;
    clock.advance(50ms);  // retries while the connection comes up
    return false;
  }));
  EXPECT_EQ(log.names("d1"), (Strings{"dispatched", "acked", "succeeded"}));
  ASSERT_TRUE(log.last("d1")->result.has_value());
  EXPECT_TRUE(log.last("d1")->result->healed());
  EXPECT_EQ(hv.executed, Strings{"reset vm-1"});
  EXPECT_EQ(disp->in_flight(), 0u);
  // The result was acknowledged, so the actuator stops re-sending it.
  ASSERT_TRUE(wait([&] { return act->results_unacked() == 0; }));
}

TEST_F(DispatcherTest, ResendsAnUnacknowledgedActionWithTheSameIdInFreshEnvelopes) {
  start_fake();
  auto a = make_action("re", "host-a", "vm-1", clock.now());
  size_t got = 0;
  ASSERT_OK(disp->dispatch(a));
  ASSERT_TRUE(wait([&] {
    got = fake->actions.size();
    if (got > 0) return true;
    clock.advance(10ms);
    return false;
  }));
  // Each round waits at least the longest backoff, so each brings a re-send.
  for (int round = 1; round <= 3; ++round) {
    const size_t before = fake->actions.size();
    clock.advance(2s);
    ASSERT_TRUE(wait([&] { return fake->actions.size() > before; })) << "round " << round;
  }
  std::set<std::string> ids;
  for (auto& x : fake->actions) ids.insert(x.id());
  EXPECT_EQ(ids, std::set<std::string>{"re"});
  for (size_t i = 1; i < fake->actions.size(); ++i) {
    EXPECT_GT(fake->actions[i].attempt(), fake->actions[i - 1].attempt());
    EXPECT_GT(fake->seqs[i], fake->seqs[i - 1]) << "each re-send is a new envelope";
  }
  EXPECT_EQ(log.names("re"), Strings{"dispatched"});
}

TEST_F(DispatcherTest, AnAcknowledgedActionWithoutResultTimesOutAfterExpiryWatchAndGrace) {
  start_fake();
  auto a = make_action("to", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESET, 60s, 10s);
  size_t n = 0;
  ASSERT_OK(disp->dispatch(a));
  ASSERT_TRUE(wait([&] {
    n = fake->actions.size();
    if (n) return true;
    clock.advance(10ms);
    return false;
  }));
  fake->ack("to");
  ASSERT_TRUE(wait([&] { return log.names("to").size() == 2; }));
  EXPECT_EQ(log.names("to"), (Strings{"dispatched", "acked"}));
  clock.advance(60s + 10s + 30s - 1s);
  settle();
  EXPECT_FALSE(log.ended("to"));
  const size_t sends_at_expiry = fake->actions.size();
  clock.advance(1s);
  settle();
  ASSERT_TRUE(log.ended("to"));
  EXPECT_EQ(log.last("to")->state, ActionState::kTimedOut);
  EXPECT_NE(log.last("to")->reason.find("no result"), std::string::npos);
  EXPECT_TRUE(log.last("to")->acked);
  EXPECT_EQ(fake->actions.size(), sends_at_expiry) << "no re-send after expiry";
  EXPECT_EQ(disp->in_flight(), 0u);
}

TEST_F(DispatcherTest, KeepsActionsForAnUnconnectedHostQueuedUntilItConnects) {
  hv.heal_on_execute = true;
  auto a = make_action("q1", "host-a", "vm-1", clock.now());
  ASSERT_OK(disp->dispatch(a));
  clock.advance(5s);
  settle();
  EXPECT_TRUE(log.names("q1").empty()) << "not dispatched while the host is away";
  EXPECT_GT(disp->stats().unreachable, 0u);
  start_actuator();
  ASSERT_TRUE(wait([&] {
    if (log.ended("q1")) return true;
    clock.advance(100ms);
    return false;
  }));
  EXPECT_EQ(log.names("q1"), (Strings{"dispatched", "acked", "succeeded"}));
  EXPECT_EQ(hv.executed, Strings{"reset vm-1"});
}

TEST_F(DispatcherTest, AnActionNeverDeliveredTimesOutAtItsExpiry) {
  auto a = make_action("nd", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESET, 30s);
  ASSERT_OK(disp->dispatch(a));
  clock.advance(30s);
  settle();
  ASSERT_TRUE(log.ended("nd"));
  EXPECT_EQ(log.last("nd")->state, ActionState::kTimedOut);
  EXPECT_NE(log.last("nd")->reason.find("not connected"), std::string::npos);
  EXPECT_FALSE(log.last("nd")->delivered);
  EXPECT_FALSE(log.last("nd")->acked);
}

TEST_F(DispatcherTest, DispatchOfAKnownIdIsANoOp) {
  auto a = make_action("k", "host-a", "vm-1", clock.now());
  ASSERT_OK(disp->dispatch(a));
  ASSERT_OK(disp->dispatch(a));
  EXPECT_EQ(disp->in_flight(), 1u);
  EXPECT_EQ(disp->stats().dispatched, 1u);
}

TEST_F(DispatcherTest, RefusesAnAlreadyExpiredOrIncompleteAction) {
  auto old = make_action("old", "host-a", "vm-1", clock.now() - 120s);
  EXPECT_EQ(disp->dispatch(old).code(), Code::kFailedPrecondition);
  auto novm = make_action("novm", "host-a", "", clock.now());
  EXPECT_EQ(disp->dispatch(novm).code(), Code::kInvalidArgument);
  EXPECT_EQ(disp->in_flight(), 0u);
}

TEST_F(DispatcherTest, RefusesActionsBeyondThePerHostBound) {
  auto o = dispatcher_options();
  o.max_per_host = 3;
  disp.reset();
  auto d = Dispatcher::create(o, {*ctx, keys.engine, keys.trust, clock}, log.sink());
  ASSERT_OK(d);
  disp = std::move(d).value();
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(disp->dispatch(make_action("b" + std::to_string(i), "host-a", "vm-1",
                                           clock.now())));
  }
  EXPECT_EQ(disp->dispatch(make_action("b3", "host-a", "vm-1", clock.now())).code(),
            Code::kUnavailable);
  EXPECT_OK(disp->dispatch(make_action("other", "host-b", "vm-9", clock.now())))
      << "the bound is per host";
}

TEST_F(DispatcherTest, AcknowledgesAndReportsAResultForAnUnknownActionOnce) {
  start_fake();
  // Make the connection known to the dispatcher first.
  fake->ack("nothing");
  ActionResult r;
  r.set_action_id("ghost");
  r.set_outcome(ActionResult::OUTCOME_SUCCEEDED);
  fake->result(r);
  fake->result(r);
  ASSERT_TRUE(wait([&] { return fake->result_acks.size() == 2; }));
  EXPECT_EQ(fake->result_acks, (Strings{"ghost", "ghost"}));
  ASSERT_EQ(log.names("ghost"), Strings{"succeeded"});
  EXPECT_FALSE(log.last("ghost")->known);
  EXPECT_EQ(disp->stats().duplicate_results, 1u);
}

// With ack_results_on_receipt off (the engine's way), a result waits for the
// sink's ack_result(), and a second copy of it reaches the sink instead of
// being acknowledged unseen.
TEST_F(DispatcherTest, WithoutAckOnReceiptTheSinkAcknowledgesWhatItRecorded) {
  auto o = dispatcher_options();
  o.ack_results_on_receipt = false;
  disp.reset();
  auto d = Dispatcher::create(o, {*ctx, keys.engine, keys.trust, clock}, log.sink());
  ASSERT_OK(d);
  disp = std::move(d).value();
  start_fake();
  ASSERT_OK(disp->dispatch(make_action("x1", "host-a", "vm-1", clock.now())));
  ASSERT_TRUE(wait([&] {
    if (!fake->actions.empty()) return true;
    clock.advance(10ms);  // the first send may precede the connection
    return false;
  }));
  ActionResult r;
  r.set_action_id("x1");
  r.set_outcome(ActionResult::OUTCOME_SUCCEEDED);
  fake->result(r);
  ASSERT_TRUE(wait([&] { return log.ended("x1"); }));
  settle();
  EXPECT_TRUE(fake->result_acks.empty()) << "acknowledged before the sink recorded it";
  EXPECT_TRUE(log.last("x1")->known);
  fake->result(r);  // the actuator sends it again
  const auto succeeded = [&] {
    const Strings n = log.names("x1");
    return std::count(n.begin(), n.end(), "succeeded");
  };
  ASSERT_TRUE(wait([&] { return succeeded() == 2; }));
  EXPECT_FALSE(log.last("x1")->known) << "the second copy goes to the sink";
  EXPECT_EQ(disp->stats().duplicate_results, 1u);
  settle();
  EXPECT_TRUE(fake->result_acks.empty());
  disp->ack_result("host-a", "x1");  // positive control: the sink's ack arrives
  ASSERT_TRUE(wait([&] { return !fake->result_acks.empty(); }));
  EXPECT_EQ(fake->result_acks, Strings{"x1"});
}

TEST_F(DispatcherTest, RefusesAResultSignedForAnotherHostOnThisConnection) {
  start_fake();
  auto a = make_action("x1", "host-a", "vm-1", clock.now());
  size_t n = 0;
  ASSERT_OK(disp->dispatch(a));
  ASSERT_TRUE(wait([&] {
    n = fake->actions.size();
    if (n) return true;
    clock.advance(10ms);
    return false;
  }));
  // host-b's key may not speak for host-a: the envelope is refused.
  FakeActuator impostor(*ctx, keys, keys.host_b, "host-a", disp->endpoint(), clock);
  ActionResult r;
  r.set_action_id("x1");
  r.set_outcome(ActionResult::OUTCOME_FAILED);
  impostor.result(r);
  ASSERT_TRUE(wait([&] { return disp->stats().refused > 0; }));
  settle();
  EXPECT_FALSE(log.ended("x1"));
  EXPECT_GT(disp->open_counters().get(fabric::OpenError::kOutOfScope), 0u);
}

TEST_F(DispatcherTest, TheSinkMayDispatchTheNextActionFromInsideACallback) {
  hv.heal_on_execute = true;
  start_actuator();
  disp.reset();
  auto o = dispatcher_options();
  Dispatcher* self = nullptr;
  std::vector<std::string> seen;
  auto d =
      Dispatcher::create(o, {*ctx, keys.engine, keys.trust, clock}, [&](const DispatchEvent& e) {
        seen.push_back(e.action.id() + ":" + state_name(e.state));
        if (e.action.id() == "first" && e.state == ActionState::kSucceeded) {
          ASSERT_OK(self->dispatch(make_action("second", "host-a", "vm-1", clock.now())));
        }
      });
  ASSERT_OK(d);
  disp = std::move(d).value();
  self = disp.get();
  act.reset();
  start_actuator();
  ASSERT_OK(disp->dispatch(make_action("first", "host-a", "vm-1", clock.now())));
  ASSERT_TRUE(wait([&] {
    if (!seen.empty() && seen.back() == "second:succeeded") return true;
    clock.advance(50ms);
    return false;
  }));
  EXPECT_EQ(hv.executed, (Strings{"reset vm-1", "reset vm-1"}));
}

}  // namespace
}  // namespace medic::actuators
