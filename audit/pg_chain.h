// Appending rows to a PostgreSQL audit chain inside a caller's transaction.
// Internal to audit/.
//
// Rows are encoded by encode_row() and hashed by row_hash() (audit/chain.h),
// the same bytes as SQLite's, into audit_<table>. Values travel as text
// parameters: integers in decimal, blobs as bytea hex ("\x..."), texts as
// they are (PostgreSQL text holds no NUL byte; such a row is refused).
#pragma once

#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "audit/chain.h"
#include "core/status.h"

namespace medic::audit::internal {

// Inserts one chained row of `chain`, its hashes already computed. Errors:
// kInvalidArgument (a text holding a NUL byte; nothing is sent).
Status insert_chained_row(pqxx::work& tx, const std::string& chain, Table t, Seq seq,
                          const std::vector<Value>& values, const Hash& prev, const Hash& hash);

// Locks `chain`'s row in medic_chain (FOR UPDATE) until `tx` ends, creating
// it (empty, unsigned) when absent, and returns its seq and hash.
std::pair<Seq, Hash> lock_chain(pqxx::work& tx, const std::string& chain);

// Appends rows to one chain after its head, within one transaction.
class PgChainAppender {
 public:
  // Locks the chain's head row until `tx` ends and reads it.
  PgChainAppender(pqxx::work& tx, std::string chain);
  // Appends one row after the head; returns its seq.
  Result<Seq> append(Table t, const std::vector<Value>& values);
  // Moves the head to the last appended row. Call once, before commit.
  void finish();

 private:
  pqxx::work& tx_;
  const std::string chain_;
  Seq seq_ = 0;
  Hash hash_{};
  std::string encoded_;
};

// "\x" and the bytes in hex: a bytea literal.
std::string bytea_text(std::string_view bytes);

}  // namespace medic::audit::internal
