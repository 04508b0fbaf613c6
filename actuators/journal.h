// The actuator's journal: a SQLite file that remembers every action id the
// actuator has seen, so that no action id is ever executed twice — not on a
// duplicate delivery, not after a crash and restart.
//
// Each action moves received -> executing -> [watching ->] done(result):
//   received   journaled and acknowledged, not started (queued behind another);
//   executing  written (synchronous=FULL, fsync'd) BEFORE the backend is
//              touched; an entry found here on restart crashed somewhere
//              between this write and the result and is never run again;
//   watching   the verb returned; the VM is watched for healing until
//              executed_at + watch;
//   done       the result is final; it is kept (and re-sent) until the engine
//              acknowledges it, then pruned after the retention time.
//
// Durability: WAL mode. The `executing` commit uses synchronous=FULL, so once
// execution starts the record survives power loss. Other commits use NORMAL
// (durable against a process crash, the case that matters for them: losing a
// `received` on power loss only means the engine's re-send runs it then).
//
// Not thread-safe: one Journal per actuator loop.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "medic/v1/actions.pb.h"

struct sqlite3;
struct sqlite3_stmt;

namespace medic::actuators {

enum class JournalState { kReceived, kExecuting, kWatching, kDone };
const char* journal_state_name(JournalState s);

// The reason recorded for an action found in `executing` after a restart.
inline constexpr const char* kRestartedDuringExecution =
    "actuator restarted during execution; not retried — outcome unknown";

struct JournalEntry {
  medic::v1::Action action;
  JournalState state = JournalState::kReceived;
  Time received_at{};
  Time executed_at{};                  // epoch when not executed
  Time updated_at{};
  std::optional<medic::v1::ActionResult> result;  // set when done
  bool result_acked = false;
};

class Journal {
 public:
  // Opens (creating if needed) the journal at `path`; ":memory:" for tests
  // that need no persistence. A write waits at most `busy_timeout` for
  // another connection's lock before failing.
  static Result<std::unique_ptr<Journal>> open(const std::string& path,
                                               Duration busy_timeout = std::chrono::seconds(5));
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Records a new action in `state` (kReceived or kExecuting; kExecuting is
  // fsync'd). kAlreadyExists when the id is journaled already: the caller
  // must then never execute it.
  Status insert(const medic::v1::Action& action, JournalState state, Time now);
  // Records an action that ends without executing (rejected), as done.
  Status insert_done(const medic::v1::Action& action, const medic::v1::ActionResult& result,
                     Time now);

  // kNotFound when the id was never journaled (or was pruned).
  Result<JournalEntry> find(const std::string& id);

  // received -> executing, fsync'd before it returns. kFailedPrecondition
  // unless the entry is in `received`: that is what makes a second execution
  // impossible.
  Status mark_executing(const std::string& id, Time now);
  // executing -> watching; `executed_at` is when the verb returned.
  Status mark_watching(const std::string& id, Time executed_at, Time now);
  // any -> done with the final result.
  Status finish(const std::string& id, const medic::v1::ActionResult& result, Time now);
  // The engine acknowledged the result: stop re-sending it.
  Status mark_result_acked(const std::string& id, Time now);

  // Entries not done, oldest first (restart recovery).
  Result<std::vector<JournalEntry>> unfinished();
  // Done entries whose result the engine has not acknowledged yet.
  Result<std::vector<JournalEntry>> unacked_results();

  // Deletes done entries last updated before `before`; returns how many, and
  // in *unacked how many of those the engine never acknowledged.
  Result<int> prune(Time before, int* unacked = nullptr);

  Result<int64_t> count();

 private:
  class Stmt;
  explicit Journal(sqlite3* db) : db_(db) {}
  Status exec(const char* sql);
  Status set_synchronous_full(bool full);
  Status step_done(sqlite3_stmt* stmt, const char* what);
  Result<std::vector<JournalEntry>> select(const char* sql);
  Status update_state(const std::string& id, JournalState from_required, JournalState to,
                      Time now, bool durable);

  sqlite3* db_;
  bool sync_full_ = false;
  std::map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace medic::actuators
