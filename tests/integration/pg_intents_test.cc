// Fenced intents on a real PostgreSQL server started by the test: the intent
// and its audit rows commit together and only for the lease holder at its
// epoch; a retry or a new leader adds no second intent; the audit chain is
// SQLite's and its verifier names the first bad row.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "audit/intents.h"
#include "audit/lease.h"
#include "tests/testing/postgres.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using audit::IntentOutcome;

class PgIntentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::PostgresServer::start();
    ASSERT_OK(server);
    server_ = std::move(*server);
    auto leases = audit::open_pg_lease_table(server_->url(), kShards);
    ASSERT_OK(leases);
    leases_ = std::move(*leases);
    auto store = audit::open_pg_intent_store(server_->url(), kShards);
    ASSERT_OK(store);
    store_ = std::move(*store);
  }

  // Takes shard 0 for `holder`; its fence.
  audit::Fence take(const std::string& holder, Duration ttl = 60s) {
    auto epoch = leases_->acquire(0, holder, ttl);
    EXPECT_OK(epoch);
    EXPECT_TRUE(epoch.ok() && epoch->has_value()) << holder << " did not get shard 0";
    return {0, holder, epoch.ok() && epoch->has_value() ? **epoch : -1};
  }

  static audit::Intent intent(const std::string& action_id, int32_t step = 0) {
    audit::Intent in;
    in.incident = "inc-web-1";
    in.step = step;
    in.decision.id = "dec-" + action_id;
    in.decision.at = from_ns(1'700'000'000'000'000'000);
    in.decision.rule = "vm-unresponsive";
    in.decision.rule_version = "3";
    in.decision.vm = "web-1";
    in.decision.host = "hv-1";
    in.decision.verb = "reboot";
    in.decision.ladder_step = step;
    in.decision.policies_passed = {"budget", "cooldown"};
    in.decision.evidence = {{12, 0}};
    in.decision.action_id = action_id;
    in.transitions.push_back({action_id, in.decision.at + 1ms, ActionState::kDispatched,
                              "engine", "sent to hv-1", 0});
    return in;
  }

  long long count(const std::string& table) {
    pqxx::connection c(server_->url());
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM " + table)[0].as<long long>();
  }
  void exec(const std::string& sql) {
    pqxx::connection c(server_->url());
    pqxx::nontransaction tx(c);
    tx.exec(sql);
  }

  static constexpr int kShards = 4;
  std::unique_ptr<testing::PostgresServer> server_;
  audit::LeaseTablePtr leases_;
  audit::IntentStorePtr store_;
};

TEST_F(PgIntentsTest, TheHolderRecordsTheIntentWithItsAuditRowsInOneChain) {
  audit::Fence fence = take("engine-a");
  auto r = store_->record(fence, intent("act-1"));
  ASSERT_OK(r);
  EXPECT_EQ(r->outcome, IntentOutcome::kInserted);
  EXPECT_EQ(r->action_id, "act-1");
  EXPECT_EQ(r->epoch, 1);
  EXPECT_EQ(r->last_seq, 3);  // decision, proposed, dispatched
  EXPECT_EQ(count("medic_intents"), 1);
  EXPECT_EQ(count("audit_decisions"), 1);
  EXPECT_EQ(count("audit_transitions"), 2);
  auto v = audit::verify_pg_chain(server_->url());
  ASSERT_OK(v);
  EXPECT_EQ(v->rows, 3);
  EXPECT_EQ(v->first_bad, 0) << v->problem;
  auto stored = store_->intents(0);
  ASSERT_OK(stored);
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].action_id, "act-1");
  EXPECT_EQ((*stored)[0].holder, "engine-a");
  EXPECT_EQ((*stored)[0].epoch, 1);
}

TEST_F(PgIntentsTest, ADeposedLeaderInsertsNeitherTheIntentNorAnyAuditRow) {
  audit::Fence old_fence = take("engine-a");
  auto released = leases_->release(0, "engine-a", old_fence.epoch);
  ASSERT_OK(released);
  ASSERT_TRUE(*released);
  audit::Fence new_fence = take("engine-b");
  ASSERT_EQ(new_fence.epoch, 2);

  auto late = store_->record(old_fence, intent("act-old"));
  ASSERT_OK(late);
  EXPECT_EQ(late->outcome, IntentOutcome::kFenced);
  EXPECT_EQ(count("medic_intents"), 0);
  EXPECT_EQ(count("audit_decisions") + count("audit_transitions"), 0);

  auto current = store_->record(new_fence, intent("act-new"));  // positive control
  ASSERT_OK(current);
  EXPECT_EQ(current->outcome, IntentOutcome::kInserted);
  EXPECT_EQ(current->epoch, 2);
}

TEST_F(PgIntentsTest, AHolderWhoseLeaseLapsedIsFencedEvenWithNoNewHolder) {
  audit::Fence fence = take("engine-a", 200ms);
  ASSERT_TRUE(testing::wait_until([&] {
    auto rows = leases_->rows();
    return rows.ok() && !(*rows)[0].live;  // the database clock says it lapsed
  }));
  auto r = store_->record(fence, intent("act-1"));
  ASSERT_OK(r);
  EXPECT_EQ(r->outcome, IntentOutcome::kFenced);
  EXPECT_EQ(count("medic_intents"), 0);
}

TEST_F(PgIntentsTest, ARetryOfTheSameStepInsertsNoSecondIntentAndReturnsTheFirst) {
  audit::Fence fence = take("engine-a");
  auto first = store_->record(fence, intent("act-1"));
  ASSERT_OK(first);
  ASSERT_EQ(first->outcome, IntentOutcome::kInserted);
  auto again = store_->record(fence, intent("act-1"));
  ASSERT_OK(again);
  EXPECT_EQ(again->outcome, IntentOutcome::kAlreadyRecorded);
  EXPECT_EQ(again->action_id, "act-1");
  auto renamed = store_->record(fence, intent("act-1-retry"));
  ASSERT_OK(renamed);
  EXPECT_EQ(renamed->outcome, IntentOutcome::kAlreadyRecorded);
  EXPECT_EQ(renamed->action_id, "act-1") << "the step's first action id is the one to send";
  EXPECT_EQ(count("medic_intents"), 1);
  EXPECT_EQ(count("audit_decisions"), 1);

  auto next_step = store_->record(fence, intent("act-2", 1));  // positive control
  ASSERT_OK(next_step);
  EXPECT_EQ(next_step->outcome, IntentOutcome::kInserted);
}

TEST_F(PgIntentsTest, ANewLeaderDecidingTheSameStepGetsTheOldIntentToResend) {
  audit::Fence old_fence = take("engine-a", 200ms);
  auto first = store_->record(old_fence, intent("act-1"));
  ASSERT_OK(first);
  ASSERT_EQ(first->outcome, IntentOutcome::kInserted);
  std::optional<int64_t> epoch;
  ASSERT_TRUE(testing::wait_until([&] {
    auto r = leases_->acquire(0, "engine-b", 60s);
    if (r.ok()) epoch = *r;
    return epoch.has_value();
  }));
  auto second = store_->record({0, "engine-b", *epoch}, intent("act-1-by-b"));
  ASSERT_OK(second);
  EXPECT_EQ(second->outcome, IntentOutcome::kAlreadyRecorded);
  EXPECT_EQ(second->action_id, "act-1");
  EXPECT_EQ(second->epoch, 1);
  EXPECT_EQ(count("medic_intents"), 1);
}

TEST_F(PgIntentsTest, AnActionIdUsedUnderAnotherKeyIsRefusedAndWritesNothing) {
  audit::Fence fence = take("engine-a");
  ASSERT_OK(store_->record(fence, intent("act-1", 0)));
  auto clash = store_->record(fence, intent("act-1", 1));
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(clash.status().message().find("act-1"), std::string::npos) << clash.status();
  EXPECT_EQ(count("medic_intents"), 1);
  EXPECT_EQ(count("audit_decisions"), 1);
}

TEST_F(PgIntentsTest, AnIntentThatCreatesNoActionIsRefusedWithTheReason) {
  audit::Fence fence = take("engine-a");
  audit::Intent dry = intent("act-1");
  dry.decision.outcome = DecisionOutcome::kDryRun;
  auto r = store_->record(fence, dry);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dry_run"), std::string::npos) << r.status();
}

TEST_F(PgIntentsTest, AnIllegalTransitionInTheIntentIsRefusedBeforeAnythingIsWritten) {
  audit::Fence fence = take("engine-a");
  audit::Intent bad = intent("act-1");
  bad.transitions = {{"act-1", bad.decision.at, ActionState::kSucceeded, "engine", "", 0}};
  auto r = store_->record(fence, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("from proposed to succeeded"), std::string::npos)
      << r.status();
  EXPECT_EQ(count("medic_intents"), 0);
}

TEST_F(PgIntentsTest, VerifyNamesTheFirstEditedRow) {
  audit::Fence fence = take("engine-a");
  ASSERT_OK(store_->record(fence, intent("act-1", 0)));
  ASSERT_OK(store_->record(fence, intent("act-2", 1)));
  auto clean = audit::verify_pg_chain(server_->url());
  ASSERT_OK(clean);
  ASSERT_EQ(clean->first_bad, 0) << clean->problem;  // positive control
  ASSERT_EQ(clean->rows, 6);
  exec("UPDATE audit_transitions SET detail = 'edited' WHERE seq = 5");
  auto edited = audit::verify_pg_chain(server_->url());
  ASSERT_OK(edited);
  EXPECT_EQ(edited->first_bad, 5);
  EXPECT_NE(edited->problem.find("does not match its hash"), std::string::npos) << edited->problem;
}

TEST_F(PgIntentsTest, MedicAuditVerifyOnAPostgresUrlNamesTheFirstBadRowAndExitsOne) {
  audit::Fence fence = take("engine-a");
  ASSERT_OK(store_->record(fence, intent("act-1", 0)));
  ASSERT_OK(store_->record(fence, intent("act-2", 1)));
  auto good = testing::run_command(
      {testing::medic_binary(), "audit", "verify", "--db", server_->url()});
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("OK: the audit log verifies."), std::string::npos) << good.out;
  EXPECT_NE(good.out.find("rows checked:  6"), std::string::npos) << good.out;

  exec("UPDATE audit_decisions SET reason = 'nothing to see' WHERE seq = 4");
  auto bad = testing::run_command(
      {testing::medic_binary(), "audit", "verify", "--db", server_->url(), "--json"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("\"first_bad\":4"), std::string::npos) << bad.out;

  auto signed_only = testing::run_command(
      {testing::medic_binary(), "audit", "verify", "--db", server_->url(), "--key",
       std::string(64, 'a')});
  EXPECT_EQ(signed_only.exit_code, 2);
  EXPECT_NE(signed_only.err.find("has none yet"), std::string::npos) << signed_only.err;
}

TEST_F(PgIntentsTest, VerifyNamesADeletedRowInTheMiddle) {
  audit::Fence fence = take("engine-a");
  ASSERT_OK(store_->record(fence, intent("act-1", 0)));
  ASSERT_OK(store_->record(fence, intent("act-2", 1)));
  exec("DELETE FROM audit_transitions WHERE seq = 2");
  auto deleted = audit::verify_pg_chain(server_->url());
  ASSERT_OK(deleted);
  EXPECT_EQ(deleted->first_bad, 2);
  EXPECT_NE(deleted->problem.find("missing"), std::string::npos) << deleted->problem;
}

TEST_F(PgIntentsTest, VerifyNamesACutOffEndByTheChainHead) {
  audit::Fence fence = take("engine-a");
  ASSERT_OK(store_->record(fence, intent("act-1", 0)));
  ASSERT_OK(store_->record(fence, intent("act-2", 1)));
  exec("DELETE FROM audit_transitions WHERE seq >= 5; DELETE FROM audit_decisions WHERE seq >= 4");
  auto cut = audit::verify_pg_chain(server_->url());
  ASSERT_OK(cut);
  EXPECT_EQ(cut->rows, 3);
  EXPECT_EQ(cut->first_bad, 4);
  EXPECT_NE(cut->problem.find("head names row 6"), std::string::npos) << cut->problem;
}

TEST_F(PgIntentsTest, AStoppedDatabaseIsUnavailableAndARetryAfterItReturnsIsExactlyOnce) {
  audit::Fence fence = take("engine-a");
  ASSERT_OK(store_->record(fence, intent("act-1")));
  ASSERT_OK(server_->stop());
  auto down = store_->record(fence, intent("act-2", 1));
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), Code::kUnavailable) << down.status();
  ASSERT_OK(server_->restart());
  auto retry = store_->record(fence, intent("act-2", 1));
  ASSERT_OK(retry);
  EXPECT_EQ(retry->outcome, IntentOutcome::kInserted);
  auto twice = store_->record(fence, intent("act-2", 1));
  ASSERT_OK(twice);
  EXPECT_EQ(twice->outcome, IntentOutcome::kAlreadyRecorded);
  EXPECT_EQ(count("medic_intents"), 2);
}

}  // namespace
}  // namespace medic
