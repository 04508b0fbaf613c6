// The QMP status machine of the qmp backend (one connection per VM, driven
// from poll() and a Clock timer, never waiting) and the verbs that are QMP
// commands plus QEMU's exit (reset, reboot, stop), which run on the same
// connection and the launcher's pidfd.
#include <spdlog/spdlog.h>

#include "core/duration.h"

#include "vmm/qmp/qmp_hypervisor.h"
#include "vmm/qmp/qmp_vm.h"

namespace medic::vmm::qmp {

void QmpHypervisor::forget_status(Vm& v) {
  v.qmp_was_ready = false;
  v.status_query = 0;
  v.missed = 0;
}

void QmpHypervisor::pump_status(Vm& v) {
  if (!v.qmp.connected()) {
    v.qmp_was_ready = false;
    v.status_query = 0;
    if (v.verb && v.verb->waiting_id != 0) {
      if (v.verb->verb == medic::v1::VERB_STOP) {
        // QEMU may close the socket before its reply to quit: that is a yes.
        v.verb->waiting_id = 0;
        v.verb->step = 1;
      } else {
        finish_verb(v, unavailable("QMP connection lost while waiting for the reply"));
      }
    }
    // A QEMU we started but have no connection to (reboot, a slow start, a
    // connection QEMU closed). Connecting does not wait: the greeting and
    // the handshake come through later polls.
    if (Status s = v.qmp.open(v.spec().qmp_socket); !s.ok()) {
      spdlog::debug("qmp: {}: {}", v.spec().name, s.to_string());
    }
    return;
  }
  take_replies(v);
  // A fresh handshake: ask at once rather than at the next tick.
  if (v.qmp.ready() && !v.qmp_was_ready) {
    v.qmp_was_ready = true;
    v.missed = 0;
    if (v.status_query == 0) {
      auto id = v.qmp.send("query-status");
      if (id.ok()) {
        v.status_query = *id;
        ++stats_.status_queries;
      }
    }
  }
  if (v.verb) advance_verb(v);
}

void QmpHypervisor::take_replies(Vm& v) {
  for (auto& r : v.qmp.take_replies()) {
    if (v.verb && v.verb->waiting_id == r.id) {
      on_verb_reply(v, std::move(r.result));
      continue;
    }
    if (r.id != v.status_query) continue;
    v.status_query = 0;
    ++stats_.status_replies;
    if (v.missed >= opts_.unresponsive_after) {
      spdlog::info("qmp: {}: QMP answers again", v.spec().name);
    }
    v.missed = 0;
    const std::string* status = r.result.ok() ? json_string_member(*r.result, "status") : nullptr;
    VmState st = status ? state_from_qmp_status(*status) : medic::v1::VM_STATE_UNSPECIFIED;
    if (st != medic::v1::VM_STATE_UNSPECIFIED) v.state = st;
  }
}

void QmpHypervisor::status_tick() {
  status_timer_ = clock_.schedule_after(opts_.status_interval, [this] { status_tick(); });
  for (auto& vp : vms_) {
    Vm& v = *vp;
    if (!v.launcher.running()) continue;
    // Take what has come first, so an answer read late is not a miss.
    if (v.qmp.connected()) (void)v.qmp.poll();
    drain_qmp_events(v);
    pump_status(v);
    if (v.qmp.ready() && v.status_query == 0) {
      auto id = v.qmp.send("query-status");
      if (id.ok()) {
        v.status_query = *id;
        ++stats_.status_queries;
        continue;
      }
    }
    // Not connected, handshake not done, or the last query unanswered.
    if (++v.missed == opts_.unresponsive_after) {
      ++stats_.unresponsive;
      spdlog::warn("qmp: {}: QMP has not answered for {} status intervals; reported unknown",
                   v.spec().name, v.missed);
    }
  }
}

void QmpHypervisor::start_qmp_verb(Vm& v, Verb verb, Duration timeout, VerbDone done) {
  // Report what happened before this verb first, so the sink sees order.
  if (v.qmp.connected()) (void)v.qmp.poll();
  take_replies(v);
  drain_qmp_events(v);
  check_process(v);
  const std::string what = std::string(verb_name(verb)) + " " + v.spec().name;
  if (verb == medic::v1::VERB_STOP && !v.verb && !v.launcher.running()) {
    // No process to end: refused, or a crashed VM marked stopped, at once.
    completions_.push(std::move(done), run_verb(verb, v.spec().uuid, timeout));
    return;
  }
  if (v.verb || !v.launcher.running()) {
    std::string why = v.verb ? v.verb->what + " is in progress"
                             : std::string("it is ") + state_name(v.state) + " (no QEMU process)";
    completions_.push(std::move(done), failed_precondition("cannot " + what + ": " + why));
    return;
  }
  auto p = std::make_unique<Vm::PendingVerb>();
  p->verb = verb;
  p->done = std::move(done);
  p->what = what;
  Vm* vp = &v;
  p->deadline = clock_.schedule_after(timeout, [this, vp, timeout] {
    vp->verb->deadline = 0;
    finish_verb(*vp, timeout_error("QMP did not answer within " + format_duration(timeout)));
  });
  if (verb == medic::v1::VERB_STOP) {
    // quit first; SIGKILL at half the timeout if QEMU has not gone.
    v.stopping = true;
    p->kill_timer = clock_.schedule_after(timeout / 2, [vp] {
      vp->verb->kill_timer = 0;
      vp->launcher.send_kill();
    });
  }
  v.verb = std::move(p);
  if (!v.qmp.connected()) pump_status(v);  // connects; the handshake follows
  advance_verb(v);
}

void QmpHypervisor::advance_verb(Vm& v) {
  Vm::PendingVerb& p = *v.verb;
  if (p.waiting_id != 0 || !v.qmp.ready()) return;  // a reply, or the handshake, moves it on
  const char* command = nullptr;
  if (p.verb == medic::v1::VERB_STOP) {
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

void QmpHypervisor::on_verb_reply(Vm& v, Result<Json> reply) {
  Vm::PendingVerb& p = *v.verb;
  p.waiting_id = 0;
  if (p.verb == medic::v1::VERB_STOP) {
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
  if (p->deadline != 0) clock_.cancel(p->deadline);
  if (p->kill_timer != 0) clock_.cancel(p->kill_timer);
  if (!s.ok()) s = s.with_context(p->what);
  completions_.push(std::move(p->done), std::move(s));
}

}  // namespace medic::vmm::qmp
