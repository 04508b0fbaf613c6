// Each kind of edit someone with write access to the file could make, done
// straight through the sqlite3 C API, and what verify says about it.
#include <sqlite3.h>

#include <filesystem>

#include "audit/chain.h"
#include "audit/cursor.h"
#include "audit/sqlite_db.h"
#include "tests/unit/audit/fixture.h"
#include "tests/testing/testing.h"

namespace medic::audit {
namespace {

using test::at_ms;
using test::Keys;

// Runs SQL on the file as an attacker would: append-only triggers dropped first.
void tamper(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string all;
  for (const char* t :
       {"evidence", "decisions", "transitions", "operator_requests", "checkpoints"}) {
    all += std::string("DROP TRIGGER IF EXISTS ") + t + "_no_UPDATE; DROP TRIGGER IF EXISTS " + t +
           "_no_DELETE;";
  }
  all += sql;
  char* err = nullptr;
  int rc = sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

int64_t scalar(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

class TamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("audit.db");
    auto o = test::fast_options();
    o.checkpoint_every_rows = 6;
    auto s = open_sqlite_store(path_, clock_, keys_.engine, o);
    ASSERT_OK(s);
    // Several commits so several checkpoints land inside the chain.
    last_ = test::populate(**s, keys_);
    ASSERT_OK((*s)->close());
    last_ = scalar(path_, "SELECT seq FROM head");
    auto r = verify_log(path_);
    ASSERT_OK(r);
    ASSERT_TRUE(r->ok) << r->text();
    ASSERT_GE(r->checkpoints, 2);
  }

  VerifyReport verify(VerifyOptions o = {}) {
    auto r = verify_log(path_, o);
    EXPECT_OK(r);
    return r.ok() ? *r : VerifyReport{};
  }

  // The seq of the n-th (0-based) row of a table.
  Seq nth(const char* table, int n) {
    return scalar(path_, std::string("SELECT seq FROM ") + table + " ORDER BY seq LIMIT 1 OFFSET " +
                             std::to_string(n));
  }

  // Recomputes every hash from row `from` on, as an attacker without the
  // engine key can.
  void rechain() {
    auto db = internal::Db::open(path_, false);
    ASSERT_OK(db);
    std::vector<internal::ChainRow> rows;
    {
      auto c = internal::ChainCursor::open(*db);
      ASSERT_OK(c);
      internal::ChainRow row;
      while (*c->next(&row)) rows.push_back(row);
    }
    internal::Hash prev{};
    std::string sql;
    for (auto& row : rows) {
      std::string extra;
      if (row.table == internal::Table::kCheckpoints) {
        // A thorough attacker also points each checkpoint at the new hashes;
        // only the signature is beyond reach.
        row.values[2].s = std::string(internal::bytes(prev));
        extra = ", covers_hash = x'" + internal::hex(prev) + "'";
      }
      std::string enc;
      internal::encode_row(row.table, row.seq, row.views(), &enc);
      auto h = internal::row_hash(prev, enc);
      sql += std::string("UPDATE ") + internal::table_spec(row.table).name + " SET prev_hash = x'" +
             internal::hex(prev) + "', hash = x'" + internal::hex(h) + "'" + extra +
             " WHERE seq = " + std::to_string(row.seq) + ";";
      prev = h;
    }
    db = internal::Db();
    tamper(path_, sql);
  }

  VirtualClock clock_;  // before the store: outlives it
  testing::TempDir dir_;
  std::string path_;
  Keys keys_;
  Seq last_ = 0;
};

TEST_F(TamperTest, UntouchedLogVerifies) {
  auto r = verify();
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.rows, last_);
  EXPECT_EQ(r.head_seq, last_);
  EXPECT_EQ(r.envelopes, 5);  // 4 evidence envelopes + 1 accepted operator request
  EXPECT_TRUE(r.keys_from_log);
}

TEST_F(TamperTest, TablesRefuseUpdateAndDeleteThroughSqlite) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_NE(sqlite3_exec(db, "UPDATE decisions SET vm = 'x'", nullptr, nullptr, &err), SQLITE_OK);
  EXPECT_NE(std::string(err ? err : "").find("append-only"), std::string::npos);
  sqlite3_free(err);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM transitions", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_TRUE(verify().ok);
}

TEST_F(TamperTest, CatchesAnEditedRow) {
  Seq target = nth("decisions", 0);
  tamper(path_, "UPDATE decisions SET vm = 'innocent-vm' WHERE seq = " + std::to_string(target));
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, target);
  EXPECT_NE(r.problem.find("edited"), std::string::npos) << r.problem;
  EXPECT_LT(r.last_good_checkpoint, target);
}

TEST_F(TamperTest, CatchesAnEditedEvidenceEnvelope) {
  Seq target = nth("evidence", 1);
  tamper(path_,
         "UPDATE evidence SET envelope = substr(envelope, 1, length(envelope) - 1) || x'00'"
         " WHERE seq = " +
             std::to_string(target));
  EXPECT_EQ(verify().first_bad, target);
}

TEST_F(TamperTest, CatchesAnEditWhoseHashesWereRecomputed) {
  Seq target = nth("transitions", 1);
  tamper(path_, "UPDATE transitions SET actor = 'mallory' WHERE seq = " + std::to_string(target));
  rechain();
  auto r = verify();
  EXPECT_FALSE(r.ok);
  Seq next_checkpoint =
      scalar(path_, "SELECT min(seq) FROM checkpoints WHERE seq > " + std::to_string(target));
  EXPECT_EQ(r.first_bad, next_checkpoint);
  EXPECT_NE(r.problem.find("signature does not verify"), std::string::npos) << r.problem;
  EXPECT_LT(r.last_good_checkpoint, target);
}

TEST_F(TamperTest, CatchesADeletedRow) {
  Seq target = nth("transitions", 2);
  tamper(path_, "DELETE FROM transitions WHERE seq = " + std::to_string(target));
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, target);
  EXPECT_NE(r.problem.find("missing"), std::string::npos) << r.problem;
}

TEST_F(TamperTest, CatchesADeletedRowWithTheRestRenumbered) {
  Seq target = nth("transitions", 2);
  std::string sql = "DELETE FROM transitions WHERE seq = " + std::to_string(target) + ";";
  for (const char* t :
       {"evidence", "decisions", "transitions", "operator_requests", "checkpoints"}) {
    // Two steps so primary keys never collide.
    sql += std::string("UPDATE ") + t + " SET seq = -seq WHERE seq > " + std::to_string(target) +
           "; UPDATE " + t + " SET seq = -seq - 1 WHERE seq < 0;";
  }
  tamper(path_, sql);
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, target);
}

TEST_F(TamperTest, CatchesAnInsertedDuplicateRow) {
  Seq target = nth("transitions", 1);
  Seq evidence_seq = nth("evidence", 0);
  tamper(path_, "INSERT INTO evidence SELECT " + std::to_string(target) +
                    ", received_ns, sender, sender_name, kind, host, envelope, prev_hash, hash "
                    "FROM evidence WHERE seq = " +
                    std::to_string(evidence_seq));
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, target);
}

TEST_F(TamperTest, CatchesARowAppendedAfterTheSignedHead) {
  // A well-formed row chained onto the end: the hash chain alone cannot tell.
  auto db = internal::Db::open(path_, true);
  ASSERT_OK(db);
  auto st = db->prepare("SELECT hash FROM checkpoints ORDER BY seq DESC LIMIT 1");
  ASSERT_TRUE(st->step().value());
  internal::Hash prev;
  ASSERT_TRUE(internal::to_hash(st->blob(0), &prev));
  st = internal::Stmt();
  db = internal::Db();
  Seq seq = last_ + 1;
  std::vector<internal::Value> v = {
      internal::Value::of(std::string_view("a-1")),    internal::Value::of(int64_t{5}),
      internal::Value::of(std::string_view("failed")), internal::Value::of(std::string_view("x")),
      internal::Value::of(std::string_view("")),       internal::Value::of(int64_t{0})};
  std::string enc;
  internal::encode_row(internal::Table::kTransitions, seq, v, &enc);
  auto h = internal::row_hash(prev, enc);
  tamper(path_, "INSERT INTO transitions VALUES (" + std::to_string(seq) +
                    ", 'a-1', 5, 'failed', 'x', '', 0, x'" + internal::hex(prev) + "', x'" +
                    internal::hex(h) + "')");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, seq);
  EXPECT_NE(r.problem.find("outside the engine"), std::string::npos) << r.problem;
}

TEST_F(TamperTest, CatchesReorderedRows) {
  Seq a = nth("transitions", 3);
  Seq b = nth("transitions", 4);
  ASSERT_EQ(b, a + 1);
  tamper(path_, "UPDATE transitions SET seq = -1 WHERE seq = " + std::to_string(a) +
                    "; UPDATE transitions SET seq = " + std::to_string(a) +
                    " WHERE seq = " + std::to_string(b) +
                    "; UPDATE transitions SET seq = " + std::to_string(b) + " WHERE seq = -1;");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, a);
}

TEST_F(TamperTest, CatchesATruncatedTail) {
  Seq cut = last_ - 3;
  std::string sql;
  for (const char* t :
       {"evidence", "decisions", "transitions", "operator_requests", "checkpoints"}) {
    sql += std::string("DELETE FROM ") + t + " WHERE seq > " + std::to_string(cut) + ";";
  }
  tamper(path_, sql);
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, cut + 1);
  EXPECT_NE(r.problem.find("truncated"), std::string::npos) << r.problem;
  // And the engine refuses to append to it.
  auto s = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kFailedPrecondition);
}

TEST_F(TamperTest, CatchesARemovedHead) {
  tamper(path_, "DELETE FROM head");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("head is missing"), std::string::npos) << r.problem;
}

TEST_F(TamperTest, CatchesSignaturesByAnUntrustedKey) {
  VerifyOptions o;
  o.engine_keys = {keys_.alice.public_key()};
  auto r = verify(o);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, scalar(path_, "SELECT min(seq) FROM checkpoints"));
  EXPECT_NE(r.problem.find("not a trusted engine key"), std::string::npos) << r.problem;
  o.engine_keys = {keys_.engine.public_key()};
  auto good = verify(o);
  EXPECT_TRUE(good.ok);
  EXPECT_FALSE(good.keys_from_log);
}

TEST_F(TamperTest, AnchorCatchesRollbackToAnOlderCopy) {
  auto before = verify();
  std::filesystem::copy_file(path_, dir_.file("old.db"));
  {
    auto s = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
    ASSERT_OK(s);
    ASSERT_OK((*s)->append_evidence({at_ms(9), keys_.panic_batch("z", at_ms(9)), "host-a"}));
    ASSERT_OK((*s)->close());
  }
  auto after = verify();
  ASSERT_TRUE(after.ok);
  // Someone puts the older file back: it is self-consistent...
  std::filesystem::copy_file(dir_.file("old.db"), path_,
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(verify().ok);
  // ...but not against the head someone kept.
  VerifyOptions o;
  o.anchor = std::make_pair(after.head_seq, after.head_hash);
  auto r = verify(o);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("rolled back"), std::string::npos) << r.problem;
  o.anchor = std::make_pair(before.head_seq, before.head_hash);
  EXPECT_TRUE(verify(o).ok);
  o.anchor = std::make_pair(before.head_seq, std::string(64, '0'));
  EXPECT_FALSE(verify(o).ok);
}

// The log knows its own length: emptied, truncated or rolled-back heads.
std::string delete_all_rows() {
  std::string sql;
  for (const char* t :
       {"evidence", "decisions", "transitions", "operator_requests", "checkpoints"}) {
    sql += std::string("DELETE FROM ") + t + ";";
  }
  return sql;
}

TEST_F(TamperTest, CatchesALogEmptiedOfEveryRowAndItsHead) {
  tamper(path_, delete_all_rows() + "DELETE FROM head;");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.rows, 0);
  EXPECT_EQ(r.first_bad, 1);
  EXPECT_NE(r.problem.find("no rows and the signed head is missing, but engine " +
                           keys_.engine.id().substr(0, 16)),
            std::string::npos)
      << r.problem;
  // And the engine refuses to start a new chain in it.
  auto s = open_sqlite_store(path_, keys_.engine, test::fast_options());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kFailedPrecondition);
}

TEST_F(TamperTest, CatchesALogEmptiedOfEveryRowWithItsHeadKept) {
  tamper(path_, delete_all_rows());
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, 1);
  EXPECT_NE(r.problem.find("the log ends at row 0 but the engine signed a head at row " +
                           std::to_string(last_)),
            std::string::npos)
      << r.problem;
}

TEST_F(TamperTest, CatchesATruncatedTailWithTheHeadDeletedToo) {
  Seq cut = last_ - 3;
  std::string sql;
  for (const char* t :
       {"evidence", "decisions", "transitions", "operator_requests", "checkpoints"}) {
    sql += std::string("DELETE FROM ") + t + " WHERE seq > " + std::to_string(cut) + ";";
  }
  tamper(path_, sql + "DELETE FROM head;");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, cut + 1);
  EXPECT_NE(r.problem.find("head is missing"), std::string::npos) << r.problem;
}

TEST_F(TamperTest, CatchesAHeadOlderThanTheLastCheckpoint) {
  std::filesystem::copy_file(path_, dir_.file("old.db"));
  {
    auto s = open_sqlite_store(path_, keys_.engine, test::fast_options());
    ASSERT_OK(s) << s.status();
    ASSERT_TRUE((*s)->append_evidence({at_ms(9), keys_.panic_batch("z", at_ms(9)), "host-a"}).ok());
    ASSERT_OK((*s)->close());  // writes a checkpoint after the old head
  }
  ASSERT_GT(scalar(path_, "SELECT max(seq) FROM checkpoints"), last_);
  // The genuine, correctly signed head of the older copy is put back.
  tamper(path_, "ATTACH '" + dir_.file("old.db") +
                    "' AS old; UPDATE head SET (seq, hash, at_ns, signer, signature) = "
                    "(SELECT seq, hash, at_ns, signer, signature FROM old.head);");
  ASSERT_EQ(scalar(path_, "SELECT seq FROM head"), last_);
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, last_ + 1);
  EXPECT_NE(r.problem.find("is older than the last checkpoint"), std::string::npos) << r.problem;
}

TEST(TamperEvidence, ANewLogIsSignedAtRowZeroSoItsEmptinessIsVouchedFor) {
  testing::TempDir dir;
  Keys keys;
  auto s = open_sqlite_store(dir.file("a.db"), keys.engine, test::fast_options());
  ASSERT_OK(s);
  EXPECT_EQ(scalar(dir.file("a.db"), "SELECT seq FROM head"), 0);
  ASSERT_OK((*s)->close());
  // Reopening an empty log with its head is fine.
  auto again = open_sqlite_store(dir.file("a.db"), keys.engine, test::fast_options());
  ASSERT_OK(again) << again.status();
  ASSERT_OK((*again)->close());
  VerifyOptions o;
  o.engine_keys = {keys.alice.public_key()};
  auto r = verify_log(dir.file("a.db"), o);  // a head signed by someone else is refused
  ASSERT_OK(r);
  EXPECT_FALSE(r->ok);
  EXPECT_NE(r->problem.find("does not verify against a trusted engine key"), std::string::npos);
}

// A whole log written and signed by another key, which its meta names: only
// verification against keys the auditor holds tells it from the engine's.
TEST(TamperEvidence, ALogSignedByAnotherKeyPassesOnlyAgainstItsOwnMeta) {
  testing::TempDir dir;
  Keys keys;
  auto s = open_sqlite_store(dir.file("a.db"), keys.alice, test::fast_options());
  ASSERT_OK(s);
  ASSERT_TRUE((*s)->append_evidence({at_ms(0), keys.panic_batch("web-1", at_ms(0)), "host-a"}).ok());
  ASSERT_OK((*s)->close());
  auto plain = verify_log(dir.file("a.db"));
  ASSERT_OK(plain);
  EXPECT_TRUE(plain->ok) << plain->text();
  EXPECT_TRUE(plain->keys_from_log);
  VerifyOptions o;
  o.engine_keys = {keys.engine.public_key()};
  auto pinned = verify_log(dir.file("a.db"), o);
  ASSERT_OK(pinned);
  EXPECT_FALSE(pinned->ok);
  EXPECT_NE(pinned->problem.find("not a trusted engine key"), std::string::npos)
      << pinned->problem;
}

TEST(TamperEvidence, CheckpointsDefaultToEveryThousandRowsOrTenSeconds) {
  StoreOptions o;
  EXPECT_EQ(o.checkpoint_every_rows, 1000);
  EXPECT_EQ(o.checkpoint_every, std::chrono::seconds(10));
}

TEST(TamperEvidence, CatchesEvidenceWhoseSignatureDoesNotVerify) {
  testing::TempDir dir;
  Keys keys;
  VirtualClock clock;
  auto s = open_sqlite_store(dir.file("a.db"), clock, keys.engine, test::fast_options());
  ASSERT_OK(s);
  medic::v1::Envelope env;
  ASSERT_TRUE(env.ParseFromString(keys.panic_batch("web-1", at_ms(0))));
  env.set_host("host-b");  // signed for host-a
  auto seq = (*s)->append_evidence({at_ms(0), env.SerializeAsString(), "host-a"});
  ASSERT_OK(seq);
  ASSERT_OK((*s)->close());
  auto r = verify_log(dir.file("a.db"));
  ASSERT_OK(r);
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->first_bad, *seq);
  EXPECT_NE(r->problem.find("signature does not verify"), std::string::npos) << r->problem;
}

// Read-back is strict: a stored name medic does not know is reported with
// its row, never read as some default state.
TEST_F(TamperTest, ReaderReportsATransitionEditedToAnUnknownState) {
  auto reader = AuditReader::open(path_);
  ASSERT_OK(reader) << reader.status();
  auto before = reader->history("a-1");
  ASSERT_OK(before) << before.status();
  ASSERT_EQ(before->transitions.back().state, ActionState::kSucceeded);  // positive control
  const Seq target = before->transitions.back().seq;
  tamper(path_, "UPDATE transitions SET state = 'rebooting' WHERE seq = " + std::to_string(target));

  auto h = reader->history("a-1");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("audit row " + std::to_string(target) +
                                      ": unknown action state \"rebooting\""),
            std::string::npos)
      << h.status();
  auto l = reader->list({});
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("audit row " + std::to_string(target)), std::string::npos)
      << l.status();
}

TEST_F(TamperTest, ReaderReportsADecisionEditedToAnUnknownOutcome) {
  auto reader = AuditReader::open(path_);
  ASSERT_OK(reader) << reader.status();
  auto before = reader->history("a-2");
  ASSERT_OK(before) << before.status();
  ASSERT_EQ(before->decision.outcome, DecisionOutcome::kSuppressed);  // positive control
  const Seq target = before->decision.seq;
  tamper(path_, "UPDATE decisions SET outcome = 'waved_through' WHERE seq = " +
                    std::to_string(target));

  auto h = reader->history("a-2");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("audit row " + std::to_string(target) +
                                      ": unknown decision outcome \"waved_through\""),
            std::string::npos)
      << h.status();
}

TEST_F(TamperTest, StoreRefusesToOpenALogWhoseActionStateIsUnknown) {
  // a-3 is in flight (dispatched): read as "proposed", it would be sent again.
  const Seq target = scalar(path_, "SELECT max(seq) FROM transitions WHERE action_id = 'a-3'");
  ASSERT_GT(target, 0);
  {
    auto control = open_sqlite_store(path_, keys_.engine, test::fast_options());
    ASSERT_OK(control) << control.status();  // positive control: it opens untouched
    auto st = (*control)->action_state("a-3");
    ASSERT_TRUE(st.ok() && st->has_value());
    EXPECT_EQ(**st, ActionState::kDispatched);
    ASSERT_OK((*control)->close());
  }
  tamper(path_, "UPDATE transitions SET state = 'bogus' WHERE seq = " + std::to_string(target));
  auto s = open_sqlite_store(path_, keys_.engine, test::fast_options());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("audit row " + std::to_string(target) +
                                      ": unknown action state \"bogus\""),
            std::string::npos)
      << s.status();
}

TEST(TamperEvidence, VerifyOfAMissingFileIsAnError) {
  auto r = verify_log("/nonexistent/audit.db");
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST(TamperEvidence, EmptyLogVerifies) {
  testing::TempDir dir;
  Keys keys;
  VirtualClock clock;
  auto s = open_sqlite_store(dir.file("a.db"), clock, keys.engine, test::fast_options());
  ASSERT_OK(s);
  ASSERT_OK((*s)->close());
  auto r = verify_log(dir.file("a.db"));
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok) << r->text();
  EXPECT_EQ(r->rows, 0);
  EXPECT_EQ(r->head_seq, 0);
}

}  // namespace
}  // namespace medic::audit
