#include "actuators/actuator.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"

namespace medic::actuators {
namespace {

using namespace medic::actuators::testing;
using medic::v1::ActionAck;
using medic::v1::ActionResult;

class ActuatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = fabric::Context::create(keys.trust);
    ASSERT_OK(c);
    ctx = std::move(c).value();
    engine = std::make_unique<FakeEngine>(*ctx, keys, clock);
    hv.add_vm("vm-1", medic::v1::VM_STATE_PANICKED);
    opts = actuator_options(keys, engine->endpoint(), dir.file("journal.db"));
  }

  void start_actuator() {
    auto a = Actuator::create(opts, {*ctx, keys.host_a, keys.trust, clock}, hv);
    ASSERT_OK(a);
    act = std::move(a).value();
  }
  void step() {
    if (act) act->run_once(2ms);
    engine->poll();
  }
  void send(const medic::v1::Action& a) { send_raw(engine->seal_action(a)); }
  void send_raw(const std::string& frame) {
    ASSERT_TRUE(engine->send_frame(frame, [&] { step(); }));
  }
  bool wait(const std::function<bool()>& cond) {
    return pump([&] { step(); }, cond);
  }
  // Runs the loops a little so that anything in flight arrives.
  void settle() {
    for (int i = 0; i < 25; ++i) step();
  }
  size_t acks_for(const std::string& id, ActionAck::What what = ActionAck::WHAT_RECEIVED) {
    size_t n = 0;
    for (auto& a : engine->acks) n += a.action_id() == id && a.what() == what;
    return n;
  }
  void ack_result(const std::string& id) { send_raw(engine->seal_result_ack(id)); }

  medic::testing::TempDir dir;
  Keys keys;
  VirtualClock clock;
  FakeHypervisor hv{"host-a", clock};
  ActuatorOptions opts;
  std::unique_ptr<fabric::Context> ctx;
  std::unique_ptr<FakeEngine> engine;
  ActuatorPtr act;
};

TEST_F(ActuatorTest, ExecutesAnActionAndReportsAckThenHealedResult) {
  hv.heal_on_execute = true;
  start_actuator();
  send(make_action("a1", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("a1") > 0; }));
  ASSERT_EQ(hv.executed, std::vector<std::string>{"reset vm-1"});
  ASSERT_EQ(acks_for("a1"), 1u);
  const ActionResult* r = engine->last_result("a1");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_SUCCEEDED);
  EXPECT_TRUE(r->healed());
  EXPECT_EQ(r->executed_at_ns(), to_ns(clock.now()));
  auto e = act->journal().find("a1");
  ASSERT_OK(e);
  EXPECT_EQ(e->state, JournalState::kDone);
}

TEST_F(ActuatorTest, InjectOnABackendThatIsNotSimulatedFailsWithTheReasonAndRunsNoVerb) {
  start_actuator();
  auto a = make_action("i1", "host-a", "vm-1", clock.now(), medic::v1::VERB_INJECT);
  a.set_fault("panic");
  send(a);
  ASSERT_TRUE(wait([&] { return engine->results_for("i1") > 0; }));
  const ActionResult* r = engine->last_result("i1");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_FAILED);
  EXPECT_NE(r->reason().find("does not inject faults (\"panic\"): only a simulated (sim) backend"),
            std::string::npos) << r->reason();
  EXPECT_TRUE(hv.executed.empty());
  // Positive control: an ordinary verb on the same actuator runs.
  hv.heal_on_execute = true;
  send(make_action("a2", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("a2") > 0; }));
  EXPECT_EQ(hv.executed, std::vector<std::string>{"reset vm-1"});
}

TEST_F(ActuatorTest, DuplicateDeliveryIsExecutedOnceAndAnsweredAgain) {
  hv.heal_on_execute = true;
  start_actuator();
  auto a = make_action("dup", "host-a", "vm-1", clock.now());
  send(a);
  ASSERT_TRUE(wait([&] { return engine->results_for("dup") == 1; }));
  a.set_attempt(2);
  send(a);  // a fresh envelope (new seq) for the same action id
  send(a);
  ASSERT_TRUE(wait([&] { return engine->results_for("dup") == 3 && acks_for("dup") == 3; }));
  EXPECT_EQ(hv.executed.size(), 1u);
  EXPECT_EQ(act->stats().duplicates, 2u);
  EXPECT_EQ(act->stats().executed, 1u);
}

TEST_F(ActuatorTest, RejectsAnExpiredActionWithASignedResult) {
  start_actuator();
  auto a = make_action("old", "host-a", "vm-1", clock.now() - 120s);
  send(a);
  ASSERT_TRUE(wait([&] { return engine->results_for("old") > 0; }));
  const ActionResult* r = engine->last_result("old");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_NE(r->reason().find("expired"), std::string::npos) << r->reason();
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(act->stats().rejected_by[static_cast<size_t>(Rejection::kExpired)], 1u);
}

TEST_F(ActuatorTest, RejectsAnActionForAVmNotOnThisHost) {
  start_actuator();
  send(make_action("elsewhere", "host-a", "vm-of-host-b", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("elsewhere") > 0; }));
  const ActionResult* r = engine->last_result("elsewhere");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_NE(r->reason().find("not on host"), std::string::npos) << r->reason();
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(act->stats().rejected_by[static_cast<size_t>(Rejection::kVmNotHere)], 1u);
}

TEST_F(ActuatorTest, RejectsAnActionWhoseExpiryIsBeyondTheLifetimeLimit) {
  start_actuator();
  send(make_action("far", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESET, 48h));
  ASSERT_TRUE(wait([&] { return engine->results_for("far") > 0; }));
  EXPECT_EQ(engine->last_result("far")->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, RejectsAnActionWithAnUnknownVerb) {
  start_actuator();
  send(make_action("verb", "host-a", "vm-1", clock.now(), medic::v1::VERB_UNSPECIFIED));
  ASSERT_TRUE(wait([&] { return engine->results_for("verb") > 0; }));
  EXPECT_EQ(engine->last_result("verb")->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, RejectsAnActionWhoseHostDiffersFromItsEnvelope) {
  start_actuator();
  auto a = make_action("mixed", "host-b", "vm-1", clock.now());
  send_raw(engine->seal_action(a, "host-a"));
  ASSERT_TRUE(wait([&] { return engine->results_for("mixed") > 0; }));
  EXPECT_EQ(engine->last_result("mixed")->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, ARejectedActionIdStaysRejectedOnRedelivery) {
  start_actuator();
  send(make_action("gone", "host-a", "vm-2", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("gone") > 0; }));
  hv.add_vm("vm-2");  // the VM shows up later: the id must still not run
  send(make_action("gone", "host-a", "vm-2", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("gone") > 1; }));
  EXPECT_EQ(engine->last_result("gone")->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_TRUE(hv.executed.empty());
}

// Frames that cannot be attributed to a trusted engine are counted, logged
// and never answered.
TEST_F(ActuatorTest, DropsAnActionAddressedToAnotherHost) {
  start_actuator();
  send_raw(engine->seal_action(make_action("b1", "host-b", "vm-1", clock.now())));
  ASSERT_TRUE(wait([&] { return act->open_counters().get(fabric::OpenError::kOutOfScope) == 1; }));
  settle();
  EXPECT_TRUE(engine->results.empty());
  EXPECT_TRUE(engine->acks.empty());
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(act->stats().unattributed, 1u);
}

TEST_F(ActuatorTest, DropsAnActionSignedByACollectorKey) {
  start_actuator();
  fabric::Sealer collector(keys.collector);
  auto a = make_action("c1", "host-a", "vm-1", clock.now());
  send_raw(collector.seal(medic::v1::KIND_ACTION, "host-a", a.SerializeAsString(), clock.now()));
  ASSERT_TRUE(
      wait([&] { return act->open_counters().get(fabric::OpenError::kRoleNotAllowed) == 1; }));
  settle();
  EXPECT_TRUE(engine->results.empty());
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, DropsAnActionSignedByAnUnknownKey) {
  start_actuator();
  fabric::Sealer stranger(keys.stranger);
  auto a = make_action("s1", "host-a", "vm-1", clock.now());
  send_raw(stranger.seal(medic::v1::KIND_ACTION, "host-a", a.SerializeAsString(), clock.now()));
  ASSERT_TRUE(
      wait([&] { return act->open_counters().get(fabric::OpenError::kUnknownSender) == 1; }));
  settle();
  EXPECT_TRUE(engine->results.empty());
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, DropsAForgedAction) {
  start_actuator();
  // A genuine engine envelope whose payload was changed after signing.
  std::string frame = engine->seal_action(make_action("f1", "host-a", "vm-1", clock.now()));
  medic::v1::Envelope env;
  ASSERT_TRUE(env.ParseFromString(frame));
  auto a = make_action("f1", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESTART);
  env.set_payload(a.SerializeAsString());
  send_raw(env.SerializeAsString());
  ASSERT_TRUE(
      wait([&] { return act->open_counters().get(fabric::OpenError::kBadSignature) == 1; }));
  settle();
  EXPECT_TRUE(engine->results.empty());
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, DropsAReplayedActionAndExecutesTheOriginalOnce) {
  hv.heal_on_execute = true;
  start_actuator();
  std::string frame = engine->seal_action(make_action("r1", "host-a", "vm-1", clock.now()));
  send_raw(frame);
  ASSERT_TRUE(wait([&] { return engine->results_for("r1") == 1; }));
  send_raw(frame);  // the very same bytes again
  ASSERT_TRUE(wait([&] { return act->open_counters().get(fabric::OpenError::kReplayed) == 1; }));
  settle();
  EXPECT_EQ(engine->results_for("r1"), 1u);
  EXPECT_EQ(hv.executed.size(), 1u);
}

TEST_F(ActuatorTest, RejectsAStaleButAuthenticActionAsClockSkew) {
  start_actuator();
  auto a = make_action("skew", "host-a", "vm-1", clock.now());
  // Sealed two minutes in the past: beyond the 30 s skew bound.
  std::string frame = engine->sealer().seal(medic::v1::KIND_ACTION, "host-a",
                                            a.SerializeAsString(), clock.now() - 120s);
  send_raw(frame);
  ASSERT_TRUE(wait([&] { return engine->results_for("skew") > 0; }));
  EXPECT_EQ(engine->last_result("skew")->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_NE(engine->last_result("skew")->reason().find("clock"), std::string::npos);
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, ResendsTheResultWithBackoffUntilTheEngineAcknowledgesIt) {
  hv.heal_on_execute = true;
  start_actuator();
  send(make_action("rs", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("rs") == 1; }));
  // Not acknowledged: the first result counts as lost.
  clock.advance(200ms);
  ASSERT_TRUE(wait([&] { return engine->results_for("rs") == 2; }));
  clock.advance(399ms);
  settle();
  EXPECT_EQ(engine->results_for("rs"), 2u) << "backoff doubles: nothing before 400 ms";
  clock.advance(1ms);
  ASSERT_TRUE(wait([&] { return engine->results_for("rs") == 3; }));
  ack_result("rs");
  ASSERT_TRUE(wait([&] { return act->results_unacked() == 0; }));
  clock.advance(10s);
  settle();
  EXPECT_EQ(engine->results_for("rs"), 3u);
  EXPECT_EQ(hv.executed.size(), 1u);
  auto e = act->journal().find("rs");
  ASSERT_OK(e);
  EXPECT_TRUE(e->result_acked);
}

TEST_F(ActuatorTest, ReportsABackendFailureWithItsReason) {
  hv.next_status = failed_precondition("VM is stopped");
  start_actuator();
  send(make_action("fail", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("fail") > 0; }));
  const ActionResult* r = engine->last_result("fail");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_FAILED);
  EXPECT_NE(r->reason().find("VM is stopped"), std::string::npos) << r->reason();
  EXPECT_FALSE(r->healed());
}

TEST_F(ActuatorTest, ReportsHealedWhenAHeartbeatArrivesDuringTheWatch) {
  start_actuator();
  send(make_action("w1", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return act->watching() == 1; }));
  clock.advance(3s);
  settle();
  EXPECT_EQ(engine->results_for("w1"), 0u) << "no result while the VM is still booting";
  hv.heartbeat("vm-1");
  clock.advance(1s);  // the next watch poll sees it
  ASSERT_TRUE(wait([&] { return engine->results_for("w1") > 0; }));
  EXPECT_TRUE(engine->last_result("w1")->healed());
  EXPECT_EQ(engine->last_result("w1")->outcome(), ActionResult::OUTCOME_SUCCEEDED);
}

TEST_F(ActuatorTest, AVmEventEndsTheWatchWithoutWaitingForThePoll) {
  start_actuator();
  send(make_action("w2", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return act->watching() == 1; }));
  clock.advance(100ms);
  hv.heartbeat("vm-1");
  vmm::VmEvent ev;
  ev.type = vmm::VmEvent::Type::kHeartbeat;
  ev.vm = "vm-1";
  ev.at = clock.now();
  act->on_vm_event(ev);
  ASSERT_TRUE(wait([&] { return engine->results_for("w2") > 0; }));
  EXPECT_TRUE(engine->last_result("w2")->healed());
}

// urgent_event_to_executed_seconds: from a VM's failure event to the verb
// that answered it; an intended stop is not a failure a later verb answers.
TEST_F(ActuatorTest, TimesAFailureEventToTheVerbThatAnsweredItAndNotAStop) {
  hv.heal_on_execute = true;
  start_actuator();
  CounterRegistry registry;
  act->set_latency_registry(&registry);
  auto count = [&](const char* event) {
    for (const auto& h : registry.histogram_samples()) {
      if (h.labels == CounterLabels{{"event", event}}) return h.value.count;
    }
    return uint64_t{0};
  };
  vmm::VmEvent stop;
  stop.vm = "vm-1";
  stop.what = medic::v1::LIFECYCLE_STOPPED;
  stop.at = clock.now();
  act->on_vm_event(stop);
  send(make_action("l1", "host-a", "vm-1", clock.now(), medic::v1::VERB_START));
  ASSERT_TRUE(wait([&] { return engine->results_for("l1") > 0; }));
  EXPECT_TRUE(registry.histogram_samples().empty()) << "a stop is not a failure";
  vmm::VmEvent panic = stop;
  panic.what = medic::v1::LIFECYCLE_PANICKED;
  panic.at = clock.now();
  act->on_vm_event(panic);
  clock.advance(250ms);
  send(make_action("l2", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("l2") > 0; }));
  ASSERT_EQ(count("panicked"), 1u);
  EXPECT_NEAR(registry.histogram_samples()[0].value.sum_seconds, 0.25, 1e-9);
  // Answered once: the next action on the VM has no failure to answer.
  send(make_action("l3", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("l3") > 0; }));
  EXPECT_EQ(count("panicked"), 1u);
}

TEST_F(ActuatorTest, ReportsNotHealedWhenTheWatchEndsWithoutAHeartbeat) {
  start_actuator();
  send(make_action("w3", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESET, 60s, 5s));
  ASSERT_TRUE(wait([&] { return act->watching() == 1; }));
  clock.advance(4900ms);
  settle();
  EXPECT_EQ(engine->results_for("w3"), 0u);
  clock.advance(100ms);
  ASSERT_TRUE(wait([&] { return engine->results_for("w3") > 0; }));
  const ActionResult* r = engine->last_result("w3");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_SUCCEEDED);
  EXPECT_FALSE(r->healed());
}

TEST_F(ActuatorTest, AnActionFoundExecutingAfterARestartIsReportedFailedAndNotRun) {
  {
    auto j = Journal::open(opts.journal_path);
    ASSERT_OK(j);
    auto a = make_action("crashed", "host-a", "vm-1", clock.now());
    ASSERT_OK((*j)->insert(a, JournalState::kExecuting, clock.now()));
  }
  start_actuator();
  ASSERT_TRUE(wait([&] { return engine->results_for("crashed") > 0; }));
  const ActionResult* r = engine->last_result("crashed");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_FAILED);
  EXPECT_EQ(r->reason(), kRestartedDuringExecution);
  // The engine re-sends it: still never executed.
  send(make_action("crashed", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("crashed") > 1; }));
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(act->stats().recovered_unknown, 1u);
}

TEST_F(ActuatorTest, AReceivedButUnstartedActionRunsAfterARestart) {
  hv.heal_on_execute = true;
  {
    auto j = Journal::open(opts.journal_path);
    ASSERT_OK(j);
    auto a = make_action("queued", "host-a", "vm-1", clock.now());
    ASSERT_OK((*j)->insert(a, JournalState::kReceived, clock.now()));
  }
  start_actuator();
  ASSERT_TRUE(wait([&] { return engine->results_for("queued") > 0; }));
  EXPECT_EQ(hv.executed, std::vector<std::string>{"reset vm-1"});
  EXPECT_TRUE(engine->last_result("queued")->healed());
}

TEST_F(ActuatorTest, AWatchResumesAfterARestart) {
  start_actuator();
  send(make_action("wr", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESET, 60s, 5s));
  ASSERT_TRUE(wait([&] { return act->watching() == 1; }));
  act.reset();  // the actuator stops mid-watch
  clock.advance(2s);
  start_actuator();
  EXPECT_EQ(act->watching(), 1u);
  hv.heartbeat("vm-1");
  clock.advance(1s);
  ASSERT_TRUE(wait([&] { return engine->results_for("wr") > 0; }));
  EXPECT_TRUE(engine->last_result("wr")->healed());
  EXPECT_EQ(hv.executed.size(), 1u);
}

TEST_F(ActuatorTest, ResendsAnUnacknowledgedResultAfterARestart) {
  hv.heal_on_execute = true;
  start_actuator();
  send(make_action("ur", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("ur") == 1; }));
  act.reset();
  // A restart takes time: the new process's sealer epoch is its first seal's
  // time on the clock, so it must come after the old one's.
  clock.advance(1ms);
  start_actuator();
  ASSERT_TRUE(wait([&] { return engine->results_for("ur") == 2; }));
  EXPECT_EQ(hv.executed.size(), 1u);
}

TEST_F(ActuatorTest, RunsTheRestartHookWithItsArgumentsAndReportsItsOutput) {
  opts.restart_hook = {"/bin/echo", "restarting", "{vm}", "on", "{host}"};
  start_actuator();
  send(make_action("hook", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESTART, 60s, 5s));
  ASSERT_TRUE(wait([&] { return act->watching() == 1; }));
  hv.heartbeat("vm-1");  // the hook brought it back
  clock.advance(1s);
  ASSERT_TRUE(wait([&] { return engine->results_for("hook") > 0; }));
  const ActionResult* r = engine->last_result("hook");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_SUCCEEDED);
  EXPECT_TRUE(r->healed());
  EXPECT_EQ(r->output(), "restarting vm-1 on host-a\n");
  EXPECT_TRUE(hv.executed.empty()) << "the hook replaces the backend's restart";
}

TEST_F(ActuatorTest, AFailingRestartHookIsReportedWithItsExitCode) {
  opts.restart_hook = {"/bin/sh", "-c", "echo no such vm >&2; exit 3"};
  start_actuator();
  send(make_action("hookfail", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESTART));
  ASSERT_TRUE(wait([&] { return engine->results_for("hookfail") > 0; }));
  const ActionResult* r = engine->last_result("hookfail");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_FAILED);
  EXPECT_NE(r->reason().find("exited with code 3"), std::string::npos) << r->reason();
  EXPECT_EQ(r->output(), "no such vm\n");
}

// The hook is a child process on the loop: while it runs the actuator keeps
// taking actions, and its time limit is the Clock's.
TEST_F(ActuatorTest, ASlowRestartHookBlocksNothingAndIsKilledAtItsTimeLimit) {
  const std::string marker = dir.file("hook-started");
  opts.restart_hook = {"/bin/sh", "-c", "echo started; : > " + marker + "; exec sleep 30"};
  opts.execute_timeout = 20s;
  hv.heal_on_execute = true;
  hv.add_vm("vm-2", medic::v1::VM_STATE_PANICKED);
  start_actuator();
  send(make_action("slow", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESTART));
  ASSERT_TRUE(wait([&] { return acks_for("slow", ActionAck::WHAT_RECEIVED) == 1; }));
  // A second action, for another VM, runs to its end while the hook sleeps.
  send(make_action("other", "host-a", "vm-2", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("other") > 0; }));
  EXPECT_EQ(engine->last_result("other")->outcome(), ActionResult::OUTCOME_SUCCEEDED);
  EXPECT_EQ(engine->results_for("slow"), 0u) << "the hook is still running";
  // Its first line is written (the marker comes after it) before time moves.
  ASSERT_TRUE(wait([&] { return std::filesystem::exists(marker); }));
  clock.advance(21s);  // past the hook's time limit, on the virtual clock
  ASSERT_TRUE(wait([&] { return engine->results_for("slow") > 0; }));
  const ActionResult* r = engine->last_result("slow");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_FAILED);
  EXPECT_NE(r->reason().find("did not finish within 20s"), std::string::npos) << r->reason();
  EXPECT_EQ(r->output(), "started\n");
}

TEST_F(ActuatorTest, AQueuedActionThatExpiredBeforeARestartIsRejectedNotRun) {
  {
    auto j = Journal::open(opts.journal_path);
    ASSERT_OK(j);
    auto a = make_action("late", "host-a", "vm-1", clock.now() - 90s);
    ASSERT_OK((*j)->insert(a, JournalState::kReceived, clock.now() - 90s));
  }
  start_actuator();
  ASSERT_TRUE(wait([&] { return engine->results_for("late") > 0; }));
  const ActionResult* r = engine->last_result("late");
  EXPECT_EQ(r->outcome(), ActionResult::OUTCOME_REJECTED);
  EXPECT_NE(r->reason().find("expired before it could be executed"), std::string::npos);
  EXPECT_TRUE(hv.executed.empty());
}

TEST_F(ActuatorTest, IgnoresAResultAcknowledgementSignedByAnActuatorKey) {
  hv.heal_on_execute = true;
  start_actuator();
  send(make_action("own", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("own") == 1; }));
  // host-a's own key may sign acks (for the engine), but only the engine may
  // tell this actuator to stop re-sending.
  fabric::Sealer self(keys.host_a);
  ActionAck ack;
  ack.set_action_id("own");
  ack.set_what(ActionAck::WHAT_RESULT_RECEIVED);
  send_raw(self.seal(medic::v1::KIND_ACTION_ACK, "host-a", ack.SerializeAsString(), clock.now()));
  ASSERT_TRUE(wait([&] { return act->stats().unattributed == 1; }));
  EXPECT_EQ(act->results_unacked(), 1u);
}

TEST_F(ActuatorTest, PrunesFinishedEntriesAfterTheRetentionTime) {
  hv.heal_on_execute = true;
  opts.retention = 2h;
  opts.prune_interval = 10min;
  start_actuator();
  send(make_action("p1", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("p1") == 1; }));
  ack_result("p1");
  ASSERT_TRUE(wait([&] { return act->results_unacked() == 0; }));
  clock.advance(1h);
  EXPECT_OK(act->journal().find("p1")) << "kept within the retention time";
  clock.advance(1h + 10min);
  EXPECT_EQ(act->journal().find("p1").status().code(), Code::kNotFound);
}

TEST_F(ActuatorTest, DoesNotExecuteWhenTheJournalCannotRecordTheExecution) {
  opts.journal_busy_timeout = 20ms;
  sqlite3* other = nullptr;
  opts.failpoint = [&](std::string_view at) {
    // Another writer holds the journal exactly when `executing` is written.
    if (at != "before_journal") return;
    ASSERT_EQ(sqlite3_open(opts.journal_path.c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  };
  start_actuator();
  send(make_action("locked", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return other != nullptr; }));
  settle();
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(act->stats().executed, 0u);
  EXPECT_EQ(acks_for("locked"), 1u) << "it was received and journaled as such";
  auto e = act->journal().find("locked");
  ASSERT_OK(e);
  EXPECT_EQ(e->state, JournalState::kReceived);
}

TEST_F(ActuatorTest, HookOutputThatIsNotUtf8IsCleanedSoTheResultStillParses) {
  // 0xff is never valid; "\xc3" alone is a cut two-byte character.
  opts.restart_hook = {"/bin/sh", "-c", "printf 'ok \\377 caf\\303\\251 \\303'; exit 1"};
  start_actuator();
  send(make_action("bytes", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESTART));
  ASSERT_TRUE(wait([&] { return engine->results_for("bytes") > 0; }));
  EXPECT_EQ(engine->last_result("bytes")->output(), "ok ? caf\u00e9 ?");
}

TEST_F(ActuatorTest, RefusesToStartForAnotherHostsBackend) {
  opts.host = "host-b";
  auto a = Actuator::create(opts, {*ctx, keys.host_a, keys.trust, clock}, hv);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kInvalidArgument);
  EXPECT_NE(a.status().message().find(
                "configured for host \"host-b\" but the hypervisor backend manages \"host-a\""),
            std::string::npos)
      << a.status();
  // The same options for the backend's own host start.
  opts.host = "host-a";
  EXPECT_OK(Actuator::create(opts, {*ctx, keys.host_a, keys.trust, clock}, hv));
}

TEST_F(ActuatorTest, RefusesToStartWhenTheEngineKeyIsNotATrustedEngine) {
  opts.engine_key = keys.collector.public_key();
  auto a = Actuator::create(opts, {*ctx, keys.host_a, keys.trust, clock}, hv);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("engine role"), std::string::npos);
}


// The signature pin: only the configured engine keys command the actuator,
// not every key the trust store gives the engine role. Each refused signer is
// counted under its own cause; the configured keys are the positive control.
class EnginePinTest : public ActuatorTest {
 protected:
  void SetUp() override {
    keys.add(second_engine, "engine-2", roles({fabric::Role::kEngine}), {"*"});
    keys.add(alice, "alice", roles({fabric::Role::kOperator}), {"*"});
    ActuatorTest::SetUp();
    hv.heal_on_execute = true;
  }
  // An action for vm-1 signed by `who`, sealed now.
  void send_signed_by(const fabric::Identity& who, const std::string& id) {
    fabric::Sealer sealer(who);
    auto a = make_action(id, "host-a", "vm-1", clock.now());
    send_raw(sealer.seal(medic::v1::KIND_ACTION, "host-a", a.SerializeAsString(), clock.now()));
  }
  uint64_t refused(fabric::OpenError e) { return act->open_counters().get(e); }

  fabric::Identity second_engine = seeded(6);
  fabric::Identity alice = seeded(7);
};

TEST_F(EnginePinTest, RefusesAnActionSignedByASecondEngineRoleKeyThatIsNotConfigured) {
  start_actuator();
  send_signed_by(second_engine, "e2");
  ASSERT_TRUE(wait([&] { return refused(fabric::OpenError::kUnpinnedSender) == 1; }));
  settle();
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_TRUE(engine->results.empty());
  EXPECT_TRUE(engine->acks.empty());
  EXPECT_EQ(act->stats().unattributed, 1u);
  // Positive control: the configured engine's action runs.
  send(make_action("e1", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("e1") > 0; }));
  EXPECT_EQ(hv.executed, std::vector<std::string>{"reset vm-1"});
}

TEST_F(EnginePinTest, RefusesAnActionSignedByAnOperatorKeyAsWrongRole) {
  start_actuator();
  send_signed_by(alice, "op1");
  ASSERT_TRUE(wait([&] { return refused(fabric::OpenError::kRoleNotAllowed) == 1; }));
  settle();
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(act->stats().unattributed, 1u);
  EXPECT_EQ(refused(fabric::OpenError::kUnpinnedSender), 0u);
}

TEST_F(EnginePinTest, RefusesAnActionSignedByACollectorKeyAsWrongRole) {
  start_actuator();
  send_signed_by(keys.collector, "col1");
  ASSERT_TRUE(wait([&] { return refused(fabric::OpenError::kRoleNotAllowed) == 1; }));
  settle();
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(act->stats().unattributed, 1u);
}

TEST_F(EnginePinTest, RefusesAResultAcknowledgementFromAnUnconfiguredEngine) {
  start_actuator();
  send(make_action("k1", "host-a", "vm-1", clock.now()));
  ASSERT_TRUE(wait([&] { return engine->results_for("k1") > 0; }));
  fabric::Sealer sealer(second_engine);
  medic::v1::ActionAck ack;
  ack.set_action_id("k1");
  ack.set_what(ActionAck::WHAT_RESULT_RECEIVED);
  send_raw(sealer.seal(medic::v1::KIND_ACTION_ACK, "host-a", ack.SerializeAsString(),
                       clock.now()));
  ASSERT_TRUE(wait([&] { return refused(fabric::OpenError::kUnpinnedSender) == 1; }));
  EXPECT_EQ(act->results_unacked(), 1u);  // still re-sent to the real engine
  ack_result("k1");
  ASSERT_TRUE(wait([&] { return act->results_unacked() == 0; }));
}

TEST_F(EnginePinTest, AcceptsEveryEngineKeyListedInEngineKeys) {
  opts.engine_keys = {keys.engine.public_key(), second_engine.public_key()};
  start_actuator();
  send_signed_by(second_engine, "e2");
  ASSERT_TRUE(wait([&] { return engine->results_for("e2") > 0; }));
  EXPECT_EQ(hv.executed, std::vector<std::string>{"reset vm-1"});
  EXPECT_EQ(refused(fabric::OpenError::kUnpinnedSender), 0u);
}

TEST_F(EnginePinTest, RefusesToStartWhenAListedEngineKeyIsNotATrustedEngine) {
  opts.engine_keys = {keys.engine.public_key(), alice.public_key()};
  auto a = Actuator::create(opts, {*ctx, keys.host_a, keys.trust, clock}, hv);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("engine role"), std::string::npos) << a.status();
}

}  // namespace
}  // namespace medic::actuators
