// Appending rows to the PostgreSQL audit chain inside a caller's transaction.
// Internal to audit/.
//
// Rows are encoded by encode_row() and hashed by row_hash() (audit/chain.h),
// the same bytes as SQLite's, into audit_<table>. Values travel as text
// parameters: integers in decimal, blobs as bytea hex ("\x..."), texts as
// they are (PostgreSQL text holds no NUL byte; such a row is refused).
#pragma once

#include <pqxx/pqxx>
#include <vector>

#include "audit/chain.h"
#include "core/status.h"

namespace medic::audit::internal {

class PgChainAppender {
 public:
  // Locks the head row (FOR UPDATE) until `tx` ends and reads it.
  explicit PgChainAppender(pqxx::work& tx);
  // Appends one row after the head; returns its seq.
  Result<Seq> append(Table t, const std::vector<Value>& values);
  // Moves the head to the last appended row. Call once, before commit.
  void finish();

 private:
  pqxx::work& tx_;
  Seq seq_ = 0;
  Hash hash_{};
  std::string encoded_;
};

// "\x" and the bytes in hex: a bytea literal.
std::string bytea_text(std::string_view bytes);

}  // namespace medic::audit::internal
