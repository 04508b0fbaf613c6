// VM specs and the QEMU launcher of the qmp backend.
//
// A VM spec (YAML, see docs/backends-qmp.md) says how to run one guest:
// name, uuid, memory, kernel+initrd+append or a disk, where QEMU's QMP,
// heartbeat and guest-agent sockets live, extra devices, and the accelerator. The launcher
// turns a spec into a qemu-system-x86_64 argument vector and runs it with
// execve (never a shell) without waiting, and can kill it and run it again.
// Waiting for QEMU's QMP socket is the backend's (QmpHypervisor start),
// which does it on its loop.
//
// Ownership: a Launcher owns the QEMU it started. Destroying the Launcher
// kills that QEMU, so nothing outlives its owner by accident.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "vmm/qmp/console_log.h"

namespace medic::vmm::qmp {

enum class Accel { kAuto, kKvm, kTcg };

// What the operator wants of a VM: whether the agent starts it when it comes
// up, and what a guest powering itself off means.
enum class Desired { kRunning, kStopped };
enum class OnGuestPoweroff { kStop, kRestart };

struct VmSpec {
  std::string name;  // letters, digits, '.', '_', '-'
  std::string uuid;  // 8-4-4-4-12 hex: the VM's id towards medic
  int64_t memory_mib = 256;
  int64_t cpus = 1;
  std::string machine = "q35";
  Accel accel = Accel::kAuto;
  // Boot: kernel (+ initrd, append) or disk; with both, the kernel boots and
  // the disk is the guest's first virtio disk.
  std::string kernel, initrd, append;
  std::string disk, disk_format = "raw";
  std::string qmp_socket;                   // required
  std::string heartbeat_socket;             // optional: the guest's second serial port
  std::string guest_agent_socket;           // optional: virtio-serial port org.qemu.guest_agent.0
  std::string console_log;                  // optional: the guest's first serial port, to a file
  int console_keep = 5;                     // earlier boots' console logs kept (PATH.1 ..)
  uint64_t console_max_bytes = 1 << 20;     // a console log past this is rotated
  std::string qemu_log;                     // optional: QEMU's own stdout/stderr
  std::vector<std::string> devices;         // each becomes "-device <value>"
  std::string qemu = "qemu-system-x86_64";  // looked up in $PATH when it has no '/'
  std::map<std::string, std::string> labels;
  // `desired: running` (the default): the agent starts it at start-up.
  Desired desired = Desired::kRunning;
  // A guest that powers itself off (QMP SHUTDOWN guest=true) is an intended
  // stop and stays stopped, unless this says restart.
  OnGuestPoweroff on_guest_poweroff = OnGuestPoweroff::kStop;
  // QEMU's own answer to a watchdog that fires (-action watchdog=...):
  // reset (QEMU's default), shutdown, poweroff, pause, debug, none, inject-nmi.
  std::string watchdog_action = "reset";
};

// True when QEMU itself ends or restarts the guest for this watchdog action
// (reset, shutdown, poweroff): medic then watches, it does not reset again.
bool qemu_acts_on_watchdog(const std::string& action);

// Reads a file holding `vms:`, a list of specs. Relative paths in a spec are
// taken relative to the file's directory. Every problem is reported, each as
// file:line:col, in one kInvalidArgument Status.
Result<std::vector<VmSpec>> load_vm_specs(const std::string& path);
// The same from text; `name` is used in messages, `base_dir` for relative paths.
Result<std::vector<VmSpec>> parse_vm_specs(const std::string& yaml, const std::string& name,
                                           const std::string& base_dir);

// Reads a file holding `templates:`, a list of specs the qmp backend clones
// VMs from (docs/backends-qmp.md), each read as a `vms:` entry is except that
// it has no uuid and needs no socket: its qmp_socket, heartbeat_socket,
// guest_agent_socket, console_log and qemu_log only say which of them a clone
// has, at paths of the clone's own. Errors as load_vm_specs.
Result<std::vector<VmSpec>> load_vm_templates(const std::string& path);
Result<std::vector<VmSpec>> parse_vm_templates(const std::string& yaml, const std::string& name,
                                               const std::string& base_dir);

// `vms:` with these specs as YAML that load_vm_specs reads back into the same
// specs (paths are written as they are: absolute paths stay valid anywhere).
std::string format_vm_specs(const std::vector<VmSpec>& specs);

// True when /dev/kvm can be opened and speaks the stable KVM API.
bool kvm_usable();
// The accelerator auto resolves to on this host.
Accel resolve_accel(Accel requested);
const char* accel_name(Accel a);

// The full argument vector, argv[0] being spec.qemu. `accel` must be
// resolved (kKvm or kTcg).
std::vector<std::string> qemu_argv(const VmSpec& spec, Accel accel);

class Launcher {
 public:
  explicit Launcher(VmSpec spec);
  ~Launcher();
  Launcher(const Launcher&) = delete;
  Launcher& operator=(const Launcher&) = delete;

  const VmSpec& spec() const { return spec_; }
  // The argument vector of the last launch (empty before the first).
  const std::vector<std::string>& argv() const { return argv_; }

  // Starts QEMU without waiting. kFailedPrecondition when this launcher's
  // QEMU is still running or another process already serves the spec's QMP
  // socket (never two QEMUs for one VM); kIo when it cannot be started.
  // The console log of the previous boot is rotated first (see
  // vmm/qmp/console_log.h); a rotation that fails is logged, not fatal.
  Status spawn();
  // The guest's console log (rotated at spawn; trim() it while QEMU runs).
  ConsoleLog& console() { return console_; }

  // Non-blocking; reaps QEMU when it has exited.
  bool running();
  // Once per exit: QEMU's exit code, or -signal. nullopt while running or
  // when the exit was already taken.
  std::optional<int> take_exit();
  pid_t pid() const { return pid_; }
  // A pidfd that becomes readable when QEMU exits, -1 when not running or
  // when the kernel has no pidfd_open.
  int exit_fd() const { return pidfd_; }

  // SIGKILL to QEMU's process group, then reap. Returns ok when it is gone
  // (also when it was not running), kTimeout otherwise.
  Status kill(std::chrono::milliseconds limit = std::chrono::seconds(5));
  // SIGKILL to QEMU's process group without waiting: the exit then shows
  // through exit_fd() and running(). Nothing when it is not running.
  void send_kill();
  // The last `max_bytes` of QEMU's log, for error messages.
  std::string log_tail(size_t max_bytes = 2048) const;

 private:
  void forget_process(int status);

  VmSpec spec_;
  ConsoleLog console_;
  std::vector<std::string> argv_;
  pid_t pid_ = 0;
  int pidfd_ = -1;
  std::optional<int> exit_status_;
};

// True when something accepts connections on the unix socket at `path`.
bool unix_socket_listening(const std::string& path);

}  // namespace medic::vmm::qmp
