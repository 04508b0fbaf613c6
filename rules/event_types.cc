#include "rules/event_types.h"

namespace medic::rules {
namespace {

constexpr std::array<std::string_view, kEventTypeCount> kNames = {
    "vm.state",        "vm.heartbeat",  "vm.panicked",  "vm.watchdog",
    "vm.stopped",      "vm.shutdown",   "vm.reset",     "vm.crashed",
    "vm.resumed",      "vm.started",    "probe.ok",     "probe.failed",
    "vm.unresponsive", "vm.guest_ping", "alert.firing", "alert.resolved",
};

constexpr std::array<std::string_view, 9> kStates = {
    "unknown", "running", "paused", "stopped", "panicked", "crashed", "booting", "shutting_down",
    "unresponsive",
};

}  // namespace

std::string_view event_type_name(EventType t) { return kNames[static_cast<size_t>(t)]; }

std::optional<EventType> event_type_from_name(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<EventType>(i);
  }
  return std::nullopt;
}

const std::array<std::string_view, kEventTypeCount>& event_type_names() { return kNames; }

std::optional<EventType> classify(const medic::v1::Event& event) {
  using medic::v1::Event;
  switch (event.body_case()) {
    case Event::kState:
      return EventType::kVmState;
    case Event::kHeartbeat:
      return EventType::kVmHeartbeat;
    case Event::kGuestPing:
      return EventType::kVmGuestPing;
    case Event::kProbe:
      return event.probe().ok() ? EventType::kProbeOk : EventType::kProbeFailed;
    case Event::kAlert:
      return event.alert().firing() ? EventType::kAlertFiring : EventType::kAlertResolved;
    case Event::kLifecycle:
      switch (event.lifecycle().what()) {
        case medic::v1::LIFECYCLE_PANICKED:
          return EventType::kVmPanicked;
        case medic::v1::LIFECYCLE_WATCHDOG:
          return EventType::kVmWatchdog;
        case medic::v1::LIFECYCLE_STOPPED:
          return EventType::kVmStopped;
        case medic::v1::LIFECYCLE_SHUTDOWN:
          return EventType::kVmShutdown;
        case medic::v1::LIFECYCLE_RESET:
          return EventType::kVmReset;
        case medic::v1::LIFECYCLE_CRASHED:
          return EventType::kVmCrashed;
        case medic::v1::LIFECYCLE_RESUMED:
          return EventType::kVmResumed;
        case medic::v1::LIFECYCLE_STARTED:
          return EventType::kVmStarted;
        case medic::v1::LIFECYCLE_UNRESPONSIVE:
          return EventType::kVmUnresponsive;
        default:
          return std::nullopt;
      }
    default:
      return std::nullopt;
  }
}

std::string_view vm_state_name(medic::v1::VmState s) {
  auto i = static_cast<size_t>(s);
  return i < kStates.size() ? kStates[i] : kStates[0];
}

const std::array<std::string_view, 9>& vm_state_names() { return kStates; }

bool is_vm_state_name(std::string_view name) {
  for (auto s : kStates) {
    if (s == name) return true;
  }
  return false;
}

}  // namespace medic::rules
