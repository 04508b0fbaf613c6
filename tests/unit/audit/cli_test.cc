// `medic audit ...` through the real binary, on a log populated through the API.
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>

#include "tests/unit/audit/fixture.h"
#include "tests/testing/testing.h"

namespace medic::audit {
namespace {

using testing::run_command;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_.file("audit.db");
    auto s = open_sqlite_store(db_, clock_, keys_.engine, test::fast_options());
    ASSERT_OK(s);
    test::populate(**s, keys_);
    ASSERT_OK((*s)->close());
    // For docs/audit.md: MEDIC_KEEP_AUDIT_DB=/path keeps a copy of this log.
    if (const char* keep = std::getenv("MEDIC_KEEP_AUDIT_DB")) {
      std::filesystem::copy_file(db_, keep, std::filesystem::copy_options::overwrite_existing);
    }
  }

  testing::CommandResult audit(std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::medic_binary(), "audit"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--db");
    argv.push_back(db_);
    return run_command(argv);
  }

  VirtualClock clock_;  // before the store: outlives it
  testing::TempDir dir_;
  std::string db_;
  test::Keys keys_;
};

TEST_F(CliTest, ListShowsATableAndFilters) {
  auto r = audit({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("TIME (UTC)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a-1"), std::string::npos);
  EXPECT_NE(r.out.find("succeeded"), std::string::npos);
  r = audit({"list", "--vm", "web-2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"decision_id\":\"d-a-2\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("d-a-1"), std::string::npos) << r.out;
  r = audit({"list", "--status", "dispatched", "--rule", "guest-unresponsive", "--host", "host-a",
             "--since", "2026-01-01T03:00:06Z", "--until", "2026-01-01 03:00:07", "--limit", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("a-3"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("a-1"), std::string::npos) << r.out;
}

TEST_F(CliTest, ListRefusesBadInputWithExitTwo) {
  auto r = audit({"list", "--since", "yesterday-ish"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot read time"), std::string::npos) << r.err;
  r = audit({"list", "--status", "exploded"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown status"), std::string::npos) << r.err;
  auto missing = run_command({testing::medic_binary(), "audit", "list", "--db", dir_.file("x")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("no audit log"), std::string::npos) << missing.err;
}

TEST_F(CliTest, ShowAndWhyAnswerInPlainWordsAndJson) {
  auto r = audit({"show", "a-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("pending_approval"), std::string::npos) << r.out;
  r = audit({"why", "a-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("approved by alice"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Healed: not judged yet"), std::string::npos) << r.out;
  r = audit({"why", "a-1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"comment\":\"looked at the console, go\""), std::string::npos) << r.out;
  r = audit({"show", "a-1", "--json"});
  EXPECT_NE(r.out.find("\"signature_ok\":true"), std::string::npos) << r.out;
  r = audit({"why", "no-such-action"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no action or decision"), std::string::npos) << r.err;
}

TEST_F(CliTest, VerifyExitsZeroOnAGoodLogAndOneNamingTheFirstBadRow) {
  auto r = audit({"verify"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("OK"), std::string::npos);
  r = audit({"verify", "--key", keys_.engine.id()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = audit({"verify", "--key", keys_.alice.id()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TRIGGER decisions_no_UPDATE;"
                         "UPDATE decisions SET verb = 'notify' WHERE decision_id = 'd-a-2'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto seq = AuditReader::open(db_)->history("a-2")->decision.seq;
  r = audit({"verify"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("TAMPERED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("first bad row: " + std::to_string(seq)), std::string::npos) << r.out;
  r = audit({"verify", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("\"first_bad\":" + std::to_string(seq)), std::string::npos) << r.out;
}

TEST_F(CliTest, VerifyChecksAgainstATrustStore) {
  std::string trust =
      dir_.write("trust.yaml", "nodes:\n  - name: engine-1\n    key: " + keys_.engine.id() +
                                   "\n    roles: [engine]\n");
  auto r = audit({"verify", "--trust", trust});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("note:"), std::string::npos) << r.out;
  std::string other =
      dir_.write("other.yaml", "nodes:\n  - name: engine-2\n    key: " + keys_.alice.id() +
                                   "\n    roles: [engine]\n");
  r = audit({"verify", "--trust", other});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  r = audit({"verify", "--anchor", "nonsense"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(CliTest, WriteAnchorThenAnchorFileCatchesARollback) {
  std::filesystem::copy_file(db_, dir_.file("old.db"));
  {
    auto s = open_sqlite_store(db_, clock_, keys_.engine, test::fast_options());
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE((*s)->append_evidence({test::at_ms(99), keys_.panic_batch("z", test::at_ms(99)),
                                       "host-a"})
                    .ok());
    ASSERT_TRUE((*s)->close().ok());
  }
  const std::string anchor = dir_.file("anchor.txt");
  auto r = audit({"verify", "--write-anchor", anchor});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = audit({"verify", "--anchor", anchor});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // The older copy is put back: complete and correctly signed, but shorter
  // than the anchor kept elsewhere.
  std::filesystem::copy_file(dir_.file("old.db"), db_,
                             std::filesystem::copy_options::overwrite_existing);
  r = audit({"verify"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = audit({"verify", "--anchor", anchor});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("rolled back"), std::string::npos) << r.out;
  std::string bad = dir_.write("bad-anchor.txt", "twelve\n");
  r = audit({"verify", "--anchor", bad});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad-anchor.txt:1: expected SEQ:HASH"), std::string::npos) << r.err;
}

TEST_F(CliTest, VerifyExitsOneOnAnEmptiedLogNamingWhatIsMissing) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  std::string sql;
  for (const char* t : {"evidence", "decisions", "transitions", "operator_requests", "checkpoints"}) {
    sql += std::string("DROP TRIGGER ") + t + "_no_DELETE; DELETE FROM " + t + ";";
  }
  sql += "DELETE FROM head;";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto r = audit({"verify", "--key", keys_.engine.id()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("rows checked:  0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the signed head is missing"), std::string::npos) << r.out;
}

TEST_F(CliTest, ExportWritesJsonLines) {
  auto r = audit({"export", "--format", "jsonl"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t lines = static_cast<size_t>(std::count(r.out.begin(), r.out.end(), '\n'));
  EXPECT_EQ(static_cast<Seq>(lines), verify_log(db_)->rows);
  EXPECT_EQ(r.out.rfind("{\"seq\":1,", 0), 0u) << r.out.substr(0, 200);
  r = audit({"export", "--format", "csv"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace medic::audit
