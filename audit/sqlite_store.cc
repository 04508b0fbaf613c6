// The SQLite AuditStore: validation on the caller's thread, hashing and group
// commit on one writer thread.
//
// Seqs are assigned under mu_ when a record is queued, so append() can return
// one at once. The writer takes the whole queue, chains and inserts it in one
// transaction, adds a checkpoint when one is due (its seq is reserved under mu_
// at the same moment, right after the batch), re-signs the head, and commits.
// Only then does durable_ move: a seq <= durable_ is on disk.
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "audit/chain.h"
#include "audit/log.h"
#include "audit/sqlite_db.h"
#include "core/json.h"
#include "medic/v1/envelope.pb.h"

namespace medic::audit {
namespace {

using internal::Db;
using internal::Hash;
using internal::Stmt;
using internal::Table;
using internal::Value;

// A bounded memory of recent keys, oldest forgotten first. Covers records that
// are queued or being written, which a database lookup cannot see yet.
template <typename V>
class RecentMap {
 public:
  explicit RecentMap(size_t capacity) : capacity_(capacity) {}
  void put(const std::string& k, V v) {
    auto [it, inserted] = map_.insert_or_assign(k, v);
    if (inserted) order_.push_back(k);
    while (order_.size() > capacity_) {
      map_.erase(order_.front());
      order_.pop_front();
    }
  }
  const V* find(const std::string& k) const {
    auto it = map_.find(k);
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  size_t capacity_;
  std::unordered_map<std::string, V> map_;
  std::deque<std::string> order_;
};

struct Pending {
  Seq seq = 0;
  Table table = Table::kEvidence;
  Record rec;
  std::string sender;  // evidence / request: the envelope's sender key
  int32_t kind = 0;
  std::string host;
};

int64_t ns(Time t) { return to_ns(t); }

class SqliteAuditStore final : public AuditStore {
 public:
  SqliteAuditStore(std::string path, Clock& clock, const fabric::Identity& engine,
                   StoreOptions options)
      : path_(std::move(path)),
        clock_(clock),
        engine_(engine),
        options_(options),
        recent_states_(std::max<size_t>(options.max_queued * 2, 4096)),
        recent_decisions_(std::max<size_t>(options.max_queued * 2, 4096)) {}

  ~SqliteAuditStore() override { (void)close(); }

  Status open();

  Result<Seq> append_evidence(Evidence e) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(e)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_decision(Decision d) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(d)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_transition(Transition t) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(t)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_request(OperatorRequest r) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(r)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_batch(std::vector<Record> records) override;

  Status wait_durable(Seq seq, Duration limit) override;
  Seq durable_seq() const override { return durable_.load(std::memory_order_acquire); }
  void on_durable(std::function<void(Seq)> listener) override {
    std::lock_guard<std::mutex> l(listener_mu_);
    listener_ = std::move(listener);
  }
  Result<Seq> checkpoint() override;
  Result<std::optional<ActionState>> action_state(const std::string& action_id) override;
  Result<std::vector<InFlightAction>> in_flight(Time now, bool include_expired) override;
  Status close() override;

 private:
  // Caller side, REQUIRES mu_ held.
  using Overlay = std::unordered_map<std::string, std::optional<ActionState>>;
  Result<std::optional<ActionState>> current_state(const std::string& id, const Overlay& overlay);
  Result<bool> decision_exists(const std::string& id);
  Status validate(Record& r, Pending* p, Overlay* overlay,
                  std::unordered_set<std::string>* new_decisions, Seq* next,
                  std::vector<Pending>* out);
  Status check_ref(Seq ref, Seq next, const char* what) const;
  // The checks of validate(), one per record type; queue_decision appends a
  // checked decision and its action's first transitions to *out.
  Status validate_evidence(const Evidence& e, Pending* p);
  Status check_new_decision(const Decision& d, const Overlay& overlay,
                            const std::unordered_set<std::string>& new_decisions, Seq next);
  void queue_decision(Pending* p, Overlay* overlay, Seq* next, std::vector<Pending>* out);
  Status validate_transition(Transition& t, Pending* p, Overlay* overlay, Seq next);
  Status validate_request(const OperatorRequest& q, Pending* p);
  Status validate_verdict(const HealVerdict& v, Pending* p, const Overlay& overlay,
                          const std::unordered_set<std::string>& new_decisions, Seq next);
  // Time comes only from clock_, read on the caller's thread (the one that
  // owns the Clock): each append, checkpoint() and close() note clock_.now()
  // in now_ns_, and the writer stamps heads and checkpoints with the time
  // noted last. A timer on clock_ marks a checkpoint due every
  // checkpoint_every.
  void note_time() { now_ns_ = to_ns(clock_.now()); }
  void arm_checkpoint_timer();
  // The steps of open(), in order.
  Status create_schema(bool* opened_before);
  Status find_chain_end();  // sets last_seq_, last_hash_, last_checkpoint_seq_
  Status check_signed_head(bool opened_before, bool* has_head);
  Status load_live_actions();
  Status prepare_writer_statements();
  Status open_lookups();

  // Writer side.
  void writer_loop();
  Status write_batch(std::vector<Pending>& batch, Seq checkpoint_seq);
  Status insert_row(Table t, Seq seq, const std::vector<Value>& values);
  Status insert_pending(const Pending& p);
  Status write_head();

  const std::string path_;
  Clock& clock_;
  const fabric::Identity engine_;
  const StoreOptions options_;

  std::mutex mu_;
  std::condition_variable writer_cv_;
  std::condition_variable space_cv_;
  std::condition_variable durable_cv_;
  std::vector<Pending> queue_;
  Seq next_seq_ = 1;
  std::atomic<Seq> durable_{0};
  Status failed_;
  bool closing_ = false;
  bool closed_ = false;
  bool checkpoint_requested_ = false;
  bool checkpoint_timer_due_ = false;  // set by the timer, cleared by the writer
  int64_t now_ns_ = 0;                 // the caller's clock, as last noted
  TimerId checkpoint_timer_ = 0;       // caller side
  Seq last_checkpoint_seq_ = 0;                        // durable checkpoint
  std::unordered_map<std::string, ActionState> live_;  // non-terminal actions
  RecentMap<ActionState> recent_states_;               // recently terminal
  RecentMap<bool> recent_decisions_;
  Db lookup_db_;  // caller-side lookups, under mu_
  Stmt lookup_state_;
  Stmt lookup_decision_;

  std::mutex listener_mu_;
  std::function<void(Seq)> listener_;

  // Writer thread only (after open()).
  Db db_;
  Stmt insert_[internal::kTableCount];
  Stmt head_stmt_;
  Hash last_hash_{};
  Seq last_seq_ = 0;
  Seq rows_since_checkpoint_ = 0;
  int64_t write_at_ns_ = 0;  // now_ns_ when the writer took its batch
  std::string encode_buf_;
  std::thread writer_;
};

Status SqliteAuditStore::open() {
  if (!fabric::crypto_ready()) return internal_error("libsodium failed to initialise");
  auto db = Db::open(path_, false);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  bool opened_before = false;
  MEDIC_RETURN_IF_ERROR(create_schema(&opened_before));
  MEDIC_RETURN_IF_ERROR(find_chain_end());
  bool has_head = false;
  MEDIC_RETURN_IF_ERROR(check_signed_head(opened_before, &has_head));
  next_seq_ = last_seq_ + 1;
  durable_.store(last_seq_);
  rows_since_checkpoint_ = last_seq_ - last_checkpoint_seq_;
  note_time();
  arm_checkpoint_timer();
  MEDIC_RETURN_IF_ERROR(load_live_actions());
  MEDIC_RETURN_IF_ERROR(prepare_writer_statements());
  if (!has_head) {
    // A new log gets a signed head for row 0 at once, so an empty log is
    // told apart from one whose rows and head were deleted.
    MEDIC_RETURN_IF_ERROR(db_.exec("BEGIN IMMEDIATE"));
    Status hs = write_head();
    if (hs.ok()) hs = db_.exec("COMMIT");
    if (!hs.ok()) {
      (void)db_.exec("ROLLBACK");
      return hs.with_context("signing the head of the new audit log " + path_);
    }
  }
  MEDIC_RETURN_IF_ERROR(open_lookups());
  writer_ = std::thread([this] { writer_loop(); });
  return {};
}

Status SqliteAuditStore::create_schema(bool* opened_before) {
  MEDIC_RETURN_IF_ERROR(db_.exec("PRAGMA journal_mode=WAL"));
  MEDIC_RETURN_IF_ERROR(db_.exec(options_.durability == Durability::kPowerLoss
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
  Status s = db_.exec(internal::schema_sql());
  if (s.ok()) {
    s = db_.exec("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', '1')");
  }
  if (s.ok()) {
    auto st = db_.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)");
    if (!st.ok()) {
      s = st.status();
    } else {
      st->bind(1, "engine_key:" + engine_.id());
      st->bind(2, std::to_string(to_ns(clock_.now())));
      s = st->run();
    }
  }
  if (!s.ok()) {
    (void)db_.exec("ROLLBACK");
    return s.with_context("creating the audit schema in " + path_);
  }
  return db_.exec("COMMIT");
}

Status SqliteAuditStore::find_chain_end() {
  for (const auto& t : internal::tables()) {
    auto st =
        db_.prepare(std::string("SELECT seq, hash FROM ") + t.name + " ORDER BY seq DESC LIMIT 1");
    if (!st.ok()) return st.status();
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (*row && st->i64(0) > last_seq_) {
      last_seq_ = st->i64(0);
      if (!internal::to_hash(st->blob(1), &last_hash_)) {
        return failed_precondition("audit log " + path_ + ": row " + std::to_string(last_seq_) +
                                   " has a malformed hash; run `medic audit verify`");
      }
    }
    if (t.id == Table::kCheckpoints && *row) last_checkpoint_seq_ = st->i64(0);
  }
  return {};
}

Status SqliteAuditStore::check_signed_head(bool opened_before, bool* has_head) {
  auto st = db_.prepare("SELECT seq, hash FROM head WHERE id = 1");
  if (!st.ok()) return st.status();
  auto row = st->step();
  if (!row.ok()) return row.status();
  *has_head = *row;
  // An empty log without a head is new only if no engine opened it before:
  // otherwise its rows and head were deleted.
  const bool fresh = !*row && last_seq_ == 0 && !opened_before;
  if (!fresh &&
      (!*row || st->i64(0) != last_seq_ || st->blob(1) != internal::bytes(last_hash_))) {
    return failed_precondition(
        "audit log " + path_ + " does not end at its signed head (" +
        (*row ? "head says row " + std::to_string(st->i64(0)) : std::string("no head")) +
        ", log ends at row " + std::to_string(last_seq_) +
        "); refusing to append to a log that may have been altered: run `medic audit verify`");
  }
  return {};
}

Status SqliteAuditStore::load_live_actions() {
  auto st = db_.prepare("SELECT action_id, state, max(seq) FROM transitions GROUP BY action_id");
  if (!st.ok()) return st.status();
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto state = internal::stored_state(st->text(1), st->i64(2));
    if (!state.ok()) return state.status();
    if (!is_terminal(*state)) live_.emplace(st->text(0), *state);
  }
  return {};
}

Status SqliteAuditStore::prepare_writer_statements() {
  for (const auto& t : internal::tables()) {
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
  return {};
}

Status SqliteAuditStore::open_lookups() {
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

Result<std::optional<ActionState>> SqliteAuditStore::current_state(const std::string& id,
                                                                   const Overlay& overlay) {
  if (auto it = overlay.find(id); it != overlay.end()) return it->second;
  if (auto it = live_.find(id); it != live_.end()) return std::optional<ActionState>(it->second);
  if (const ActionState* s = recent_states_.find(id)) return std::optional<ActionState>(*s);
  lookup_state_.bind(1, id);  // TEXT: ids are stored as TEXT, and TEXT never equals a BLOB
  auto row = lookup_state_.step();
  std::optional<ActionState> state;
  Status unreadable;
  if (row.ok() && *row) {
    auto stored = internal::stored_state(lookup_state_.text(0), lookup_state_.i64(1));
    if (stored.ok()) state = *stored;
    else unreadable = stored.status();
  }
  lookup_state_.reset();
  if (!row.ok()) return row.status();
  if (!unreadable.ok()) return unreadable;
  return state;
}

Result<bool> SqliteAuditStore::decision_exists(const std::string& id) {
  if (recent_decisions_.find(id)) return true;
  lookup_decision_.bind(1, id);
  auto row = lookup_decision_.step();
  lookup_decision_.reset();
  return row;
}

Status SqliteAuditStore::check_ref(Seq ref, Seq next, const char* what) const {
  if (ref < 0 || ref >= next) {
    return invalid_argument(std::string(what) + " refers to row " + std::to_string(ref) +
                            ", which does not exist (the log has " + std::to_string(next - 1) +
                            " rows)");
  }
  return {};
}

Status SqliteAuditStore::validate(Record& r, Pending* p, Overlay* overlay,
                                  std::unordered_set<std::string>* new_decisions, Seq* next,
                                  std::vector<Pending>* out) {
  switch (r.type) {
    case Record::Type::kEvidence:
      MEDIC_RETURN_IF_ERROR(validate_evidence(r.evidence, p));
      break;
    case Record::Type::kDecision:
      MEDIC_RETURN_IF_ERROR(check_new_decision(r.decision, *overlay, *new_decisions, *next));
      new_decisions->insert(r.decision.id);
      queue_decision(p, overlay, next, out);
      return {};
    case Record::Type::kTransition:
      MEDIC_RETURN_IF_ERROR(validate_transition(r.transition, p, overlay, *next));
      break;
    case Record::Type::kRequest:
      MEDIC_RETURN_IF_ERROR(validate_request(r.request, p));
      break;
    case Record::Type::kVerdict:
      MEDIC_RETURN_IF_ERROR(validate_verdict(r.verdict, p, *overlay, *new_decisions, *next));
      break;
  }
  out->push_back(std::move(*p));
  return {};
}

Status SqliteAuditStore::validate_evidence(const Evidence& e, Pending* p) {
  medic::v1::Envelope env;
  if (e.envelope.empty() || !env.ParseFromString(e.envelope) || env.sender().size() != 32) {
    return invalid_argument("evidence is not a signed envelope (" +
                            std::to_string(e.envelope.size()) + " bytes)");
  }
  p->table = Table::kEvidence;
  p->sender = env.sender();
  p->kind = env.kind();
  p->host = env.host();
  return {};
}

Status SqliteAuditStore::check_new_decision(const Decision& d, const Overlay& overlay,
                                            const std::unordered_set<std::string>& new_decisions,
                                            Seq next) {
  if (d.id.empty()) return invalid_argument("decision without an id");
  if (d.rule.empty()) return invalid_argument("decision " + d.id + " names no rule");
  if (d.verb.empty()) return invalid_argument("decision " + d.id + " names no verb");
  if (d.outcome == DecisionOutcome::kSuppressed && d.policy.empty()) {
    return invalid_argument("suppressed decision " + d.id + " names no policy");
  }
  for (const auto& ref : d.evidence) {
    if (ref.evidence <= 0) return invalid_argument("decision " + d.id + ": evidence id 0");
    MEDIC_RETURN_IF_ERROR(check_ref(ref.evidence, next, ("decision " + d.id).c_str()));
  }
  if (new_decisions.count(d.id)) {
    return failed_precondition("decision " + d.id + " is already in the log");
  }
  auto exists = decision_exists(d.id);
  if (!exists.ok()) return exists.status();
  if (*exists) return failed_precondition("decision " + d.id + " is already in the log");
  if (d.outcome == DecisionOutcome::kDryRun) return {};
  if (d.action_id.empty()) {
    return invalid_argument("decision " + d.id + " (" + outcome_name(d.outcome) +
                            ") has no action id");
  }
  auto cur = current_state(d.action_id, overlay);
  if (!cur.ok()) return cur.status();
  if (cur->has_value()) {
    return failed_precondition("action " + d.action_id + " already exists (" +
                               state_name(**cur) + ")");
  }
  return {};
}

void SqliteAuditStore::queue_decision(Pending* p, Overlay* overlay, Seq* next,
                                      std::vector<Pending>* out) {
  const Decision& d = p->rec.decision;
  p->table = Table::kDecisions;
  // The action's first transitions follow the decision in the same batch.
  std::vector<std::pair<ActionState, std::string>> follow;
  if (d.outcome != DecisionOutcome::kDryRun) follow.emplace_back(ActionState::kProposed, "");
  if (d.outcome == DecisionOutcome::kPendingApproval) {
    follow.emplace_back(ActionState::kPendingApproval, "waiting for an operator approval");
  }
  if (d.outcome == DecisionOutcome::kSuppressed) {
    follow.emplace_back(ActionState::kSuppressed,
                        d.policy + (d.reason.empty() ? "" : ": " + d.reason));
  }
  std::string action_id = d.action_id;
  Time at = d.at;
  out->push_back(std::move(*p));
  for (auto& [state, detail] : follow) {
    Pending t;
    t.seq = (*next)++;
    t.table = Table::kTransitions;
    t.rec.type = Record::Type::kTransition;
    t.rec.transition = Transition{action_id, at, state, "engine", detail, 0};
    (*overlay)[action_id] = state;
    out->push_back(std::move(t));
  }
}

Status SqliteAuditStore::validate_transition(Transition& t, Pending* p, Overlay* overlay,
                                             Seq next) {
  if (t.action_id.empty()) return invalid_argument("transition without an action id");
  if (t.state == ActionState::kProposed) {
    return failed_precondition("action " + t.action_id +
                               ": `proposed` is recorded by appending its decision");
  }
  MEDIC_RETURN_IF_ERROR(check_ref(t.ref, next, ("transition of " + t.action_id).c_str()));
  auto cur = current_state(t.action_id, *overlay);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) {
    return failed_precondition("action " + t.action_id +
                               " is not in the log (append its decision first)");
  }
  if (!transition_allowed(*cur, t.state)) {
    return failed_precondition("illegal transition for action " + t.action_id + ": " +
                               state_name(**cur) + " -> " + state_name(t.state) +
                               (is_terminal(**cur) ? " (it has already ended)" : ""));
  }
  if (t.actor.empty()) t.actor = "engine";
  (*overlay)[t.action_id] = t.state;
  p->table = Table::kTransitions;
  return {};
}

Status SqliteAuditStore::validate_request(const OperatorRequest& q, Pending* p) {
  if (q.operator_name.empty() || q.verb.empty()) {
    return invalid_argument("operator request needs the operator's name and a verb");
  }
  medic::v1::Envelope env;
  if (!q.envelope.empty() && env.ParseFromString(q.envelope)) p->sender = env.sender();
  if (q.accepted && p->sender.size() != 32) {
    return invalid_argument("accepted operator request without a signed envelope");
  }
  p->table = Table::kRequests;
  return {};
}

// A verdict is about an action or dry-run decision already in the log (or in
// this batch).
Status SqliteAuditStore::validate_verdict(const HealVerdict& v, Pending* p, const Overlay& overlay,
                                          const std::unordered_set<std::string>& new_decisions,
                                          Seq next) {
  if (v.action_id.empty()) return invalid_argument("heal verdict without an action id");
  MEDIC_RETURN_IF_ERROR(check_ref(v.ref, next, ("heal verdict of " + v.action_id).c_str()));
  bool known = new_decisions.count(v.action_id) > 0;
  if (!known) {
    auto exists = decision_exists(v.action_id);
    if (!exists.ok()) return exists.status();
    known = *exists;
  }
  if (!known) {
    auto cur = current_state(v.action_id, overlay);
    if (!cur.ok()) return cur.status();
    known = cur->has_value();
  }
  if (!known) {
    return failed_precondition("heal verdict of " + v.action_id +
                               ": no such action or decision in the log");
  }
  p->table = Table::kVerdicts;
  return {};
}

Result<Seq> SqliteAuditStore::append_batch(std::vector<Record> records) {
  if (records.empty()) return invalid_argument("empty batch");
  std::unique_lock<std::mutex> l(mu_);
  space_cv_.wait(l,
                 [&] { return queue_.size() < options_.max_queued || closing_ || !failed_.ok(); });
  if (closing_ || closed_) return unavailable("the audit log is closed");
  if (!failed_.ok()) return unavailable("the audit log writer failed: " + failed_.message());
  note_time();

  Overlay overlay;
  std::unordered_set<std::string> new_decisions;
  std::vector<Pending> out;
  Seq next = next_seq_;
  for (Record& r : records) {
    Pending p;
    p.seq = next++;
    p.rec = std::move(r);
    Status s = validate(p.rec, &p, &overlay, &new_decisions, &next, &out);
    if (!s.ok()) return s;
  }
  // Accepted: publish the new states and queue the rows.
  for (auto& [id, state] : overlay) {
    if (!state) continue;
    if (is_terminal(*state)) {
      live_.erase(id);
      recent_states_.put(id, *state);
    } else {
      live_[id] = *state;
    }
  }
  for (const auto& id : new_decisions) recent_decisions_.put(id, true);
  next_seq_ = next;
  for (auto& p : out) queue_.push_back(std::move(p));
  l.unlock();
  writer_cv_.notify_one();
  return next - 1;
}

Status SqliteAuditStore::wait_durable(Seq seq, Duration limit) {
  std::unique_lock<std::mutex> l(mu_);
  if (seq >= next_seq_) {
    return invalid_argument("row " + std::to_string(seq) + " has not been appended");
  }
  bool done = durable_cv_.wait_for(
      l, limit, [&] { return durable_.load(std::memory_order_acquire) >= seq || !failed_.ok(); });
  if (durable_.load() >= seq) return {};
  if (!failed_.ok()) return unavailable("the audit log writer failed: " + failed_.message());
  (void)done;
  return timeout_error("row " + std::to_string(seq) + " not durable after " +
                       std::to_string(limit.count() / 1'000'000) + " ms");
}

Result<Seq> SqliteAuditStore::checkpoint() {
  std::unique_lock<std::mutex> l(mu_);
  if (!failed_.ok()) return unavailable("the audit log writer failed: " + failed_.message());
  if (closed_) return unavailable("the audit log is closed");
  Seq target = next_seq_;
  if (last_checkpoint_seq_ == target - 1 || target == 1) return last_checkpoint_seq_;
  note_time();
  checkpoint_requested_ = true;
  writer_cv_.notify_one();
  durable_cv_.wait(l, [&] { return last_checkpoint_seq_ >= target || !failed_.ok(); });
  if (!failed_.ok()) return unavailable("the audit log writer failed: " + failed_.message());
  return last_checkpoint_seq_;
}

Result<std::optional<ActionState>> SqliteAuditStore::action_state(const std::string& action_id) {
  std::lock_guard<std::mutex> l(mu_);
  return current_state(action_id, {});
}

Result<std::vector<InFlightAction>> SqliteAuditStore::in_flight(Time now, bool include_expired) {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> l(mu_);
    ids.reserve(live_.size());
    for (const auto& [id, state] : live_) ids.push_back(id);
  }
  // Queued rows must be readable before we look them up.
  Seq upto = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    upto = next_seq_ - 1;
  }
  if (upto > 0) MEDIC_RETURN_IF_ERROR(wait_durable(upto, std::chrono::seconds(30)));
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
      auto state = internal::stored_state(st->text(8), st->i64(10));
      if (!state.ok()) return state.status();
      a.state = *state;
      a.state_at = from_ns(st->i64(9));
      bool expired = to_ns(a.expires_at) != 0 && a.expires_at <= now;
      if (!is_terminal(*state) && (include_expired || !expired)) {
        found.emplace_back(st->i64(10), std::move(a));
      }
    }
    st->reset();
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<InFlightAction> out;
  out.reserve(found.size());
  for (auto& [seq, a] : found) out.push_back(std::move(a));
  return out;
}

Status SqliteAuditStore::close() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return failed_.ok() ? Status{} : failed_;
    if (!closing_) {
      clock_.cancel(checkpoint_timer_);
      note_time();
    }
    closing_ = true;
    checkpoint_requested_ = true;
  }
  writer_cv_.notify_one();
  space_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  std::lock_guard<std::mutex> l(mu_);
  closed_ = true;
  lookup_state_ = Stmt();
  lookup_decision_ = Stmt();
  for (auto& s : insert_) s = Stmt();
  head_stmt_ = Stmt();
  lookup_db_ = Db();
  db_ = Db();
  return failed_.ok() ? Status{} : failed_;
}

void SqliteAuditStore::writer_loop() {
  std::vector<Pending> batch;
  while (true) {
    Seq checkpoint_seq = 0;
    bool stop = false;
    {
      std::unique_lock<std::mutex> l(mu_);
      auto due = [&] { return rows_since_checkpoint_ > 0 && checkpoint_timer_due_; };
      auto ready = [&] {
        return !queue_.empty() || closing_ || (checkpoint_requested_ && rows_since_checkpoint_) ||
               due();
      };
      writer_cv_.wait(l, ready);
      batch.swap(queue_);
      write_at_ns_ = now_ns_;
      // After a failed write the chain on disk ends where it ended; writing
      // later rows would leave a gap, so nothing more is written.
      if (!failed_.ok()) batch.clear();
      Seq pending_rows = rows_since_checkpoint_ + static_cast<Seq>(batch.size());
      bool want = pending_rows > 0 &&
                  (checkpoint_requested_ || pending_rows >= options_.checkpoint_every_rows ||
                   due() || (closing_ && queue_.empty()));
      if (want && failed_.ok()) checkpoint_seq = next_seq_++;
      checkpoint_requested_ = false;
      checkpoint_timer_due_ = false;
      stop = closing_ && queue_.empty();
    }
    space_cv_.notify_all();
    if (!batch.empty() || checkpoint_seq) {
      Status s = write_batch(batch, checkpoint_seq);
      Seq durable = 0;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (s.ok()) {
          durable_.store(last_seq_, std::memory_order_release);
          durable = last_seq_;
          if (checkpoint_seq) last_checkpoint_seq_ = checkpoint_seq;
        } else if (failed_.ok()) {
          spdlog::error("audit log {}: write failed, no further records accepted: {}", path_,
                        s.message());
          failed_ = s;
        }
      }
      durable_cv_.notify_all();
      space_cv_.notify_all();
      batch.clear();
      if (durable) {
        std::lock_guard<std::mutex> l(listener_mu_);
        if (listener_) listener_(durable);
      }
    }
    if (stop) break;
  }
}

Status SqliteAuditStore::insert_row(Table t, Seq seq, const std::vector<Value>& values) {
  encode_buf_.clear();
  internal::encode_row(t, seq, values, &encode_buf_);
  Hash h = internal::row_hash(last_hash_, encode_buf_);
  Stmt& st = insert_[static_cast<int>(t) - 1];
  const auto& columns = internal::table_spec(t).columns;
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
  st.bind_blob(i++, internal::bytes(last_hash_));
  st.bind_blob(i++, internal::bytes(h));
  MEDIC_RETURN_IF_ERROR(st.run());
  last_hash_ = h;
  last_seq_ = seq;
  ++rows_since_checkpoint_;
  return {};
}

Status SqliteAuditStore::insert_pending(const Pending& p) {
  switch (p.table) {
    case Table::kEvidence: {
      const Evidence& e = p.rec.evidence;
      return insert_row(
          p.table, p.seq,
          {Value::of(ns(e.received_at)), Value::of(p.sender), Value::of(e.sender_name),
           Value::of(int64_t{p.kind}), Value::of(p.host), Value::of(e.envelope)});
    }
    case Table::kDecisions: {
      const Decision& d = p.rec.decision;
      std::string policies = dump_json(Json(d.policies_passed));
      std::string refs = internal::encode_refs(d.evidence);
      return insert_row(
          p.table, p.seq,
          {Value::of(d.id), Value::of(ns(d.at)), Value::of(d.rule), Value::of(d.rule_version),
           Value::of(d.vm), Value::of(d.host), Value::of(d.verb), Value::of(int64_t{d.ladder_step}),
           Value::of(outcome_name(d.outcome)), Value::of(d.policy), Value::of(d.reason),
           Value::of(policies), Value::of(refs), Value::of(d.action_id),
           Value::of(ns(d.action_expires_at))});
    }
    case Table::kTransitions: {
      const Transition& t = p.rec.transition;
      return insert_row(
          p.table, p.seq,
          {Value::of(t.action_id), Value::of(ns(t.at)), Value::of(state_name(t.state)),
           Value::of(t.actor), Value::of(t.detail), Value::of(t.ref)});
    }
    case Table::kRequests: {
      const OperatorRequest& q = p.rec.request;
      return insert_row(
          p.table, p.seq,
          {Value::of(ns(q.received_at)), Value::of(q.operator_name), Value::of(p.sender),
           Value::of(q.verb), Value::of(q.target), Value::of(int64_t{q.accepted ? 1 : 0}),
           Value::of(q.detail), Value::of(q.envelope)});
    }
    case Table::kVerdicts: {
      const HealVerdict& v = p.rec.verdict;
      return insert_row(p.table, p.seq,
                        {Value::of(v.action_id), Value::of(ns(v.at)),
                         Value::of(int64_t{v.healed ? 1 : 0}), Value::of(v.detail),
                         Value::of(v.next), Value::of(v.ref)});
    }
    case Table::kCheckpoints: break;
  }
  return internal_error("unexpected pending row");
}

Status SqliteAuditStore::write_head() {
  const int64_t at = write_at_ns_;
  std::string msg = internal::head_signing_input(last_seq_, last_hash_, at);
  auto sig = engine_.sign(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  head_stmt_.bind(1, last_seq_);
  head_stmt_.bind_blob(2, internal::bytes(last_hash_));
  head_stmt_.bind(3, at);
  head_stmt_.bind_blob(4, engine_.public_key().data(), 32);
  head_stmt_.bind_blob(5, sig.data(), sig.size());
  return head_stmt_.run();
}

Status SqliteAuditStore::write_batch(std::vector<Pending>& batch, Seq checkpoint_seq) {
  Hash saved_hash = last_hash_;
  Seq saved_seq = last_seq_;
  Seq saved_rows = rows_since_checkpoint_;
  Status s = db_.exec("BEGIN IMMEDIATE");
  for (size_t i = 0; s.ok() && i < batch.size(); ++i) s = insert_pending(batch[i]);
  if (s.ok() && checkpoint_seq) {
    const int64_t at = write_at_ns_;
    std::string msg = internal::checkpoint_signing_input(last_seq_, last_hash_, at);
    auto sig = engine_.sign(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
    std::string covers_hash(internal::bytes(last_hash_));
    std::string signer(reinterpret_cast<const char*>(engine_.public_key().data()), 32);
    std::string signature(reinterpret_cast<const char*>(sig.data()), sig.size());
    s = insert_row(Table::kCheckpoints, checkpoint_seq,
                   {Value::of(at), Value::of(last_seq_), Value::of(covers_hash), Value::of(signer),
                    Value::of(signature)});
  }
  if (s.ok()) s = write_head();
  if (s.ok()) s = db_.exec("COMMIT");
  if (!s.ok()) {
    (void)db_.exec("ROLLBACK");
    last_hash_ = saved_hash;
    last_seq_ = saved_seq;
    rows_since_checkpoint_ = saved_rows;
    return s;
  }
  if (checkpoint_seq) rows_since_checkpoint_ = 0;
  return {};
}

void SqliteAuditStore::arm_checkpoint_timer() {
  checkpoint_timer_ = clock_.schedule_after(options_.checkpoint_every, [this] {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closing_) return;
      note_time();
      checkpoint_timer_due_ = true;
    }
    writer_cv_.notify_one();
    arm_checkpoint_timer();
  });
}

}  // namespace

Result<AuditStorePtr> open_sqlite_store(const std::string& path, Clock& clock,
                                        const fabric::Identity& engine, StoreOptions options) {
  if (options.checkpoint_every_rows < 1) options.checkpoint_every_rows = 1;
  if (options.max_queued < 1) options.max_queued = 1;
  // A period of 0 would make the checkpoint timer fire forever at one instant.
  options.checkpoint_every = std::max<Duration>(options.checkpoint_every, std::chrono::milliseconds(1));
  auto store = std::make_unique<SqliteAuditStore>(path, clock, engine, options);
  Status s = store->open();
  if (!s.ok()) return s;
  return AuditStorePtr(std::move(store));
}

}  // namespace medic::audit
