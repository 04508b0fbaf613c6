// The engine's safety state, kept next to the audit log so that it outlives
// the engine process: budgets, cooldowns, incidents, in-flight actions,
// silences, storm freezes, pending approvals and the replay guard's marks.
//
// Contract:
// - The store keeps rows (kind, key) -> value, opaque bytes the engine
//   encodes (node/engine_state_rows.h). A row with an empty value is erased.
// - Transactional with the audit log: every audit record appended between
//   begin_unit() and commit_unit(rows) is committed in the same transaction
//   as `rows`, so after a crash the state and the audit log agree (a decision
//   is on disk with the budget it spent, or neither is). A unit that grows
//   beyond the store's queue bound is split, never deadlocked.
// - load_state() returns every row, oldest key first (the order in which each
//   key was first written), for a restart.
// - Durability is the audit log's: commit_unit() returns at once and the rows
//   are durable when the unit's audit rows are (AuditStore::durable_seq).
//
// The embedded default is in the engine's SQLite file (audit/sqlite_store.cc,
// audit/sqlite_state.cc); a PostgreSQL store implements the same interface.
// Thread-safety: like AuditStore, callable from any thread; units do not nest
// and one thread (the engine's) opens and commits them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace medic::audit {

enum class StateKind : uint8_t {
  kVm = 1,       // per VM: budget, cooldown, incidents, in-flight actions
  kHost = 2,     // per host: storm guard tally and freeze
  kSilence = 3,  // per silence id
  kEngine = 4,   // engine-wide values (counters, fleet freeze, slot queue)
  kReplay = 5,   // per (sender, stream): the replay guard's high-water mark
};
constexpr int kStateKindCount = 5;

struct StateRow {
  StateKind kind = StateKind::kVm;
  std::string key;
  std::string value;  // empty: erase the row
  bool operator==(const StateRow&) const = default;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Every stored row, by kind, each kind oldest key first.
  virtual Result<std::vector<StateRow>> load_state() = 0;
  // Audit records appended from now on wait for commit_unit().
  virtual void begin_unit() = 0;
  // Queues `rows` and every record appended since begin_unit() as one
  // transaction. Without an open unit, queues `rows` alone. Errors:
  // kUnavailable (the store is closed).
  virtual Status commit_unit(std::vector<StateRow> rows) = 0;
};

}  // namespace medic::audit
