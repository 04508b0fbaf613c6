#include "actuators/journal.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"

namespace medic::actuators {
namespace {

using namespace medic::actuators::testing;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    journal.reset();
    auto j = Journal::open(dir.file("journal.db"));
    ASSERT_OK(j);
    journal = std::move(j).value();
  }
  medic::v1::ActionResult result(const std::string& id, bool healed = true) {
    medic::v1::ActionResult r;
    r.set_action_id(id);
    r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
    r.set_healed(healed);
    r.set_executed_at_ns(to_ns(now));
    return r;
  }

  medic::testing::TempDir dir;
  Time now = from_ns(1'700'000'000'000'000'000);
  std::unique_ptr<Journal> journal;
};

TEST_F(JournalTest, RecordsAnActionThroughItsStates) {
  auto a = make_action("a1", "host-a", "vm-1", now);
  ASSERT_OK(journal->insert(a, JournalState::kReceived, now));
  ASSERT_OK(journal->mark_executing("a1", now + 1ms));
  ASSERT_OK(journal->mark_watching("a1", now + 2ms, now + 3ms));
  ASSERT_OK(journal->finish("a1", result("a1"), now + 4s));
  auto e = journal->find("a1");
  ASSERT_OK(e);
  EXPECT_EQ(e->state, JournalState::kDone);
  EXPECT_EQ(e->action.vm(), "vm-1");
  EXPECT_EQ(e->executed_at, now);
  EXPECT_EQ(e->updated_at, now + 4s);
  ASSERT_TRUE(e->result.has_value());
  EXPECT_TRUE(e->result->healed());
  EXPECT_FALSE(e->result_acked);
}

TEST_F(JournalTest, ASecondInsertOfTheSameIdIsRefused) {
  auto a = make_action("a1", "host-a", "vm-1", now);
  ASSERT_OK(journal->insert(a, JournalState::kReceived, now));
  Status s = journal->insert(a, JournalState::kExecuting, now);
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  auto e = journal->find("a1");
  ASSERT_OK(e);
  EXPECT_EQ(e->state, JournalState::kReceived);
}

TEST_F(JournalTest, MarkExecutingSucceedsOnlyOnce) {
  auto a = make_action("a1", "host-a", "vm-1", now);
  ASSERT_OK(journal->insert(a, JournalState::kReceived, now));
  ASSERT_OK(journal->mark_executing("a1", now));
  EXPECT_EQ(journal->mark_executing("a1", now).code(), Code::kFailedPrecondition);
  EXPECT_EQ(journal->mark_executing("unknown", now).code(), Code::kFailedPrecondition);
}

TEST_F(JournalTest, AFinishedResultIsNotOverwritten) {
  auto a = make_action("a1", "host-a", "vm-1", now);
  ASSERT_OK(journal->insert(a, JournalState::kExecuting, now));
  ASSERT_OK(journal->finish("a1", result("a1", true), now));
  EXPECT_EQ(journal->finish("a1", result("a1", false), now).code(), Code::kFailedPrecondition);
  EXPECT_TRUE(journal->find("a1")->result->healed());
}

TEST_F(JournalTest, FindOfAnUnknownIdIsNotFound) {
  EXPECT_EQ(journal->find("nope").status().code(), Code::kNotFound);
}

TEST_F(JournalTest, SurvivesReopeningAndListsUnfinishedAndUnackedEntries) {
  ASSERT_OK(journal->insert(make_action("r", "host-a", "vm-1", now), JournalState::kReceived,
                              now));
  ASSERT_OK(journal->insert(make_action("x", "host-a", "vm-1", now), JournalState::kExecuting,
                              now + 1ms));
  ASSERT_OK(journal->insert(make_action("d", "host-a", "vm-1", now), JournalState::kExecuting,
                              now + 2ms));
  ASSERT_OK(journal->finish("d", result("d"), now + 3ms));
  ASSERT_OK(journal->insert_done(make_action("k", "host-a", "vm-1", now), result("k"),
                                   now + 4ms));
  ASSERT_OK(journal->mark_result_acked("k", now + 5ms));
  reopen();
  auto unfinished = journal->unfinished();
  ASSERT_OK(unfinished);
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].action.id(), "r");
  EXPECT_EQ((*unfinished)[0].state, JournalState::kReceived);
  EXPECT_EQ((*unfinished)[1].action.id(), "x");
  EXPECT_EQ((*unfinished)[1].state, JournalState::kExecuting);
  auto unacked = journal->unacked_results();
  ASSERT_OK(unacked);
  ASSERT_EQ(unacked->size(), 1u);
  EXPECT_EQ((*unacked)[0].action.id(), "d");
}

TEST_F(JournalTest, PruneRemovesOnlyOldDoneEntriesAndCountsUnackedOnes) {
  ASSERT_OK(journal->insert_done(make_action("old-acked", "host-a", "vm-1", now), result("a"),
                                   now));
  ASSERT_OK(journal->mark_result_acked("old-acked", now));
  ASSERT_OK(journal->insert_done(make_action("old-unacked", "host-a", "vm-1", now),
                                   result("b"), now));
  ASSERT_OK(journal->insert(make_action("old-executing", "host-a", "vm-1", now),
                              JournalState::kExecuting, now));
  ASSERT_OK(journal->insert_done(make_action("new", "host-a", "vm-1", now), result("c"),
                                   now + 2h));
  int unacked = -1;
  auto n = journal->prune(now + 1h, &unacked);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(unacked, 1);
  EXPECT_EQ(*journal->count(), 2);
  EXPECT_OK(journal->find("old-executing")) << "never prune what is not done";
  EXPECT_OK(journal->find("new"));
}

TEST_F(JournalTest, OpeningAnUnwritablePathFailsWithTheReason) {
  auto j = Journal::open(dir.file("no/such/dir/journal.db"));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Code::kIo);
  EXPECT_NE(j.status().message().find("no/such/dir"), std::string::npos);
}

}  // namespace
}  // namespace medic::actuators
