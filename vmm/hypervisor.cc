#include "vmm/hypervisor.h"

namespace medic::vmm {

const char* state_name(VmState s) {
  switch (s) {
    case medic::v1::VM_STATE_RUNNING: return "running";
    case medic::v1::VM_STATE_PAUSED: return "paused";
    case medic::v1::VM_STATE_STOPPED: return "stopped";
    case medic::v1::VM_STATE_PANICKED: return "panicked";
    case medic::v1::VM_STATE_CRASHED: return "crashed";
    case medic::v1::VM_STATE_BOOTING: return "booting";
    case medic::v1::VM_STATE_SHUTTING_DOWN: return "shutting_down";
    default: return "unknown";
  }
}

const char* lifecycle_name(Lifecycle l) {
  switch (l) {
    case medic::v1::LIFECYCLE_PANICKED: return "panicked";
    case medic::v1::LIFECYCLE_WATCHDOG: return "watchdog";
    case medic::v1::LIFECYCLE_STOPPED: return "stopped";
    case medic::v1::LIFECYCLE_SHUTDOWN: return "shutdown";
    case medic::v1::LIFECYCLE_RESET: return "reset";
    case medic::v1::LIFECYCLE_CRASHED: return "crashed";
    case medic::v1::LIFECYCLE_RESUMED: return "resumed";
    case medic::v1::LIFECYCLE_STARTED: return "started";
    default: return "unknown";
  }
}

const char* verb_name(Verb v) {
  switch (v) {
    case medic::v1::VERB_REBOOT: return "reboot";
    case medic::v1::VERB_RESET: return "reset";
    case medic::v1::VERB_RESTART: return "restart";
    case medic::v1::VERB_STOP: return "stop";
    case medic::v1::VERB_START: return "start";
    default: return "unknown";
  }
}

Verb verb_from_name(const std::string& name) {
  for (Verb v : {medic::v1::VERB_REBOOT, medic::v1::VERB_RESET, medic::v1::VERB_RESTART,
                 medic::v1::VERB_STOP, medic::v1::VERB_START}) {
    if (name == verb_name(v)) return v;
  }
  return medic::v1::VERB_UNSPECIFIED;
}

}  // namespace medic::vmm
