// The embedded ChainBackend: the audit chain, its signed head and the state
// table in one SQLite file (WAL), written by the writer thread's connection;
// lookups on a read-only connection of their own.
#include <algorithm>

#include "audit/chained_store.h"
#include "audit/sqlite_db.h"
#include "audit/sqlite_state.h"

namespace medic::audit::internal {
namespace {

class SqliteWriter final : public ChainWriter {
 public:
  SqliteWriter(Stmt* inserts, Stmt& head, StateWriter& state)
      : inserts_(inserts), head_(head), state_(state) {}

  Status insert_row(Table t, Seq seq, const std::vector<Value>& values, const Hash& prev,
                    const Hash& hash) override {
    Stmt& st = inserts_[static_cast<int>(t) - 1];
    const auto& columns = table_spec(t).columns;
    st.bind(1, seq);
    int i = 2;
    for (size_t c = 0; c < values.size(); ++c) {
      const Value& v = values[c];
      if (v.is_int) {
        st.bind(i++, v.i);
      } else if (columns[c].is_blob) {
        st.bind_blob(i++, v.s);
      } else {
        st.bind(i++, v.s);
      }
    }
    st.bind_blob(i++, bytes(prev));
    st.bind_blob(i++, bytes(hash));
    return st.run();
  }

  Status write_state(const std::vector<StateRow>& rows) override { return state_.write(rows); }

  Status write_head(Seq seq, const Hash& hash, int64_t at_ns, std::string_view signer,
                    std::string_view signature) override {
    head_.bind(1, seq);
    head_.bind_blob(2, bytes(hash));
    head_.bind(3, at_ns);
    head_.bind_blob(4, signer);
    head_.bind_blob(5, signature);
    return head_.run();
  }

 private:
  Stmt* inserts_;
  Stmt& head_;
  StateWriter& state_;
};

class SqliteBackend final : public ChainBackend {
 public:
  SqliteBackend(std::string path, Durability durability)
      : path_(std::move(path)), durability_(durability) {}

  const std::string& name() const override { return path_; }

  Status open(const std::string& engine_key, int64_t now_ns, bool* opened_before) override {
    auto db = Db::open(path_, false);
    if (!db.ok()) return db.status();
    db_ = std::move(*db);
    MEDIC_RETURN_IF_ERROR(create_schema(engine_key, now_ns, opened_before));
    MEDIC_RETURN_IF_ERROR(prepare_writer_statements());
    MEDIC_RETURN_IF_ERROR(probe_write(now_ns));
    return open_lookups();
  }

  Result<ChainEnd> chain_end() override;
  Result<std::optional<StoredHead>> signed_head() override;
  Result<std::vector<std::pair<std::string, ActionState>>> live_actions() override;

  Status transact(const std::function<Status(ChainWriter&)>& body) override {
    MEDIC_RETURN_IF_ERROR(db_.exec("BEGIN IMMEDIATE"));
    SqliteWriter w(insert_, head_stmt_, state_writer_);
    Status s = body(w);
    if (s.ok()) s = db_.exec("COMMIT");
    if (!s.ok()) (void)db_.exec("ROLLBACK");
    return s;
  }

  Result<std::optional<ActionState>> lookup_state(const std::string& id) override;
  Result<bool> lookup_decision(const std::string& id) override {
    lookup_decision_.bind(1, id);
    auto row = lookup_decision_.step();
    lookup_decision_.reset();
    return row;
  }

  Result<std::vector<StateRow>> load_state() override {
    auto db = Db::open(path_, true);
    if (!db.ok()) return db.status();
    return read_state(*db);
  }

  Result<std::vector<std::pair<Seq, InFlightAction>>> in_flight_rows(
      const std::vector<std::string>& ids) override;

  void close() override {
    lookup_state_ = Stmt();
    lookup_decision_ = Stmt();
    for (auto& s : insert_) s = Stmt();
    head_stmt_ = Stmt();
    state_writer_.release();
    lookup_db_ = Db();
    db_ = Db();
  }

 private:
  Status create_schema(const std::string& engine_key, int64_t now_ns, bool* opened_before);
  Status prepare_writer_statements();
  Status probe_write(int64_t now_ns);
  Status open_lookups();

  const std::string path_;
  const Durability durability_;
  Db db_;  // the writer's
  Stmt insert_[kTableCount];
  Stmt head_stmt_;
  StateWriter state_writer_;
  Db lookup_db_;  // caller-side lookups, under the store's mutex
  Stmt lookup_state_;
  Stmt lookup_decision_;
};

Status SqliteBackend::create_schema(const std::string& engine_key, int64_t now_ns,
                                    bool* opened_before) {
  MEDIC_RETURN_IF_ERROR(db_.exec("PRAGMA journal_mode=WAL"));
  MEDIC_RETURN_IF_ERROR(db_.exec(durability_ == Durability::kPowerLoss
                                     ? "PRAGMA synchronous=FULL"
                                     : "PRAGMA synchronous=NORMAL"));
  // Room for the indexes' hot pages, so big batches do not thrash.
  MEDIC_RETURN_IF_ERROR(db_.exec("PRAGMA cache_size=-32768"));
  MEDIC_RETURN_IF_ERROR(db_.exec("BEGIN IMMEDIATE"));
  // Whether an engine opened this file before: then it has a signed head.
  if (auto st = db_.prepare("SELECT 1 FROM sqlite_master WHERE name = 'meta'"); st.ok()) {
    auto row = st->step();
    *opened_before = row.ok() && *row;
  }
  Status s = db_.exec(schema_sql() + state_schema_sql());
  if (s.ok()) {
    s = db_.exec("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', '1')");
  }
  if (s.ok()) {
    auto st = db_.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)");
    if (!st.ok()) {
      s = st.status();
    } else {
      st->bind(1, "engine_key:" + engine_key);
      st->bind(2, std::to_string(now_ns));
      s = st->run();
    }
  }
  if (!s.ok()) {
    (void)db_.exec("ROLLBACK");
    return s.with_context("creating the audit schema in " + path_);
  }
  return db_.exec("COMMIT");
}

// An engine must not start on a log it cannot write (a full disk, a read-only
// file): it would decide and then fail to record. A small real transaction
// proves it can.
Status SqliteBackend::probe_write(int64_t now_ns) {
  Status s = db_.exec("BEGIN IMMEDIATE");
  if (s.ok()) {
    auto st = db_.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('opened_ns', ?)");
    if (!st.ok()) {
      s = st.status();
    } else {
      st->bind(1, std::to_string(now_ns));
      s = st->run();
    }
  }
  if (s.ok()) s = db_.exec("COMMIT");
  if (!s.ok()) {
    (void)db_.exec("ROLLBACK");
    return unavailable("the audit log " + path_ + " cannot be written: " + s.message());
  }
  return {};
}

Result<ChainEnd> SqliteBackend::chain_end() {
  ChainEnd end;
  for (const auto& t : tables()) {
    auto st =
        db_.prepare(std::string("SELECT seq, hash FROM ") + t.name + " ORDER BY seq DESC LIMIT 1");
    if (!st.ok()) return st.status();
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (*row && st->i64(0) > end.last_seq) {
      end.last_seq = st->i64(0);
      if (!to_hash(st->blob(1), &end.last_hash)) {
        return failed_precondition("audit log " + path_ + ": row " + std::to_string(end.last_seq) +
                                   " has a malformed hash; run `medic audit verify`");
      }
    }
    if (t.id == Table::kCheckpoints && *row) end.last_checkpoint_seq = st->i64(0);
  }
  return end;
}

Result<std::optional<StoredHead>> SqliteBackend::signed_head() {
  auto st = db_.prepare("SELECT seq, hash FROM head WHERE id = 1");
  if (!st.ok()) return st.status();
  auto row = st->step();
  if (!row.ok()) return row.status();
  std::optional<StoredHead> head;
  if (*row) head = StoredHead{st->i64(0), st->blob(1)};
  return head;
}

Result<std::vector<std::pair<std::string, ActionState>>> SqliteBackend::live_actions() {
  auto st = db_.prepare("SELECT action_id, state, max(seq) FROM transitions GROUP BY action_id");
  if (!st.ok()) return st.status();
  std::vector<std::pair<std::string, ActionState>> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto state = stored_state(st->text(1), st->i64(2));
    if (!state.ok()) return state.status();
    if (!is_terminal(*state)) out.emplace_back(st->text(0), *state);
  }
  return out;
}

Status SqliteBackend::prepare_writer_statements() {
  for (const auto& t : tables()) {
    std::string sql = std::string("INSERT INTO ") + t.name + " (seq";
    std::string qs = "?";
    for (const auto& c : t.columns) {
      sql += std::string(", ") + c.name;
      qs += ", ?";
    }
    sql += ", prev_hash, hash) VALUES (" + qs + ", ?, ?)";
    auto st = db_.prepare(sql);
    if (!st.ok()) return st.status();
    insert_[static_cast<int>(t.id) - 1] = std::move(*st);
  }
  auto head = db_.prepare(
      "INSERT OR REPLACE INTO head(id, seq, hash, at_ns, signer, signature) VALUES (1, ?, ?, ?, ?, "
      "?)");
  if (!head.ok()) return head.status();
  head_stmt_ = std::move(*head);
  return state_writer_.prepare(db_);
}

Status SqliteBackend::open_lookups() {
  auto lookup = Db::open(path_, true);
  if (!lookup.ok()) return lookup.status();
  lookup_db_ = std::move(*lookup);
  auto ls = lookup_db_.prepare(
      "SELECT state, seq FROM transitions WHERE action_id = ? ORDER BY seq DESC LIMIT 1");
  if (!ls.ok()) return ls.status();
  lookup_state_ = std::move(*ls);
  auto ld = lookup_db_.prepare("SELECT 1 FROM decisions WHERE decision_id = ? LIMIT 1");
  if (!ld.ok()) return ld.status();
  lookup_decision_ = std::move(*ld);
  return {};
}

Result<std::optional<ActionState>> SqliteBackend::lookup_state(const std::string& id) {
  lookup_state_.bind(1, id);  // TEXT: ids are stored as TEXT, and TEXT never equals a BLOB
  auto row = lookup_state_.step();
  std::optional<ActionState> state;
  Status unreadable;
  if (row.ok() && *row) {
    auto stored = stored_state(lookup_state_.text(0), lookup_state_.i64(1));
    if (stored.ok()) state = *stored;
    else unreadable = stored.status();
  }
  lookup_state_.reset();
  if (!row.ok()) return row.status();
  if (!unreadable.ok()) return unreadable;
  return state;
}

Result<std::vector<std::pair<Seq, InFlightAction>>> SqliteBackend::in_flight_rows(
    const std::vector<std::string>& ids) {
  auto db = Db::open(path_, true);
  if (!db.ok()) return db.status();
  auto st = db->prepare(
      "SELECT d.decision_id, d.rule, d.rule_version, d.vm, d.host, d.verb, d.ladder_step, "
      "d.expires_ns, t.state, t.at_ns, t.seq FROM decisions d JOIN transitions t ON t.action_id = "
      "d.action_id WHERE d.action_id = ? ORDER BY t.seq DESC LIMIT 1");
  if (!st.ok()) return st.status();
  std::vector<std::pair<Seq, InFlightAction>> found;
  for (const auto& id : ids) {
    st->bind(1, id);
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (*row) {
      InFlightAction a;
      a.action_id = id;
      a.decision_id = st->text(0);
      a.rule = st->text(1);
      a.rule_version = st->text(2);
      a.vm = st->text(3);
      a.host = st->text(4);
      a.verb = st->text(5);
      a.ladder_step = static_cast<int32_t>(st->i64(6));
      a.expires_at = from_ns(st->i64(7));
      auto state = stored_state(st->text(8), st->i64(10));
      if (!state.ok()) return state.status();
      a.state = *state;
      a.state_at = from_ns(st->i64(9));
      found.emplace_back(st->i64(10), std::move(a));
    }
    st->reset();
  }
  return found;
}

}  // namespace

std::unique_ptr<ChainBackend> sqlite_backend(std::string path, Durability durability) {
  return std::make_unique<SqliteBackend>(std::move(path), durability);
}

}  // namespace medic::audit::internal
