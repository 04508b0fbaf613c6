#include "audit/pg_connection.h"

namespace medic::audit::internal {
namespace {

// SQLSTATEs that mean "try again": serialization_failure, deadlock_detected.
bool is_retryable(const std::string& state) { return state == "40001" || state == "40P01"; }

// Class 23: integrity constraint violation.
bool is_constraint(const std::string& state) { return state.rfind("23", 0) == 0; }

// query_canceled (statement_timeout), admin_shutdown, crash_shutdown,
// cannot_connect_now: the server is there but not serving us now.
bool is_server_unavailable(const std::string& state) {
  return state == "57014" || state == "57P01" || state == "57P02" || state == "57P03";
}

// `url` with the libpq options that keep a lost server from hanging a call:
// connect_timeout (libpq's least, 2 s), TCP keepalives, and tcp_user_timeout
// so a statement sent into a dead connection fails instead of waiting for
// the kernel's retransmissions. Options the url sets itself are kept.
std::string with_timeouts(const std::string& url, Duration statement_timeout) {
  if (url.find("connect_timeout=") != std::string::npos) return url;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(statement_timeout).count();
  return url + (url.find('?') == std::string::npos ? "?" : "&") +
         "connect_timeout=2&keepalives=1&keepalives_idle=5&keepalives_interval=2"
         "&keepalives_count=2&tcp_user_timeout=" +
         std::to_string(std::max<int64_t>(1000, ms));
}

}  // namespace

PgConnection::PgConnection(std::string url, Duration statement_timeout)
    : url_(std::move(url)), statement_timeout_(statement_timeout) {}

PgConnection::~PgConnection() = default;

Status PgConnection::connect() {
  if (conn_ && conn_->is_open()) return {};
  conn_.reset();
  try {
    auto c = std::make_unique<pqxx::connection>(with_timeouts(url_, statement_timeout_));
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(statement_timeout_).count();
    pqxx::nontransaction setup(*c);
    setup.exec("SET statement_timeout = " + std::to_string(std::max<int64_t>(1, ms)));
    setup.exec("SET TIME ZONE 'UTC'");
    setup.commit();
    conn_ = std::move(c);
    return {};
  } catch (const std::exception& e) {
    return unavailable(std::string("cannot connect to PostgreSQL: ") + e.what());
  }
}

Status PgConnection::transact(const std::function<Status(pqxx::work&)>& body) {
  MEDIC_RETURN_IF_ERROR(connect());
  bool in_commit = false;
  try {
    pqxx::work tx(*conn_);
    Status s = body(tx);
    if (!s.ok()) {
      tx.abort();
      return s;
    }
    in_commit = true;
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return from_exception(e, in_commit);
  }
}

Status PgConnection::from_exception(const std::exception& e, bool in_commit) {
  std::string what = e.what();
  while (!what.empty() && what.back() == '\n') what.pop_back();
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) ||
      (in_commit && dynamic_cast<const pqxx::broken_connection*>(&e))) {
    conn_.reset();
    return unavailable("PostgreSQL connection lost during COMMIT (outcome unknown): " + what);
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e)) {
    conn_.reset();
    return unavailable("PostgreSQL connection lost: " + what);
  }
  if (auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    if (is_server_unavailable(state)) {
      if (state != "57014") conn_.reset();
      return unavailable("PostgreSQL (" + state + "): " + what);
    }
    if (is_retryable(state) || is_constraint(state)) {
      return failed_precondition("PostgreSQL (" + state + "): " + what);
    }
    return internal_error("PostgreSQL (" + state + "): " + what + " in: " + sql->query());
  }
  if (conn_ && !conn_->is_open()) conn_.reset();
  return internal_error("PostgreSQL: " + what);
}

}  // namespace medic::audit::internal
