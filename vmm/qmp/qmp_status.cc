// The QMP status machine of the qmp backend: one connection per VM, driven
// from poll() and a Clock timer, never waiting. The verbs run on the same
// connection (qmp_verbs.cc).
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
      if (v.verb->ending_qemu()) {
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
      spdlog::info("qmp: {}: QMP answers again after {} status intervals", v.spec().name,
                   v.missed);
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
    if (v.dropped || !v.launcher.running()) continue;
    trim_console(v);
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
    // A QEMU being started is the start verb's to judge, by its deadline.
    if (v.verb && v.verb->launching) continue;
    // Not connected, handshake not done, or the last query unanswered.
    if (++v.missed == opts_.unresponsive_after) become_unresponsive(v);
  }
}

void QmpHypervisor::become_unresponsive(Vm& v) {
  ++stats_.unresponsive;
  const std::string why = "QMP has not answered for " + std::to_string(v.missed) +
                          " status intervals (" +
                          format_duration(opts_.status_interval * v.missed) + ")";
  spdlog::warn("qmp: {}: {}; reported unresponsive", v.spec().name, why);
  emit_lifecycle(v, medic::v1::LIFECYCLE_UNRESPONSIVE, why);
}

}  // namespace medic::vmm::qmp

namespace medic::vmm::qmp {

void QmpHypervisor::trim_console(Vm& v) {
  auto trimmed = v.launcher.console().trim();
  if (!trimmed.ok()) {
    log_limiter_.warn("console " + v.spec().name, clock_.now(),
                      "qmp: " + v.spec().name + ": " + trimmed.status().message());
  } else if (*trimmed) {
    spdlog::info("qmp: {}: console log passed {} bytes: rotated", v.spec().name,
                 v.spec().console_max_bytes);
  }
}

}  // namespace medic::vmm::qmp
