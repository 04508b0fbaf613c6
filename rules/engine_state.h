// What a restart of the engine must keep, as plain values: Engine::snapshot()
// fills one, Engine::restore() takes one into a fresh engine. Nothing here
// refers to memory inside an engine (VMs, hosts and rules are named), so a
// snapshot can be written anywhere and read back.
//
// Times are ns since the epoch of the engine's Clock.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "rules/decision.h"
#include "rules/expr.h"

namespace medic::rules {

struct HostRecord {
  std::string name;
  int64_t last_seen_ns = 0;
  bool silence_noticed = false;
  // Storm guard: recent bad-VM times, the last one, and whether it is frozen.
  std::vector<int64_t> bad_times;
  int64_t last_bad_ns = 0;
  bool frozen = false;
  int64_t settle_until_ns = 0;  // a settle is on until then
  int64_t paged_ns = 0;         // its last freeze page, and how many bad VMs it named
  uint32_t paged_count = 0;
};

// A VM is (host, id): two hosts reporting one id are two records.
struct VmRecord {
  std::string id;
  std::string host;
  bool owner = false;          // its host owns the id (rules/fleet.h)
  bool claim_noticed = false;  // its conflicting claim was noticed
  bool retired = false;        // deleted (rules/fleet.h Fleet::retire)
  int64_t last_seen_ns = 0;
  EvidenceRef last_ref = 0;
  // The facts rules read (host is the field above).
  std::vector<std::pair<std::string, std::string>> labels;
  int64_t last_heartbeat_ns = 0;
  int64_t uptime_ns = 0;
  uint64_t rss_bytes = 0;
  float cpu_percent = 0;
  medic::v1::VmState state = medic::v1::VM_STATE_UNSPECIFIED;
  // Cooldown and budget.
  int64_t last_action_ns = 0;
  std::vector<int64_t> action_times;
  int64_t budget_notice_ns = 0;
  // Storm guard.
  int64_t bad_since_ns = 0;
  int64_t storm_counted_ns = 0;
};

struct IncidentRecord {
  uint64_t id = 0;
  std::string key;
  std::string rule;  // by name: the restored engine's rule of that name takes over
  std::string rule_version;
  std::string vm;
  std::string host;  // the VM's
  uint32_t step = 0;  // 0-based ladder position
  uint8_t state = 0;  // IncidentState
  Policy waiting_on = Policy::kNone;
  Policy held_by = Policy::kNone;
  std::string action_id;
  // watching: heal by; awaiting approval: its original expiry; held: when
  // the hold lifts by itself (0: when an event lifts it)
  int64_t deadline_ns = 0;
  std::string step_decision;  // the current step's decision id
  std::vector<EvidenceRef> evidence;
  std::string trigger;
  std::string probe;
  bool healed_seen = false;
  bool progress = false;       // progress seen since the step (boot_timeout)
  int64_t watch_from_ns = 0;   // watching: when the step's watch began
  bool waiting_reported = false;
  uint32_t approved_step = 0;
  std::string approved_by;
  bool needs_approval = false;  // a requester's request an operator must approve
};

struct InFlightRecord {
  std::string action_id;
  std::string vm;
  std::string host;  // the VM's, whose slot it holds
  int64_t expires_ns = 0;
  Duration heal_within{0};
};

struct AbsenceRecord {
  std::string rule;
  std::string vm;
  std::string host;  // the VM's
  int64_t deadline_ns = 0;
};

struct EngineState {
  int64_t at_ns = 0;  // when it was taken
  uint64_t decision_counter = 0;
  uint64_t last_incident_id = 0;
  std::vector<HostRecord> hosts;          // in the order the engine first heard of them
  std::vector<VmRecord> vms;              // likewise
  std::vector<IncidentRecord> incidents;  // in the order they opened
  std::vector<InFlightRecord> in_flight;
  std::vector<std::pair<std::string, Silence>> silences;
  uint64_t silence_counter = 0;
  std::vector<int64_t> fleet_bad_times;  // storm guard, fleet-wide
  int64_t fleet_last_bad_ns = 0;
  bool fleet_frozen = false;
  int64_t fleet_settle_until_ns = 0;
  int64_t fleet_paged_ns = 0;
  uint32_t fleet_paged_count = 0;
  std::vector<uint64_t> waiting;  // incidents waiting for a slot, in queue order
  std::vector<AbsenceRecord> absence;
  std::vector<std::pair<std::string, std::vector<int64_t>>> counts;  // count: windows by key
  // The clones each requester made (Request::clones), by name, when accepted.
  std::vector<std::pair<std::string, std::vector<int64_t>>> clones_by;
};

// What changed since the last Engine::take_changes(), for a store that keeps
// the state as rows (audit/state_store.h): per VM, per host, per silence and
// engine-wide. A VM's record comes with all its incidents and in-flight
// actions (state.incidents / state.in_flight hold those of the VMs listed
// only), so a VM's row replaces what was stored for it.
struct StateChanges {
  EngineState state;  // vms, hosts, silences: the changed ones; the rest engine-wide
  std::vector<std::string> silences_removed;
  bool engine_changed = false;  // the engine-wide values of `state` changed
  bool empty() const {
    return state.vms.empty() && state.hosts.empty() && state.silences.empty() &&
           silences_removed.empty() && !engine_changed;
  }
};

}  // namespace medic::rules
