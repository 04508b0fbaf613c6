// An AuditStore test double for the engine pipeline: rows in memory, the
// lifecycle checked with core's transition_allowed (like the real store), and
// the failures and timings the pipeline must survive on demand:
// - refuse(kind): every append of that kind fails with kUnavailable;
// - hold_durability(): appends are accepted but stay non-durable until
//   make_durable(), as when the writer thread has not committed yet;
// - crash(): forget every row that was not durable, as a killed process does.
// The rows live in a Backend the test owns; each node gets its own FakeAuditStore
// view of it, so a node can be dropped and a new one built on the same log.
// Single-threaded: the durable listener runs on the caller's thread.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "audit/log.h"

namespace medic::node::testing {

enum class RowKind { kEvidence, kDecision, kTransition, kRequest, kVerdict };

class FakeAuditBackend {
 public:
  struct Row {
    audit::Seq seq = 0;
    RowKind kind = RowKind::kEvidence;
    audit::Decision decision;      // kDecision
    audit::Transition transition;  // kTransition
    audit::OperatorRequest request;
    audit::HealVerdict verdict;  // kVerdict
  };

  void refuse(RowKind kind) { refused_.insert(kind); }
  void accept_all() { refused_.clear(); }
  void hold_durability() { hold_ = true; }
  // Makes every row durable (and keeps making new ones durable at once).
  void make_durable() {
    hold_ = false;
    set_durable(rows_.empty() ? 0 : rows_.back().seq);
  }
  // Makes rows up to `seq` durable; later ones wait (durability stays held).
  void make_durable_through(audit::Seq seq) {
    hold_ = true;
    set_durable(seq);
  }
  void crash() {
    std::erase_if(rows_, [&](const Row& r) { return r.seq > durable_; });
    listener_ = nullptr;
  }

  // The store reports `cause` from write_health() (OK clears it).
  void set_health(Status cause) { health_ = std::move(cause); }
  Status health() const { return health_; }

  const std::vector<Row>& rows() const { return rows_; }
  // The state rows, applied at commit_unit() (kind, key) -> value.
  std::vector<audit::StateRow> state() const { return state_; }
  void apply_state(const std::vector<audit::StateRow>& rows) {
    for (const auto& r : rows) {
      auto it = std::find_if(state_.begin(), state_.end(), [&](const audit::StateRow& x) {
        return x.kind == r.kind && x.key == r.key;
      });
      if (r.value.empty()) {
        if (it != state_.end()) state_.erase(it);
      } else if (it != state_.end()) {
        it->value = r.value;
      } else {
        state_.push_back(r);
      }
    }
  }
  std::vector<audit::Transition> transitions_of(const std::string& action_id) const;
  std::vector<audit::Decision> decisions() const;
  uint64_t refusals() const { return refusals_; }

  // The AuditStore operations, shared by every FakeAuditStore on this backend.
  Result<audit::Seq> append(Row row);
  // All of `rows` or none (a batch is one commit).
  Result<audit::Seq> append_all(std::vector<Row> rows) {
    const size_t before = rows_.size();
    Result<audit::Seq> last = internal_error("empty batch");
    for (auto& r : rows) {
      last = append(std::move(r));
      if (!last.ok()) {
        rows_.resize(before);
        return last;
      }
    }
    return last;
  }
  audit::Seq durable_seq() const { return durable_; }
  void on_durable(std::function<void(audit::Seq)> l) { listener_ = std::move(l); }
  std::optional<ActionState> state_of(const std::string& action_id) const;
  std::vector<audit::InFlightAction> in_flight(Time now, bool include_expired) const;

 private:
  void set_durable(audit::Seq seq);
  Status check(const Row& row) const;

  std::vector<Row> rows_;
  std::vector<audit::StateRow> state_;
  Status health_;
  std::set<RowKind> refused_;
  bool hold_ = false;
  audit::Seq durable_ = 0;
  uint64_t refusals_ = 0;
  std::function<void(audit::Seq)> listener_;
};

class FakeAuditStore final : public audit::AuditStore {
 public:
  explicit FakeAuditStore(FakeAuditBackend& backend) : backend_(backend) {}

  Result<audit::Seq> append_evidence(audit::Evidence) override;
  Result<audit::Seq> append_decision(audit::Decision d) override;
  Result<audit::Seq> append_transition(audit::Transition t) override;
  Result<audit::Seq> append_request(audit::OperatorRequest r) override;
  Result<audit::Seq> append_batch(std::vector<audit::Record> records) override;
  Status wait_durable(audit::Seq seq, Duration) override;
  audit::Seq durable_seq() const override { return backend_.durable_seq(); }
  void on_durable(std::function<void(audit::Seq)> listener) override {
    backend_.on_durable(std::move(listener));
  }
  Result<audit::Seq> checkpoint() override { return backend_.durable_seq(); }
  Result<std::optional<ActionState>> action_state(const std::string& action_id) override {
    return backend_.state_of(action_id);
  }
  Result<std::vector<audit::InFlightAction>> in_flight(Time now, bool include_expired) override {
    return backend_.in_flight(now, include_expired);
  }
  Status write_health() const override { return backend_.health(); }
  Result<std::vector<audit::StateRow>> load_state() override {
    auto rows = backend_.state();
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& a, const auto& b) { return a.kind < b.kind; });
    return rows;
  }
  void begin_unit() override {}
  Status commit_unit(std::vector<audit::StateRow> rows) override {
    if (closed_) return unavailable("closed");
    backend_.apply_state(rows);
    return {};
  }
  // Closes this view only; the backend (the "file") stays for the next node.
  Status close() override {
    closed_ = true;
    return {};
  }

 private:
  FakeAuditBackend& backend_;
  bool closed_ = false;
};

// ---- implementation -------------------------------------------------------


inline std::vector<audit::Transition> FakeAuditBackend::transitions_of(const std::string& id) const {
  std::vector<audit::Transition> out;
  for (const auto& r : rows_) {
    if (r.kind == RowKind::kTransition && r.transition.action_id == id) out.push_back(r.transition);
  }
  return out;
}

inline std::vector<audit::Decision> FakeAuditBackend::decisions() const {
  std::vector<audit::Decision> out;
  for (const auto& r : rows_) {
    if (r.kind == RowKind::kDecision) out.push_back(r.decision);
  }
  return out;
}

inline std::optional<ActionState> FakeAuditBackend::state_of(const std::string& action_id) const {
  auto ts = transitions_of(action_id);
  if (ts.empty()) return std::nullopt;
  return ts.back().state;
}

inline Status FakeAuditBackend::check(const Row& row) const {
  if (refused_.count(row.kind)) return unavailable("audit store refuses this append (test)");
  if (row.kind != RowKind::kTransition) return {};
  const auto& t = row.transition;
  if (!transition_allowed(state_of(t.action_id), t.state)) {
    return failed_precondition("illegal transition of " + t.action_id + " to " +
                               state_name(t.state));
  }
  return {};
}

inline Result<audit::Seq> FakeAuditBackend::append(Row row) {
  if (Status s = check(row); !s.ok()) {
    ++refusals_;
    return s;
  }
  row.seq = rows_.empty() ? 1 : rows_.back().seq + 1;
  rows_.push_back(row);
  // A decision's own first transitions, as the real store appends them.
  if (row.kind == RowKind::kDecision && row.decision.outcome != DecisionOutcome::kDryRun) {
    std::vector<ActionState> follow = {ActionState::kProposed};
    if (row.decision.outcome == DecisionOutcome::kPendingApproval) {
      follow.push_back(ActionState::kPendingApproval);
    }
    if (row.decision.outcome == DecisionOutcome::kSuppressed) {
      follow.push_back(ActionState::kSuppressed);
    }
    for (ActionState s : follow) {
      Row t;
      t.seq = rows_.back().seq + 1;
      t.kind = RowKind::kTransition;
      t.transition = {row.decision.action_id, row.decision.at, s, "engine", "", 0};
      rows_.push_back(t);
    }
  }
  const audit::Seq last = rows_.back().seq;
  if (!hold_) set_durable(last);
  return last;
}

inline void FakeAuditBackend::set_durable(audit::Seq seq) {
  durable_ = seq;
  if (listener_) listener_(seq);
}

inline std::vector<audit::InFlightAction> FakeAuditBackend::in_flight(Time now,
                                                               bool include_expired) const {
  std::vector<audit::InFlightAction> out;
  for (const auto& d : decisions()) {
    if (d.action_id.empty()) continue;
    auto ts = transitions_of(d.action_id);
    if (ts.empty() || is_terminal(ts.back().state)) continue;
    const bool expired = to_ns(d.action_expires_at) != 0 && d.action_expires_at <= now;
    if (expired && !include_expired) continue;
    audit::InFlightAction a;
    a.action_id = d.action_id;
    a.decision_id = d.id;
    a.state = ts.back().state;
    a.state_at = ts.back().at;
    a.rule = d.rule;
    a.rule_version = d.rule_version;
    a.vm = d.vm;
    a.host = d.host;
    a.verb = d.verb;
    a.ladder_step = d.ladder_step;
    a.expires_at = d.action_expires_at;
    out.push_back(a);
  }
  return out;
}

inline Result<audit::Seq> FakeAuditStore::append_evidence(audit::Evidence) {
  if (closed_) return unavailable("closed");
  return backend_.append({0, RowKind::kEvidence, {}, {}, {}, {}});
}

inline Result<audit::Seq> FakeAuditStore::append_decision(audit::Decision d) {
  if (closed_) return unavailable("closed");
  FakeAuditBackend::Row r;
  r.kind = RowKind::kDecision;
  r.decision = std::move(d);
  return backend_.append(std::move(r));
}

inline Result<audit::Seq> FakeAuditStore::append_transition(audit::Transition t) {
  if (closed_) return unavailable("closed");
  FakeAuditBackend::Row r;
  r.kind = RowKind::kTransition;
  r.transition = std::move(t);
  return backend_.append(std::move(r));
}

inline Result<audit::Seq> FakeAuditStore::append_request(audit::OperatorRequest q) {
  if (closed_) return unavailable("closed");
  FakeAuditBackend::Row r;
  r.kind = RowKind::kRequest;
  r.request = std::move(q);
  return backend_.append(std::move(r));
}

// The engine node batches heal verdicts and transitions.
inline Result<audit::Seq> FakeAuditStore::append_batch(std::vector<audit::Record> records) {
  if (closed_) return unavailable("closed");
  std::vector<FakeAuditBackend::Row> rows;
  for (auto& rec : records) {
    FakeAuditBackend::Row r;
    if (rec.type == audit::Record::Type::kVerdict) {
      r.kind = RowKind::kVerdict;
      r.verdict = std::move(rec.verdict);
    } else if (rec.type == audit::Record::Type::kTransition) {
      r.kind = RowKind::kTransition;
      r.transition = std::move(rec.transition);
    } else {
      return internal_error("the fake batches only heal verdicts and transitions");
    }
    rows.push_back(std::move(r));
  }
  return backend_.append_all(std::move(rows));
}

inline Status FakeAuditStore::wait_durable(audit::Seq seq, Duration) {
  if (backend_.durable_seq() >= seq) return {};
  return timeout_error("not durable (held by the test)");
}

}  // namespace medic::node::testing
