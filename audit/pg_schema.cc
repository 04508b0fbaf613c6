#include "audit/pg_schema.h"

#include <string>

#include "audit/chain.h"

namespace medic::audit::internal {
namespace {

// Any constant: it only keeps two engines from creating the tables at once.
constexpr int64_t kSchemaLock = 0x6d65646963;  // "medic"

std::string audit_tables_sql() {
  std::string sql;
  for (const TableSpec& t : tables()) {
    sql += "CREATE TABLE IF NOT EXISTS audit_" + std::string(t.name) +
           " (chain text NOT NULL, seq bigint NOT NULL";
    for (const ColumnSpec& c : t.columns) {
      sql += ", " + std::string(c.name) + (c.is_int ? " bigint" : c.is_blob ? " bytea" : " text") +
             " NOT NULL";
    }
    sql += ", prev_hash bytea NOT NULL, hash bytea NOT NULL, PRIMARY KEY (chain, seq));\n";
  }
  sql +=
      "CREATE INDEX IF NOT EXISTS audit_transitions_action ON audit_transitions(action_id, seq);\n"
      "CREATE INDEX IF NOT EXISTS audit_decisions_id ON audit_decisions(decision_id);\n"
      "CREATE INDEX IF NOT EXISTS audit_decisions_action ON audit_decisions(action_id);\n";
  return sql;
}

}  // namespace

int stored_shard_count(pqxx::work& tx) {
  pqxx::result exists = tx.exec("SELECT to_regclass('medic_cluster') IS NOT NULL");
  if (!exists[0][0].as<bool>()) return 0;
  pqxx::result r = tx.exec("SELECT shard_count FROM medic_cluster WHERE id = 1");
  return r.empty() ? 0 : r[0][0].as<int>();
}

Status ensure_cluster_schema(pqxx::work& tx, int shard_count) {
  if (shard_count <= 0) return invalid_argument("the shard count must be positive");
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kSchemaLock);
  int stored = stored_shard_count(tx);
  if (stored != 0 && stored != shard_count) {
    return failed_precondition("the database was set up with " + std::to_string(stored) +
                               " shards, not " + std::to_string(shard_count) +
                               ": the shard count is fixed at install");
  }
  if (stored != 0) return {};
  tx.exec(
      "CREATE TABLE medic_cluster (id int PRIMARY KEY CHECK (id = 1),"
      " shard_count int NOT NULL CHECK (shard_count > 0));"
      "CREATE TABLE IF NOT EXISTS medic_leases (shard int PRIMARY KEY,"
      " holder text NOT NULL DEFAULT '', epoch bigint NOT NULL DEFAULT 0,"
      " expires_at timestamptz NOT NULL DEFAULT '-infinity');"
      "CREATE TABLE IF NOT EXISTS medic_engines (engine text PRIMARY KEY,"
      " expires_at timestamptz NOT NULL);"
      "CREATE TABLE IF NOT EXISTS medic_intents (shard int NOT NULL, incident text NOT NULL,"
      " step int NOT NULL, action_id text NOT NULL UNIQUE, epoch bigint NOT NULL,"
      " holder text NOT NULL, decision_id text NOT NULL, host text NOT NULL,"
      " vm text NOT NULL, verb text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
      " PRIMARY KEY (shard, incident, step));"
      "CREATE TABLE IF NOT EXISTS medic_chain (chain text PRIMARY KEY,"
      " seq bigint NOT NULL DEFAULT 0, hash bytea NOT NULL DEFAULT '\\x" +
      std::string(64, '0') +
      "'::bytea, at_ns bigint NOT NULL DEFAULT 0, signer bytea NOT NULL DEFAULT '',"
      " signature bytea NOT NULL DEFAULT '', opened_ns bigint NOT NULL DEFAULT 0);"
      "CREATE TABLE IF NOT EXISTS medic_state (chain text NOT NULL, kind int NOT NULL,"
      " key bytea NOT NULL, value bytea NOT NULL, ord bigserial,"
      " PRIMARY KEY (chain, kind, key));" +
      audit_tables_sql());
  tx.exec_params("INSERT INTO medic_cluster VALUES (1, $1)", shard_count);
  tx.exec_params("INSERT INTO medic_leases (shard) SELECT generate_series(0, $1 - 1)",
                 shard_count);
  return {};
}

}  // namespace medic::audit::internal
