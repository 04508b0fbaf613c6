// The verbs of the qmp backend, each a step machine that never waits:
// QMP commands on the VM's connection (reset, reboot, the quit of stop and
// restart), QEMU's exit on the launcher's pidfd, and for start and restart
// a new QEMU whose QMP socket is looked for from poll() and a Clock timer
// until the handshake is done. Every verb is bounded by its timeout on the
// Clock.
#include <spdlog/spdlog.h>

#include "core/duration.h"
#include "core/json.h"
#include "vmm/qmp/qmp_hypervisor.h"
#include "vmm/qmp/qmp_vm.h"

namespace medic::vmm::qmp {
namespace {

bool known_verb(Verb v) {
  return v == medic::v1::VERB_RESET || v == medic::v1::VERB_REBOOT || v == medic::v1::VERB_STOP ||
         v == medic::v1::VERB_START || v == medic::v1::VERB_RESTART || v == medic::v1::VERB_DELETE;
}

}  // namespace

void QmpHypervisor::execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) {
  Vm* v = find(vm);
  if (!v) {
    completions_.push(std::move(done), not_found("no VM " + vm + " on host " + host_));
    return;
  }
  if (!known_verb(verb)) {
    completions_.push(std::move(done),
                      invalid_argument("unknown verb " + std::to_string(static_cast<int>(verb))));
    return;
  }
  if (verb == medic::v1::VERB_DELETE && refuse_delete(*v, done)) return;
  start_verb(*v, verb, timeout, std::move(done));
}

// Why `verb` cannot start on `v` now; empty when it can.
std::string QmpHypervisor::refusal(Vm& v, Verb verb) {
  const bool running = v.launcher.running();
  if (v.verb) return v.verb->what + " is in progress";
  switch (verb) {
    case medic::v1::VERB_START:
      if (!running) return "";
      return "its QEMU is running (pid " + std::to_string(v.launcher.pid()) +
             "); a VM is never started twice";
    case medic::v1::VERB_RESTART:
      return !running && v.stopped_on_purpose ? "it was stopped on purpose; use start" : "";
    case medic::v1::VERB_STOP:
      return !running && v.state == medic::v1::VM_STATE_STOPPED ? "it is already stopped" : "";
    case medic::v1::VERB_DELETE:
      return "";
    default:
      return running ? "" : std::string("it is ") + state_name(v.state) + " (no QEMU process)";
  }
}

void QmpHypervisor::start_verb(Vm& v, Verb verb, Duration timeout, VerbDone done) {
  // Report what happened before this verb first, so the sink sees order.
  if (v.qmp.connected()) (void)v.qmp.poll();
  take_replies(v);
  drain_qmp_events(v);
  check_process(v);
  const std::string what = std::string(verb_name(verb)) + " " + v.spec().name;
  if (std::string why = refusal(v, verb); !why.empty()) {
    completions_.push(std::move(done), failed_precondition("cannot " + what + ": " + why));
    return;
  }
  const bool running = v.launcher.running();
  // A QEMU that has stopped answering will not take a QMP command either:
  // reset and reboot fail at once (the next step of a ladder, say restart,
  // comes without waiting out their timeout), stop and restart kill it now.
  const bool unresponsive = running && v.missed >= opts_.unresponsive_after;
  if (unresponsive && (verb == medic::v1::VERB_RESET || verb == medic::v1::VERB_REBOOT)) {
    completions_.push(std::move(done),
                      unavailable("cannot " + what + ": its QMP has not answered for " +
                                  std::to_string(v.missed) +
                                  " status intervals; restart kills and starts it"));
    return;
  }
  if (verb == medic::v1::VERB_DELETE && !running) {
    // Nothing to end: the clone goes now.
    delete_now(v);
    completions_.push(std::move(done), Status{});
    return;
  }
  if (verb == medic::v1::VERB_STOP && !running) {
    // A crashed QEMU: nothing to end, the VM is stopped now.
    v.state = medic::v1::VM_STATE_STOPPED;
    intended_stop(v, true);
    emit_lifecycle(v, medic::v1::LIFECYCLE_STOPPED, "stop: QEMU ended");
    completions_.push(std::move(done), Status{});
    return;
  }
  auto p = std::make_unique<Vm::PendingVerb>();
  p->verb = verb;
  p->done = std::move(done);
  p->what = what;
  p->timeout = timeout;
  Vm* vp = &v;
  p->deadline = clock_.schedule_after(timeout, [this, vp] { on_verb_deadline(*vp); });
  v.verb = std::move(p);
  if (!running) {  // start, or restart of a crashed VM
    begin_launch(v);
    return;
  }
  if (v.verb->ending_qemu() && !begin_ending(v, unresponsive)) return;
  if (!v.qmp.connected()) pump_status(v);  // connects; the handshake follows
  advance_verb(v);
}

// Stop or restart of a running QEMU: quit first, SIGKILL at half the verb's
// timeout if it has not gone; an unresponsive one is killed at once (false:
// nothing more to send, QEMU's exit ends the verb).
bool QmpHypervisor::begin_ending(Vm& v, bool unresponsive) {
  v.stopping = true;
  if (unresponsive) {
    spdlog::info("qmp: {}: {}: QMP does not answer, SIGKILL instead of quit", v.spec().name,
                 v.verb->what);
    v.verb->step = 1;  // no quit: QEMU's exit ends the stop
    v.launcher.send_kill();
    return false;
  }
  Vm* vp = &v;
  v.verb->kill_timer = clock_.schedule_after(v.verb->timeout / 2, [vp] {
    vp->verb->kill_timer = 0;
    vp->launcher.send_kill();
  });
  return true;
}

void QmpHypervisor::on_verb_deadline(Vm& v) {
  Vm::PendingVerb& p = *v.verb;
  p.deadline = 0;
  if (!p.launching) {
    finish_verb(v, timeout_error("QMP did not answer within " + format_duration(p.timeout)));
    return;
  }
  const std::string socket = v.spec().qmp_socket;
  std::string why = v.qmp.connected()
                        ? "QMP socket " + socket +
                              " accepted the connection, but the QMP handshake did not finish"
                        : "QMP socket " + socket + " was not ready";
  why += " within " + format_duration(p.timeout) + "; QEMU (pid " +
         std::to_string(v.launcher.pid()) + ") killed";
  const std::string tail = v.launcher.log_tail(512);
  if (!tail.empty()) why += "; its log ends: " + tail;
  // Its exit is no crash: a QEMU that never came up is stopped.
  v.stopping = true;
  v.launcher.send_kill();
  finish_verb(v, timeout_error(why));
}

void QmpHypervisor::begin_launch(Vm& v) {
  (void)v.launcher.take_exit();  // an earlier exit is history now
  v.qmp.close();
  forget_status(v);
  if (v.hb_fd >= 0) ::close(v.hb_fd);
  v.hb_fd = -1;
  v.stopping = false;
  v.guest_powered_off = false;
  v.reboot_pending = false;
  v.heard_since_boot = false;
  if (Status s = v.launcher.spawn(); !s.ok()) {
    (void)v.launcher.take_exit();  // a QEMU that never came up did not crash
    finish_verb(v, s);
    return;
  }
  ++stats_.launches;
  intended_stop(v, false);
  v.state = medic::v1::VM_STATE_BOOTING;
  v.verb->launching = true;
  v.verb->step = 0;
  v.verb->waiting_id = 0;
  look_for_qmp(v);
}

// One look for the new QEMU's QMP socket (connect without waiting; the
// handshake then runs in poll()), and the next look one retry interval later.
void QmpHypervisor::look_for_qmp(Vm& v) {
  check_process(v);  // a QEMU that died at once ends the verb
  if (!v.verb || !v.verb->launching) return;
  pump_status(v);
  if (!v.verb || !v.verb->launching) return;
  Vm* vp = &v;
  v.verb->retry_timer = clock_.schedule_after(opts_.start_retry_interval, [this, vp] {
    vp->verb->retry_timer = 0;
    look_for_qmp(*vp);
  });
}

void QmpHypervisor::advance_verb(Vm& v) {
  Vm::PendingVerb& p = *v.verb;
  if (p.launching) {
    if (v.qmp.ready()) on_launched(v);
    return;
  }
  if (p.waiting_id != 0 || !v.qmp.ready()) return;  // a reply, or the handshake, moves it on
  const char* command = nullptr;
  if (p.ending_qemu()) {
    if (p.step > 0) return;  // quit went out: QEMU's exit ends the verb
    command = "quit";
  } else if (p.verb == medic::v1::VERB_REBOOT) {
    command = "system_powerdown";
  } else {
    command = p.step == 0 ? "query-status" : p.step == 1 ? "system_reset" : "cont";
  }
  auto id = v.qmp.send(command);
  if (!id.ok()) {
    finish_verb(v, id.status());
    return;
  }
  p.waiting_id = *id;
}

void QmpHypervisor::on_launched(Vm& v) {
  const std::string why = v.verb->verb == medic::v1::VERB_START ? "start" : "restart";
  emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, why);
  connect_heartbeat(v);
  finish_verb(v, Status{});
}

void QmpHypervisor::on_verb_reply(Vm& v, Result<Json> reply) {
  Vm::PendingVerb& p = *v.verb;
  p.waiting_id = 0;
  if (p.ending_qemu()) {
    p.step = 1;  // whatever the reply, QEMU's exit (or the SIGKILL) ends it
    return;
  }
  if (!reply.ok()) {
    finish_verb(v, reply.status());
    return;
  }
  if (p.verb == medic::v1::VERB_REBOOT) {
    v.reboot_pending = true;  // the power-off that follows starts QEMU again
    finish_verb(v, Status{});
    return;
  }
  switch (p.step++) {
    case 0: {
      const std::string* status = json_string_member(*reply, "status");
      p.resume = !status || *status != "running";
      break;
    }
    case 1:
      v.heard_since_boot = false;
      v.reboot_pending = false;  // a reboot the guest ignored is superseded
      if (!p.resume) {
        finish_verb(v, Status{});
        return;
      }
      break;
    default:
      finish_verb(v, Status{});
      return;
  }
  advance_verb(v);
}

void QmpHypervisor::finish_verb(Vm& v, Status s) {
  if (!v.verb) return;
  std::unique_ptr<Vm::PendingVerb> p = std::move(v.verb);
  p->cancel_timers(clock_);
  if (!s.ok()) s = s.with_context(p->what);
  completions_.push(std::move(p->done), std::move(s));
}

}  // namespace medic::vmm::qmp
