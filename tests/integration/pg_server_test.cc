// The PostgreSQL test fixture itself: it starts a real server that takes
// connections and keeps data across a restart, stops it for good, and fails
// (never skips) when the server binaries are not where it looks.
#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <pqxx/pqxx>

#include "tests/testing/postgres.h"
#include "tests/testing/testing.h"

namespace medic::testing {
namespace {

// The first column of `sql`'s first row, or the error's text.
std::string query_one(const std::string& url, const std::string& sql) {
  try {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].c_str();
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
}

TEST(PostgresServer, StartsAServerThatAnswersQueriesOnItsDatabase) {
  auto server = PostgresServer::start("fixture_db");
  ASSERT_OK(server);
  EXPECT_EQ(query_one((*server)->url(), "SELECT current_database()"), "fixture_db");
  EXPECT_EQ(query_one((*server)->url(), "SELECT current_user"), "postgres");
  EXPECT_NE((*server)->url().find("127.0.0.1:" + std::to_string((*server)->port())),
            std::string::npos);
}

TEST(PostgresServer, StopEndsThePostmasterAndRestartKeepsTheData) {
  auto server = PostgresServer::start();
  ASSERT_OK(server);
  const std::string url = (*server)->url();
  ASSERT_EQ(query_one(url, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42); SELECT 1"),
            "1");
  pid_t pm = (*server)->postmaster_pid();
  ASSERT_GT(pm, 0);
  ASSERT_EQ(::kill(pm, 0), 0);  // positive control: it runs now

  ASSERT_OK((*server)->stop());
  EXPECT_EQ((*server)->postmaster_pid(), 0);
  EXPECT_TRUE(::kill(pm, 0) != 0 && errno == ESRCH);
  EXPECT_EQ(query_one(url, "SELECT 1").rfind("error: ", 0), 0u) << "a stopped server answered";

  ASSERT_OK((*server)->restart());
  EXPECT_EQ(query_one(url, "SELECT v FROM kept"), "42");
}

TEST(PostgresServer, MissingBinariesAreAnErrorThatSaysWhereItLooked) {
  ASSERT_OK(PostgresServer::find_bin_dir());  // positive control: this machine has them
  ::setenv("MEDIC_PG_BINDIR", "/nonexistent/pg/bin", 1);
  auto server = PostgresServer::start();
  ::unsetenv("MEDIC_PG_BINDIR");
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), Code::kNotFound);
  EXPECT_NE(server.status().message().find("/nonexistent/pg/bin"), std::string::npos)
      << server.status();
}

}  // namespace
}  // namespace medic::testing
