// The engine's safety state across restarts and its degraded mode, on the
// in-memory AuditStore (the StateStore rows are kept by its backend like a
// file) with the node's real Dispatcher on loopback CurveZMQ. The same
// scenarios on real SQLite files and real processes are in
// tests/integration/engine_restart_test.cc.
#include <gtest/gtest.h>

#include "core/json.h"
#include "node/engine_node.h"
#include "node/engine_state_rows.h"
#include "rules/loader.h"
#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"
#include "tests/unit/node/fake_audit_store.h"

namespace medic::node {
namespace {

using namespace std::chrono_literals;
using actuators::testing::FakeActuator;
using testing::FakeAuditBackend;
using testing::FakeAuditStore;
using testing::RowKind;

constexpr const char* kFlapRule =
    "rules:\n  - {name: db-panicked, on: vm.panicked, do: reset, cooldown: 0s, budget: 3 per 1h}\n";

class EngineStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ctx = fabric::Context::create(keys_.trust);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = std::move(*ctx);
    use_rules(kFlapRule);
  }
  void use_rules(const std::string& text) {
    auto loaded = rules::load_rule_text(text, "rules.yaml");
    ASSERT_TRUE(loaded.rules) << loaded.text();
    rules_ = loaded.rules;
  }

  std::unique_ptr<EngineNode> start() {
    EngineConfig c;
    c.name = "engine-1";
    c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
    c.actions_endpoint = "tcp://127.0.0.1:*";
    c.control_endpoint = "tcp://127.0.0.1:*";
    c.engine = options_;
    c.engine.action_ttl = ttl_;
    auto node = EngineNode::create(c, {*ctx_, keys_.engine, keys_.trust, clock_}, rules_,
                                   std::make_unique<FakeAuditStore>(backend_));
    EXPECT_TRUE(node.ok()) << node.status();
    return node.ok() ? std::move(*node) : nullptr;
  }
  std::unique_ptr<FakeActuator> actuator(EngineNode& node) {
    auto a = std::make_unique<FakeActuator>(*ctx_, keys_, keys_.host_a, "host-a",
                                            node.actions_endpoint(), clock_);
    a->ack("hello");
    return a;
  }
  void panic(EngineNode& node, const std::string& vm) {
    node.engine().host_seen("host-a", clock_.now());
    medic::v1::Event e;
    e.set_host("host-a");
    e.set_vm(vm);
    e.set_observed_at_ns(to_ns(clock_.now()));
    e.mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    node.engine().ingest(e, 0);
    node.run_once(Duration(0));  // the step's unit commits
  }
  bool receive(EngineNode& node, FakeActuator& act, size_t n) {
    return ::medic::testing::wait_until([&] {
      node.run_once(Duration(0));
      act.poll();
      return act.actions.size() >= n;
    });
  }
  void succeed(EngineNode& node, FakeActuator& act, const std::string& id) {
    medic::v1::ActionResult r;
    r.set_action_id(id);
    r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
    r.set_healed(true);
    act.result(r);
    ASSERT_TRUE(::medic::testing::wait_until([&] {
      node.run_once(1ms);
      act.poll();
      return backend_.state_of(id) == ActionState::kSucceeded;
    }));
  }
  // Nothing refused; the action's rows after proposed and pending_approval:
  // approved by `by`, then `then`.
  void expect_approved_then(const std::string& id, const std::string& by, ActionState then) {
    EXPECT_EQ(backend_.refusals(), 0u);
    auto ts = backend_.transitions_of(id);
    ASSERT_GE(ts.size(), 4u);
    EXPECT_EQ(ts[2].state, ActionState::kApproved);
    EXPECT_EQ(ts[2].actor, by);
    EXPECT_EQ(ts[3].state, then);
  }
  size_t proposed() const {
    size_t n = 0;
    for (const auto& d : backend_.decisions()) {
      n += d.verb == "reset" && d.outcome == DecisionOutcome::kProposed;
    }
    return n;
  }
  size_t suppressed_by(const std::string& policy) const {
    size_t n = 0;
    for (const auto& d : backend_.decisions()) {
      n += d.outcome == DecisionOutcome::kSuppressed && d.policy == policy;
    }
    return n;
  }

  actuators::testing::Keys keys_;
  std::unique_ptr<fabric::Context> ctx_;
  std::shared_ptr<const rules::RuleSet> rules_;
  VirtualClock clock_;
  FakeAuditBackend backend_;
  Duration ttl_ = std::chrono::minutes(5);
  rules::EngineOptions options_;
};

// A VM that flaps forever under `budget: 3 per 1h`, the engine restarted
// after every action: three actions in the hour, not three per engine life.
TEST_F(EngineStateTest, TheBudgetOfAFlappingVmSurvivesRestarts) {
  for (int life = 0; life < 3; ++life) {
    auto node = start();
    ASSERT_TRUE(node);
    auto act = actuator(*node);
    const size_t before = act->actions.size();
    panic(*node, "db-1");
    if (proposed() > static_cast<size_t>(life)) {
      ASSERT_TRUE(receive(*node, *act, before + 1));
      succeed(*node, *act, act->actions.back().id());
    }
    clock_.advance(1min);
  }
  EXPECT_EQ(proposed(), 3u);
  {
    auto node = start();
    ASSERT_TRUE(node);
    panic(*node, "db-1");
  }
  EXPECT_EQ(proposed(), 3u);
  EXPECT_EQ(suppressed_by("budget"), 1u);
  size_t notices = 0;
  for (const auto& d : backend_.decisions()) notices += d.verb == "notify";
  EXPECT_EQ(notices, 2u) << "the silent-host notice of the first pause and one budget notice";

  // Positive control: once the hour has passed the budget has room again.
  clock_.advance(1h);
  auto node = start();
  ASSERT_TRUE(node);
  panic(*node, "db-1");
  EXPECT_EQ(proposed(), 4u);
}

// Restarted while a reset is in flight: the new engine knows it, so another
// panic gathers evidence on the open incident instead of deciding again.
TEST_F(EngineStateTest, NoSecondDecisionForAVmWhoseActionIsInFlightAcrossARestart) {
  std::string id;
  int64_t watch_ns = 0;
  {
    auto first = start();
    ASSERT_TRUE(first);
    auto act = actuator(*first);
    panic(*first, "db-1");
    ASSERT_TRUE(receive(*first, *act, 1));
    id = act->actions[0].id();
    watch_ns = act->actions[0].watch_ns();
  }
  ASSERT_EQ(watch_ns, std::chrono::nanoseconds(1min).count()) << "the rule's heal_within";
  clock_.advance(1s);
  auto second = start();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->stats().resumed, 1u);
  EXPECT_EQ(second->engine().stats().in_flight, 1u);
  panic(*second, "db-1");
  EXPECT_EQ(backend_.decisions().size(), 1u);
  auto act = actuator(*second);
  ASSERT_TRUE(receive(*second, *act, 1));
  EXPECT_EQ(act->actions[0].id(), id);
  EXPECT_EQ(act->actions[0].watch_ns(), watch_ns) << "the re-sent action keeps heal_within";
  // Positive control: with the action finished, the VM may be acted on again.
  succeed(*second, *act, id);
  panic(*second, "db-1");
  EXPECT_EQ(proposed(), 2u);
}

TEST_F(EngineStateTest, SilencesSurviveARestartAndTheirIdsNeverRepeat) {
  std::string first_id;
  {
    auto node = start();
    ASSERT_TRUE(node);
    rules::Silence s;
    s.vm = "db-1";
    s.until = clock_.now() + 1h;
    s.reason = "maintenance";
    s.by = "alice";
    first_id = node->engine().silence(s);
    node->run_once(Duration(0));
  }
  auto node = start();
  ASSERT_TRUE(node);
  auto held = node->engine().silences();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].first, first_id);
  EXPECT_EQ(held[0].second.reason, "maintenance");
  panic(*node, "db-1");
  EXPECT_EQ(suppressed_by("silence"), 1u);
  rules::Silence other;
  other.vm = "db-2";
  other.until = clock_.now() + 1h;
  EXPECT_NE(node->engine().silence(other), first_id);
  // Removed, it stays removed after the next restart.
  ASSERT_TRUE(node->engine().unsilence(first_id).ok());
  node->run_once(Duration(0));
  node.reset();
  auto third = start();
  ASSERT_TRUE(third);
  ASSERT_EQ(third->engine().silences().size(), 1u);
  EXPECT_NE(third->engine().silences()[0].first, first_id);
}

TEST_F(EngineStateTest, APendingApprovalSurvivesARestartWithItsOriginalExpiry) {
  use_rules(
      "rules:\n  - {name: db-panicked, on: vm.panicked, do: reset, approval: required, "
      "approval_timeout: 10m}\n");
  std::string id;
  {
    auto node = start();
    ASSERT_TRUE(node);
    panic(*node, "db-1");
    ASSERT_EQ(backend_.decisions().size(), 1u);
    id = backend_.decisions()[0].action_id;
    ASSERT_EQ(backend_.state_of(id), ActionState::kPendingApproval);
  }
  clock_.advance(4min);
  auto node = start();
  ASSERT_TRUE(node);
  EXPECT_EQ(backend_.state_of(id), ActionState::kPendingApproval) << "not expired by the restart";
  EXPECT_NE(node->status_text().find(id), std::string::npos) << node->status_text();
  clock_.advance(5min);
  node->run_once(Duration(0));
  EXPECT_EQ(backend_.state_of(id), ActionState::kPendingApproval);
  clock_.advance(2min);  // 11 minutes after the request: its original expiry has passed
  node->run_once(Duration(0));
  EXPECT_EQ(backend_.state_of(id), ActionState::kExpired);
}

constexpr const char* kApprovalRule =
    "rules:\n  - {name: db-panicked, on: vm.panicked, do: reset, approval: required}\n";

// Approved while its host is silent: one action in the log from pending to
// suppressed (it was a second decision under the same id, which the log
// refused, leaving the action pending for ever).
TEST_F(EngineStateTest, AnApprovalWhileTheHostIsSilentEndsThePendingActionSuppressed) {
  use_rules(kApprovalRule);
  auto node = start();
  ASSERT_TRUE(node);
  panic(*node, "db-1");
  ASSERT_EQ(backend_.decisions().size(), 1u);
  const std::string id = backend_.decisions()[0].action_id;
  clock_.advance(1min);  // host-a says nothing: the engine finds it silent
  node->run_once(Duration(0));
  ASSERT_TRUE(node->engine().approve(id, "alice").ok());
  node->run_once(Duration(0));
  size_t with_id = 0;
  for (const auto& d : backend_.decisions()) with_id += d.id == id;
  EXPECT_EQ(with_id, 1u) << "a second decision under the pending action's id";
  expect_approved_then(id, "alice", ActionState::kSuppressed);
  EXPECT_EQ(backend_.transitions_of(id).size(), 4u);
  const std::string why = backend_.transitions_of(id).back().detail;
  EXPECT_NE(why.find("host host-a is silent"), std::string::npos) << why;
  EXPECT_EQ(node->engine().stats().in_flight, 0u);
}

// Approved while the host has no free slot: nothing is recorded until a slot
// frees, then the very action the operator approved is dispatched.
TEST_F(EngineStateTest, AnApprovedActionWaitingForASlotIsSentUnderItsOwnId) {
  use_rules(kApprovalRule);
  options_.max_in_flight_per_host = 1;
  options_.storm.min_vms = 1000;  // two panics on a two-VM host are no storm here
  auto node = start();
  ASSERT_TRUE(node);
  auto act = actuator(*node);
  panic(*node, "db-1");
  panic(*node, "db-2");
  ASSERT_EQ(backend_.decisions().size(), 2u);
  const std::string first = backend_.decisions()[0].action_id;
  const std::string second = backend_.decisions()[1].action_id;
  ASSERT_TRUE(node->engine().approve(first, "alice").ok());
  ASSERT_TRUE(node->engine().approve(second, "bob").ok());
  ASSERT_TRUE(receive(*node, *act, 1));
  EXPECT_EQ(backend_.state_of(second), ActionState::kPendingApproval) << "waits for the slot";
  succeed(*node, *act, first);
  ASSERT_TRUE(receive(*node, *act, 2));
  EXPECT_EQ(act->actions[1].id(), second);
  EXPECT_EQ(backend_.decisions().size(), 2u) << "the wait and the send made no new decision";
  expect_approved_then(second, "bob", ActionState::kDispatched);
}

// The engine was down past the action's expiry; the actuator had run it and
// reports afterwards: recorded as succeeded, not closed as timed_out at start.
TEST_F(EngineStateTest, ALateResultAfterALongOutageIsRecordedAsTheActuatorReportsIt) {
  ttl_ = 30s;
  std::string id;
  {
    auto first = start();
    ASSERT_TRUE(first);
    auto act = actuator(*first);
    panic(*first, "db-1");
    ASSERT_TRUE(receive(*first, *act, 1));
    id = act->actions[0].id();
  }
  clock_.advance(45s);  // past the expiry, within expiry + watch + result grace
  auto second = start();
  ASSERT_TRUE(second);
  EXPECT_EQ(backend_.state_of(id), ActionState::kDispatched);
  auto act = actuator(*second);
  succeed(*second, *act, id);
  EXPECT_EQ(backend_.transitions_of(id).back().actor, "host-a");
  EXPECT_EQ(second->engine().stats().in_flight, 0u);
}

TEST_F(EngineStateTest, AnActionWithNoResultTimesOutOnlyAfterExpiryWatchAndGrace) {
  ttl_ = 30s;
  std::string id;
  {
    auto first = start();
    ASSERT_TRUE(first);
    auto act = actuator(*first);
    panic(*first, "db-1");
    ASSERT_TRUE(receive(*first, *act, 1));
    id = act->actions[0].id();
  }
  clock_.advance(45s);
  auto second = start();
  ASSERT_TRUE(second);
  // 30s expiry + 60s default watch + 90s result grace = 180s after the decision.
  clock_.advance(130s);
  second->run_once(Duration(0));
  EXPECT_EQ(backend_.state_of(id), ActionState::kDispatched);
  clock_.advance(10s);
  second->run_once(Duration(0));
  EXPECT_EQ(backend_.state_of(id), ActionState::kTimedOut);
}

TEST_F(EngineStateTest, DegradedWhileTheLogCannotBeWrittenThenResumesByItself) {
  auto node = start();
  ASSERT_TRUE(node);
  auto act = actuator(*node);
  panic(*node, "db-1");
  ASSERT_TRUE(receive(*node, *act, 1));
  const std::string id = act->actions[0].id();

  backend_.set_health(unavailable("disk full"));
  node->run_once(Duration(0));
  EXPECT_FALSE(node->degraded().ok());
  EXPECT_NE(node->status_text().find("degraded"), std::string::npos) << node->status_text();
  medic::v1::ActionResult r;
  r.set_action_id(id);
  r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
  r.set_healed(true);
  act->result(r);
  for (int i = 0; i < 20; ++i) {
    node->run_once(1ms);
    act->poll();
  }
  EXPECT_TRUE(act->result_acks.empty()) << "a result it cannot record is not acknowledged";
  EXPECT_EQ(backend_.state_of(id), ActionState::kDispatched);

  backend_.set_health({});  // space returns
  ASSERT_TRUE(::medic::testing::wait_until([&] {
    node->run_once(1ms);
    act->poll();
    return !act->result_acks.empty();
  }));
  EXPECT_TRUE(node->degraded().ok());
  EXPECT_EQ(backend_.state_of(id), ActionState::kSucceeded);
  EXPECT_EQ(node->stats().degraded_spells, 1u);
}

// A result is acknowledged once its row is durable; a copy the actuator sends
// again after that is acknowledged too (nothing left to record), once.
TEST_F(EngineStateTest, AResultIsAcknowledgedOnceRecordedAndSoIsARepeatOfIt) {
  auto node = start();
  ASSERT_TRUE(node);
  auto act = actuator(*node);
  panic(*node, "db-1");
  ASSERT_TRUE(receive(*node, *act, 1));
  const std::string id = act->actions[0].id();
  succeed(*node, *act, id);
  ASSERT_TRUE(::medic::testing::wait_until([&] {
    node->run_once(1ms);
    act->poll();
    return act->result_acks.size() == 1;
  }));
  medic::v1::ActionResult r;
  r.set_action_id(id);
  r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
  r.set_healed(true);
  act->result(r);
  ASSERT_TRUE(::medic::testing::wait_until([&] {
    node->run_once(1ms);
    act->poll();
    return act->result_acks.size() == 2;
  }));
  EXPECT_EQ(act->result_acks, (std::vector<std::string>{id, id}));
  EXPECT_EQ(backend_.state_of(id), ActionState::kSucceeded);
  EXPECT_EQ(node->stats().audit_errors, 0u);
}

TEST(EngineStateRows, RowsThatDoNotDecodeAreRefusedNamingTheRow) {
  auto bad = decode_state_rows({{audit::StateKind::kVm, "db-1", "{\"host\": 3}"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("db-1"), std::string::npos) << bad.status();
  auto good = decode_state_rows({});  // positive control
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->rows, 0u);
}

TEST(EngineStateRows, TheClonesEachRequesterMadeRoundTripAndOldRowsHaveNone) {
  rules::StateChanges c;
  c.engine_changed = true;
  c.state.clones_by = {{"orch", {100, 200}}, {"web-app", {300}}};
  std::vector<audit::StateRow> rows;
  append_state_rows(c, &rows);
  auto back = decode_state_rows(rows);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->engine.clones_by, c.state.clones_by);
  // A row written before requesters had a clone count decodes with none.
  for (auto& row : rows) {
    if (row.kind != audit::StateKind::kEngine) continue;
    auto j = parse_json(row.value);
    ASSERT_TRUE(j.ok());
    j->erase("clones");
    row.value = dump_json(*j);
  }
  auto old = decode_state_rows(rows);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_TRUE(old->engine.clones_by.empty());
}

TEST(EngineStateRows, ReplayMarksRoundTrip) {
  std::vector<audit::StateRow> rows;
  fabric::Opener::ReplayMark m{std::string(32, '\x7f'), 258, 9, 1234567};
  append_replay_rows(ReplayLane::kControl, {m}, &rows);
  auto back = decode_state_rows(rows);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->control_marks.size(), 1u);
  EXPECT_EQ(back->control_marks[0], m);
  EXPECT_TRUE(back->event_marks.empty());
}

}  // namespace
}  // namespace medic::node
