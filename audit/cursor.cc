#include "audit/cursor.h"

namespace medic::audit::internal {

std::vector<Value> ChainRow::views() const {
  std::vector<Value> v;
  v.reserve(values.size());
  for (const auto& o : values) v.push_back(o.is_int ? Value::of(o.i) : Value::of(o.s));
  return v;
}

Result<bool> has_table(Db& db, const char* name) {
  auto st = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  if (!st.ok()) return st.status();
  st->bind(1, std::string_view(name));
  return st->step();
}

Result<ChainCursor> ChainCursor::open(Db& db) {
  ChainCursor c;
  for (const TableSpec& t : tables()) {
    auto present = has_table(db, t.name);
    if (!present.ok()) return present.status();
    if (!*present) continue;
    std::string sql = "SELECT seq";
    for (const ColumnSpec& col : t.columns) sql += std::string(", ") + col.name;
    sql += std::string(", prev_hash, hash FROM ") + t.name + " ORDER BY seq";
    auto st = db.prepare(sql);
    if (!st.ok()) return st.status();
    c.scans_.push_back(Scan{t.id, std::move(*st), false});
  }
  for (Scan& s : c.scans_) MEDIC_RETURN_IF_ERROR(c.advance(s));
  return c;
}

Status ChainCursor::advance(Scan& s) {
  auto r = s.stmt.step();
  if (!r.ok()) return r.status();
  s.has_row = *r;
  return {};
}

Result<bool> ChainCursor::next(ChainRow* row) {
  Scan* best = nullptr;
  for (Scan& s : scans_) {
    if (s.has_row && (!best || s.stmt.i64(0) < best->stmt.i64(0))) best = &s;
  }
  if (!best) return false;
  const TableSpec& spec = table_spec(best->table);
  const Stmt& st = best->stmt;
  row->table = best->table;
  row->seq = st.i64(0);
  row->values.resize(spec.columns.size());
  int col = 1;
  for (size_t i = 0; i < spec.columns.size(); ++i, ++col) {
    OwnedValue& v = row->values[i];
    v.is_int = spec.columns[i].is_int;
    if (v.is_int) {
      v.i = st.i64(col);
    } else {
      v.s = st.blob(col);
    }
  }
  row->prev_hash = st.blob(col++);
  row->hash = st.blob(col);
  MEDIC_RETURN_IF_ERROR(advance(*best));
  return true;
}

}  // namespace medic::audit::internal
