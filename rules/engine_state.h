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
};

// A VM is (host, id): two hosts reporting one id are two records.
struct VmRecord {
  std::string id;
  std::string host;
  bool owner = false;          // its host owns the id (rules/fleet.h)
  bool claim_noticed = false;  // its conflicting claim was noticed
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
  int64_t deadline_ns = 0;  // watching: heal by; awaiting approval: its original expiry
  std::vector<EvidenceRef> evidence;
  std::string trigger;
  std::string probe;
  bool healed_seen = false;
  bool waiting_reported = false;
  uint32_t approved_step = 0;
  std::string approved_by;
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
  std::vector<uint64_t> waiting;  // incidents waiting for a slot, in queue order
  std::vector<AbsenceRecord> absence;
  std::vector<std::pair<std::string, std::vector<int64_t>>> counts;  // count: windows by key
};

}  // namespace medic::rules
