// The per-VM record of the qmp backend, shared by its implementation files
// (qmp_hypervisor.cc: processes, heartbeats, start and restart;
// qmp_status.cc: the QMP status machine and the verbs on the loop). Not a
// public header.
#pragma once

#include <memory>
#include <string>

#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::vmm::qmp {

struct QmpHypervisor::Vm {
  explicit Vm(VmSpec s) : launcher(std::move(s)) {}
  const VmSpec& spec() const { return launcher.spec(); }

  Launcher launcher;
  QmpClient qmp;
  int hb_fd = -1;
  std::string hb_buf;
  bool hb_discarding = false;  // inside an over-long line, until its newline

  VmState state = medic::v1::VM_STATE_STOPPED;
  bool stopped_on_purpose = true;  // never started, or stopped by a verb
  bool stopping = false;           // we asked QEMU to go: its exit is no crash
  bool guest_powered_off = false;  // SHUTDOWN from the guest: its exit is no crash
  bool reboot_pending = false;     // reboot verb: start again after the power-off
  bool heard_since_boot = false;
  Time last_heartbeat{};

  // The status machine on the QMP connection.
  bool qmp_was_ready = false;  // the handshake of this connection is done
  uint64_t status_query = 0;   // id of the query-status in flight, 0 if none
  int missed = 0;              // status intervals without an answer

  // The verb in progress that runs on the loop (reset, reboot, stop), if any.
  struct PendingVerb {
    Verb verb = medic::v1::VERB_UNSPECIFIED;
    Hypervisor::VerbDone done;
    std::string what;         // "reset vm1", for messages
    TimerId deadline = 0;     // on the backend's Clock; 0 once it fired
    TimerId kill_timer = 0;   // stop: SIGKILL at half the timeout; 0 once it fired
    uint64_t waiting_id = 0;  // the command whose reply moves it on, 0 if none
    int step = 0;
    bool resume = false;      // reset: the guest was not running, cont after
  };
  std::unique_ptr<PendingVerb> verb;
};

}  // namespace medic::vmm::qmp
