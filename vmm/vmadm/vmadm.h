// The SmartOS backend: a Hypervisor for one SmartOS host, driven through
// vmadm(1M) in the global zone. Every call runs vmadm with execve and an
// argument vector (never a shell), under a time limit, with its output
// captured up to a bound and quoted in errors.
//
//   list/get  vmadm list -p -o uuid,autoboot,state,tags.medic_template,alias [uuid=UUID]
//   reboot    vmadm reboot UUID              (graceful: ACPI, then boot)
//   stop      vmadm stop UUID -F             (fencing: do not wait for the guest)
//   start     vmadm start UUID
//   restart   vmadm stop UUID -F, then vmadm start UUID
//   reset     QMP system_reset (+cont) on /zones/UUID/root/tmp/vm.qmp (a
//             QmpReset on the same loop)
//   clone     vmadm create -f PAYLOAD: the template templates_dir/NAME.json
//             (a vmadm create payload) with "uuid" and "alias" set to the
//             clone's, and tags medic_template: NAME and medic_clone: true
//             added to its "tags"; vmadm boots it unless the payload says
//             autoboot false. The payload is a temporary file, removed when
//             vmadm has ended; the host is listed again after.
//   delete    vmadm get UUID, and only when its tags say medic_clone: true
//             (a VM medic cloned), vmadm delete UUID, which stops the VM and
//             removes it and its storage; any other VM is kFailedPrecondition
//
// Before a verb the backend reads the VM's state, because vmadm itself exits
// 0 when asked to start a running VM or stop a stopped one: start on a
// running VM and reboot/reset/stop on a VM that is not running are
// kFailedPrecondition, an unknown UUID is kNotFound, a malformed one
// kInvalidArgument (it never reaches vmadm's argument list). A crashed QEMU
// shows as "stopped" on SmartOS, so restart of a stopped VM just starts it.
//
// Nothing waits: every vmadm call is a ChildProcess on the owner's loop
// (its pipes and pidfd are part of fds(), poll() moves it on, its time limit
// is a Clock timer: SIGTERM, then SIGKILL a second later). So a verb that
// takes 30 s never delays the collector's reports.
//
// State: list() and get() answer at once from the last listing. The backend
// lists the host every `list_interval` on the Clock (vmadm list -p -o
// kListFields), one listing at a time, and again right after each verb.
// Before the first listing ends they are kUnavailable; when the last listing
// failed they return its error (the collector then reports no state, which
// the engine notices); when no listing has ended for `unresponsive_after`
// intervals (vmadm hangs) every VM is reported with state UNSPECIFIED
// ("unknown") until one ends. Verbs never trust that cache: each starts with
// a fresh lookup of its VM (vmadm list ... uuid=UUID).
//
// Desired state is vmadm's `autoboot`: `vmadm start` sets it true and `vmadm
// stop` false (vmadm(1M)), so it says whether the VM is meant to run. A VM
// that a listing finds stopped after it was running is
//   - an intended stop when autoboot is false (someone, or medic's stop verb,
//     ran vmadm stop): state STOPPED, a LIFECYCLE_STOPPED event, left alone;
//   - unintended when autoboot is still true (QEMU died, or the guest powered
//     itself off: SmartOS's older QEMU reports nothing that tells the two
//     apart): state CRASHED and a LIFECYCLE_CRASHED event, which the shipped
//     guest-crashed rule heals with restart (here: vmadm start).
// A VM stopped with autoboot true at the first successful listing (the
// agent started and found it down) is CRASHED too, with its event, so the
// engine's rules start it through the safety policies. These events come
// from listings, so a stop is seen up to one list_interval late.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/json_fwd.h"
#include "core/log.h"
#include "core/status.h"
#include "core/subprocess.h"
#include "vmm/completions.h"
#include "vmm/hypervisor.h"
#include "vmm/qmp/qmp_reset.h"

namespace medic::vmm::vmadm {

struct VmadmOptions {
  std::string host;  // reported by host()
  std::string vmadm_path = "/usr/sbin/vmadm";
  std::string zones_root = "/zones";  // QMP socket: <zones_root>/<uuid>/root/tmp/vm.qmp
  Duration list_timeout = std::chrono::seconds(30);
  Duration list_interval = std::chrono::seconds(1);  // how often the host is listed
  int unresponsive_after = 3;  // list intervals without a listing: states unknown
  size_t max_output_bytes = 4 * 1024 * 1024;  // per stream; a big host lists thousands of VMs
  bool force_stop = true;                     // stop with -F (fencing must not wait for the guest)
  // Where the templates are, NAME.json each ("": this host does not clone).
  std::string templates_dir;
};

// Reads a `vmadm:` map of a config file (host, vmadm_path, zones_root,
// list_timeout, list_interval, max_output_bytes, force_stop, templates_dir) into VmadmOptions, starting
// from the defaults. Problems go to `reader`; check reader.ok().
VmadmOptions read_vmadm_options(ConfigReader& reader, const YAML::Node& map);

// One line of `vmadm list -p -o ` kListFields.
struct VmadmEntry {
  std::string uuid;
  bool autoboot = true;  // the desired state: true = meant to run
  std::string state;     // vmadm's word: running, stopped, provisioning, failed, ...
  std::string template_name;  // tags.medic_template: a clone's template, empty otherwise
  std::string alias;          // may be empty, and may contain ':' (vmadm does not escape it)
};

// The fields the backend lists (`vmadm list -p -o ...`). vmadm(1M) takes
// dotted paths into a VM's properties, as in `nics.0.ip`, and prints an
// empty field for a property a VM does not have.
inline constexpr std::string_view kListFields = "uuid,autoboot,state,tags.medic_template,alias";

// Parses `vmadm list -p -o ` kListFields output: four fields up to the
// fourth ':', the alias everything after it. Any line that does not
// fit is an error naming the line.
Result<std::vector<VmadmEntry>> parse_vmadm_list(std::string_view out);

// Maps a vmadm state word onto VmState; VM_STATE_UNSPECIFIED for states that
// say nothing about the guest (failed, incomplete, receiving, unknown words).
VmState vm_state_from_vmadm(std::string_view state);

bool is_vm_uuid(std::string_view s);

struct VmadmStats {
  uint64_t listings_started = 0;
  uint64_t listings_done = 0;  // ended, well or not
  uint64_t listing_failures = 0;
  uint64_t missed_intervals = 0;  // a list interval came while a listing still ran
  uint64_t calls = 0;             // vmadm processes started
};

class VmadmHypervisor final : public Hypervisor {
 public:
  VmadmHypervisor(Clock& clock, VmadmOptions options);
  // Kills the vmadm processes still running; their verbs' done is not called.
  ~VmadmHypervisor() override;

  const std::string& host() const override { return opts_.host; }
  Result<std::vector<VmInfo>> list() override;
  Result<VmInfo> get(const std::string& vm) override;
  void subscribe(EventSink sink) override { sink_ = std::move(sink); }
  // Moves the running vmadm calls and resets on, and delivers the
  // completions of verbs.
  void poll() override;
  std::vector<int> fds() const override;
  // Returns at once; the lookup and the vmadm calls of the verb run on the
  // loop, all within `timeout` (plus the second between SIGTERM and
  // SIGKILL). A second verb on a VM with one in progress is refused
  // (kFailedPrecondition).
  void execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) override;
  // Refuses at once (vmm/hypervisor.h) also a template that cannot be read
  // or is not a JSON object (kFailedPrecondition, naming its file) and an
  // id or name the last listing has (kAlreadyExists); vmadm itself refuses
  // an id it has when no listing has shown it yet.
  Status begin_clone(const CloneSpec& spec, Duration timeout, VerbDone done) override;
  // The NAME of each templates_dir/NAME.json whose NAME is a valid VM name.
  std::vector<std::string> templates() const override;

  // Starts a listing now, or right after the one in progress. The listing
  // number listings_started + 1 (as read before the call) reflects the
  // state from now on.
  void refresh();
  const VmadmStats& stats() const { return stats_; }

  // Where the VM's QMP socket lives on the host.
  std::string qmp_socket_path(const std::string& uuid) const;

 private:
  struct Job;
  using JobPtr = std::shared_ptr<Job>;
  using CallDone = std::function<void(Status, RunResult)>;
  using LookupDone = std::function<void(Result<VmadmEntry>)>;
  struct Call {
    ChildProcessPtr child;
    std::string cmd;
  };

  // Runs `vmadm args...` within what is left until `deadline`; `done` gets
  // ok when it exited 0, with what it said.
  void run(const std::vector<std::string>& args, Time deadline, CallDone done);
  Status interpret(const std::string& cmd, Duration limit, const RunResult& r) const;
  void run_list(const std::vector<std::string>& extra, Time deadline,
                std::function<void(Result<std::vector<VmadmEntry>>)> done);
  void lookup(const std::string& uuid, Time deadline, LookupDone done);
  void list_tick();
  void start_listing();
  void on_listing(Result<std::vector<VmadmEntry>> r);
  void report_stops();
  VmInfo info(const VmadmEntry& e) const;
  // The verb steps: lookup, then the vmadm calls its state asks for.
  void on_looked_up(const JobPtr& job, Result<VmadmEntry> e);
  void reboot(const JobPtr& job);
  void reset(const JobPtr& job);
  void start(const JobPtr& job);
  void stop(const JobPtr& job, std::function<void()> then);
  void remove(const JobPtr& job);
  Status check_clone_free(const CloneSpec& spec) const;
  Result<Json> clone_payload(const CloneSpec& spec) const;
  void finish(const JobPtr& job, Status s);

  Clock& clock_;
  VmadmOptions opts_;
  EventSink sink_;
  Completions completions_;
  std::vector<std::unique_ptr<Call>> calls_;
  std::vector<std::unique_ptr<qmp::QmpReset>> resets_;
  std::map<std::string, Verb> busy_;  // VMs with a verb in progress
  std::map<std::string, std::string> creating_;  // clones in progress: uuid -> alias
  // The last listing.
  std::vector<VmadmEntry> listed_;
  bool have_listing_ = false;
  std::map<std::string, std::string> last_state_;  // uuid -> vmadm state at the last listing
  bool listed_before_ = false;                     // a listing has been reported
  Status list_status_ = unavailable("no vmadm listing has finished yet");
  bool listing_ = false;    // a listing runs
  bool relist_ = false;     // list again when it ends
  int missed_ = 0;          // list intervals since the last listing ended
  TimerId list_timer_ = 0;
  LogLimiter log_limiter_;
  VmadmStats stats_;
};

}  // namespace medic::vmm::vmadm
