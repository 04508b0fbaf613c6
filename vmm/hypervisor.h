// The hypervisor boundary. Every backend (sim/, qmp/, vmadm/) implements
// Hypervisor for one host: list its VMs and their state, deliver lifecycle
// events and guest heartbeats, and carry out the remediation verbs.
//
// Threading: a Hypervisor belongs to one thread (its owner's event loop).
// Events and verb completions reach the owner only from inside poll(),
// execute() or begin_clone() (events only) or a Clock timer, never from a
// thread of the backend's own, so the owner needs no locks.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/counters.h"
#include "core/event_loop.h"
#include "core/status.h"
#include "medic/v1/actions.pb.h"
#include "medic/v1/events.pb.h"

namespace medic::vmm {

using VmState = medic::v1::VmState;
using Lifecycle = medic::v1::Lifecycle;
using Verb = medic::v1::Verb;

const char* state_name(VmState s);      // "running", "panicked", ...
const char* lifecycle_name(Lifecycle l);  // "panicked", "watchdog", ...
const char* verb_name(Verb v);          // "reboot", "reset", ...
// Parses a verb name; VERB_UNSPECIFIED for an unknown name.
Verb verb_from_name(const std::string& name);

struct VmInfo {
  std::string id;       // stable id (uuid)
  std::string name;     // alias, for people
  VmState state = medic::v1::VM_STATE_UNSPECIFIED;
  std::map<std::string, std::string> labels;
  Time last_heartbeat{};  // epoch (0) when never seen
  int pid = 0;            // the VM's process on this host, 0 when none or unknown
};

// Something the backend observed about one VM.
struct VmEvent {
  enum class Type { kLifecycle, kHeartbeat };
  Type type = Type::kLifecycle;
  std::string vm;
  Lifecycle what = medic::v1::LIFECYCLE_UNSPECIFIED;  // for kLifecycle
  std::string detail;                                 // e.g. panic message
  uint64_t counter = 0;                               // for kHeartbeat, the guest's counter
  Time at{};
};

// A new VM made from one of the host's templates (VERB_CLONE).
struct CloneSpec {
  std::string template_name;  // the template's name on this host
  std::string id;             // the new VM's id, chosen by the engine (a uuid)
  std::string name;           // the new VM's name (letters, digits, '.', '_', '-')
};

class Hypervisor {
 public:
  using EventSink = std::function<void(const VmEvent&)>;
  virtual ~Hypervisor() = default;

  // The host this backend manages.
  virtual const std::string& host() const = 0;

  virtual Result<std::vector<VmInfo>> list() = 0;
  // kNotFound for an unknown VM.
  virtual Result<VmInfo> get(const std::string& vm) = 0;

  // One sink receives every event; a second call replaces the first.
  virtual void subscribe(EventSink sink) = 0;
  // Reads whatever the backend has ready (sockets, process exits) and
  // delivers it to the sink. Never blocks.
  virtual void poll() = 0;
  // File descriptors the owner may wait on before calling poll(); empty when
  // the backend is driven only by the Clock.
  virtual std::vector<int> fds() const { return {}; }

  // Starts a verb on a VM and returns at once. `done` runs exactly once,
  // later (from inside poll() or a Clock timer, never from inside execute()),
  // when the backend has done its part (the guest may still be booting).
  // Errors: kNotFound for an unknown VM, kFailedPrecondition when the verb
  // cannot apply to the VM's state (for example start on a running VM),
  // kTimeout when `timeout` (on the backend's Clock) passes first,
  // kUnavailable when the backend cannot be reached. `done` may run after
  // its caller is gone; the caller guards against that.
  // VERB_DELETE is a verb like the others: it stops the VM when it runs and
  // removes it for good (its disk overlay, its spec), so list() no longer
  // has it and get() is kNotFound. A backend deletes only the VMs it cloned
  // (kFailedPrecondition for any other: a configured VM is the operator's).
  // Backends that do not provision refuse it with kFailedPrecondition.
  using VerbDone = std::function<void(Status)>;
  virtual void execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) = 0;

  // Begins creating VM `spec.id` from template `spec.template_name` and
  // starting it. A non-ok return refuses at once (then `done` never runs):
  // kNotFound for an unknown template (the message names the templates
  // there are), kAlreadyExists when a VM with that id or name exists,
  // kInvalidArgument for a malformed id or name, kFailedPrecondition when
  // this backend does not provision (the default). Otherwise `done` runs
  // once, later, as for execute(): ok once the new VM's hypervisor process
  // runs (its guest may still be booting); a failure leaves no half-made VM
  // behind. From then on the VM is listed like any other, also after the
  // agent restarts.
  virtual Status begin_clone(const CloneSpec& spec, Duration timeout, VerbDone done) {
    (void)spec;
    (void)timeout;
    (void)done;
    return failed_precondition("host " + host() + " does not create VMs from templates");
  }
  // The names of the templates this host can clone, sorted; empty when none.
  virtual std::vector<std::string> templates() const { return {}; }

  // Starts, without waiting, every VM this host is meant to run (its desired
  // state) that has no process; each start ends as the start verb does, with
  // its outcome logged. Returns how many starts began. Backends whose guests
  // are started by someone else (the simulator, SmartOS autoboot) start
  // nothing.
  virtual size_t start_desired(Duration timeout) {
    (void)timeout;
    return 0;
  }

  // Breaks VM `vm` on purpose with the fault named `fault` (`medic inject`,
  // VERB_INJECT), at once. Only the simulated backend does this; every other
  // backend refuses with kFailedPrecondition, so a real guest is never broken
  // on request.
  virtual Status inject_fault(const std::string& fault, const std::string& vm) {
    (void)vm;
    return failed_precondition("host " + host() + " does not inject faults (\"" + fault +
                               "\"): only a simulated (sim) backend does");
  }

  // Puts the backend's own counts (QMP status queries, guest-agent failures,
  // ...) into the agent's registry, read on the agent's thread. Most backends
  // have none.
  virtual void register_counters(CounterRegistry& r) { (void)r; }
};

using HypervisorPtr = std::unique_ptr<Hypervisor>;

// The backend on an EventLoop: waits on its fds() and calls poll() after
// every wait. For a process where nothing else drives the backend.
class HypervisorSource final : public EventSource {
 public:
  explicit HypervisorSource(Hypervisor& hv) : hv_(hv) {}
  void prepare(std::vector<pollfd>* fds, Duration* wait) override;
  void dispatch(const pollfd* fds, size_t n) override;

 private:
  Hypervisor& hv_;
};

// Runs one verb to its end on a loop of its own (the backend's fds, the
// Clock's timers) and returns its status. For the command line and tests,
// never for a daemon's loop. kFailedPrecondition "cannot complete" when
// nothing can move the verb on (a VirtualClock that nobody advances).
Status execute_and_wait(Hypervisor& hv, Clock& clock, Verb verb, const std::string& vm,
                        Duration timeout);

}  // namespace medic::vmm
