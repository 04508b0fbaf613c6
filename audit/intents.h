// Fenced, exactly-once action intents for many engines on PostgreSQL.
//
// An intent is the engine's commitment to dispatch one action: it is written
// with the decision that made it and that decision's audit rows, in one
// transaction, and only by the shard's lease holder.
//
// Contract:
// - record() commits the intent, the decision row and the action's first
//   transitions (audit/chain.h first_transitions(), plus any `transitions`
//   the caller adds, such as `dispatched`) together or not at all.
// - The intent's INSERT re-checks the lease in the same statement: the row
//   in medic_leases must name fence.holder at fence.epoch and not have
//   expired by the database clock. It locks that lease row (FOR SHARE) until
//   the commit, so a takeover waits for the commit and then sees the intent.
//   A deposed or lapsed holder inserts nothing: kFenced.
// - The idempotency key is (shard, incident, step): a retry, or a new leader
//   deciding the same step again, inserts no second intent and no audit row;
//   it gets kAlreadyRecorded and the first intent's action id and epoch, the
//   one to (re-)send.
// - The audit rows join the holder's own hash chain (one chain per engine),
//   encoded exactly as SQLite's (audit/chain.h) in tables audit_<table>; the
//   chain's head row is locked by each intent transaction, so its rows get
//   contiguous seqs in commit order. verify_pg_chain() recomputes every chain
//   and names the first bad row. This store signs no heads: where an
//   AuditStore on PostgreSQL (open_pg_store) writes a chain, its head and
//   checkpoints are signed and verified.
// - A commit whose outcome is unknown (connection lost in COMMIT) is
//   kUnavailable; calling record() again with the same key is always safe.
//
// Not thread-safe: one engine thread uses a store.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "audit/log.h"
#include "core/status.h"

namespace medic::audit {

// Who may write for a shard: the lease holder at one epoch.
struct Fence {
  int shard = 0;
  std::string holder;
  int64_t epoch = 0;
};

struct Intent {
  std::string incident;  // the incident the action belongs to (one per VM episode)
  int32_t step = 0;      // its ladder step; with shard and incident, the idempotency key
  // The decision; its action_id names the intent's action. REQUIRES: outcome
  // kProposed or kPendingApproval (a decision that creates an action).
  Decision decision;
  std::vector<Transition> transitions;  // further transitions of the same action
};

enum class IntentOutcome : uint8_t {
  kInserted = 1,         // this call wrote the intent and its audit rows
  kAlreadyRecorded = 2,  // the key was there: nothing written
  kFenced = 3,           // not the lease holder at that epoch: nothing written
};
const char* intent_outcome_name(IntentOutcome o);

struct IntentResult {
  IntentOutcome outcome = IntentOutcome::kFenced;
  std::string action_id;  // kInserted / kAlreadyRecorded: the action to send
  int64_t epoch = 0;      // the epoch the intent was recorded under
  Seq last_seq = 0;       // kInserted: the seq of its last audit row
};

struct StoredIntent {
  int shard = 0;
  std::string incident;
  int32_t step = 0;
  std::string action_id;
  int64_t epoch = 0;
  std::string holder;
  std::string decision_id, host, vm, verb;
};

class IntentStore {
 public:
  virtual ~IntentStore() = default;
  // Errors: kInvalidArgument (malformed intent), kFailedPrecondition (the
  // action or decision id is already used under another key), kUnavailable
  // (the database is unreachable, or the commit's outcome is unknown).
  virtual Result<IntentResult> record(const Fence& fence, Intent intent) = 0;
  // The intents of `shard`, oldest first: what a new holder re-sends.
  virtual Result<std::vector<StoredIntent>> intents(int shard) = 0;
};

using IntentStorePtr = std::unique_ptr<IntentStore>;

// Connects to `url`, creating the tables when absent (see open_pg_lease_table
// for the shard count's rule).
Result<IntentStorePtr> open_pg_intent_store(const std::string& url, int shard_count,
                                            Duration statement_timeout = std::chrono::seconds(2));

// "postgresql://" or "postgres://" at the start of `storage`.
bool is_postgres_url(const std::string& storage);

// What verify_pg_chain found.
struct PgChainReport {
  int64_t chains = 0;        // chains checked
  int64_t rows = 0;          // chained rows checked, all chains
  int64_t signed_heads = 0;  // chains whose head is signed (and the signature holds)
  std::string bad_chain;     // the chain of first_bad
  Seq first_bad = 0;         // 0 when every chain holds
  std::string problem;       // why first_bad does not hold up
  bool ok() const { return first_bad == 0; }
  // For `medic audit verify`: in the words SQLite's report uses.
  std::string text() const;
  std::string json() const;
};

// Recomputes every PostgreSQL audit chain from row 1: seqs contiguous across
// tables, each prev_hash the previous row's hash, each hash the canonical
// encoding's, the head row matching the last row, and, where the head is
// signed, the head's and every checkpoint's signature by the chain's signer.
Result<PgChainReport> verify_pg_chain(const std::string& url);

}  // namespace medic::audit
