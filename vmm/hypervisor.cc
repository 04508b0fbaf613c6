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
    case medic::v1::VM_STATE_UNRESPONSIVE: return "unresponsive";
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
    case medic::v1::LIFECYCLE_UNRESPONSIVE: return "unresponsive";
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
    case medic::v1::VERB_INJECT: return "inject";
    case medic::v1::VERB_CLONE: return "clone";
    case medic::v1::VERB_DELETE: return "delete";
    default: return "unknown";
  }
}

Verb verb_from_name(const std::string& name) {
  for (Verb v : {medic::v1::VERB_REBOOT, medic::v1::VERB_RESET, medic::v1::VERB_RESTART,
                 medic::v1::VERB_STOP, medic::v1::VERB_START, medic::v1::VERB_CLONE,
                 medic::v1::VERB_DELETE}) {
    if (name == verb_name(v)) return v;
  }
  return medic::v1::VERB_UNSPECIFIED;
}

}  // namespace medic::vmm

namespace medic::vmm {

void HypervisorSource::prepare(std::vector<pollfd>* fds, Duration* /*wait*/) {
  for (int fd : hv_.fds()) fds->push_back(pollfd{fd, POLLIN, 0});
}

void HypervisorSource::dispatch(const pollfd*, size_t) { hv_.poll(); }

Status execute_and_wait(Hypervisor& hv, Clock& clock, Verb verb, const std::string& vm,
                        Duration timeout) {
  struct Outcome {
    bool finished = false;
    Status status;
  };
  // Shared, so a completion after a "cannot complete" return harms nothing.
  auto outcome = std::make_shared<Outcome>();
  hv.execute(verb, vm, timeout, [outcome](Status s) {
    outcome->finished = true;
    outcome->status = std::move(s);
  });
  EventLoop loop(clock);
  HypervisorSource source(hv);
  loop.add_source(&source);
  Time last = clock.now();
  while (!outcome->finished) {
    loop.run_once(std::chrono::milliseconds(20));
    if (outcome->finished) break;
    const Time now = clock.now();
    auto next = clock.next_deadline();
    const bool stuck = now == last && hv.fds().empty() && (!next || *next > now);
    if (stuck) {
      return failed_precondition(std::string("cannot complete ") + verb_name(verb) + " " + vm +
                                 ": the Clock does not move and the backend waits on nothing");
    }
    last = now;
  }
  return outcome->status;
}

}  // namespace medic::vmm
