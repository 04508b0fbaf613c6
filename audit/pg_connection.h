// One connection to PostgreSQL that reconnects after a failure, and the only
// place libpqxx exceptions are turned into Status. Internal to audit/.
//
// Errors from transact():
// - kUnavailable: the server cannot be reached, the connection broke, or a
//   statement ran past the statement timeout. The next call reconnects.
//   A commit whose outcome is unknown (the connection broke during COMMIT) is
//   kUnavailable too, with "outcome unknown" in the message: callers make
//   their writes idempotent so that a retry is safe.
// - kFailedPrecondition: a serialization failure or deadlock (retry), or a
//   constraint the data broke; the message carries PostgreSQL's.
// - kInternal: any other SQL error, with the statement's text.
//
// A connection attempt gives up after 2 s (libpq's least connect_timeout);
// TCP keepalives and tcp_user_timeout (the statement timeout, at least 1 s)
// end a connection to a server that stopped answering, unless the url sets
// connect_timeout itself.
//
// Not thread-safe: one thread uses a connection.
#pragma once

#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "core/clock.h"
#include "core/status.h"

namespace medic::audit::internal {

class PgConnection {
 public:
  // Connects lazily. Every statement is bounded by `statement_timeout`.
  PgConnection(std::string url, Duration statement_timeout);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Connects now (when not connected).
  Status connect();
  // Runs `body` in one transaction and commits it when `body` returns OK;
  // rolls back otherwise and returns body's status.
  Status transact(const std::function<Status(pqxx::work&)>& body);
  const std::string& url() const { return url_; }

 private:
  Status from_exception(const std::exception& e, bool in_commit);

  std::string url_;
  Duration statement_timeout_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace medic::audit::internal
