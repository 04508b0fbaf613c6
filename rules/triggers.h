// Triggers: what makes a rule fire for a VM. `on:` fires on a matching event,
// `count:` when N matching events arrive within a window, `absent:` when a
// signal has not arrived for a while.
//
// Contract:
// - A Trigger names the rule, the VM (a Fleet index), the incident key it
//   belongs to, what fired in words, and its evidence.
// - CountWindows and AbsenceWatch keep the per-key state of count: and
//   absent: rules; neither reads the clock except through what it is given.
//   AbsenceWatch owns one timer on the Clock for the earliest deadline and
//   calls its `on_due` callback when it passes.
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "medic/v1/events.pb.h"
#include "rules/absence.h"
#include "rules/decision.h"
#include "rules/rule.h"

namespace medic::rules {

struct Trigger {
  RulePtr rule;
  uint32_t vm = 0;
  std::string key;    // the incident key (incident_key)
  std::string probe;  // set when the rule is keyed by probe.name or alert.name
  std::vector<EvidenceRef> evidence;
  std::string what;  // "vm.panicked", "no vm.heartbeat for 30s", ...
};

// The probe's name of a probe result, the alert's of an alert; else "". An
// incident keyed by one is healed only by an event of the same name.
const std::string& signal_name(const medic::v1::Event& e);

// The incident key of rule `r` for a VM: the rule name and its `key:` fields,
// unit-separated, into `*k` (reusing its buffer); `vm.id` is the VM's host
// and id (record-separated), so incidents are per (host, VM) and one host's
// report of a VM id never joins another host's incident. `e` is null for
// absence.
void incident_key(const Rule& r, const VmFacts& vm, const medic::v1::Event* e, std::string* k);
// The words for what fired an on:/count: rule on event `e` of type `type`.
std::string describe_event_trigger(const Rule& r, EventType type, const medic::v1::Event& e);
// The words for an absence: "no vm.heartbeat for 30s".
std::string describe_absence(const Rule& r);

// Sliding windows of event times per incident key, for count: rules.
class CountWindows {
 public:
  // Records an event at `now` for `key`; true when it makes `r.count` within
  // `r.within` (the window then starts afresh).
  bool reached(const Rule& r, const std::string& key, int64_t now);
  const std::unordered_map<std::string, std::vector<int64_t>>& windows() const { return times_; }
  void restore(std::string key, std::vector<int64_t> times) {
    times_[std::move(key)] = std::move(times);
  }

 private:
  std::unordered_map<std::string, std::vector<int64_t>> times_;
};

// One AbsenceTracker per absent: rule, keyed by VM index.
class AbsenceWatch {
 public:
  // Called when a deadline may have passed; pop_due() says which.
  using OnDue = std::function<void()>;
  AbsenceWatch(Clock& clock, OnDue on_due);
  ~AbsenceWatch();
  AbsenceWatch(const AbsenceWatch&) = delete;
  AbsenceWatch& operator=(const AbsenceWatch&) = delete;

  // Takes the absent: rules of `rules`. Trackers of rules that keep their name
  // and signal carry over; new ones arm every VM below `vm_count` at now.
  void rebuild(const RuleSet& rules, size_t vm_count, int64_t now);
  // VM `v` is new, or back after being forgotten: arm every absent: rule.
  void arm_all(uint32_t v, int64_t now);
  // A `type` event arrived from VM `v`: refresh the rules it is the signal of.
  void signalled(const RuleSet& rules, EventType type, uint32_t v, int64_t now);
  // Re-arms every absent: rule for the VMs listed, a full period from now.
  void rearm(const std::vector<uint32_t>& vms, int64_t now);

  // Every (rule, VM) whose deadline is <= now, disarmed, in rule order and,
  // within a rule, in VM order.
  struct Due {
    RulePtr rule;
    uint32_t vm;
  };
  void pop_due(int64_t now, std::vector<Due>* out);
  // Arms rule `r` for VM `v` at `deadline` (ns).
  void arm(const Rule& r, uint32_t v, int64_t deadline);
  // (rule name, VM, deadline) of every armed key, for a snapshot.
  template <typename F>
  void for_each_armed(size_t vm_count, F f) const {
    for (const auto& s : slots_) {
      for (uint32_t v = 0; v < vm_count; ++v) {
        if (s.tracker.armed(v)) f(*s.rule, v, s.tracker.deadline(v));
      }
    }
  }
  // Schedules the timer for the earliest deadline, if not already.
  void ensure_timer();
  size_t armed_count() const;

 private:
  struct Slot {
    RulePtr rule;
    AbsenceTracker tracker;
  };
  Clock& clock_;
  OnDue on_due_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> slot_of_rule_;  // rule index -> slot (absent: rules only)
  TimerId timer_ = 0;
  int64_t timer_at_ = std::numeric_limits<int64_t>::max();
  std::vector<AbsenceTracker::Key> due_buf_;
};

}  // namespace medic::rules
