// The qmp backend: vmm::Hypervisor for the QEMU guests of this host, each
// described by a VmSpec, started by a Launcher and driven over its QMP
// socket.
//
// What it reports:
// - state from query-status (list/get), with two refinements: a guest whose
//   heartbeat channel has been silent since its QEMU started or reset is
//   "booting", and a QEMU process that is gone without being asked to go is
//   "crashed";
// - lifecycle events from QMP (GUEST_PANICKED, WATCHDOG, STOP, RESUME,
//   SHUTDOWN, RESET), plus STARTED when we launch a QEMU and CRASHED when one
//   dies unasked;
// - heartbeats: lines "hb <counter>" the guest writes to its second serial
//   port, which QEMU exposes on the spec's heartbeat unix socket;
// - guest-agent pings on request (ping_guest_agent): their sockets are part
//   of fds(), poll() moves them on, and their answers arrive from poll() or
//   a Clock timer (see vmm/qmp/guest_agent.h).
//
// Verbs (each bounded by its timeout):
//   reset    system_reset, then cont when the guest was not running
//   reboot   system_powerdown (ACPI); when the guest then powers off, QEMU
//            exits and is started again
//   stop     quit (SIGKILL if QEMU does not go in time); state "stopped"
//   start    launch a QEMU that is not running; refused for a live one
//   restart  quit or kill the QEMU, then launch it again; refused for a VM
//            stopped on purpose (use start)
//
// A VM starts out "stopped": the backend starts QEMUs only when told to
// (start), and owns the QEMUs it started (they die with it). Single-threaded
// like every Hypervisor: events reach the sink only inside poll()/execute().
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
  std::chrono::milliseconds qmp_timeout{2000};  // handshake and query-status in list/get
  size_t max_heartbeat_line = 256;              // longer lines are dropped and counted
  GuestAgentOptions guest_agent;
};

struct QmpHypervisorStats {
  uint64_t heartbeats = 0;
  uint64_t bad_heartbeat_lines = 0;  // not "hb <n>", or too long
  uint64_t crashes = 0;
  uint64_t launches = 0;
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
  // The QMP exchanges of a verb still run inside execute(), bounded by
  // `timeout`; the completion is delivered by the next poll().
  void execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) override;

  // For operators and tests: a raw QMP command on the VM's connection (for
  // example inject-nmi). Events it reads reach the sink at the next poll().
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

 private:
  struct Vm;
  Vm* find(const std::string& id_or_name);
  Status run_verb(Verb verb, const std::string& vm, Duration timeout);
  Status launch(Vm& v, std::chrono::steady_clock::time_point deadline, const std::string& why);
  Status stop_process(Vm& v, std::chrono::steady_clock::time_point deadline);
  Status ensure_qmp(Vm& v, std::chrono::milliseconds timeout);
  void connect_heartbeat(Vm& v);
  void read_heartbeat(Vm& v);
  void handle_heartbeat_line(Vm& v, std::string_view line);
  void check_process(Vm& v);
  void drain_qmp_events(Vm& v);
  VmInfo info(Vm& v);
  void emit_lifecycle(Vm& v, Lifecycle what, std::string detail);

  std::string host_;
  Clock& clock_;
  QmpHypervisorOptions opts_;
  std::vector<std::unique_ptr<Vm>> vms_;
  EventSink sink_;
  QmpHypervisorStats stats_;
  GuestAgentPinger agent_;
  LogLimiter log_limiter_;
  Completions completions_;
};

}  // namespace medic::vmm::qmp
