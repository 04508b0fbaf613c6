// The qmp backend: vmm::Hypervisor for the QEMU guests of this host, each
// described by a VmSpec, started by a Launcher and driven over its QMP
// socket.
//
// What it reports:
// - state: the last known, answered at once by list()/get() (they never
//   touch a socket). Each VM with a live QEMU keeps one QMP connection,
//   driven without blocking from poll() and a Clock timer: connect, greeting
//   and qmp_capabilities, then query-status every status_interval; replies
//   and events update the state when they come. A QEMU whose QMP has not
//   answered for `unresponsive_after` status intervals (handshake not done,
//   or query-status unanswered) is reported with state UNRESPONSIVE until it
//   answers again, and a lifecycle event UNRESPONSIVE goes out once, at the
//   tick that makes it so (a QEMU being started is left to the start verb's
//   deadline).
//   Two refinements as well: a guest whose
//   heartbeat channel has been silent since its QEMU started or reset is
//   "booting", and a QEMU process that is gone without being asked to go is
//   "crashed";
// - lifecycle events from QMP (GUEST_PANICKED, WATCHDOG, STOP, RESUME,
//   SHUTDOWN, RESET), plus STARTED when we launch a QEMU, CRASHED when one
//   dies unasked and UNRESPONSIVE when its QMP stops answering;
// - heartbeats: lines "hb <counter>" the guest writes to its second serial
//   port, which QEMU exposes on the spec's heartbeat unix socket;
// - guest-agent pings on request (ping_guest_agent): their sockets are part
//   of fds(), poll() moves them on, and their answers arrive from poll() or
//   a Clock timer (see vmm/qmp/guest_agent.h).
//
// Verbs (each bounded by its timeout on the Clock, none waits: each is a
// step machine moved on by poll() and Clock timers):
//   reset    query-status, system_reset, then cont when the guest was not
//            running (each sent when the previous reply came)
//   reboot   system_powerdown (ACPI); when the guest then powers off, QEMU
//            exits and is started again
//   stop     quit, then QEMU's exit (SIGKILL at half the timeout if it has
//            not gone); state "stopped"
//   start    launch a QEMU that is not running (refused for a live one),
//            then look for its QMP socket from poll() and every
//            start_retry_interval until the QMP handshake is done. At the
//            deadline the QEMU is killed and the verb fails with kTimeout
//            saying whether the socket never appeared or the handshake did
//            not finish; a QEMU that exits first fails it with kUnavailable
//            quoting its log.
//   restart  the stop steps, then the start steps, within one timeout;
//            refused for a VM stopped on purpose (use start)
//   delete   a clone only: the stop steps when QEMU runs, then the clone's
//            directory goes and the VM with it (see Provisioning below)
//
// A VM starts out "stopped": the backend starts QEMUs only when told to
// (start, or start_desired() for the specs that say `desired: running`),
// and owns the QEMUs it started (they die with it). A guest that powers
// itself off (SHUTDOWN guest=true) is an intended stop: it stays stopped
// (restart refused, a STOPPED event), unless its spec says
// `on_guest_poweroff: restart`, when QEMU is started again at once. With a
// state_dir, an intended stop (a stop verb, the guest's own power-off) is
// kept there as NAME.stopped until a start, so an agent that restarts does
// not start a guest a person stopped (start_desired() leaves it). Any
// other end of QEMU (killed, SHUTDOWN from a host signal) is a crash. Single-threaded
// like every Hypervisor: events reach the sink only inside poll()/execute().
//
// Provisioning (clone, delete): options.templates are specs without uuid
// (load_vm_templates). begin_clone makes clone_dir/NAME/ holding the clone's
// sockets and logs (those its template has: qmp.sock, hb.sock, qga.sock,
// console.log, qemu.log) and, for a template with a disk, the qcow2 overlay
// disk.qcow2 over the template's disk (`qemu-img create -f qcow2 -F FMT -b
// DISK OVERLAY`, a ChildProcess on the loop within the timeout, its stderr
// quoted when it fails); then it writes the clone's spec (the template's,
// with the new uuid and name, labels + `template: NAME`) to
// clone_dir/NAME/vm.yaml (a `vms:` file, written to a temporary file and
// renamed) and starts the clone with the start verb's steps. Any failure
// removes clone_dir/NAME. A backend constructed over a clone_dir lists the
// clones it finds there (desired running, so start_desired() starts them);
// a directory without vm.yaml, left by an agent that died mid-clone, is
// removed. VERB_DELETE is for clones only: it ends a running QEMU as stop
// does, then removes clone_dir/NAME (and NAME.stopped in state_dir) and drops
// the VM, so list() and get() no longer have it. A configured VM (vms.yaml)
// is refused with kFailedPrecondition.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "vmm/completions.h"
#include "vmm/hypervisor.h"
#include "vmm/qmp/guest_agent.h"
#include "core/json.h"
#include "vmm/qmp/launcher.h"
#include "vmm/qmp/qmp_client.h"

namespace medic::vmm::qmp {

struct QmpHypervisorOptions {
  // How often start and restart look for a new QEMU's QMP socket.
  Duration start_retry_interval = std::chrono::milliseconds(20);
  Duration status_interval = std::chrono::seconds(1);  // query-status, on the Clock
  int unresponsive_after = 3;  // status intervals without an answer
  size_t max_heartbeat_line = 256;              // longer lines are dropped and counted
  GuestAgentOptions guest_agent;
  // Where intended stops outlive the agent ("": they do not); created at
  // the first stop.
  std::string state_dir;
  // The file the configured specs came from, named when a delete of one of
  // them is refused.
  std::string vms_file;
  // What this host can clone (load_vm_templates), and where clones live
  // ("": this host does not clone; begin_clone is kFailedPrecondition).
  std::vector<VmSpec> templates;
  std::string clone_dir;
  // The qemu-img that makes a clone's overlay; looked up in $PATH when it
  // has no '/'.
  std::string qemu_img = "qemu-img";
};

struct QmpHypervisorStats {
  uint64_t heartbeats = 0;
  uint64_t bad_heartbeat_lines = 0;  // not "hb <n>", or too long
  uint64_t crashes = 0;
  uint64_t launches = 0;
  uint64_t status_queries = 0;
  uint64_t status_replies = 0;
  uint64_t unresponsive = 0;  // times a VM became unresponsive
};

class QmpHypervisor final : public Hypervisor {
 public:
  QmpHypervisor(std::string host, std::vector<VmSpec> specs, Clock& clock,
                QmpHypervisorOptions opts = {});
  ~QmpHypervisor() override;

  const std::string& host() const override { return host_; }
  Result<std::vector<VmInfo>> list() override;
  Result<VmInfo> get(const std::string& vm) override;
  void subscribe(EventSink sink) override { sink_ = std::move(sink); }
  void poll() override;
  std::vector<int> fds() const override;
  // Never waits: every verb moves on from poll() and Clock timers (see the
  // header comment), bounded by `timeout` on the Clock.
  // A verb on a VM that has one in progress is refused (kFailedPrecondition).
  void execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) override;
  // Starts each VM whose spec says `desired: running` and whose QEMU is not
  // running (nor being started or stopped by a verb), as the start verb
  // does; outcomes are logged (a failure as an error, with QEMU's reason).
  size_t start_desired(Duration timeout) override;
  // See "Provisioning" in the header comment; every step runs from poll()
  // and Clock timers within `timeout`.
  Status begin_clone(const CloneSpec& spec, Duration timeout, VerbDone done) override;
  std::vector<std::string> templates() const override;

  // For operators and tests, never for a daemon's loop: a raw QMP command on
  // the VM's connection (for example inject-nmi), waiting for its reply at
  // most `timeout` as the Clock measures it. Events it reads reach the sink
  // at the next poll().
  Result<Json> qmp_command(const std::string& vm, const std::string& command,
                           std::chrono::milliseconds timeout, const Json& arguments = Json());
  // For tests: writes `line` + "\n" to the guest's heartbeat serial port.
  Status send_to_guest(const std::string& vm, const std::string& line);

  // Pings the guest agent of `vm` (id or name) over its guest_agent_socket;
  // `done` runs later from poll() or a Clock timer, once, within `timeout`.
  // A VM without a guest_agent_socket fails at once (kNoSocket, with a
  // rate-limited warning), an unknown VM with kUnknownVm.
  void ping_guest_agent(const std::string& vm, Duration timeout, GuestAgentPinger::Done done);
  // True when some VM has a guest_agent_socket.
  bool has_guest_agent() const;
  // True when `vm` (id or name) is known and has a guest_agent_socket.
  bool has_guest_agent(const std::string& vm);
  const GuestAgentStats& guest_agent_stats() const { return agent_.stats(); }

  const QmpHypervisorStats& stats() const { return stats_; }
  void register_counters(CounterRegistry& r) override;

 private:
  struct Vm;
  struct PendingClone;
  // Skips dropped (deleted) VMs.
  Vm* find(const std::string& id_or_name);
  // A blocking handshake, for qmp_command() only.
  Status ensure_qmp(Vm& v, std::chrono::milliseconds timeout);
  void connect_heartbeat(Vm& v);
  void read_heartbeat(Vm& v);
  void handle_heartbeat_line(Vm& v, std::string_view line);
  void check_process(Vm& v);
  void on_qemu_ended(Vm& v);
  void relaunch(Vm& v, const std::string& why);
  // Records (or clears) an intended stop: in memory, and in state_dir.
  void intended_stop(Vm& v, bool stopped);
  std::string stop_file(const Vm& v) const;
  void drain_qmp_events(Vm& v);
  static std::string watchdog_detail(const Vm& v, const Json& data);
  // The status machine: open the connection, send and read query-status.
  void status_tick();
  void pump_status(Vm& v);
  void forget_status(Vm& v);
  void become_unresponsive(Vm& v);
  void trim_console(Vm& v);
  // Status and verb replies read so far.
  void take_replies(Vm& v);
  // The verbs (qmp_verbs.cc): a step machine per VM on its connection, the
  // launcher's pidfd and Clock timers, bounded by a Clock deadline.
  std::string refusal(Vm& v, Verb verb);
  void start_verb(Vm& v, Verb verb, Duration timeout, VerbDone done);
  bool begin_ending(Vm& v, bool unresponsive);
  void on_verb_deadline(Vm& v);
  void begin_launch(Vm& v);
  void look_for_qmp(Vm& v);
  void on_launched(Vm& v);
  void advance_verb(Vm& v);
  void on_verb_reply(Vm& v, Result<Json> reply);
  // Completes the pending verb (if any) with `s`; its done runs from poll().
  void finish_verb(Vm& v, Status s);
  VmInfo info(Vm& v);
  void emit_lifecycle(Vm& v, Lifecycle what, std::string detail);
  // Provisioning (qmp_clone.cc).
  void load_clones();
  const VmSpec* find_template(const std::string& name) const;
  Status check_clone_free(const CloneSpec& spec) const;
  void start_overlay(PendingClone& c, const VmSpec& t, Duration timeout);
  void pump_clones();
  void overlay_made(PendingClone& c);
  void commit_clone(PendingClone& c);
  void fail_clone(PendingClone& c, Status s);
  void on_clone_started(const std::string& id, const std::string& what, VerbDone done, Status s);
  // delete: refuses a configured VM; ends QEMU first when it runs.
  bool refuse_delete(Vm& v, VerbDone& done);
  void delete_now(Vm& v);
  // Closes what a deleted VM holds and marks it dropped; sweep_dropped()
  // destroys it once nothing iterates over vms_.
  void drop_vm(Vm& v);
  void sweep_dropped();

  std::string host_;
  Clock& clock_;
  QmpHypervisorOptions opts_;
  std::vector<std::unique_ptr<Vm>> vms_;
  std::vector<std::unique_ptr<PendingClone>> clones_;  // before their start
  EventSink sink_;
  QmpHypervisorStats stats_;
  GuestAgentPinger agent_;
  LogLimiter log_limiter_;
  Completions completions_;
  TimerId status_timer_ = 0;
};

}  // namespace medic::vmm::qmp
