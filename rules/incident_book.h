// The incident book: one incident per (rule, key) while a trigger is being
// dealt with, each a small state machine keyed by a typed IncidentId.
//
//   open ──> acting ──> watching ──> (healed)
//    │  ^      │           │
//    │  └──────┴───────────┘  the step did not heal: next ladder step (open)
//    ├──> watching               notify sent, or dry run
//    └──> held ──> (closed)      a silence, a silent host, a storm, a cooldown
//           │                    or a spent budget: absorbs triggers until
//           │                    the cause lifts
//           └──> open            a storm-guard settle ended with no storm
//   any live state ──> (healed | escalated | closed)
//
// - open: meeting the policy chain for its current step, or waiting there:
//   `waiting_on` says for what (kApproval: an operator's answer;
//   kHostConcurrency / kFleetConcurrency: a free action slot).
// - acting: an action is in flight (`action_id`).
// - watching: a step was taken; the heal signal has until `deadline`; a VM
//   that shows progress is watched up to the rule's boot_timeout after
//   `watch_from`.
// - held: stopped by `held_by`; `deadline` is when the hold lifts by itself
//   (0: when an event lifts it).
// - The end states are not kept: a closed incident leaves the book, and the
//   next trigger of its key opens a fresh one with a new id. healed: its heal
//   signal came; escalated: it ran its whole ladder without healing;
//   closed: suppressed, denied, expired, rejected or released from a hold.
//
// Contract: the book holds incidents and their indices (by key, by VM, by
// action id); it has no clock and emits nothing. Moving an incident between
// states goes through move_to(), which refuses a transition the diagram does
// not have.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "rules/decision.h"
#include "rules/rule.h"

namespace medic::rules {

struct IncidentId {
  uint64_t value = 0;
  bool operator==(const IncidentId&) const = default;
  explicit operator bool() const { return value != 0; }
};

enum class IncidentState : uint8_t { kOpen, kActing, kWatching, kHeld };
enum class IncidentEnd : uint8_t { kHealed, kEscalated, kClosed };
std::string_view incident_state_name(IncidentState s);
std::string_view incident_end_name(IncidentEnd e);

struct Incident {
  IncidentId id;
  std::string key;  // rule name, unit separator, key fields
  RulePtr rule;
  uint32_t vm = 0;
  uint32_t step = 0;  // 0-based ladder position
  IncidentState state = IncidentState::kOpen;
  Policy waiting_on = Policy::kNone;  // open: what it waits for, if anything
  Policy held_by = Policy::kNone;     // held: which policy holds it
  std::string action_id;              // acting; open: awaiting approval, or approved, on a slot
  TimerId timer = 0;                  // the watch or approval deadline's timer
  Time deadline{};                    // watching: heal by; awaiting approval: answer by
  std::vector<EvidenceRef> evidence;
  std::string trigger;
  std::string probe;              // set when keyed by probe.name or alert.name
  bool healed_seen = false;       // the heal signal came while acting
  bool settled = false;           // it waited out one storm-guard settle already
  bool progress = false;          // the VM showed progress since the step (boot_timeout)
  Time watch_from{};              // acting, watching: when the step was taken
  EvidenceRef healed_ref = 0;     // ... in this event
  std::string step_decision;      // the current step's decision id, for its heal verdict
  bool waiting_reported = false;  // the wait for a slot was reported once
  uint32_t approved_step = 0;     // 1-based step an operator approved
  std::string approved_by;
  bool needs_approval = false;  // a requester's request an operator must approve

  bool awaiting_approval() const {
    return state == IncidentState::kOpen && waiting_on == Policy::kApproval;
  }
  bool waiting_for_slot() const {
    return state == IncidentState::kOpen &&
           (waiting_on == Policy::kHostConcurrency || waiting_on == Policy::kFleetConcurrency);
  }
};

class IncidentBook {
 public:
  // Whether the diagram above has an edge from `from` to `to`.
  static bool allowed(IncidentState from, IncidentState to);

  // Opens an incident for `key` (which must not be open), in state open.
  // `id` 0 takes the next id.
  Incident& open(std::string key, RulePtr rule, uint32_t vm, IncidentId id = {});
  // Moves `inc` to `to`, clearing what the old state held. False (and no
  // change) when the diagram has no such edge.
  bool move_to(Incident& inc, IncidentState to);
  // Removes `inc` from the book (it is destroyed).
  void close(Incident& inc, IncidentEnd end);

  Incident* find(IncidentId id);
  Incident* find_key(const std::string& key);
  // The open incidents on VM `v`, in the order they opened (a copy: closing
  // edits the book's list).
  std::vector<Incident*> of_vm(uint32_t v) const;

  void bind_action(const std::string& action_id, IncidentId id) { by_action_[action_id] = id; }
  void unbind_action(const std::string& action_id) { by_action_.erase(action_id); }
  Incident* by_action(const std::string& action_id);
  const Incident* by_action(const std::string& action_id) const {
    return const_cast<IncidentBook*>(this)->by_action(action_id);
  }

  size_t size() const { return by_key_.size(); }
  uint64_t last_id() const { return next_id_; }
  void set_last_id(uint64_t v) { next_id_ = v; }
  uint64_t ended(IncidentEnd e) const { return ended_[static_cast<size_t>(e)]; }
  // Every open incident, in the order they opened.
  std::vector<const Incident*> all() const;

 private:
  std::unordered_map<std::string, std::unique_ptr<Incident>> by_key_;
  std::unordered_map<uint64_t, Incident*> by_id_;
  std::unordered_map<uint32_t, std::vector<Incident*>> by_vm_;
  std::unordered_map<std::string, IncidentId> by_action_;
  uint64_t next_id_ = 0;
  uint64_t ended_[3] = {0, 0, 0};
};

}  // namespace medic::rules
