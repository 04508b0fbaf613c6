// The AuditStore: opening a log (chain end, signed head, live actions) and the
// validation of every record on the caller's thread. Appends and the writer
// thread are in chained_writer.cc; the rows' storage is the ChainBackend's.
#include "audit/chained_store.h"

namespace medic::audit::internal {

Status ChainedAuditStore::open() {
  if (!fabric::crypto_ready()) return internal_error("libsodium failed to initialise");
  bool opened_before = false;
  MEDIC_RETURN_IF_ERROR(backend_->open(engine_.id(), to_ns(clock_.now()), &opened_before));
  MEDIC_RETURN_IF_ERROR(find_chain_end());
  bool has_head = false;
  MEDIC_RETURN_IF_ERROR(check_signed_head(opened_before, &has_head));
  next_seq_ = last_seq_ + 1;
  durable_.store(last_seq_);
  rows_since_checkpoint_ = last_seq_ - last_checkpoint_seq_;
  note_time();
  arm_checkpoint_timer();
  MEDIC_RETURN_IF_ERROR(load_live_actions());
  if (!has_head) {
    // A new log gets a signed head for row 0 at once, so an empty log is
    // told apart from one whose rows and head were deleted.
    Status hs = backend_->transact([&](ChainWriter& w) { return write_head(w); });
    if (!hs.ok()) return hs.with_context("signing the head of the new audit log " + path_);
  }
  writer_ = std::thread([this] { writer_loop(); });
  return {};
}

Status ChainedAuditStore::find_chain_end() {
  auto end = backend_->chain_end();
  if (!end.ok()) return end.status();
  last_seq_ = end->last_seq;
  last_hash_ = end->last_hash;
  last_checkpoint_seq_ = end->last_checkpoint_seq;
  return {};
}

Status ChainedAuditStore::check_signed_head(bool opened_before, bool* has_head) {
  auto head = backend_->signed_head();
  if (!head.ok()) return head.status();
  *has_head = head->has_value();
  // An empty log without a head is new only if no engine opened it before:
  // otherwise its rows and head were deleted.
  const bool fresh = !*has_head && last_seq_ == 0 && !opened_before;
  if (!fresh &&
      (!*has_head || (*head)->seq != last_seq_ || (*head)->hash != internal::bytes(last_hash_))) {
    return failed_precondition(
        "audit log " + path_ + " does not end at its signed head (" +
        (*has_head ? "head says row " + std::to_string((*head)->seq) : std::string("no head")) +
        ", log ends at row " + std::to_string(last_seq_) +
        "); refusing to append to a log that may have been altered: run `medic audit verify`");
  }
  return {};
}

Status ChainedAuditStore::load_live_actions() {
  auto live = backend_->live_actions();
  if (!live.ok()) return live.status();
  for (auto& [id, state] : *live) live_.emplace(std::move(id), state);
  return {};
}

Result<std::optional<ActionState>> ChainedAuditStore::current_state(const std::string& id,
                                                                    const Overlay& overlay) {
  if (auto it = overlay.find(id); it != overlay.end()) return it->second;
  if (auto it = live_.find(id); it != live_.end()) return std::optional<ActionState>(it->second);
  if (const ActionState* s = recent_states_.find(id)) return std::optional<ActionState>(*s);
  return backend_->lookup_state(id);
}

Result<bool> ChainedAuditStore::decision_exists(const std::string& id) {
  if (recent_decisions_.find(id)) return true;
  return backend_->lookup_decision(id);
}

Status ChainedAuditStore::check_ref(Seq ref, Seq next, const char* what) const {
  if (ref < 0 || ref >= next) {
    return invalid_argument(std::string(what) + " refers to row " + std::to_string(ref) +
                            ", which does not exist (the log has " + std::to_string(next - 1) +
                            " rows)");
  }
  return {};
}

Status ChainedAuditStore::validate(Record& r, Pending* p, Overlay* overlay,
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

Status ChainedAuditStore::validate_evidence(const Evidence& e, Pending* p) {
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

Status ChainedAuditStore::check_new_decision(const Decision& d, const Overlay& overlay,
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

void ChainedAuditStore::queue_decision(Pending* p, Overlay* overlay, Seq* next,
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

Status ChainedAuditStore::validate_transition(Transition& t, Pending* p, Overlay* overlay,
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

Status ChainedAuditStore::validate_request(const OperatorRequest& q, Pending* p) {
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
Status ChainedAuditStore::validate_verdict(const HealVerdict& v, Pending* p, const Overlay& overlay,
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

namespace internal {

Result<AuditStorePtr> open_chained_store(std::unique_ptr<ChainBackend> backend, Clock& clock,
                                         const fabric::Identity& engine, StoreOptions options) {
  if (options.checkpoint_every_rows < 1) options.checkpoint_every_rows = 1;
  if (options.max_queued < 1) options.max_queued = 1;
  // A period of 0 would make the checkpoint timer fire forever at one instant.
  options.checkpoint_every =
      std::max<Duration>(options.checkpoint_every, std::chrono::milliseconds(1));
  auto store = std::make_unique<ChainedAuditStore>(std::move(backend), clock, engine, options);
  MEDIC_RETURN_IF_ERROR(store->open());
  return AuditStorePtr(std::move(store));
}

}  // namespace internal

Result<AuditStorePtr> open_sqlite_store(const std::string& path, Clock& clock,
                                        const fabric::Identity& engine, StoreOptions options) {
  return internal::open_chained_store(internal::sqlite_backend(path, options.durability), clock,
                                      engine, options);
}

}  // namespace medic::audit
