// The fenced intent store on PostgreSQL (audit/intents.h).
#include "audit/intents.h"

#include <optional>

#include "audit/pg_chain.h"
#include "audit/pg_connection.h"
#include "audit/pg_schema.h"

namespace medic::audit {
namespace {

using internal::PgConnection;

// The lease check and the insert are one statement; FOR SHARE keeps the
// lease row from being taken over until this transaction ends.
constexpr const char* kInsertIntent =
    "INSERT INTO medic_intents (shard, incident, step, action_id, epoch, holder, decision_id,"
    " host, vm, verb)"
    " SELECT l.shard, $2::text, $3::int, $4::text, l.epoch, l.holder, $7::text, $8::text,"
    " $9::text, $10::text FROM medic_leases l"
    " WHERE l.shard = $1 AND l.holder = $6 AND l.epoch = $5 AND l.expires_at > now()"
    " FOR SHARE"
    " ON CONFLICT (shard, incident, step) DO NOTHING RETURNING action_id";
constexpr const char* kLeaseHolds =
    "SELECT holder = $2 AND epoch = $3 AND expires_at > now() FROM medic_leases WHERE shard = $1";
constexpr const char* kExisting =
    "SELECT action_id, epoch FROM medic_intents WHERE shard = $1 AND incident = $2 AND step = $3";

Status check_intent(const Fence& fence, const Intent& in, int shard_count) {
  const Decision& d = in.decision;
  if (fence.shard < 0 || fence.shard >= shard_count) {
    return invalid_argument("shard " + std::to_string(fence.shard) + " is outside 0.." +
                            std::to_string(shard_count - 1));
  }
  if (fence.holder.empty()) return invalid_argument("an intent's fence names no holder");
  if (in.incident.empty()) return invalid_argument("intent for " + d.action_id + " names no incident");
  if (d.id.empty() || d.action_id.empty() || d.rule.empty() || d.verb.empty()) {
    return invalid_argument("an intent's decision needs an id, an action id, a rule and a verb");
  }
  if (d.outcome != DecisionOutcome::kProposed && d.outcome != DecisionOutcome::kPendingApproval) {
    return invalid_argument(std::string("decision ") + d.id + " (" + outcome_name(d.outcome) +
                            ") creates no action to intend");
  }
  std::optional<ActionState> state;
  for (const Transition& t : internal::first_transitions(d)) state = t.state;
  for (const Transition& t : in.transitions) {
    if (t.action_id != d.action_id) {
      return invalid_argument("transition for " + t.action_id + " in the intent of " + d.action_id);
    }
    if (!transition_allowed(state, t.state)) {
      return failed_precondition("action " + d.action_id + " cannot move from " +
                                 state_name(*state) + " to " + state_name(t.state));
    }
    state = t.state;
  }
  return {};
}

class PgIntentStore final : public IntentStore {
 public:
  PgIntentStore(const std::string& url, int shard_count, Duration statement_timeout)
      : db_(url, statement_timeout), shard_count_(shard_count) {}

  Status open() {
    return db_.transact(
        [&](pqxx::work& tx) { return internal::ensure_cluster_schema(tx, shard_count_); });
  }

  Result<IntentResult> record(const Fence& fence, Intent intent) override {
    MEDIC_RETURN_IF_ERROR(check_intent(fence, intent, shard_count_));
    IntentResult out;
    MEDIC_RETURN_IF_ERROR(db_.transact([&](pqxx::work& tx) {
      out = {};
      const Decision& d = intent.decision;
      pqxx::result r = tx.exec_params(kInsertIntent, fence.shard, intent.incident, intent.step,
                                      d.action_id, fence.epoch, fence.holder, d.id, d.host, d.vm,
                                      d.verb);
      if (r.empty()) return explain_no_insert(tx, fence, intent, &out);
      out = {IntentOutcome::kInserted, d.action_id, fence.epoch, 0};
      return append_audit(tx, fence, intent, &out.last_seq);
    }));
    return out;
  }

  Result<std::vector<StoredIntent>> intents(int shard) override {
    std::vector<StoredIntent> out;
    MEDIC_RETURN_IF_ERROR(db_.transact([&](pqxx::work& tx) {
      for (const auto& row : tx.exec_params(
               "SELECT shard, incident, step, action_id, epoch, holder, decision_id, host, vm,"
               " verb FROM medic_intents WHERE shard = $1 ORDER BY created_at, action_id",
               shard)) {
        out.push_back({row[0].as<int>(), row[1].as<std::string>(), row[2].as<int32_t>(),
                       row[3].as<std::string>(), row[4].as<int64_t>(), row[5].as<std::string>(),
                       row[6].as<std::string>(), row[7].as<std::string>(),
                       row[8].as<std::string>(), row[9].as<std::string>()});
      }
      return Status{};
    }));
    return out;
  }

 private:
  // Nothing was inserted: fenced, or the key is there already.
  static Status explain_no_insert(pqxx::work& tx, const Fence& fence, const Intent& intent,
                                  IntentResult* out) {
    pqxx::result lease = tx.exec_params(kLeaseHolds, fence.shard, fence.holder, fence.epoch);
    if (lease.empty() || !lease[0][0].as<bool>()) {
      out->outcome = IntentOutcome::kFenced;
      return {};
    }
    pqxx::result existing = tx.exec_params(kExisting, fence.shard, intent.incident, intent.step);
    if (existing.empty()) return internal_error("intent neither inserted nor found");
    *out = {IntentOutcome::kAlreadyRecorded, existing[0][0].as<std::string>(),
            existing[0][1].as<int64_t>(), 0};
    return {};
  }

  static Status append_audit(pqxx::work& tx, const Fence& fence, const Intent& intent, Seq* last) {
    internal::PgChainAppender chain(tx, fence.holder);
    internal::DecisionTexts texts;
    auto seq = chain.append(internal::Table::kDecisions,
                            internal::decision_values(intent.decision, &texts));
    if (!seq.ok()) return seq.status();
    std::vector<Transition> transitions = internal::first_transitions(intent.decision);
    transitions.insert(transitions.end(), intent.transitions.begin(), intent.transitions.end());
    for (const Transition& t : transitions) {
      seq = chain.append(internal::Table::kTransitions, internal::transition_values(t));
      if (!seq.ok()) return seq.status();
    }
    chain.finish();
    *last = *seq;
    return {};
  }

  PgConnection db_;
  const int shard_count_;
};

}  // namespace

const char* intent_outcome_name(IntentOutcome o) {
  switch (o) {
    case IntentOutcome::kInserted: return "inserted";
    case IntentOutcome::kAlreadyRecorded: return "already_recorded";
    case IntentOutcome::kFenced: return "fenced";
  }
  return "unknown";
}

Result<IntentStorePtr> open_pg_intent_store(const std::string& url, int shard_count,
                                            Duration statement_timeout) {
  if (shard_count <= 0) return invalid_argument("the shard count must be positive");
  auto store = std::make_unique<PgIntentStore>(url, shard_count, statement_timeout);
  MEDIC_RETURN_IF_ERROR(store->open());
  return IntentStorePtr(std::move(store));
}

}  // namespace medic::audit
