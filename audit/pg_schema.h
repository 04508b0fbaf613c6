// The tables many engines share in PostgreSQL. Internal to audit/.
//
//   medic_cluster  (one row) the shard count fixed at install
//   medic_leases   one row per shard: holder, epoch, expires_at (db clock)
//   medic_engines  live engines: name, expires_at (db clock)
//   medic_intents  fenced action intents, key (shard, incident, step)
//   medic_chain    one row per audit chain (one chain per engine): its head,
//                  signed by the engine when an AuditStore writes it; the
//                  chained audit tables mirror SQLite's (audit/chain.h), named
//                  audit_<table>, with a `chain` column: key (chain, seq)
//   medic_state    each chain's StateStore rows (chain, kind, key) -> value
#pragma once

#include <pqxx/pqxx>

#include "core/status.h"

namespace medic::audit::internal {

// Creates what is missing, serialised between engines by a transaction-scoped
// advisory lock (setup only; leases never use advisory locks). Refuses a
// database whose shard count is not `shard_count`.
Status ensure_cluster_schema(pqxx::work& tx, int shard_count);

// The shard count the database was set up with (0 when it was not).
int stored_shard_count(pqxx::work& tx);

}  // namespace medic::audit::internal
