// The catalogue of event types rules can name in `on:`, `absent:` and
// `healed_by:`, and how a decoded medic.v1.Event maps onto it. The names are
// the rule language's vocabulary; docs/rules.md lists them with their fields.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "medic/v1/events.pb.h"

namespace medic::rules {

enum class EventType : uint8_t {
  kVmState,      // VmStateReport, repeated every collector interval
  kVmHeartbeat,  // a guest heartbeat
  kVmPanicked,   // lifecycle: guest kernel panic (pvpanic)
  kVmWatchdog,   // lifecycle: the guest watchdog fired
  kVmStopped,    // lifecycle: paused/stopped by the hypervisor
  kVmShutdown,   // lifecycle: guest shut down
  kVmReset,      // lifecycle: the guest was reset
  kVmCrashed,    // lifecycle: the VM process died without a stop
  kVmResumed,    // lifecycle: resumed after a stop
  kVmStarted,    // lifecycle: the VM process started
  kProbeOk,      // a service probe passed
  kProbeFailed,  // a service probe failed
  // Appended after the first twelve so the numbers of those stay as they were.
  kVmUnresponsive,  // lifecycle: the hypervisor process stopped answering (QMP)
  kVmGuestPing,     // the QEMU guest agent answered a guest-ping (not a heartbeat)
  kAlertFiring,     // a monitoring system's alert about the VM fires (Alert)
  kAlertResolved,   // ... and is resolved
};
inline constexpr size_t kEventTypeCount = 16;

std::string_view event_type_name(EventType t);
std::optional<EventType> event_type_from_name(std::string_view name);
// Every name, in catalogue order ("vm.state", "vm.heartbeat", ...).
const std::array<std::string_view, kEventTypeCount>& event_type_names();

// The type of a decoded event; nullopt for events rules cannot see (no body,
// an unspecified lifecycle).
std::optional<EventType> classify(const medic::v1::Event& event);

inline bool is_lifecycle(EventType t) {
  return (t >= EventType::kVmPanicked && t <= EventType::kVmStarted) ||
         t == EventType::kVmUnresponsive;
}
inline bool is_probe(EventType t) {
  return t == EventType::kProbeOk || t == EventType::kProbeFailed;
}
inline bool is_alert(EventType t) {
  return t == EventType::kAlertFiring || t == EventType::kAlertResolved;
}

// VM states as rules spell them ("running", "panicked", ...).
std::string_view vm_state_name(medic::v1::VmState s);
bool is_vm_state_name(std::string_view name);
// Every state's name, in enum order.
const std::array<std::string_view, 9>& vm_state_names();

}  // namespace medic::rules
