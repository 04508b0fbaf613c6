#include "actuators/journal.h"

#include <sqlite3.h>

#include <cstring>

namespace medic::actuators {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS journal (
  id             TEXT PRIMARY KEY,
  state          TEXT NOT NULL,
  action         BLOB NOT NULL,
  received_at_ns INTEGER NOT NULL,
  executed_at_ns INTEGER NOT NULL DEFAULT 0,
  updated_at_ns  INTEGER NOT NULL,
  result         BLOB,
  result_acked   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS journal_by_state ON journal(state, updated_at_ns);
)sql";

constexpr const char* kColumns =
    "SELECT id, state, action, received_at_ns, executed_at_ns, updated_at_ns, result, "
    "result_acked FROM journal ";

Status sqlite_error(sqlite3* db, const std::string& what) {
  return io_error("journal: " + what + ": " + sqlite3_errmsg(db));
}

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void bind_blob(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string column_bytes(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  int n = sqlite3_column_bytes(s, i);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

std::optional<JournalState> state_from_name(const std::string& s) {
  if (s == "received") return JournalState::kReceived;
  if (s == "executing") return JournalState::kExecuting;
  if (s == "watching") return JournalState::kWatching;
  if (s == "done") return JournalState::kDone;
  return std::nullopt;
}

Result<JournalEntry> read_row(sqlite3_stmt* st) {
  JournalEntry e;
  const unsigned char* text = sqlite3_column_text(st, 1);
  std::string state(text ? reinterpret_cast<const char*>(text) : "");
  auto parsed_state = state_from_name(state);
  if (!parsed_state) return io_error("journal: unknown state \"" + state + "\"");
  e.state = *parsed_state;
  if (!e.action.ParseFromString(column_bytes(st, 2))) {
    return io_error("journal: stored action does not decode");
  }
  e.received_at = from_ns(sqlite3_column_int64(st, 3));
  e.executed_at = from_ns(sqlite3_column_int64(st, 4));
  e.updated_at = from_ns(sqlite3_column_int64(st, 5));
  if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
    medic::v1::ActionResult r;
    if (!r.ParseFromString(column_bytes(st, 6))) {
      return io_error("journal: stored result does not decode");
    }
    e.result = std::move(r);
  }
  e.result_acked = sqlite3_column_int(st, 7) != 0;
  return e;
}

}  // namespace

// A prepared statement from the journal's cache, reset for reuse when the
// scope ends (preparing costs more than running these small statements).
class Journal::Stmt {
 public:
  Stmt(Journal* j, const std::string& sql) {
    auto it = j->cache_.find(sql);
    if (it != j->cache_.end()) {
      s_ = it->second;
    } else if (sqlite3_prepare_v2(j->db_, sql.c_str(), -1, &s_, nullptr) == SQLITE_OK) {
      j->cache_.emplace(sql, s_);
    } else {
      s_ = nullptr;
    }
  }
  ~Stmt() {
    if (s_) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

const char* journal_state_name(JournalState s) {
  switch (s) {
    case JournalState::kReceived: return "received";
    case JournalState::kExecuting: return "executing";
    case JournalState::kWatching: return "watching";
    case JournalState::kDone: return "done";
  }
  return "unknown";
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& path, Duration busy_timeout) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Status s = io_error("journal: cannot open " + path + ": " +
                        (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Journal> j(new Journal(db));
  sqlite3_busy_timeout(
      db, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(busy_timeout)
                               .count()));
  MEDIC_RETURN_IF_ERROR(j->exec("PRAGMA journal_mode=WAL"));
  MEDIC_RETURN_IF_ERROR(j->set_synchronous_full(false));
  MEDIC_RETURN_IF_ERROR(j->exec(kSchema));
  return j;
}

Journal::~Journal() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Status Journal::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return io_error(std::string("journal: ") + msg);
  }
  return {};
}

Status Journal::set_synchronous_full(bool full) {
  if (full == sync_full_ && full) return {};
  MEDIC_RETURN_IF_ERROR(exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  sync_full_ = full;
  return {};
}

Status Journal::step_done(sqlite3_stmt* stmt, const char* what) {
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_CONSTRAINT) return already_exists(std::string("journal: ") + what);
  if (rc != SQLITE_DONE) return sqlite_error(db_, what);
  return {};
}

Status Journal::insert(const medic::v1::Action& action, JournalState state, Time now) {
  if (state != JournalState::kReceived && state != JournalState::kExecuting) {
    return invalid_argument("journal: a new action starts as received or executing");
  }
  const bool durable = state == JournalState::kExecuting;
  MEDIC_RETURN_IF_ERROR(set_synchronous_full(durable));
  Stmt st(this, "INSERT INTO journal (id, state, action, received_at_ns, updated_at_ns) "
                         "VALUES (?, ?, ?, ?, ?)");
  if (!st.get()) {
    return sqlite_error(db_, "prepare insert");
  }
  bind_text(st.get(), 1, action.id());
  bind_text(st.get(), 2, journal_state_name(state));
  bind_blob(st.get(), 3, action.SerializeAsString());
  sqlite3_bind_int64(st.get(), 4, to_ns(now));
  sqlite3_bind_int64(st.get(), 5, to_ns(now));
  Status s = step_done(st.get(), "action id already journaled");
  if (durable) {
    Status back = set_synchronous_full(false);
    if (s.ok()) return back;
  }
  return s;
}

Status Journal::insert_done(const medic::v1::Action& action, const medic::v1::ActionResult& result,
                            Time now) {
  MEDIC_RETURN_IF_ERROR(set_synchronous_full(false));
  Stmt st(this, "INSERT INTO journal (id, state, action, received_at_ns, updated_at_ns, "
                         "result) VALUES (?, 'done', ?, ?, ?, ?)");
  if (!st.get()) {
    return sqlite_error(db_, "prepare insert");
  }
  bind_text(st.get(), 1, action.id());
  bind_blob(st.get(), 2, action.SerializeAsString());
  sqlite3_bind_int64(st.get(), 3, to_ns(now));
  sqlite3_bind_int64(st.get(), 4, to_ns(now));
  bind_blob(st.get(), 5, result.SerializeAsString());
  return step_done(st.get(), "action id already journaled");
}

Result<std::vector<JournalEntry>> Journal::select(const char* sql) {
  Stmt st(this, sql);
  if (!st.get()) {
    return sqlite_error(db_, "prepare select");
  }
  std::vector<JournalEntry> out;
  while (true) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlite_error(db_, "select");
    auto e = read_row(st.get());
    if (!e.ok()) return e.status();
    out.push_back(std::move(e).value());
  }
  return out;
}

Result<JournalEntry> Journal::find(const std::string& id) {
  Stmt st(this, std::string(kColumns) + "WHERE id = ?");
  if (!st.get()) {
    return sqlite_error(db_, "prepare find");
  }
  bind_text(st.get(), 1, id);
  int rc = sqlite3_step(st.get());
  if (rc == SQLITE_DONE) return not_found("journal: no action \"" + id + "\"");
  if (rc != SQLITE_ROW) return sqlite_error(db_, "find");
  return read_row(st.get());
}

Status Journal::update_state(const std::string& id, JournalState from_required, JournalState to,
                             Time now, bool durable) {
  MEDIC_RETURN_IF_ERROR(set_synchronous_full(durable));
  Stmt st(this, "UPDATE journal SET state = ?, updated_at_ns = ? "
                         "WHERE id = ? AND state = ?");
  if (!st.get()) {
    return sqlite_error(db_, "prepare update");
  }
  bind_text(st.get(), 1, journal_state_name(to));
  sqlite3_bind_int64(st.get(), 2, to_ns(now));
  bind_text(st.get(), 3, id);
  bind_text(st.get(), 4, journal_state_name(from_required));
  Status s = step_done(st.get(), "update state");
  if (durable) {
    Status back = set_synchronous_full(false);
    if (s.ok()) s = back;
  }
  MEDIC_RETURN_IF_ERROR(s);
  if (sqlite3_changes(db_) != 1) {
    return failed_precondition("journal: action \"" + id + "\" is not " +
                               journal_state_name(from_required));
  }
  return {};
}

Status Journal::mark_executing(const std::string& id, Time now) {
  return update_state(id, JournalState::kReceived, JournalState::kExecuting, now, true);
}

Status Journal::mark_watching(const std::string& id, Time executed_at, Time now) {
  MEDIC_RETURN_IF_ERROR(set_synchronous_full(false));
  Stmt st(this, "UPDATE journal SET state = 'watching', executed_at_ns = ?, "
                         "updated_at_ns = ? WHERE id = ? AND state = 'executing'");
  if (!st.get()) {
    return sqlite_error(db_, "prepare update");
  }
  sqlite3_bind_int64(st.get(), 1, to_ns(executed_at));
  sqlite3_bind_int64(st.get(), 2, to_ns(now));
  bind_text(st.get(), 3, id);
  MEDIC_RETURN_IF_ERROR(step_done(st.get(), "mark watching"));
  if (sqlite3_changes(db_) != 1) {
    return failed_precondition("journal: action \"" + id + "\" is not executing");
  }
  return {};
}

Status Journal::finish(const std::string& id, const medic::v1::ActionResult& result, Time now) {
  MEDIC_RETURN_IF_ERROR(set_synchronous_full(false));
  Stmt st(this, "UPDATE journal SET state = 'done', result = ?, updated_at_ns = ?, "
                         "executed_at_ns = CASE WHEN ? != 0 THEN ? ELSE executed_at_ns END "
                         "WHERE id = ? AND state != 'done'");
  if (!st.get()) {
    return sqlite_error(db_, "prepare finish");
  }
  bind_blob(st.get(), 1, result.SerializeAsString());
  sqlite3_bind_int64(st.get(), 2, to_ns(now));
  sqlite3_bind_int64(st.get(), 3, result.executed_at_ns());
  sqlite3_bind_int64(st.get(), 4, result.executed_at_ns());
  bind_text(st.get(), 5, id);
  MEDIC_RETURN_IF_ERROR(step_done(st.get(), "finish"));
  if (sqlite3_changes(db_) != 1) {
    return failed_precondition("journal: action \"" + id + "\" is unknown or already done");
  }
  return {};
}

Status Journal::mark_result_acked(const std::string& id, Time now) {
  MEDIC_RETURN_IF_ERROR(set_synchronous_full(false));
  Stmt st(this, "UPDATE journal SET result_acked = 1, updated_at_ns = ? "
                         "WHERE id = ? AND state = 'done' AND result_acked = 0");
  if (!st.get()) {
    return sqlite_error(db_, "prepare ack");
  }
  sqlite3_bind_int64(st.get(), 1, to_ns(now));
  bind_text(st.get(), 2, id);
  return step_done(st.get(), "mark result acked");
}

Result<std::vector<JournalEntry>> Journal::unfinished() {
  std::string sql = std::string(kColumns) + "WHERE state != 'done' ORDER BY received_at_ns, id";
  return select(sql.c_str());
}

Result<std::vector<JournalEntry>> Journal::unacked_results() {
  std::string sql = std::string(kColumns) +
                    "WHERE state = 'done' AND result_acked = 0 ORDER BY updated_at_ns, id";
  return select(sql.c_str());
}

Result<int> Journal::prune(Time before, int* unacked) {
  MEDIC_RETURN_IF_ERROR(set_synchronous_full(false));
  if (unacked) {
    Stmt st(this, "SELECT count(*) FROM journal WHERE state = 'done' AND "
                           "result_acked = 0 AND updated_at_ns < ?");
    if (!st.get()) {
      return sqlite_error(db_, "prepare prune count");
    }
    sqlite3_bind_int64(st.get(), 1, to_ns(before));
    if (sqlite3_step(st.get()) != SQLITE_ROW) return sqlite_error(db_, "prune count");
    *unacked = sqlite3_column_int(st.get(), 0);
  }
  Stmt st(this, "DELETE FROM journal WHERE state = 'done' AND updated_at_ns < ?");
  if (!st.get()) {
    return sqlite_error(db_, "prepare prune");
  }
  sqlite3_bind_int64(st.get(), 1, to_ns(before));
  MEDIC_RETURN_IF_ERROR(step_done(st.get(), "prune"));
  return sqlite3_changes(db_);
}

Result<int64_t> Journal::count() {
  Stmt st(this, "SELECT count(*) FROM journal");
  if (!st.get()) {
    return sqlite_error(db_, "prepare count");
  }
  if (sqlite3_step(st.get()) != SQLITE_ROW) return sqlite_error(db_, "count");
  return static_cast<int64_t>(sqlite3_column_int64(st.get(), 0));
}

}  // namespace medic::actuators
