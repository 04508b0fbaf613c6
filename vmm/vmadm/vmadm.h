// The SmartOS backend: a Hypervisor for one SmartOS host, driven through
// vmadm(1M) in the global zone. Every call runs vmadm with execve and an
// argument vector (never a shell), under a time limit, with its output
// captured up to a bound and quoted in errors.
//
//   list/get  vmadm list -p -o uuid,alias,state [uuid=UUID]
//   reboot    vmadm reboot UUID              (graceful: ACPI, then boot)
//   stop      vmadm stop UUID -F             (fencing: do not wait for the guest)
//   start     vmadm start UUID
//   restart   vmadm stop UUID -F, then vmadm start UUID
//   reset     QMP system_reset (+cont) on /zones/UUID/root/tmp/vm.qmp, through
//             VmadmOptions::qmp_reset; without it reset is refused
//             (kFailedPrecondition) with a message that says so.
//
// Before a verb the backend reads the VM's state, because vmadm itself exits
// 0 when asked to start a running VM or stop a stopped one: start on a
// running VM and reboot/reset/stop on a VM that is not running are
// kFailedPrecondition, an unknown UUID is kNotFound, a malformed one
// kInvalidArgument (it never reaches vmadm's argument list). A crashed QEMU
// shows as "stopped" on SmartOS, so restart of a stopped VM just starts it.
//
// No events of its own: vmadm has no event stream, so subscribe()/poll()
// deliver nothing; state comes from list(). Blocking: each call waits for
// vmadm (bounded by its time limit), so run it off the event loop's hot path.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "core/subprocess.h"
#include "vmm/completions.h"
#include "vmm/hypervisor.h"

namespace medic::vmm::vmadm {

struct VmadmOptions {
  std::string host;  // reported by host()
  std::string vmadm_path = "/usr/sbin/vmadm";
  std::string zones_root = "/zones";  // QMP socket: <zones_root>/<uuid>/root/tmp/vm.qmp
  Duration list_timeout = std::chrono::seconds(30);
  size_t max_output_bytes = 4 * 1024 * 1024;  // per stream; a big host lists thousands of VMs
  bool force_stop = true;                     // stop with -F (fencing must not wait for the guest)
  // Hard reset of a running VM through its QMP socket (system_reset, then
  // cont if paused). Empty until a QMP client is wired in.
  std::function<Status(const std::string& qmp_socket, Duration timeout)> qmp_reset;
};

// Reads a `vmadm:` map of a config file (host, vmadm_path, zones_root,
// list_timeout, max_output_bytes, force_stop) into VmadmOptions, starting
// from the defaults. Problems go to `reader`; check reader.ok().
VmadmOptions read_vmadm_options(ConfigReader& reader, const YAML::Node& map);

// One line of `vmadm list -p -o uuid,alias,state`.
struct VmadmEntry {
  std::string uuid;
  std::string alias;  // may be empty, and may contain ':' (vmadm does not escape it)
  std::string state;  // vmadm's word: running, stopped, provisioning, failed, ...
};

// Parses `vmadm list -p -o uuid,alias,state` output. The uuid is everything
// before the first ':', the state everything after the last, the alias what
// lies between. Any line that does not fit is an error naming the line.
Result<std::vector<VmadmEntry>> parse_vmadm_list(std::string_view out);

// Maps a vmadm state word onto VmState; VM_STATE_UNSPECIFIED for states that
// say nothing about the guest (failed, incomplete, receiving, unknown words).
VmState vm_state_from_vmadm(std::string_view state);

bool is_vm_uuid(std::string_view s);

class VmadmHypervisor final : public Hypervisor {
 public:
  explicit VmadmHypervisor(VmadmOptions options);

  const std::string& host() const override { return opts_.host; }
  Result<std::vector<VmInfo>> list() override;
  Result<VmInfo> get(const std::string& vm) override;
  void subscribe(EventSink sink) override { sink_ = std::move(sink); }
  // Delivers the completions of verbs (see execute()).
  void poll() override { completions_.deliver(); }
  std::vector<int> fds() const override;
  // The vmadm calls still run inside execute(), bounded by `timeout`; the
  // completion is delivered by the next poll().
  void execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) override;

  // Where the VM's QMP socket lives on the host.
  std::string qmp_socket_path(const std::string& uuid) const;

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  Result<std::vector<VmadmEntry>> run_list(const std::vector<std::string>& extra, Deadline d);
  Result<VmadmEntry> lookup(const std::string& uuid, Deadline d);
  // Runs `vmadm args...`; ok when it exited 0, with what it said in *result.
  Status run(const std::vector<std::string>& args, Deadline d, RunResult* result = nullptr);
  Status start(const std::string& uuid, Deadline d);
  Status stop(const std::string& uuid, Deadline d);
  Status run_verb(Verb verb, const std::string& vm, Duration timeout);

  VmadmOptions opts_;
  EventSink sink_;
  Completions completions_;
};

}  // namespace medic::vmm::vmadm
