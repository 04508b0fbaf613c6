// Reads every chained row of a log in seq order, merging the per-table scans
// (each already ordered by its primary key). Used by verify and export.
// Internal to audit/.
#pragma once

#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/sqlite_db.h"

namespace medic::audit::internal {

struct OwnedValue {
  bool is_int = false;
  int64_t i = 0;
  std::string s;
};

struct ChainRow {
  Table table = Table::kEvidence;
  Seq seq = 0;
  std::vector<OwnedValue> values;  // in TableSpec column order
  std::string prev_hash;
  std::string hash;

  std::vector<Value> views() const;
};

// Whether the log has table `name` (a log written before a table was added
// lacks it; its rows would show as gaps in the chain, so skipping it is safe).
Result<bool> has_table(Db& db, const char* name);

class ChainCursor {
 public:
  // REQUIRES: `db` outlives the cursor; call inside a read transaction for a
  // consistent snapshot.
  static Result<ChainCursor> open(Db& db);
  // Fills *row with the next row; false at the end.
  Result<bool> next(ChainRow* row);

 private:
  struct Scan {
    Table table;
    Stmt stmt;
    bool has_row = false;
  };
  Status advance(Scan& s);
  std::vector<Scan> scans_;
};

}  // namespace medic::audit::internal
