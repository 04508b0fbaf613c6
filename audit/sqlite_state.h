// The StateStore's table in the engine's SQLite file: `state (kind, key,
// value)`, outside the hash chain (state is rewritten in place; the audit log
// is what proves what happened). Internal to audit/: the SqliteAuditStore's
// writer thread writes it inside its audit transaction.
#pragma once

#include <vector>

#include "audit/sqlite_db.h"
#include "audit/state_store.h"

namespace medic::audit::internal {

// CREATE TABLE IF NOT EXISTS for the state table; additive to the audit schema.
const char* state_schema_sql();

// Upserts and erases state rows on one connection, inside the caller's
// transaction. Not thread-safe: the writer thread owns it.
class StateWriter {
 public:
  Status prepare(Db& db);
  Status write(const std::vector<StateRow>& rows);
  void release() { upsert_ = Stmt(); erase_ = Stmt(); }

 private:
  Stmt upsert_;
  Stmt erase_;
};

// Every row of the state table of the file `db` reads, each kind oldest key first.
Result<std::vector<StateRow>> read_state(Db& db);

}  // namespace medic::audit::internal
