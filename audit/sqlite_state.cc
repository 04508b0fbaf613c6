#include "audit/sqlite_state.h"

namespace medic::audit::internal {

const char* state_schema_sql() {
  // rowid keeps the order in which each key was first written: an upsert
  // updates the row in place.
  return "CREATE TABLE IF NOT EXISTS state (kind INTEGER NOT NULL, key BLOB NOT NULL, value BLOB "
         "NOT NULL, PRIMARY KEY (kind, key));\n";
}

Status StateWriter::prepare(Db& db) {
  auto up = db.prepare(
      "INSERT INTO state (kind, key, value) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE "
      "SET value = excluded.value");
  if (!up.ok()) return up.status();
  upsert_ = std::move(*up);
  auto er = db.prepare("DELETE FROM state WHERE kind = ? AND key = ?");
  if (!er.ok()) return er.status();
  erase_ = std::move(*er);
  return {};
}

Status StateWriter::write(const std::vector<StateRow>& rows) {
  for (const StateRow& r : rows) {
    Stmt& st = r.value.empty() ? erase_ : upsert_;
    st.bind(1, static_cast<int64_t>(r.kind));
    st.bind_blob(2, r.key);
    if (!r.value.empty()) st.bind_blob(3, r.value);
    MEDIC_RETURN_IF_ERROR(st.run());
  }
  return {};
}

Result<std::vector<StateRow>> read_state(Db& db) {
  // A log written before the state table existed has none: no state.
  auto exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'state'");
  if (!exists.ok()) return exists.status();
  auto found = exists->step();
  if (!found.ok()) return found.status();
  std::vector<StateRow> out;
  if (!*found) return out;
  auto st = db.prepare("SELECT kind, key, value FROM state ORDER BY kind, rowid");
  if (!st.ok()) return st.status();
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const int64_t kind = st->i64(0);
    if (kind < 1 || kind > kStateKindCount) {
      return failed_precondition("state table: unknown kind " + std::to_string(kind));
    }
    out.push_back({static_cast<StateKind>(kind), st->blob(1), st->blob(2)});
  }
  return out;
}

}  // namespace medic::audit::internal
