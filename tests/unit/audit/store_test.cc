#include <atomic>
#include <thread>

#include "audit/log.h"
#include "tests/unit/audit/fixture.h"
#include "tests/testing/testing.h"

namespace medic::audit {
namespace {

using test::at_ms;
using test::decision;
using test::Keys;
using test::step;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("audit.db");
    auto s = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
    ASSERT_OK(s);
    store_ = std::move(*s);
  }
  Seq evidence() {
    auto ev = store_->append_evidence({at_ms(0), keys_.panic_batch("web-1", at_ms(0)), "host-a"});
    EXPECT_OK(ev);
    return ev.ok() ? *ev : 0;
  }

  VirtualClock clock_;  // before the store: outlives it
  testing::TempDir dir_;
  std::string path_;
  Keys keys_;
  AuditStorePtr store_;
};

TEST_F(StoreTest, AppendReturnsContiguousSeqsAndTheyBecomeDurable) {
  Seq ev = evidence();
  EXPECT_EQ(ev, 1);
  auto d = store_->append_decision(decision("a-1", "web-1", at_ms(1), ev));
  ASSERT_OK(d);
  EXPECT_EQ(*d, 3);  // decision row 2, its `proposed` transition row 3
  ASSERT_OK(store_->wait_durable(*d));
  EXPECT_GE(store_->durable_seq(), 3);
}

TEST_F(StoreTest, DecisionOutcomeRecordsTheFirstTransitions) {
  Seq ev = evidence();
  ASSERT_OK(store_->append_decision(decision("a-1", "web-1", at_ms(1), ev)));
  ASSERT_TRUE(
      store_->append_decision(decision("a-2", "web-2", at_ms(1), ev, DecisionOutcome::kPendingApproval))
          .ok());
  ASSERT_TRUE(
      store_->append_decision(decision("a-3", "web-3", at_ms(1), ev, DecisionOutcome::kSuppressed)).ok());
  EXPECT_EQ(*store_->action_state("a-1"), ActionState::kProposed);
  EXPECT_EQ(*store_->action_state("a-2"), ActionState::kPendingApproval);
  EXPECT_EQ(*store_->action_state("a-3"), ActionState::kSuppressed);
  EXPECT_EQ(*store_->action_state("nope"), std::nullopt);
}

TEST_F(StoreTest, FollowsTheWholeLifecycle) {
  Seq ev = evidence();
  ASSERT_OK(store_->append_decision(decision("a-1", "web-1", at_ms(1), ev)));
  for (auto s : {ActionState::kDispatched, ActionState::kAcked, ActionState::kSucceeded}) {
    auto r = store_->append_transition(step("a-1", s, at_ms(2), "host-a"));
    ASSERT_OK(r);
  }
  EXPECT_EQ(*store_->action_state("a-1"), ActionState::kSucceeded);
}

TEST_F(StoreTest, RefusesIllegalTransitionsWithAClearError) {
  Seq ev = evidence();
  ASSERT_OK(store_->append_decision(decision("a-1", "web-1", at_ms(1), ev)));
  Seq before = store_->append_transition(step("a-1", ActionState::kDispatched, at_ms(2))).value();

  auto r = store_->append_transition(step("a-1", ActionState::kApproved, at_ms(3)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("dispatched -> approved"), std::string::npos) << r.status();

  ASSERT_OK(store_->append_transition(step("a-1", ActionState::kFailed, at_ms(4))));
  r = store_->append_transition(step("a-1", ActionState::kSucceeded, at_ms(5)));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("already ended"), std::string::npos) << r.status();

  // Nothing was written for the refused ones.
  auto next = store_->append_transition(step("zzz", ActionState::kAcked, at_ms(6)));
  EXPECT_FALSE(next.ok());
  EXPECT_NE(next.status().message().find("not in the log"), std::string::npos);
  auto ok = store_->append_evidence({at_ms(7), keys_.panic_batch("x", at_ms(7)), "host-a"});
  EXPECT_EQ(*ok, before + 2);
}

TEST_F(StoreTest, RefusesProposedAsATransitionAndDuplicateIds) {
  Seq ev = evidence();
  ASSERT_OK(store_->append_decision(decision("a-1", "web-1", at_ms(1), ev)));
  EXPECT_EQ(
      store_->append_transition(step("a-9", ActionState::kProposed, at_ms(2))).status().code(),
      Code::kFailedPrecondition);
  auto dup_action = decision("a-1", "web-1", at_ms(1), ev);
  dup_action.id = "d-other";
  EXPECT_EQ(store_->append_decision(dup_action).status().code(), Code::kFailedPrecondition);
  auto dup_decision = decision("a-5", "web-1", at_ms(1), ev);
  dup_decision.id = "d-a-1";
  EXPECT_EQ(store_->append_decision(dup_decision).status().code(), Code::kFailedPrecondition);
}

TEST_F(StoreTest, RefusesMalformedRecords) {
  EXPECT_EQ(store_->append_evidence({at_ms(0), "not an envelope", "x"}).status().code(),
            Code::kInvalidArgument);
  auto d = decision("a-1", "web-1", at_ms(1), 99);  // evidence row 99 does not exist
  EXPECT_EQ(store_->append_decision(d).status().code(), Code::kInvalidArgument);
  d = decision("a-1", "web-1", at_ms(1), 0);
  d.rule.clear();
  EXPECT_EQ(store_->append_decision(d).status().code(), Code::kInvalidArgument);
  d = decision("", "web-1", at_ms(1), 0);
  EXPECT_EQ(store_->append_decision(d).status().code(), Code::kInvalidArgument);
  d = decision("a-1", "web-1", at_ms(1), 0, DecisionOutcome::kSuppressed);
  d.policy.clear();
  EXPECT_EQ(store_->append_decision(d).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->append_request({at_ms(1), "", "approve", "a-1", false, "", ""}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->append_request({at_ms(1), "alice", "approve", "a-1", true, "", "junk"})
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->append_batch({}).status().code(), Code::kInvalidArgument);
  Seq ev = evidence();
  ASSERT_OK(store_->append_decision(decision("a-7", "web-1", at_ms(1), ev)));
  auto t = step("a-7", ActionState::kDispatched, at_ms(2), "engine", "", 999);
  EXPECT_EQ(store_->append_transition(t).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->append_transition(step("", ActionState::kDispatched, at_ms(2))).status().code(),
            Code::kInvalidArgument);
}

TEST_F(StoreTest, KeepsARefusedRequestWhoseSignatureIsBadAndStillVerifies) {
  medic::v1::Envelope env;
  ASSERT_TRUE(env.ParseFromString(keys_.approve("a-1", at_ms(1))));
  env.set_seq(env.seq() + 1);  // no longer what alice signed
  auto r = store_->append_request(
      {at_ms(1), "alice", "approve", "a-1", false, "bad signature", env.SerializeAsString()});
  ASSERT_OK(r);
  ASSERT_OK(store_->close());
  auto report = verify_log(path_);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->text();
  EXPECT_EQ(report->envelopes, 0);  // refused requests are records of attempts, not evidence
}

TEST_F(StoreTest, BatchIsAllOrNothing) {
  Seq ev = evidence();
  std::vector<Record> batch;
  batch.push_back(Record::of(decision("a-1", "web-1", at_ms(1), ev)));
  batch.push_back(Record::of(step("a-1", ActionState::kDispatched, at_ms(2))));
  batch.push_back(Record::of(step("a-1", ActionState::kApproved, at_ms(3))));  // illegal
  auto r = store_->append_batch(std::move(batch));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(*store_->action_state("a-1"), std::nullopt);

  std::vector<Record> good;
  good.push_back(Record::of(decision("a-1", "web-1", at_ms(1), ev)));
  good.push_back(Record::of(step("a-1", ActionState::kDispatched, at_ms(2))));
  auto g = store_->append_batch(std::move(good));
  ASSERT_OK(g);
  EXPECT_EQ(*g, 4);  // evidence 1, decision 2, proposed 3, dispatched 4
  ASSERT_OK(store_->wait_durable(*g));
}

TEST_F(StoreTest, DurableListenerHearsEveryCommit) {
  std::atomic<Seq> heard{0};
  store_->on_durable([&](Seq s) { heard.store(s); });
  Seq ev = evidence();
  auto d = store_->append_decision(decision("a-1", "web-1", at_ms(1), ev));
  ASSERT_OK(d);
  EXPECT_TRUE(testing::wait_until([&] { return heard.load() >= *d; }));
}

TEST_F(StoreTest, WaitDurableRefusesASeqNotYetAppended) {
  EXPECT_EQ(store_->wait_durable(5).code(), Code::kInvalidArgument);
}

TEST_F(StoreTest, ClosedStoreRefusesAppends) {
  evidence();
  ASSERT_OK(store_->close());
  ASSERT_OK(store_->close());
  auto r = store_->append_evidence({at_ms(0), keys_.panic_batch("web-1", at_ms(0)), "host-a"});
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

TEST_F(StoreTest, InFlightListsUnfinishedActionsForResuming) {
  Seq ev = evidence();
  ASSERT_OK(store_->append_decision(decision("a-1", "web-1", at_ms(1), ev)));
  ASSERT_OK(store_->append_transition(step("a-1", ActionState::kDispatched, at_ms(2))));
  ASSERT_TRUE(
      store_->append_decision(decision("a-2", "web-2", at_ms(3), ev, DecisionOutcome::kPendingApproval))
          .ok());
  ASSERT_OK(store_->append_decision(decision("a-3", "web-3", at_ms(4), ev)));
  ASSERT_OK(store_->append_transition(step("a-3", ActionState::kDispatched, at_ms(5))));
  ASSERT_OK(store_->append_transition(step("a-3", ActionState::kAcked, at_ms(6))));
  ASSERT_OK(store_->append_transition(step("a-3", ActionState::kSucceeded, at_ms(7))));
  ASSERT_TRUE(
      store_->append_decision(decision("a-4", "web-4", at_ms(8), ev, DecisionOutcome::kSuppressed)).ok());
  auto d5 = decision("a-5", "web-5", at_ms(9), ev);
  d5.action_expires_at = at_ms(10);
  ASSERT_OK(store_->append_decision(d5));
  ASSERT_OK(store_->close());

  // A new process opens the same log and asks what to resume.
  auto reopened = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
  ASSERT_OK(reopened);
  auto flying = (*reopened)->in_flight(at_ms(100));
  ASSERT_OK(flying);
  ASSERT_EQ(flying->size(), 2u);
  EXPECT_EQ((*flying)[0].action_id, "a-1");
  EXPECT_EQ((*flying)[0].state, ActionState::kDispatched);
  EXPECT_EQ((*flying)[0].verb, "reset");
  EXPECT_EQ((*flying)[0].host, "host-a");
  EXPECT_EQ((*flying)[0].vm, "web-1");
  EXPECT_EQ((*flying)[0].rule_version, "3");
  EXPECT_EQ((*flying)[1].action_id, "a-2");
  EXPECT_EQ((*flying)[1].state, ActionState::kPendingApproval);
  auto all = (*reopened)->in_flight(at_ms(100), true);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[2].action_id, "a-5");
  // The state survived the restart, finished actions included (read back from
  // the file): transitions keep being validated, ids stay unique.
  EXPECT_EQ(*(*reopened)->action_state("a-3"), ActionState::kSucceeded);
  auto late = (*reopened)->append_transition(step("a-3", ActionState::kFailed, at_ms(11)));
  EXPECT_NE(late.status().message().find("already ended"), std::string::npos) << late.status();
  auto reused = decision("a-9", "web-9", at_ms(12), 0);
  reused.id = "d-a-3";
  auto dup = (*reopened)->append_decision(reused);
  EXPECT_NE(dup.status().message().find("decision d-a-3 is already in the log"), std::string::npos)
      << dup.status();
  EXPECT_OK((*reopened)->append_transition(step("a-1", ActionState::kAcked, at_ms(11))));
}

TEST_F(StoreTest, CheckpointsEveryNRows) {
  ASSERT_OK(store_->close());
  auto o = test::fast_options();
  o.checkpoint_every_rows = 10;
  auto s = open_sqlite_store(dir_.file("n.db"), clock_, keys_.engine, o);
  ASSERT_OK(s);
  Seq last = 0;
  for (int i = 0; i < 35; ++i) {
    last = (*s)->append_evidence({at_ms(i), keys_.panic_batch("v", at_ms(i)), "host-a"}).value();
    ASSERT_OK((*s)->wait_durable(last));  // one commit per row
  }
  auto r = AuditReader::open(dir_.file("n.db"));
  ASSERT_OK(r);
  auto cps = r->checkpoints();
  ASSERT_OK(cps);
  ASSERT_EQ(cps->size(), 3u);
  EXPECT_EQ((*cps)[0].covers, 10);
  EXPECT_EQ((*cps)[0].seq, 11);
  EXPECT_EQ((*cps)[0].signer, keys_.engine.public_key());
}

TEST_F(StoreTest, CheckpointsAfterTSecondsOfItsClockWithoutNewRows) {
  ASSERT_OK(store_->close());
  auto o = test::fast_options();
  o.checkpoint_every = std::chrono::seconds(20);
  auto s = open_sqlite_store(dir_.file("t.db"), clock_, keys_.engine, o);
  ASSERT_OK(s);
  auto last = (*s)->append_evidence({at_ms(0), keys_.panic_batch("v", at_ms(0)), "host-a"});
  ASSERT_OK(last);
  ASSERT_OK((*s)->wait_durable(*last));
  auto r = AuditReader::open(dir_.file("t.db"));
  ASSERT_OK(r);
  // Short of the period: the row is durable but not yet sealed.
  clock_.advance(std::chrono::seconds(19));
  EXPECT_EQ(r->checkpoints()->size(), 0u);
  // At the period the clock's timer asks for a checkpoint: it is the next row.
  const Time sealed_at = clock_.now() + std::chrono::seconds(1);
  clock_.advance(std::chrono::seconds(1));
  // The writer thread seals it; wait for that real event, not for time.
  ASSERT_TRUE(testing::wait_until([&] { return (*s)->durable_seq() > *last; }));
  auto cps = r->checkpoints();
  ASSERT_OK(cps);
  ASSERT_EQ(cps->size(), 1u);
  EXPECT_EQ((*cps)[0].seq, *last + 1);
  EXPECT_EQ((*cps)[0].covers, *last);
  EXPECT_EQ((*cps)[0].at, sealed_at) << "stamped with the store's clock, not the wall clock";
}

TEST_F(StoreTest, ExplicitCheckpointAndCloseSealTheLog) {
  Seq ev = evidence();
  auto cp = store_->checkpoint();
  ASSERT_OK(cp);
  EXPECT_EQ(*cp, ev + 1);
  EXPECT_EQ(*store_->checkpoint(), *cp);  // nothing new: same checkpoint
  ASSERT_OK(store_->append_decision(decision("a-1", "web-1", at_ms(1), ev)));
  ASSERT_OK(store_->close());
  auto report = verify_log(path_);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->text();
  EXPECT_EQ(report->checkpoints, 2);
  EXPECT_EQ(report->last_checkpoint, report->rows);
}

TEST_F(StoreTest, ReopensAndKeepsChaining) {
  evidence();
  ASSERT_OK(store_->close());
  auto again = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
  ASSERT_OK(again);
  auto r = (*again)->append_evidence({at_ms(1), keys_.panic_batch("w", at_ms(1)), "host-a"});
  ASSERT_OK(r);
  EXPECT_EQ(*r, 3);  // 1 evidence, 2 checkpoint at close
  ASSERT_OK((*again)->close());
  auto report = verify_log(path_);
  EXPECT_TRUE(report->ok) << report->text();
}

TEST_F(StoreTest, PowerLossDurabilityAlsoWorks) {
  ASSERT_OK(store_->close());
  StoreOptions o;  // synchronous=FULL
  auto s = open_sqlite_store(dir_.file("full.db"), clock_, keys_.engine, o);
  ASSERT_OK(s);
  auto r = (*s)->append_evidence({at_ms(0), keys_.panic_batch("v", at_ms(0)), "host-a"});
  ASSERT_OK(r);
  EXPECT_OK((*s)->wait_durable(*r));
}

TEST_F(StoreTest, VerifyAndQueriesSeeAConsistentSnapshotWhileTheEngineAppends) {
  Seq ev = evidence();
  std::atomic<bool> done{false};
  std::thread engine([&] {
    for (int i = 0; i < 3000; ++i) {
      std::string id = "c-" + std::to_string(i);
      std::vector<Record> b;
      b.push_back(Record::of(decision(id, "web-1", at_ms(i), ev)));
      b.push_back(Record::of(step(id, ActionState::kDispatched, at_ms(i))));
      if (!store_->append_batch(std::move(b)).ok()) break;
    }
    done = true;
  });
  int rounds = 0;
  while (!done || rounds < 2) {
    auto r = verify_log(path_);
    ASSERT_OK(r);
    EXPECT_TRUE(r->ok) << r->text();
    auto reader = AuditReader::open(path_);
    ASSERT_OK(reader);
    EXPECT_OK(reader->list({}));
    ++rounds;
  }
  engine.join();
}

TEST(StoreOpen, RefusesAPathItCannotCreate) {
  Keys k;
  VirtualClock clock;
  auto s = open_sqlite_store("/nonexistent-dir/x/audit.db", clock, k.engine);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kIo);
}

TEST(Lifecycle, AllowsOnlyTheDocumentedMoves) {
  using S = ActionState;
  EXPECT_TRUE(transition_allowed(std::nullopt, S::kProposed));
  EXPECT_FALSE(transition_allowed(std::nullopt, S::kDispatched));
  EXPECT_TRUE(transition_allowed(S::kProposed, S::kSuppressed));
  EXPECT_TRUE(transition_allowed(S::kPendingApproval, S::kApproved));
  EXPECT_TRUE(transition_allowed(S::kApproved, S::kDispatched));
  EXPECT_FALSE(transition_allowed(S::kPendingApproval, S::kDispatched));
  EXPECT_TRUE(transition_allowed(S::kAcked, S::kTimedOut));
  EXPECT_FALSE(transition_allowed(S::kAcked, S::kDispatched));
  for (S t : {S::kSuppressed, S::kDenied, S::kExpired, S::kSucceeded, S::kFailed, S::kTimedOut,
              S::kRejected}) {
    EXPECT_TRUE(is_terminal(t));
    EXPECT_FALSE(transition_allowed(t, S::kDispatched));
  }
  // Names and their strict parser: tests/unit/core/action_state_test.cc.
}

}  // namespace
}  // namespace medic::audit
