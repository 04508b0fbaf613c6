// The engine's safety state across restarts, and degraded mode.
//
// restore_state(): the StateStore's rows -> rules::Engine::restore(), the
// replay guards' marks, a full absence window for every VM. commit_state():
// what the rules engine changed in this loop step (take_changes) and the
// marks that moved, as rows of the step's unit. check_health(): the audit
// log's write health turns reading (and so deciding and dispatching) off
// and on.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "node/engine_node.h"
#include "node/engine_state_rows.h"

namespace medic::node {
namespace {

// How often VMs whose stored last-seen time lags are written again, and how
// often replay marks are written when no decision carries them.
constexpr Duration kSeenRefreshEvery = std::chrono::seconds(10);
constexpr Duration kMarksEvery = std::chrono::seconds(1);

// Incidents of rules that are gone, or whose ladder no longer has their step,
// cannot be carried on: dropped (their VM's budget and cooldown stay).
void drop_orphans(const rules::RuleSet& rules, rules::EngineState* s) {
  std::erase_if(s->incidents, [&](const rules::IncidentRecord& r) {
    if (rules::is_request_rule(r.rule)) return false;  // built in: always there
    const rules::Rule* rule = rules.find(r.rule);
    if (rule && r.step < rule->ladder.size()) return false;
    spdlog::warn("engine: incident {} of rule {} not restored: the rule {}", r.key, r.rule,
                 rule ? "has fewer steps now" : "is gone");
    return true;
  });
}

}  // namespace

Status EngineNode::restore_state(const rules::RuleSet& rules) {
  const auto started = std::chrono::steady_clock::now();
  auto rows = store_->load_state();
  if (!rows.ok()) return rows.status().with_context("reading the engine state");
  auto stored = decode_state_rows(*rows);
  if (!stored.ok()) return stored.status();
  stats_.restored_rows = stored->rows;
  if (stored->rows == 0) return {};
  rules::EngineState& s = stored->engine;
  drop_orphans(rules, &s);
  for (const auto& f : s.in_flight) restored_watch_[f.action_id] = f.heal_within;
  for (const auto& r : s.incidents) {
    if (!r.action_id.empty() && r.waiting_on == rules::Policy::kApproval) {
      restored_approvals_[r.action_id] = true;
    }
  }
  MEDIC_RETURN_IF_ERROR(engine_->restore(s).with_context("restoring the engine state"));
  engine_->grant_absence_grace();
  receiver_->opener().restore_marks(stored->event_marks);
  control_->opener().restore_marks(stored->control_marks);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  spdlog::info(
      "engine: restored {} VMs, {} hosts, {} incidents, {} actions in flight, {} silences, {} "
      "replay marks in {} ms",
      s.vms.size(), s.hosts.size(), s.incidents.size(), s.in_flight.size(), s.silences.size(),
      stored->event_marks.size() + stored->control_marks.size(), ms);
  return {};
}

// `all_marks`: write every moved replay mark now (start, shutdown).
void EngineNode::commit_state(bool all_marks) {
  const Time now = party_.clock.now();
  const bool refresh = now >= next_seen_refresh_;
  if (refresh) next_seen_refresh_ = now + kSeenRefreshEvery;
  std::vector<audit::StateRow> rows;
  append_state_rows(engine_->take_changes(refresh), &rows);
  // Marks ride along with any state change (a decision is one), else once a
  // second: a replayed envelope that led to a decision is always refused.
  if (all_marks || !rows.empty() || now >= next_marks_) {
    next_marks_ = now + kMarksEvery;
    append_replay_rows(ReplayLane::kEvents, receiver_->opener().take_moved_marks(), &rows);
    append_replay_rows(ReplayLane::kControl, control_->opener().take_moved_marks(), &rows);
  }
  stats_.state_rows += rows.size();
  Status s = store_->commit_unit(std::move(rows));
  if (!s.ok()) {
    ++stats_.audit_errors;
    spdlog::error("engine: state not committed: {}", s.message());
  }
}

void EngineNode::check_health() {
  Status h = store_->write_health();
  if (h.ok() == degraded_.ok()) {
    if (!h.ok()) degraded_ = h;  // the cause may change while degraded
    return;
  }
  degraded_ = h;
  if (!h.ok()) {
    ++stats_.degraded_spells;
    spdlog::error(
        "engine: degraded: the audit log cannot be written ({}); not reading events or "
        "actuator results, dispatching nothing, until it can",
        h.message());
    set_reading(false);
  } else {
    spdlog::info("engine: the audit log is writable again; deciding and dispatching resume");
    set_reading(true);
  }
}

void EngineNode::set_reading(bool on) {
  if (!on) {
    for (auto id : reading_) loop_->remove(id);
    reading_.clear();
    return;
  }
  if (!reading_.empty()) return;
  reading_.push_back(loop_->watch_socket(receiver_->urgent_socket().handle(), drain_));
  reading_.push_back(loop_->watch_socket(receiver_->bulk_socket().handle(), drain_));
  reading_.push_back(loop_->watch_socket(dispatcher_->socket().handle(),
                                         [this] { dispatcher_->handle_readable(); }));
}

}  // namespace medic::node
