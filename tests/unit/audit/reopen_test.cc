// What the store knows after a restart comes from the file, not from memory.
#include <gtest/gtest.h>

#include "audit/log.h"
#include "tests/testing/testing.h"

namespace medic::audit {
namespace {

Decision proposed(const std::string& id) {
  Decision d;
  d.id = "dec-" + id;
  d.at = from_ns(1'700'000'000'000'000'000);
  d.rule = "guest-panicked";
  d.rule_version = "v1";
  d.vm = "vm-1";
  d.host = "host-a";
  d.verb = "reset";
  d.outcome = DecisionOutcome::kProposed;
  d.action_id = id;
  return d;
}

TEST(AuditReopen, ActionIdsAndStatesSurviveARestart) {
  VirtualClock clock;
  testing::TempDir dir;
  auto engine = fabric::Identity::generate();
  const std::string path = dir.file("audit.db");
  {
    auto store = open_sqlite_store(path, clock, engine);
    ASSERT_OK(store);
    ASSERT_OK((*store)->append_decision(proposed("a-1")));
    Transition t;
    t.action_id = "a-1";
    t.at = from_ns(1'700'000'000'000'000'001);
    t.state = ActionState::kDispatched;
    t.actor = "engine";
    auto seq = (*store)->append_transition(t);
    ASSERT_OK(seq);
    ASSERT_OK((*store)->close());
  }
  auto store = open_sqlite_store(path, clock, engine);
  ASSERT_OK(store);
  auto state = (*store)->action_state("a-1");
  ASSERT_OK(state);
  ASSERT_TRUE(state->has_value());
  EXPECT_EQ(**state, ActionState::kDispatched);
  // An action id used before the restart cannot be proposed again.
  auto again = (*store)->append_decision(proposed("a-1"));
  EXPECT_EQ(again.status().code(), Code::kFailedPrecondition) << again.status();
  // Nor can a finished one move backwards.
  Transition back;
  back.action_id = "a-1";
  back.at = from_ns(1'700'000'000'000'000'002);
  back.state = ActionState::kProposed;
  EXPECT_FALSE((*store)->append_transition(back).ok());
  ASSERT_OK((*store)->close());
}

}  // namespace
}  // namespace medic::audit
