// The engine pipeline's failure paths, deterministically: a VirtualClock, an
// in-memory AuditStore that fails or holds back durability on demand, and the
// node's real Dispatcher on loopback CurveZMQ to an actuator stand-in. The
// only waiting is for frames to cross the socket, never for time.
#include <gtest/gtest.h>

#include "node/engine_node.h"
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

class Observer final : public EngineObserver {
 public:
  void on_dispatch_event(const actuators::DispatchEvent& e) override {
    if (e.state == ActionState::kDispatched) sent.push_back(e.action.id());
  }
  std::vector<std::string> sent;
};

class EnginePipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ctx = fabric::Context::create(keys_.trust);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = std::move(*ctx);
    auto loaded = rules::load_rule_text(
        "rules:\n  - {name: db-panicked, on: vm.panicked, do: reset}\n", "rules.yaml");
    ASSERT_TRUE(loaded.rules) << loaded.text();
    rules_ = loaded.rules;
  }

  std::unique_ptr<EngineNode> start() {
    EngineConfig c;
    c.name = "engine-1";
    c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
    c.actions_endpoint = "tcp://127.0.0.1:*";
    c.control_endpoint = "tcp://127.0.0.1:*";
    auto node = EngineNode::create(c, {*ctx_, keys_.engine, keys_.trust, clock_}, rules_,
                                   std::make_unique<FakeAuditStore>(backend_), &observer_);
    EXPECT_TRUE(node.ok()) << node.status();
    return node.ok() ? std::move(*node) : nullptr;
  }

  // host-a's actuator, connected to `node`; its first frame introduces it to
  // the Dispatcher's ROUTER, so queued actions flow at once.
  std::unique_ptr<FakeActuator> actuator(EngineNode& node) {
    auto a = std::make_unique<FakeActuator>(*ctx_, keys_, keys_.host_a, "host-a",
                                            node.actions_endpoint(), clock_);
    a->ack("hello");
    return a;
  }

  // A panic of `vm` on host-a, straight into the node's rules engine (the
  // signed receive path has its own tests in fabric/ and integration/).
  void panic(EngineNode& node, const std::string& vm) {
    node.engine().host_seen("host-a", clock_.now());
    medic::v1::Event e;
    e.set_host("host-a");
    e.set_vm(vm);
    e.set_observed_at_ns(to_ns(clock_.now()));
    e.mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    node.engine().ingest(e, 0);
  }

  // Runs the node and the actuator until the actuator holds `n` actions.
  bool receive(EngineNode& node, FakeActuator& act, size_t n) {
    return ::medic::testing::wait_until([&] {
      node.run_once(Duration(0));
      act.poll();
      return act.actions.size() >= n;
    });
  }
  void pump(EngineNode& node, FakeActuator& act, int turns = 50) {
    for (int i = 0; i < turns; ++i) {
      node.run_once(1ms);
      act.poll();
    }
  }

  audit::Seq seq_of(const std::string& action_id, ActionState state) {
    for (const auto& r : backend_.rows()) {
      if (r.kind == RowKind::kTransition && r.transition.action_id == action_id &&
          r.transition.state == state) {
        return r.seq;
      }
    }
    return 0;
  }

  actuators::testing::Keys keys_;
  std::unique_ptr<fabric::Context> ctx_;
  std::shared_ptr<const rules::RuleSet> rules_;
  VirtualClock clock_;
  FakeAuditBackend backend_;
  Observer observer_;
};

// A port another engine holds: create() says which socket, and the half-built
// node goes away cleanly (it used to crash writing state it never had).
TEST_F(EnginePipelineTest, AControlPortInUseIsAnErrorNamingItNotACrash) {
  auto first = start();
  ASSERT_NE(first, nullptr);
  EngineConfig c;
  c.name = "engine-1";
  c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  c.actions_endpoint = "tcp://127.0.0.1:*";
  c.control_endpoint = first->control_endpoint();
  auto second = EngineNode::create(c, {*ctx_, keys_.engine, keys_.trust, clock_}, rules_,
                                   std::make_unique<FakeAuditStore>(backend_), &observer_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("control"), std::string::npos) << second.status();
}

TEST_F(EnginePipelineTest, ADecisionTheLogRefusesIsNeverDispatched) {
  auto node = start();
  ASSERT_TRUE(node);
  auto act = actuator(*node);
  backend_.refuse(RowKind::kDecision);
  panic(*node, "db-1");
  EXPECT_EQ(node->stats().decisions, 1u);
  EXPECT_EQ(node->stats().audit_errors, 1u);
  EXPECT_EQ(node->outbox_size(), 0u);
  EXPECT_TRUE(backend_.decisions().empty());

  backend_.accept_all();  // positive control: the same path works when the log accepts
  panic(*node, "db-2");
  ASSERT_TRUE(receive(*node, *act, 1));
  pump(*node, *act);
  ASSERT_EQ(act->actions.size(), 1u);
  EXPECT_EQ(act->actions[0].vm(), "db-2");
  EXPECT_EQ(node->stats().dispatched, 1u);
}

TEST_F(EnginePipelineTest, AnActionWhoseDispatchedRowIsRefusedIsNeverSent) {
  auto node = start();
  ASSERT_TRUE(node);
  auto act = actuator(*node);
  backend_.refuse(RowKind::kTransition);
  panic(*node, "db-1");
  ASSERT_EQ(backend_.decisions().size(), 1u);  // the decision itself is on record
  const std::string id = backend_.decisions()[0].action_id;
  EXPECT_EQ(node->stats().audit_errors, 1u);
  EXPECT_EQ(node->outbox_size(), 0u);
  EXPECT_EQ(seq_of(id, ActionState::kDispatched), 0);

  backend_.accept_all();
  panic(*node, "db-2");
  ASSERT_TRUE(receive(*node, *act, 1));
  pump(*node, *act);
  ASSERT_EQ(act->actions.size(), 1u);
  EXPECT_EQ(act->actions[0].vm(), "db-2");
}

TEST_F(EnginePipelineTest, AnActionLeavesOnlyOnceItsDispatchedRowIsDurable) {
  auto node = start();
  ASSERT_TRUE(node);
  auto act = actuator(*node);
  backend_.hold_durability();
  panic(*node, "db-1");
  ASSERT_EQ(node->outbox_size(), 1u);
  pump(*node, *act);
  EXPECT_EQ(node->stats().dispatched, 0u);
  EXPECT_TRUE(act->actions.empty());

  backend_.make_durable();
  ASSERT_TRUE(receive(*node, *act, 1));
  EXPECT_EQ(act->actions[0].id(), backend_.decisions()[0].action_id);
  EXPECT_EQ(node->outbox_size(), 0u);
}

// The decision and its `proposed` row reached the disk; the `dispatched` row
// had not when the process died. The next engine sends the same action id.
TEST_F(EnginePipelineTest, ACrashBetweenCommitAndDispatchResumesTheSameActionId) {
  std::string id;
  {
    auto first = start();
    ASSERT_TRUE(first);
    backend_.hold_durability();
    panic(*first, "db-1");
    ASSERT_EQ(backend_.decisions().size(), 1u);
    id = backend_.decisions()[0].action_id;
    ASSERT_NE(seq_of(id, ActionState::kDispatched), 0);
    backend_.make_durable_through(seq_of(id, ActionState::kProposed));
    first->run_once(Duration(0));
    EXPECT_EQ(first->stats().dispatched, 0u);
  }  // the engine is gone before its outbox was flushed
  backend_.crash();
  ASSERT_EQ(seq_of(id, ActionState::kDispatched), 0) << "the non-durable row is lost";
  backend_.make_durable();

  clock_.advance(1s);
  auto second = start();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->stats().resumed, 1u);
  auto act = actuator(*second);
  ASSERT_TRUE(receive(*second, *act, 1));
  EXPECT_EQ(act->actions[0].id(), id);
  auto ts = backend_.transitions_of(id);
  ASSERT_EQ(ts.size(), 2u);
  EXPECT_EQ(ts[1].state, ActionState::kDispatched);
  EXPECT_EQ(ts[1].detail, "resumed after an engine restart");
  // Ids of the new start cannot collide with the old ones: another prefix.
  EXPECT_EQ(id.rfind(start_prefix(clock_.now() - 1s) + "-", 0), 0u) << id;
}

// Both rows were durable but the engine died before handing the action over.
TEST_F(EnginePipelineTest, ADurableButUnsentActionIsSentAgainWithTheSameIdAfterARestart) {
  std::string id;
  {
    auto first = start();
    ASSERT_TRUE(first);
    backend_.hold_durability();
    panic(*first, "db-1");
    id = backend_.decisions()[0].action_id;
    backend_.make_durable();
  }  // dropped before a run_once flushed the outbox
  backend_.crash();
  ASSERT_NE(seq_of(id, ActionState::kDispatched), 0);
  clock_.advance(1s);
  auto second = start();
  ASSERT_TRUE(second);
  auto act = actuator(*second);
  ASSERT_TRUE(receive(*second, *act, 1));
  EXPECT_EQ(act->actions[0].id(), id);
  EXPECT_EQ(backend_.transitions_of(id).size(), 2u) << "no second dispatched row";
}

TEST_F(EnginePipelineTest, ATransitionTheLogRefusesIsCounted) {
  auto node = start();
  ASSERT_TRUE(node);
  auto act = actuator(*node);
  panic(*node, "db-1");
  ASSERT_TRUE(receive(*node, *act, 1));
  const std::string id = act->actions[0].id();
  EXPECT_EQ(node->stats().audit_errors, 0u);

  backend_.refuse(RowKind::kTransition);
  act->ack(id);
  ASSERT_TRUE(::medic::testing::wait_until([&] {
    pump(*node, *act, 1);
    return node->stats().audit_errors == 1;
  }));
  EXPECT_EQ(backend_.transitions_of(id).back().state, ActionState::kDispatched);

  backend_.accept_all();  // positive control: the result that follows is recorded
  medic::v1::ActionResult r;
  r.set_action_id(id);
  r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
  r.set_healed(true);
  act->result(r);
  ASSERT_TRUE(::medic::testing::wait_until([&] {
    pump(*node, *act, 1);
    return backend_.transitions_of(id).back().state == ActionState::kSucceeded;
  }));
  EXPECT_EQ(node->stats().audit_errors, 1u);
}

TEST_F(EnginePipelineTest, ActionIdsArePrefixedWithTheStartTimeOnTheNodesClock) {
  clock_.advance(123'456ms);
  const std::string prefix = start_prefix(clock_.now());
  auto node = start();
  ASSERT_TRUE(node);
  panic(*node, "db-1");
  ASSERT_EQ(backend_.decisions().size(), 1u);
  EXPECT_EQ(backend_.decisions()[0].action_id, prefix + "-1");
}

}  // namespace
}  // namespace medic::node
