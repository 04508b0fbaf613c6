// AuditReader: the read-only queries behind `medic audit list/show/why/export`.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "audit/chain.h"
#include "audit/cursor.h"
#include "audit/log.h"
#include "audit/render_parts.h"
#include "audit/sqlite_db.h"
#include "core/json.h"

namespace medic::audit {

using internal::Db;
using internal::Stmt;

struct AuditReader::Impl {
  Db db;
};

AuditReader::AuditReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AuditReader::AuditReader(AuditReader&&) noexcept = default;
AuditReader& AuditReader::operator=(AuditReader&&) noexcept = default;
AuditReader::~AuditReader() = default;

namespace {

const char* kDecisionColumns =
    "d.seq, d.decision_id, d.at_ns, d.rule, d.rule_version, d.vm, d.host, d.verb, d.ladder_step, "
    "d.outcome, d.policy, d.reason, d.policies_passed, d.evidence, d.action_id, d.expires_ns";
constexpr int kDecisionColumnCount = 16;

// policies_passed is stored as a JSON array of strings; false for anything else.
bool parse_string_array(const std::string& text, std::vector<std::string>* out) {
  auto j = parse_json(text);
  if (!j.ok() || !j->is_array()) return false;
  out->clear();
  for (const auto& item : *j) {
    if (!item.is_string()) return false;
    out->push_back(item.get<std::string>());
  }
  return true;
}

Result<StoredDecision> read_decision(const Stmt& st) {
  StoredDecision d;
  d.seq = st.i64(0);
  d.id = st.text(1);
  d.at = from_ns(st.i64(2));
  d.rule = st.text(3);
  d.rule_version = st.text(4);
  d.vm = st.text(5);
  d.host = st.text(6);
  d.verb = st.text(7);
  d.ladder_step = static_cast<int32_t>(st.i64(8));
  auto outcome = internal::stored_outcome(st.text(9), d.seq);
  if (!outcome.ok()) return outcome.status();
  d.outcome = *outcome;
  d.policy = st.text(10);
  d.reason = st.text(11);
  if (!parse_string_array(st.text(12), &d.policies_passed)) {
    d.policies_passed = {st.text(12)};  // not ours, but show what is there
  }
  (void)internal::decode_refs(st.text(13), &d.evidence);
  d.action_id = st.text(14);
  d.action_expires_at = from_ns(st.i64(15));
  return d;
}

void copy_key(const std::string& bytes, fabric::PublicKey* out) {
  if (bytes.size() == out->size()) std::copy(bytes.begin(), bytes.end(), out->begin());
}

}  // namespace

Result<AuditReader> AuditReader::open(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) {
    return not_found("no audit log at " + path);
  }
  auto db = Db::open(path, true);
  if (!db.ok()) return db.status();
  auto check = db->prepare("SELECT 1 FROM sqlite_master WHERE name = 'decisions'");
  if (!check.ok()) return check.status().with_context(path + " is not a medic audit log");
  auto row = check->step();
  if (!row.ok() || !*row) return invalid_argument(path + " is not a medic audit log");
  auto impl = std::make_unique<Impl>();
  impl->db = std::move(*db);
  return AuditReader(std::move(impl));
}

namespace {
Status read_referenced(Db& db, const std::set<Seq>& refs, ActionHistory* h,
                       std::set<Seq>* seen_requests);

// Each row's VM name, as the signed evidence of its decision gives it (a
// state report's `name` label, a lifecycle event's vm_name); one lookup per VM.
Status name_vms(Db& db, std::vector<ActionSummary>* rows) {
  std::map<std::string, std::string> names;
  for (ActionSummary& r : *rows) {
    const std::string& vm = r.decision.vm;
    if (vm.empty()) continue;
    auto it = names.find(vm);
    if (it == names.end()) {
      std::set<Seq> refs;
      for (const auto& e : r.decision.evidence) refs.insert(e.evidence);
      ActionHistory h;
      std::set<Seq> seen;
      MEDIC_RETURN_IF_ERROR(read_referenced(db, refs, &h, &seen));
      it = names.emplace(vm, internal::vm_name_in(h, vm)).first;
    }
    r.vm_name = it->second;
  }
  return Status();
}
}  // namespace

Result<std::vector<ActionSummary>> AuditReader::list(const ListFilter& f) {
  if (!f.status.empty() && !parse_action_state(f.status).ok() &&
      !parse_decision_outcome(f.status).ok()) {
    return invalid_argument("unknown status '" + f.status +
                            "'; use one of proposed, suppressed, pending_approval, dry_run, "
                            "approved, denied, expired, dispatched, acked, succeeded, failed, "
                            "timed_out, rejected");
  }
  std::string sql = std::string("SELECT ") + kDecisionColumns +
                    ", (SELECT t.state FROM transitions t WHERE t.action_id = d.action_id AND "
                    "d.action_id != '' ORDER BY t.seq DESC LIMIT 1) AS state, "
                    "(SELECT t.at_ns FROM transitions t WHERE t.action_id = d.action_id AND "
                    "d.action_id != '' ORDER BY t.seq DESC LIMIT 1) AS updated, "
                    "(SELECT max(t.seq) FROM transitions t WHERE t.action_id = d.action_id AND "
                    "d.action_id != '') AS state_seq "
                    "FROM decisions d WHERE 1 = 1";
  if (!f.vm.empty()) sql += " AND d.vm = ?1";
  if (!f.host.empty()) sql += " AND d.host = ?2";
  if (!f.rule.empty()) sql += " AND d.rule = ?3";
  if (!f.status.empty()) sql += " AND (d.outcome = ?4 OR state = ?4)";
  if (f.since) sql += " AND d.at_ns >= ?5";
  if (f.until) sql += " AND d.at_ns < ?6";
  sql += " ORDER BY d.seq DESC";
  if (f.limit > 0) sql += " LIMIT ?7";
  auto st = impl_->db.prepare(sql);
  if (!st.ok()) return st.status();
  if (!f.vm.empty()) st->bind(1, f.vm);
  if (!f.host.empty()) st->bind(2, f.host);
  if (!f.rule.empty()) st->bind(3, f.rule);
  if (!f.status.empty()) st->bind(4, f.status);
  if (f.since) st->bind(5, to_ns(*f.since));
  if (f.until) st->bind(6, to_ns(*f.until));
  if (f.limit > 0) st->bind(7, f.limit);
  std::vector<ActionSummary> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ActionSummary s;
    auto decision = read_decision(*st);
    if (!decision.ok()) return decision.status();
    s.decision = std::move(*decision);
    if (!st->is_null(kDecisionColumnCount)) {
      auto state = internal::stored_state(st->text(kDecisionColumnCount),
                                          st->i64(kDecisionColumnCount + 2));
      if (!state.ok()) return state.status();
      s.state = *state;
      s.updated_at = from_ns(st->i64(kDecisionColumnCount + 1));
    } else {
      s.updated_at = s.decision.at;
    }
    out.push_back(std::move(s));
  }
  if (Status named = name_vms(impl_->db, &out); !named.ok()) return named;
  return out;
}

namespace {

constexpr const char* kRequestColumns =
    "SELECT seq, received_ns, operator_name, sender, verb, target, accepted, detail, envelope "
    "FROM operator_requests ";

StoredRequest read_request(const Stmt& st) {
  StoredRequest q;
  q.seq = st.i64(0);
  q.received_at = from_ns(st.i64(1));
  q.operator_name = st.text(2);
  copy_key(st.blob(3), &q.sender);
  q.verb = st.text(4);
  q.target = st.text(5);
  q.accepted = st.i64(6) != 0;
  q.detail = st.text(7);
  q.envelope = st.blob(8);
  return q;
}

StoredEvidence read_evidence(const Stmt& st) {
  StoredEvidence e;
  e.seq = st.i64(0);
  e.received_at = from_ns(st.i64(1));
  copy_key(st.blob(2), &e.sender);
  e.sender_name = st.text(3);
  e.kind = static_cast<int32_t>(st.i64(4));
  e.host = st.text(5);
  e.envelope = st.blob(6);
  return e;
}

// The decision whose action id is `id`, else whose decision id is.
Result<StoredDecision> find_decision(Db& db, const std::string& id) {
  auto st = db.prepare(std::string("SELECT ") + kDecisionColumns +
                       " FROM decisions d WHERE d.action_id = ?1 OR d.decision_id = ?1 "
                       "ORDER BY (d.action_id = ?1) DESC, d.seq LIMIT 1");
  if (!st.ok()) return st.status();
  st->bind(1, id);
  auto row = st->step();
  if (!row.ok()) return row.status();
  if (!*row) return not_found("no action or decision with id '" + id + "' in the audit log");
  return read_decision(*st);
}

// Appends the transitions of `action_id` in order, and the rows they rest on to *refs.
Status read_transitions(Db& db, const std::string& action_id,
                        std::vector<StoredTransition>* out, std::set<Seq>* refs) {
  auto st = db.prepare(
      "SELECT seq, action_id, at_ns, state, actor, detail, ref FROM transitions WHERE action_id "
      "= ? ORDER BY seq");
  if (!st.ok()) return st.status();
  st->bind(1, action_id);
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredTransition t;
    t.seq = st->i64(0);
    t.action_id = st->text(1);
    t.at = from_ns(st->i64(2));
    auto state = internal::stored_state(st->text(3), t.seq);
    if (!state.ok()) return state.status();
    t.state = *state;
    t.actor = st->text(4);
    t.detail = st->text(5);
    t.ref = st->i64(6);
    if (t.ref) refs->insert(t.ref);
    out->push_back(std::move(t));
  }
  return Status();
}

// For each referenced row, the evidence or operator request it is; the seqs
// of the requests found go to *seen_requests.
Status read_referenced(Db& db, const std::set<Seq>& refs, ActionHistory* h,
                       std::set<Seq>* seen_requests) {
  auto ev = db.prepare(
      "SELECT seq, received_ns, sender, sender_name, kind, host, envelope FROM evidence WHERE seq "
      "= ?");
  if (!ev.ok()) return ev.status();
  auto rq = db.prepare(std::string(kRequestColumns) + "WHERE seq = ?");
  if (!rq.ok()) return rq.status();
  for (Seq seq : refs) {
    ev->bind(1, seq);
    auto row = ev->step();
    if (!row.ok()) return row.status();
    if (*row) h->evidence.push_back(read_evidence(*ev));
    ev->reset();
    rq->bind(1, seq);
    row = rq->step();
    if (!row.ok()) return row.status();
    if (*row) {
      h->requests.push_back(read_request(*rq));
      seen_requests->insert(seq);
    }
    rq->reset();
  }
  return Status();
}

// Appends the requests about `action_id` that are not in `seen` (refused ones).
Status read_other_requests(Db& db, const std::string& action_id, const std::set<Seq>& seen,
                           std::vector<StoredRequest>* out) {
  auto st = db.prepare(std::string(kRequestColumns) + "WHERE target = ? ORDER BY seq");
  if (!st.ok()) return st.status();
  st->bind(1, action_id);
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (!seen.count(st->i64(0))) out->push_back(read_request(*st));
  }
  return Status();
}

constexpr const char* kVerdictColumns =
    "SELECT seq, action_id, at_ns, healed, detail, next_id, ref FROM heal_verdicts ";

StoredVerdict read_verdict(const Stmt& st) {
  StoredVerdict v;
  v.seq = st.i64(0);
  v.action_id = st.text(1);
  v.at = from_ns(st.i64(2));
  v.healed = st.i64(3) != 0;
  v.detail = st.text(4);
  v.next = st.text(5);
  v.ref = st.i64(6);
  return v;
}

// The verdicts whose `column` is `value`, in order; none in a log written
// before heal verdicts were recorded.
Result<std::vector<StoredVerdict>> read_verdicts(Db& db, const char* column,
                                                 const std::string& value) {
  std::vector<StoredVerdict> out;
  auto present = internal::has_table(db, "heal_verdicts");
  if (!present.ok()) return present.status();
  if (!*present || value.empty()) return out;
  auto st = db.prepare(std::string(kVerdictColumns) + "WHERE " + column + " = ? ORDER BY seq");
  if (!st.ok()) return st.status();
  st->bind(1, value);
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(read_verdict(*st));
  }
  return out;
}

// The ladder steps either side of `h`: the one whose verdict names this
// decision as next, and the one this decision's last verdict names.
Status read_ladder_links(Db& db, ActionHistory* h) {
  auto before = read_verdicts(db, "next_id", h->decision.id);
  if (!before.ok()) return before.status();
  if (!before->empty()) {
    auto d = find_decision(db, before->back().action_id);
    if (d.ok()) h->previous = LadderLink{std::move(*d), before->back()};
  }
  if (!h->verdicts.empty() && !h->verdicts.back().next.empty()) {
    auto d = find_decision(db, h->verdicts.back().next);
    if (d.ok()) h->next = std::move(*d);
  }
  return Status();
}

}  // namespace

Result<ActionHistory> AuditReader::history(const std::string& id) {
  ActionHistory h;
  auto decision = find_decision(impl_->db, id);
  if (!decision.ok()) return decision.status();
  h.decision = std::move(*decision);
  std::set<Seq> refs;
  for (const auto& r : h.decision.evidence) refs.insert(r.evidence);
  const std::string& action_id = h.decision.action_id;
  if (!action_id.empty()) {
    MEDIC_RETURN_IF_ERROR(read_transitions(impl_->db, action_id, &h.transitions, &refs));
  }
  auto verdicts = read_verdicts(impl_->db, "action_id", action_id.empty() ? h.decision.id : action_id);
  if (!verdicts.ok()) return verdicts.status();
  h.verdicts = std::move(*verdicts);
  for (const auto& v : h.verdicts) {
    if (v.ref) refs.insert(v.ref);
  }
  MEDIC_RETURN_IF_ERROR(read_ladder_links(impl_->db, &h));
  std::set<Seq> seen_requests;
  MEDIC_RETURN_IF_ERROR(read_referenced(impl_->db, refs, &h, &seen_requests));
  // Requests about this action that no transition rests on (refused ones).
  if (!action_id.empty()) {
    MEDIC_RETURN_IF_ERROR(read_other_requests(impl_->db, action_id, seen_requests, &h.requests));
  }
  std::sort(h.requests.begin(), h.requests.end(),
            [](const auto& a, const auto& b) { return a.seq < b.seq; });
  return h;
}

Status AuditReader::export_jsonl(const std::function<void(const std::string&)>& out) {
  MEDIC_RETURN_IF_ERROR(impl_->db.exec("BEGIN"));
  auto cursor = internal::ChainCursor::open(impl_->db);
  if (!cursor.ok()) {
    (void)impl_->db.exec("ROLLBACK");
    return cursor.status();
  }
  internal::ChainRow row;
  Status s;
  while (true) {
    auto more = cursor->next(&row);
    if (!more.ok()) {
      s = more.status();
      break;
    }
    if (!*more) break;
    const auto& spec = internal::table_spec(row.table);
    Json o = {{"seq", row.seq}, {"table", spec.name}};
    for (size_t i = 0; i < spec.columns.size(); ++i) {
      const auto& v = row.values[i];
      const std::string name(spec.columns[i].name);
      if (v.is_int) {
        o[name] = v.i;
      } else if (spec.columns[i].is_blob) {
        o[name] = internal::hex(v.s);
      } else {
        o[name] = v.s;
      }
    }
    o["prev_hash"] = internal::hex(row.prev_hash);
    o["hash"] = internal::hex(row.hash);
    out(dump_json(o));
  }
  (void)impl_->db.exec("COMMIT");
  return s;
}

Result<std::vector<StoredCheckpoint>> AuditReader::checkpoints() {
  auto st = impl_->db.prepare(
      "SELECT seq, at_ns, covers, covers_hash, signer FROM checkpoints ORDER BY seq");
  if (!st.ok()) return st.status();
  std::vector<StoredCheckpoint> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredCheckpoint c;
    c.seq = st->i64(0);
    c.at = from_ns(st->i64(1));
    c.covers = st->i64(2);
    c.covers_hash = st->blob(3);
    copy_key(st->blob(4), &c.signer);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace medic::audit
