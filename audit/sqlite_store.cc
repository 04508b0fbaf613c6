// The SQLite AuditStore: opening a log (schema, chain end, signed head) and
// the validation of every record on the caller's thread. Appends and the
// writer thread are in sqlite_writer.cc.
#include "audit/sqlite_store_impl.h"

namespace medic::audit::internal {

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
  MEDIC_RETURN_IF_ERROR(probe_write());
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
  Status s = db_.exec(internal::schema_sql() + state_schema_sql());
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

// An engine must not start on a log it cannot write (a full disk, a read-only
// file): it would decide and then fail to record. A small real transaction
// proves it can.
Status SqliteAuditStore::probe_write() {
  Status s = db_.exec("BEGIN IMMEDIATE");
  if (s.ok()) {
    auto st = db_.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('opened_ns', ?)");
    if (!st.ok()) {
      s = st.status();
    } else {
      st->bind(1, std::to_string(to_ns(clock_.now())));
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
  return state_writer_.prepare(db_);
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
  std::vector<Transition> follow = internal::first_transitions(d);
  out->push_back(std::move(*p));
  for (Transition& transition : follow) {
    Pending t;
    t.seq = (*next)++;
    t.table = Table::kTransitions;
    t.rec.type = Record::Type::kTransition;
    (*overlay)[transition.action_id] = transition.state;
    t.rec.transition = std::move(transition);
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

}  // namespace medic::audit::internal

namespace medic::audit {

Result<AuditStorePtr> open_sqlite_store(const std::string& path, Clock& clock,
                                        const fabric::Identity& engine, StoreOptions options) {
  if (options.checkpoint_every_rows < 1) options.checkpoint_every_rows = 1;
  if (options.max_queued < 1) options.max_queued = 1;
  // A period of 0 would make the checkpoint timer fire forever at one instant.
  options.checkpoint_every = std::max<Duration>(options.checkpoint_every, std::chrono::milliseconds(1));
  auto store = std::make_unique<internal::SqliteAuditStore>(path, clock, engine, options);
  Status s = store->open();
  if (!s.ok()) return s;
  return AuditStorePtr(std::move(store));
}

}  // namespace medic::audit
