// verify_pg_chain (audit/intents.h): the PostgreSQL audit chain recomputed
// from row 1 with the same encoding as SQLite's.
#include <map>

#include "audit/chain.h"
#include "audit/intents.h"
#include "audit/pg_connection.h"
#include "core/json.h"

namespace medic::audit {
namespace {

using internal::Hash;
using internal::Table;
using internal::TableSpec;

struct LoadedRow {
  Table table = Table::kEvidence;
  std::vector<int64_t> ints;      // per column; unused for texts
  std::vector<std::string> texts;  // per column; unused for ints
  std::string prev_hash, hash;
};

std::string select_sql(const TableSpec& spec) {
  std::string sql = "SELECT seq";
  for (const auto& c : spec.columns) sql += ", " + std::string(c.name);
  return sql + ", prev_hash, hash FROM audit_" + spec.name + " ORDER BY seq";
}

std::string blob(const pqxx::field& f) { return pqxx::binarystring(f).str(); }

void load_table(pqxx::work& tx, const TableSpec& spec, std::map<Seq, LoadedRow>* rows) {
  for (const auto& r : tx.exec(select_sql(spec))) {
    LoadedRow row;
    row.table = spec.id;
    const size_t n = spec.columns.size();
    row.ints.resize(n);
    row.texts.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto& f = r[static_cast<int>(i + 1)];
      if (spec.columns[i].is_int) {
        row.ints[i] = f.as<int64_t>();
      } else {
        row.texts[i] = spec.columns[i].is_blob ? blob(f) : f.as<std::string>();
      }
    }
    row.prev_hash = blob(r[static_cast<int>(n + 1)]);
    row.hash = blob(r[static_cast<int>(n + 2)]);
    (*rows)[r[0].as<int64_t>()] = std::move(row);
  }
}

// Empty when `row` at `seq` follows `prev`; else what is wrong with it.
std::string check_row(Seq seq, const LoadedRow& row, const Hash& prev, Hash* hash) {
  const TableSpec& spec = internal::table_spec(row.table);
  if (row.prev_hash != internal::bytes(prev)) {
    return std::string("its prev_hash is not the hash of row ") + std::to_string(seq - 1);
  }
  std::vector<internal::Value> values;
  for (size_t i = 0; i < spec.columns.size(); ++i) {
    values.push_back(spec.columns[i].is_int ? internal::Value::of(row.ints[i])
                                            : internal::Value::of(row.texts[i]));
  }
  std::string encoded;
  internal::encode_row(row.table, seq, values, &encoded);
  *hash = internal::row_hash(prev, encoded);
  if (row.hash != internal::bytes(*hash)) {
    return std::string("its content does not match its hash (") + spec.name + " edited)";
  }
  return "";
}

PgChainReport walk(const std::map<Seq, LoadedRow>& rows, Seq head_seq, const std::string& head) {
  PgChainReport report;
  Hash prev{};
  Seq expected = 1;
  for (const auto& [seq, row] : rows) {
    if (seq != expected) {
      report.first_bad = expected;
      report.problem = "row " + std::to_string(expected) + " is missing";
      return report;
    }
    Hash hash{};
    std::string problem = check_row(seq, row, prev, &hash);
    if (!problem.empty()) {
      report.first_bad = seq;
      report.problem = problem;
      return report;
    }
    prev = hash;
    ++report.rows;
    ++expected;
  }
  if (head_seq != report.rows || head != internal::bytes(prev)) {
    report.first_bad = std::min<Seq>(head_seq, report.rows) + 1;
    report.problem = "the chain's head names row " + std::to_string(head_seq) + " but the log has " +
                     std::to_string(report.rows) + " rows ending elsewhere";
  }
  return report;
}

}  // namespace

bool is_postgres_url(const std::string& storage) {
  return storage.rfind("postgresql://", 0) == 0 || storage.rfind("postgres://", 0) == 0;
}

std::string PgChainReport::text() const {
  std::string s;
  if (ok()) {
    s += "OK: the audit log verifies.\n";
  } else {
    s += "TAMPERED: the audit log does not verify.\n";
    s += "  first bad row: " + std::to_string(first_bad) + "\n";
    s += "  problem:       " + problem + "\n";
  }
  s += "  rows checked:  " + std::to_string(rows) + "\n";
  s += "  note: a PostgreSQL log has no signed checkpoints or head yet; the chain shows rows "
       "edited, reordered or removed, not a log cut off by someone who can write the database\n";
  return s;
}

std::string PgChainReport::json() const {
  Json j = {{"ok", ok()}, {"rows", rows}, {"signed", false}};
  if (!ok()) {
    j["first_bad"] = first_bad;
    j["problem"] = problem;
  }
  return dump_json(j);
}

Result<PgChainReport> verify_pg_chain(const std::string& url) {
  internal::PgConnection db(url, std::chrono::minutes(10));
  PgChainReport report;
  MEDIC_RETURN_IF_ERROR(db.transact([&](pqxx::work& tx) {
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    if (!tx.exec1("SELECT to_regclass('medic_chain') IS NOT NULL")[0].as<bool>()) {
      return not_found("no medic audit chain in this database");
    }
    std::map<Seq, LoadedRow> rows;
    for (const TableSpec& spec : internal::tables()) load_table(tx, spec, &rows);
    pqxx::row head = tx.exec1("SELECT seq, hash FROM medic_chain WHERE id = 1");
    report = walk(rows, head[0].as<int64_t>(), blob(head[1]));
    return Status{};
  }));
  return report;
}

}  // namespace medic::audit
