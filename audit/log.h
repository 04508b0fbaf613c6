// The audit log: what medic did, why, on whose evidence, and proof that the
// record was not altered afterwards.
//
// Contract:
// - Append-only. Every record is one row of one table (evidence, decisions,
//   transitions, operator_requests, heal_verdicts, checkpoints) and one link of a single hash
//   chain across all tables: row `seq` stores the hash of row `seq - 1` and its
//   own hash over a canonical encoding of its fields (never SQLite's text).
// - The engine's key signs a checkpoint row every N rows or T seconds, and a
//   "head" (last seq + hash) in the same transaction as every commit, so a
//   verifier can tell an edited, deleted, inserted, reordered or truncated log
//   from the one the engine wrote. Rows are numbered 1..N without gaps, so the
//   head's seq is the row count; a new log gets a head for row 0 when it is
//   created, so an emptied log is told from an empty one. See docs/audit.md
//   for what this proves.
// - Appends are queued and committed by one writer thread in batched
//   transactions (group commit). append_*() returns the record's sequence
//   number at once; wait_durable(seq) returns once it is on disk. The engine
//   dispatches an action only after the seq of its `dispatched` transition is
//   durable (the outbox rule).
// - An action's lifecycle is validated at append time; an illegal transition
//   is refused with kFailedPrecondition and nothing is written.
// - A write that fails (disk full, I/O error, read-only file) is not the end:
//   the writer keeps the batch and tries it again with backoff, and
//   write_health() reports the cause until a write succeeds. Meanwhile
//   nothing becomes durable; appends wait in memory up to max_queued, then
//   are refused with kUnavailable.
// - The store is also the engine's StateStore (audit/state_store.h): state
//   rows commit in the same transaction as the audit rows of their unit.
//
// Thread-safety: an AuditStore may be called from any thread. AuditReader and
// verify_log() open their own read-only connections and may run while an
// engine appends (they read one consistent snapshot).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/state_store.h"
#include "core/action_state.h"
#include "core/clock.h"
#include "core/counters.h"
#include "core/status.h"
#include "fabric/identity.h"

namespace medic::audit {

// Position of a row in the chain, 1-based and contiguous across all tables.
// 0 means "none".
using Seq = int64_t;

// Decision outcomes (medic::DecisionOutcome) and action states
// (medic::ActionState), with their names and legal moves, are core's
// vocabulary (core/action_state.h); the log stores their names and reads them
// back strictly: a row holding an unknown name is an error naming its seq.

// A reference to stored evidence: the envelope row, and optionally one event
// inside it (index into its EventBatch; -1 means the envelope as a whole).
struct EvidenceRef {
  Seq evidence = 0;
  int32_t event_index = -1;
  bool operator==(const EvidenceRef&) const = default;
};

// A signed envelope kept exactly as received, signature included. Kind, sender
// key and host are read from the envelope itself at append time. The store
// keeps what it is given: append each envelope once and refer to its seq from
// every decision that rests on it.
struct Evidence {
  Time received_at{};
  std::string envelope;     // serialized medic.v1.Envelope, the bytes that arrived
  std::string sender_name;  // the trust store's name for the sender at receipt
};

struct Decision {
  std::string id;  // unique decision id
  Time at{};
  std::string rule;
  std::string rule_version;
  std::string vm;
  std::string host;
  std::string verb;         // reboot, reset, restart, stop, start or notify
  int32_t ladder_step = 0;  // 0-based position in the rule's escalation ladder
  DecisionOutcome outcome = DecisionOutcome::kProposed;
  std::string policy;  // kSuppressed: the policy that stopped it
  std::string reason;  // kSuppressed: why, in words; otherwise optional context
  std::vector<std::string> policies_passed;  // the safety policies that allowed it
  std::vector<EvidenceRef> evidence;
  // The action this decision creates; required unless kDryRun. Appending the
  // decision also appends the action's first transitions: `proposed`, then
  // `pending_approval` or `suppressed` for those outcomes.
  std::string action_id;
  Time action_expires_at{};  // 0: never expires
};

struct Transition {
  std::string action_id;
  Time at{};
  ActionState state = ActionState::kDispatched;
  std::string actor;   // operator name, actuator host, or "engine"
  std::string detail;  // reason, result text; plain words
  Seq ref = 0;         // the evidence or operator request row it rests on, 0 if none
};

struct OperatorRequest {
  Time received_at{};
  std::string operator_name;  // the trust store's name for the signer
  std::string verb;           // approve, deny, silence, unsilence, status
  std::string target;         // action id, or the silence scope ("vm=...")
  bool accepted = false;
  std::string detail;    // why it was refused, or what it did
  std::string envelope;  // the signed request envelope exactly as received
};

// What the engine's watch concluded about one ladder step: whether the VM
// healed, judged by the engine (its heal signal, or the actuator seeing the
// VM healthy), never by the verb's success alone. One per step that ended.
struct HealVerdict {
  std::string action_id;  // the step's action id; a dry run: its decision id
  Time at{};
  bool healed = false;
  std::string detail;  // how the heal was seen, or why the step did not heal
  std::string next;    // not healed: the next ladder step's decision id; "" when none
  Seq ref = 0;         // the evidence row that showed the heal, 0 if none
};

// Any record; append_batch() commits a batch in one transaction.
struct Record {
  enum class Type : uint8_t {
    kEvidence = 1,
    kDecision = 2,
    kTransition = 3,
    kRequest = 4,
    kVerdict = 5,
  };
  Type type = Type::kEvidence;
  Evidence evidence;
  Decision decision;
  Transition transition;
  OperatorRequest request;
  HealVerdict verdict;

  static Record of(Evidence e);
  static Record of(Decision d);
  static Record of(Transition t);
  static Record of(OperatorRequest r);
  static Record of(HealVerdict v);
};

// An action the engine must pick up again after a restart.
struct InFlightAction {
  std::string action_id;
  std::string decision_id;
  ActionState state = ActionState::kProposed;
  Time state_at{};
  std::string rule;
  std::string rule_version;
  std::string vm;
  std::string host;
  std::string verb;
  int32_t ladder_step = 0;
  Time expires_at{};  // 0: never
};

enum class Durability : uint8_t {
  // synchronous=FULL: the WAL is fsynced at every commit, so a committed
  // record survives power loss and an OS crash. The default.
  kPowerLoss = 1,
  // synchronous=NORMAL in WAL mode: a committed record survives the process
  // being killed (it is in the OS page cache), not an OS crash. For the demo
  // and the simulator.
  kProcessCrash = 2,
};

struct StoreOptions {
  Durability durability = Durability::kPowerLoss;
  // A signed checkpoint after this many rows, and every checkpoint_every of
  // the store's Clock when rows came since the last one; so no row waits
  // longer than checkpoint_every to be sealed.
  int64_t checkpoint_every_rows = 1000;
  Duration checkpoint_every = std::chrono::seconds(10);
  // Appends block while this many rows wait for the writer, so memory stays
  // bounded when the disk is slower than the engine.
  size_t max_queued = 1 << 16;
};

// The write side the engine uses. An interface so engine tests can use a double.
class AuditStore : public StateStore {
 public:
  ~AuditStore() override = default;

  // Each returns the seq of the last row it appended. Errors: kInvalidArgument
  // (malformed record, unknown reference), kFailedPrecondition (illegal
  // transition, duplicate id), kUnavailable (the store is closed, or writes
  // fail and max_queued rows already wait). A refused record writes nothing.
  virtual Result<Seq> append_evidence(Evidence e) = 0;
  virtual Result<Seq> append_decision(Decision d) = 0;
  virtual Result<Seq> append_transition(Transition t) = 0;
  virtual Result<Seq> append_request(OperatorRequest r) = 0;
  // All or nothing: validated together, committed in one transaction.
  virtual Result<Seq> append_batch(std::vector<Record> records) = 0;

  // Blocks until `seq` is durable, or `limit` passes; kUnavailable at once
  // while writes fail.
  virtual Status wait_durable(Seq seq, Duration limit = std::chrono::seconds(10)) = 0;
  // The highest seq known durable; every seq at or below it is durable.
  virtual Seq durable_seq() const = 0;
  // Called on the writer thread after each commit with the new durable seq;
  // keep it short (post to your event loop). Replaces any previous listener.
  virtual void on_durable(std::function<void(Seq)> listener) = 0;
  // Appends a signed checkpoint now (if any row came since the last one) and
  // waits until it is durable. Returns its seq, or the last checkpoint's.
  virtual Result<Seq> checkpoint() = 0;

  // The action's current state, if it exists.
  virtual Result<std::optional<ActionState>> action_state(const std::string& action_id) = 0;
  // Every action whose last state is not terminal (proposed, pending_approval,
  // approved, dispatched, acked), oldest first, for resuming after a restart.
  // Actions past their expiry are left out unless `include_expired`; the
  // engine should record them as expired (or timed_out when acked).
  virtual Result<std::vector<InFlightAction>> in_flight(Time now, bool include_expired = false) = 0;

  // OK, or why the last write failed while the writer retries it (the store
  // is degraded: nothing becomes durable until a write succeeds again).
  virtual Status write_health() const = 0;
  // Each commit's duration (real time, on the writer thread) is observed in
  // `h` from now on; null stops it. A store without a writer ignores it.
  virtual void set_commit_histogram(Histogram* h) { (void)h; }

  // Commits what is queued, writes a final checkpoint and stops the writer.
  // Further appends fail with kUnavailable. Idempotent.
  virtual Status close() = 0;
};

using AuditStorePtr = std::unique_ptr<AuditStore>;

// Opens (creating if needed) the SQLite audit log at `path`; `engine` signs
// checkpoints and heads. Refuses a log whose last row does not match its
// signed head (run `medic audit verify`).
//
// `clock` is the only source of time: heads and checkpoints carry its time,
// and its timers (run by the caller's loop, on the thread that appends)
// drive the checkpoint_every checkpoints. The store must be closed or
// destroyed before the clock.
Result<AuditStorePtr> open_sqlite_store(const std::string& path, Clock& clock,
                                        const fabric::Identity& engine, StoreOptions options = {});

// ---- reading -------------------------------------------------------------

struct StoredEvidence {
  Seq seq = 0;
  Time received_at{};
  fabric::PublicKey sender{};
  std::string sender_name;
  int32_t kind = 0;  // medic.v1.Kind
  std::string host;
  std::string envelope;
};

struct StoredDecision : Decision {
  Seq seq = 0;
};

struct StoredTransition : Transition {
  Seq seq = 0;
};

struct StoredRequest : OperatorRequest {
  Seq seq = 0;
  fabric::PublicKey sender{};
};

struct StoredVerdict : HealVerdict {
  Seq seq = 0;
};

struct StoredCheckpoint {
  Seq seq = 0;
  Time at{};
  Seq covers = 0;  // the row it vouches for (seq - 1)
  std::string covers_hash;
  fabric::PublicKey signer{};
};

struct ListFilter {
  std::string vm, host, rule;
  std::string status;  // a decision outcome or an action state name
  std::optional<Time> since, until;
  int64_t limit = 50;  // 0: no limit
};

// One line of `audit list`: a decision and where its action stands.
struct ActionSummary {
  StoredDecision decision;
  std::string vm_name;  // from the signed evidence the decision rests on, when it names the VM
  std::optional<ActionState> state;  // none for dry-run decisions
  Time updated_at{};
};

// The ladder step before or after a decision, and the verdict that links
// them (the earlier step's, naming the later one as `next`).
struct LadderLink {
  StoredDecision decision;
  StoredVerdict verdict;
};

// Everything the log holds about one decision and its action.
struct ActionHistory {
  StoredDecision decision;
  std::vector<StoredTransition> transitions;  // in order
  std::vector<StoredEvidence> evidence;  // referenced by the decision, transitions or verdicts
  std::vector<StoredRequest> requests;   // about this action (approvals, refused ones)
  std::vector<StoredVerdict> verdicts;   // the engine's heal verdicts on it, in order
  std::optional<LadderLink> previous;    // the step it climbed from
  std::optional<StoredDecision> next;    // the step it climbed to
};

// Read-only queries on a log file. Cheap to open; not thread-safe.
class AuditReader {
 public:
  static Result<AuditReader> open(const std::string& path);
  AuditReader(AuditReader&&) noexcept;
  AuditReader& operator=(AuditReader&&) noexcept;
  ~AuditReader();

  // Newest first.
  Result<std::vector<ActionSummary>> list(const ListFilter& filter);
  // By action id or decision id.
  Result<ActionHistory> history(const std::string& id);
  // Every row in chain order, as one JSON object per call of `out`.
  Status export_jsonl(const std::function<void(const std::string& line)>& out);
  Result<std::vector<StoredCheckpoint>> checkpoints();

 private:
  struct Impl;
  explicit AuditReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- rendering (the CLI's output; tested here so it stays readable) -------

std::string list_text(const std::vector<ActionSummary>& rows);
std::string list_json(const std::vector<ActionSummary>& rows);
std::string show_text(const ActionHistory& h);
std::string show_json(const ActionHistory& h);
// "Why did medic do this?" as one story: the trigger and its signed evidence,
// the rule and version, each policy with its verdict, the approval (who, when,
// comment), every lifecycle transition, the actuator's report, and whether and
// when the VM healed by the engine's verdict (docs/audit.md). Ladder steps are
// numbered from 1 in text and JSON alike; VMs are named as the evidence names
// them, next to their ids.
std::string why_text(const ActionHistory& h);
std::string why_json(const ActionHistory& h);

// ---- verification -----------------------------------------------------------

struct VerifyOptions {
  // Keys allowed to sign checkpoints and heads. Empty: the engine keys the log
  // records about itself (weaker: see docs/audit.md).
  std::vector<fabric::PublicKey> engine_keys;
  // An externally kept (seq, hash) the log must still contain, e.g. the head
  // printed by an earlier verify; proves no rollback past it.
  std::optional<std::pair<Seq, std::string>> anchor;  // hash as 64 hex digits
};

struct VerifyReport {
  bool ok = false;
  Seq rows = 0;                  // rows read
  Seq checkpoints = 0;           // checkpoint signatures checked
  Seq envelopes = 0;             // evidence/request envelope signatures checked
  Seq last_checkpoint = 0;       // seq of the last valid checkpoint
  Seq head_seq = 0;              // the signed head
  std::string head_hash;         // hex
  bool keys_from_log = false;    // engine keys taken from the log itself
  Seq first_bad = 0;             // the first row that does not verify (0 when ok)
  Seq last_good_checkpoint = 0;  // the tampering is after this row
  std::string problem;           // what is wrong with first_bad, in words

  std::string text() const;
  std::string json() const;
};

// Recomputes the chain, checks every signature and the head. Returns a report
// (ok or not); an error Status only when the file cannot be read at all.
Result<VerifyReport> verify_log(const std::string& path, const VerifyOptions& options = {});

}  // namespace medic::audit
