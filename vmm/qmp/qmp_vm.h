// The per-VM record of the qmp backend, shared by its implementation files
// (qmp_hypervisor.cc: processes, heartbeats, events; qmp_status.cc: the QMP
// status machine; qmp_verbs.cc: the verbs on the loop). Not a public header.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/subprocess.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::vmm::qmp {

struct QmpHypervisor::Vm {
  Vm(VmSpec s, Clock& clock) : launcher(std::move(s)), qmp(clock) {}
  const VmSpec& spec() const { return launcher.spec(); }

  Launcher launcher;
  QmpClient qmp;
  std::string clone_dir;  // clone_dir/NAME for a clone; empty for a configured VM
  bool dropped = false;   // deleted: in no answer, destroyed at the next sweep
  int hb_fd = -1;
  std::string hb_buf;
  bool hb_discarding = false;  // inside an over-long line, until its newline

  VmState state = medic::v1::VM_STATE_STOPPED;
  bool stopped_on_purpose = true;  // never started, or stopped by a verb
  bool kept_stopped = false;       // an intended stop on record in state_dir
  bool stopping = false;           // we asked QEMU to go: its exit is no crash
  bool guest_powered_off = false;  // SHUTDOWN from the guest: its exit is no crash
  bool reboot_pending = false;     // reboot verb: start again after the power-off
  bool heard_since_boot = false;
  Time last_heartbeat{};

  // The status machine on the QMP connection.
  bool qmp_was_ready = false;  // the handshake of this connection is done
  uint64_t status_query = 0;   // id of the query-status in flight, 0 if none
  int missed = 0;              // status intervals without an answer

  // The verb in progress, if any: a step machine on the VM's connection,
  // the launcher's pidfd and Clock timers.
  struct PendingVerb {
    Verb verb = medic::v1::VERB_UNSPECIFIED;
    Hypervisor::VerbDone done;
    std::string what;         // "reset vm1", for messages
    Duration timeout{};
    TimerId deadline = 0;     // on the backend's Clock; 0 once it fired
    TimerId kill_timer = 0;   // stop, restart: SIGKILL at half the timeout; 0 once it fired
    TimerId retry_timer = 0;  // start, restart: the next look for the QMP socket
    uint64_t waiting_id = 0;  // the command whose reply moves it on, 0 if none
    int step = 0;
    bool resume = false;      // reset: the guest was not running, cont after
    bool launching = false;   // start, restart: QEMU spawned, waiting for its QMP
    // stop, and the first half of restart: quit, then QEMU's exit.
    // Cancels the timers still pending.
    void cancel_timers(Clock& clock) {
      for (TimerId* t : {&deadline, &kill_timer, &retry_timer}) {
        if (*t != 0) clock.cancel(*t);
        *t = 0;
      }
    }
    bool ending_qemu() const {
      return verb == medic::v1::VERB_STOP || verb == medic::v1::VERB_DELETE ||
             (verb == medic::v1::VERB_RESTART && !launching);
    }
  };
  std::unique_ptr<PendingVerb> verb;
};

// A clone being made, until its spec is on disk and its start begins.
struct QmpHypervisor::PendingClone {
  CloneSpec request;
  VmSpec spec;      // the clone's
  std::string dir;  // clone_dir/NAME
  Hypervisor::VerbDone done;
  Time deadline{};
  ChildProcessPtr qemu_img;             // while the overlay is made
  std::optional<RunResult> img_result;  // qemu-img's end, handled by pump_clones()
  bool finished = false;                // removed at the next pump_clones()
};

}  // namespace medic::vmm::qmp
