// read_audit_decisions (replay/replay.h) on a real SQLite audit log: the
// decisions of the recording's time span, oldest first, in the replay's
// terms (1-based ladder steps, the engine's notices under their host), so a
// replay that decided the same finds no difference.
#include <gtest/gtest.h>

#include "audit/log.h"
#include "replay/replay.h"
#include "tests/testing/testing.h"
#include "tests/unit/fabric/fabric_test_util.h"

namespace medic::replay {
namespace {

using namespace std::chrono_literals;

const Time kStart = from_ns(1'800'000'000'000'000'000);

audit::Decision row(const std::string& id, Duration at, const std::string& rule,
                    const std::string& vm, const std::string& verb, int32_t ladder_step) {
  audit::Decision d;
  d.id = id;
  d.action_id = id;
  d.at = kStart + at;
  d.rule = rule;
  d.vm = vm;
  d.host = "host-a";
  d.verb = verb;
  d.ladder_step = ladder_step;
  d.outcome = DecisionOutcome::kProposed;
  d.action_expires_at = d.at + 5min;
  return d;
}

rules::Decision replayed(Duration at, const std::string& rule, const std::string& vm,
                         rules::Step step, uint32_t ladder_step) {
  rules::Decision d;
  d.id = "r-" + vm;
  d.at = kStart + at;
  d.rule = rule;
  d.vm = vm;
  d.host = "host-a";
  d.step = step;
  d.ladder_step = ladder_step;
  return d;
}

TEST(AuditDiff, TheLogsDecisionsOfTheRecordedSpanMatchTheSameReplayedOnes) {
  testing::TempDir dir;
  const std::string db = dir.file("audit.db");
  {
    VirtualClock clock(kStart);
    const fabric::Identity engine = fabric::test::identity_for(7);
    audit::StoreOptions o;
    o.durability = audit::Durability::kProcessCrash;
    auto store = audit::open_sqlite_store(db, clock, engine, o);
    ASSERT_OK(store);
    ASSERT_OK((*store)->append_decision(row("a-0", 5s, "guest-panicked", "web-0", "reset", 0)));
    ASSERT_OK((*store)->append_decision(row("a-1", 20s, "silent", "web-1", "reset", 1)));
    ASSERT_OK((*store)->append_decision(row("a-2", 30s, "(engine)", "", "notify", 0)));
    ASSERT_OK((*store)->append_decision(row("a-3", 90s, "guest-panicked", "web-3", "reset", 0)));
    ASSERT_OK((*store)->close());
  }
  auto live = read_audit_decisions(db, kStart + 10s, kStart + 30s);
  ASSERT_OK(live);
  ASSERT_EQ(live->size(), 2u) << "only [10s, 30s]: the decisions at 5s and 90s are outside";
  EXPECT_EQ((*live)[0].id, "a-1");
  EXPECT_EQ((*live)[0].ladder_step, 2u);
  EXPECT_EQ((*live)[0].subject(), "vm web-1");
  EXPECT_EQ((*live)[1].id, "a-2");
  EXPECT_EQ((*live)[1].ladder_step, 0u);
  EXPECT_EQ((*live)[1].subject(), "host host-a");

  const std::vector<rules::Decision> same = {
      replayed(20s + 4ms, "silent", "web-1", rules::Step::kReset, 2),
      replayed(30s + 4ms, "", "", rules::Step::kNotify, 0)};
  DiffReport d = diff_decisions(decision_lines(same), *live, 2s);
  EXPECT_TRUE(d.empty()) << diff_text(d, db);
  EXPECT_EQ(d.same, 2u);

  // The negative beside it: one ladder step off is a change, not the same.
  const std::vector<rules::Decision> other = {
      replayed(20s, "silent", "web-1", rules::Step::kReset, 1),
      replayed(30s, "", "", rules::Step::kNotify, 0)};
  d = diff_decisions(decision_lines(other), *live, 2s);
  EXPECT_EQ(d.changed, 1u);
  EXPECT_EQ(d.by_subject.at("vm web-1")[0].changes, std::vector<std::string>{"step 2 -> 1"});
}

TEST(AuditDiff, TheLiveResultsAreEachActionsFirstResultWithItsDelayAndWhetherItHealed) {
  testing::TempDir dir;
  const std::string db = dir.file("audit.db");
  {
    VirtualClock clock(kStart);
    const fabric::Identity engine = fabric::test::identity_for(7);
    audit::StoreOptions o;
    o.durability = audit::Durability::kProcessCrash;
    auto store = audit::open_sqlite_store(db, clock, engine, o);
    ASSERT_OK(store);
    auto move = [&](const std::string& id, Duration at, ActionState st, const std::string& what) {
      return (*store)->append_transition({id, kStart + at, st, "host-a", what, 0});
    };
    ASSERT_OK((*store)->append_decision(row("a-1", 10s, "silent", "web-1", "reboot", 0)));
    ASSERT_OK(move("a-1", 10s, ActionState::kDispatched, "to the actuator of host-a"));
    ASSERT_OK(move("a-1", 11s, ActionState::kAcked, ""));
    ASSERT_OK(move("a-1", 13s, ActionState::kFailed, "powerdown refused"));
    ASSERT_OK((*store)->append_decision(row("a-2", 20s, "silent", "web-1", "reset", 1)));
    ASSERT_OK(move("a-2", 20s, ActionState::kDispatched, "to the actuator of host-a"));
    ASSERT_OK(move("a-2", 21s, ActionState::kAcked, ""));
    ASSERT_OK(
        move("a-2", 25s, ActionState::kSucceeded, "executed; the actuator saw the VM healthy"));
    ASSERT_OK((*store)->append_decision(row("a-3", 30s, "silent", "web-3", "reboot", 0)));
    ASSERT_OK(move("a-3", 30s, ActionState::kDispatched, "to the actuator of host-a"));
    ASSERT_OK((*store)->close());
  }
  auto results = read_audit_results(db, kStart);
  ASSERT_OK(results);
  ASSERT_EQ(results->size(), 2u) << "a-3 has no result yet";
  EXPECT_EQ((*results)[0].decision.id, "a-1");
  EXPECT_EQ((*results)[0].decision.ladder_step, 1u);
  EXPECT_EQ((*results)[0].after, 3s);
  EXPECT_EQ((*results)[0].outcome, ActionState::kFailed);
  EXPECT_FALSE((*results)[0].healed);
  EXPECT_EQ((*results)[0].detail, "powerdown refused");
  EXPECT_EQ((*results)[1].decision.verb, "reset");
  EXPECT_EQ((*results)[1].decision.ladder_step, 2u);
  EXPECT_EQ((*results)[1].after, 5s);
  EXPECT_EQ((*results)[1].outcome, ActionState::kSucceeded);
  EXPECT_TRUE((*results)[1].healed);
}

TEST(AuditDiff, AnAuditLogThatIsNotThereIsAnErrorNamingIt) {
  auto live = read_audit_decisions("/nonexistent/audit.db", kStart, kStart + 1s);
  ASSERT_FALSE(live.ok());
  EXPECT_NE(live.status().message().find("/nonexistent/audit.db"), std::string::npos)
      << live.status();
}

}  // namespace
}  // namespace medic::replay
