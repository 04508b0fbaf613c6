// The simulated fleet: N hosts x M VMs on a Clock, deterministic by seed, with
// a fault injector. Each SimHost implements vmm::Hypervisor for one host, so
// the collector, actuator and engine run against it unchanged; the demo, the
// integration tests and the benchmarks use it instead of real QEMU.
//
// Truthful faults, so escalation can be tested: each fault is healed only by
// the verbs that heal it on a real host.
//
//   fault       what is seen                          healed by
//   hang        heartbeats stop, state running        reset, restart (stop+start);
//                                                      NOT reboot (ACPI is ignored)
//   soft_hang   heartbeats stop, state running        reboot, reset, restart
//   panic       LIFECYCLE_PANICKED, state panicked    reset, restart (stop+start)
//   crash       LIFECYCLE_CRASHED, state crashed,     restart, start
//               pid 0
//   slow_boot   the current/next boot takes           nothing: it ends when the boot
//               slow_boot_time                         completes (verbs restart the boot)
//   flapping    down (heartbeats stop) for flap_down, reset/restart end a down phase;
//               up for flap_up, repeatedly             it fails again flap_up later
//   partition   the host is silent: no events,        heal_host() (scheduled ones end
//               list/get/execute kUnavailable;         after partition_duration)
//               its VMs keep running
//   host_loss   every VM on the host is gone;         heal_host(): the host comes back
//               list/get/execute kUnavailable          and its VMs boot (autoboot)
//
// Verbs: reboot = ACPI power button (shutdown_time, then a fresh boot), reset =
// hard reset with the process kept, restart = new process, stop, start. A verb
// that starts a boot leaves the VM booting for boot_time, then running and
// heartbeating again. start on a VM whose process is alive, reset/reboot on a
// VM without a process, restart or stop on a stopped VM: kFailedPrecondition.
// Every verb is counted per VM (executed and refused) for tests and the demo.
//
// Provisioning: SimOptions::templates names what each host can clone.
// begin_clone checks the request at once (kInvalidArgument, kNotFound for an
// unknown template, kAlreadyExists for an id or name the fleet has or a clone
// in progress takes, kUnavailable for a lost or partitioned host); verb_time
// later a Clock timer adds the VM with the template's labels plus `template:
// NAME`, booting for boot_time like a started VM, and runs `done` (kTimeout
// and no VM when the timeout is shorter than verb_time). A clone is a VM like
// any other: faults, verbs, heartbeats. VERB_DELETE removes a clone (its
// events and heartbeats end, list() and get() no longer have it) and is
// kFailedPrecondition for the fleet's configured VMs.
//
// A verb takes verb_time on the Clock (0 by default): its effect and its
// completion both come from a Clock timer that long after execute(); a verb
// whose timeout is shorter than verb_time fails with kTimeout at its timeout
// and has no effect.
//
// Threading: like every Hypervisor, a SimHost belongs to the thread that
// drives the Clock. Events reach the sink from Clock timer callbacks (the
// per-host heartbeat tick, boot completions, verbs, scheduled faults) and
// from inject(), all on that thread; poll() has nothing to do.
//
// Cost: one timer per host per heartbeat interval walks that host's VMs (no
// timer or allocation per heartbeat); 100k VMs take ~60 MB, most of it the id
// and name indexes. A deleted clone's slot is reused by the next clone, so
// cloning and deleting does not grow a host. bench/sim_bench measures reports per second.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "vmm/hypervisor.h"

namespace medic::vmm::sim {

enum class FaultKind : uint8_t {
  kHang = 0,
  kSoftHang,
  kPanic,
  kCrash,
  kSlowBoot,
  kFlapping,
  kPartition,  // host-level
  kHostLoss,   // host-level
};
inline constexpr int kFaultKindCount = 8;

const char* fault_name(FaultKind kind);  // "hang", "soft_hang", "panic", ...
std::optional<FaultKind> fault_from_name(std::string_view name);
bool is_host_fault(FaultKind kind);

struct SimOptions {
  int hosts = 3;
  // Host names; when set they replace host-01, host-02, ... and their count
  // replaces `hosts` (an agent simulates its own host under its own name).
  std::vector<std::string> host_names;
  int vms_per_host = 10;
  uint64_t seed = 1;
  Duration heartbeat_interval = std::chrono::seconds(1);
  Duration boot_time = std::chrono::seconds(20);
  Duration slow_boot_time = std::chrono::minutes(5);
  // ACPI reboot: how long a responsive guest takes to shut down.
  Duration shutdown_time = std::chrono::seconds(5);
  // How long every verb takes before it applies and completes (>= 0).
  Duration verb_time{};
  Duration flap_up = std::chrono::seconds(60);
  Duration flap_down = std::chrono::seconds(20);
  // Scheduled faults: the mean fleet-wide rate (Poisson); 0 turns it off.
  double faults_per_hour = 0;
  // Relative weight of each kind for scheduled faults; empty = the defaults
  // (hang 30, soft_hang 10, panic 20, crash 20, slow_boot 10, flapping 5,
  // partition 4, host_loss 1).
  std::map<FaultKind, double> fault_weights;
  // How long scheduled host faults last before the host comes back.
  Duration partition_duration = std::chrono::minutes(2);
  Duration host_loss_duration = std::chrono::minutes(10);
  // What every host can clone: template name -> the labels its clones get
  // (besides `template: NAME`). Empty: the hosts do not provision.
  std::map<std::string, std::map<std::string, std::string>> templates;
};

// Reads a `sim:` map of a config file into SimOptions, starting from the
// defaults; keys as in SimOptions (durations like "20s", fault_weights a map
// of fault name to weight, templates a map of name to {labels: {k: v}}).
// Problems, unknown keys included, go to `reader`
// with file:line:col; check reader.ok() before using the result.
SimOptions read_sim_options(ConfigReader& reader, const YAML::Node& map);

// One fault the fleet applied, on demand or from the schedule.
struct InjectedFault {
  Time at{};
  FaultKind kind = FaultKind::kHang;
  std::string host;
  std::string vm;  // VM id; empty for host faults
  bool scheduled = false;
};

struct InjectorStats {
  uint64_t attempted = 0;  // scheduled picks
  uint64_t injected = 0;   // picks that applied
  uint64_t skipped = 0;    // picks refused (e.g. crash on a VM already down)
};

class SimFleet;

class SimHost final : public Hypervisor {
 public:
  const std::string& host() const override { return name_; }
  Result<std::vector<VmInfo>> list() override;
  Result<VmInfo> get(const std::string& vm) override;
  void subscribe(EventSink sink) override { sink_ = std::move(sink); }
  void poll() override {}
  // Completes verb_time later from a Clock timer (see the header comment).
  void execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) override;
  // A VM fault by name (fault_name); host faults are refused (kInvalidArgument).
  Status inject_fault(const std::string& fault, const std::string& vm) override;
  // See "Provisioning" in the header comment.
  Status begin_clone(const CloneSpec& spec, Duration timeout, VerbDone done) override;
  std::vector<std::string> templates() const override;

  bool partitioned() const { return partitioned_; }
  bool lost() const { return lost_; }
  size_t vm_count() const { return vms_.size() - free_slots_.size(); }

 private:
  friend class SimFleet;

  enum Bit : uint16_t {
    kBitHang = 1 << 0,
    kBitSoftHang = 1 << 1,
    kBitSlowBoot = 1 << 2,
    kBitFlapping = 1 << 3,
  };
  // Verb counts per VM: slots 1-5 the verbs of those numbers, 6 delete, 0
  // any other.
  static constexpr size_t kVerbSlots = 7;
  struct Vm {
    std::string id;
    std::string name;
    uint8_t tier = 0;
    uint8_t owner = 0;
    bool flap_down = false;
    bool removed = false;  // a deleted clone: a free slot, in no index
    VmState state = medic::v1::VM_STATE_RUNNING;
    uint16_t bits = 0;
    uint16_t clone_of = 0;  // 0: configured; n: cloned from the fleet's template n-1
    uint32_t gen = 0;  // bumped by every change that voids pending VM timers
    int pid = 0;
    uint64_t heartbeats = 0;
    Time last_heartbeat{};
    std::array<uint32_t, kVerbSlots> executed{};
    std::array<uint32_t, kVerbSlots> refused{};
  };
  // A clone between begin_clone and its verb_time.
  struct PendingClone {
    CloneSpec spec;
    uint16_t template_slot = 0;  // as Vm::clone_of
  };

  SimHost(SimFleet& fleet, uint32_t index, std::string name);

  void tick();
  VmInfo info(const Vm& v) const;
  bool heartbeating(const Vm& v) const;
  void emit_lifecycle(Vm& v, Lifecycle what, const std::string& detail);
  Status run_verb(Verb verb, const std::string& vm);
  Status apply(Verb verb, uint32_t vi);
  Status remove_clone(uint32_t vi);
  Status check_clone(const CloneSpec& spec) const;
  Status add_clone(const PendingClone& c);
  void begin_boot(uint32_t vi, bool new_process);
  void boot_done(uint32_t vi, uint32_t gen);
  void shutdown_done(uint32_t vi, uint32_t gen);
  void flap_fail(uint32_t vi, uint32_t gen);
  void flap_heal(uint32_t vi, uint32_t gen);
  void clear_guest_faults(Vm& v);
  Status inject_vm(FaultKind kind, uint32_t vi);
  void lose();
  void restore();

  SimFleet& fleet_;
  uint32_t index_;
  std::string name_;
  bool partitioned_ = false;
  bool lost_ = false;
  uint32_t host_fault_gen_ = 0;
  int next_pid_ = 1000;
  std::vector<Vm> vms_;
  std::unordered_map<std::string, uint32_t> by_id_;
  EventSink sink_;
  VmEvent scratch_;  // reused for heartbeats so the hot path does not allocate
  // Verbs in progress, by sequence number: cancelled when the fleet goes.
  std::unordered_map<uint64_t, TimerId> verbs_;
  uint64_t next_verb_ = 0;
  std::unordered_map<uint64_t, PendingClone> cloning_;  // by verb sequence number
  std::vector<uint32_t> free_slots_;                    // of deleted clones
  Time next_tick_{};
};

class SimFleet {
 public:
  // A non-positive heartbeat_interval is taken as 1s; other durations must be
  // positive.
  SimFleet(Clock& clock, SimOptions options);
  ~SimFleet();
  SimFleet(const SimFleet&) = delete;
  SimFleet& operator=(const SimFleet&) = delete;

  const SimOptions& options() const { return opts_; }
  Clock& clock() { return clock_; }
  size_t host_count() const { return hosts_.size(); }
  SimHost& host(size_t i) { return *hosts_.at(i); }
  SimHost* find_host(const std::string& name);
  // Every VM id, host by host, in creation order.
  std::vector<std::string> vm_ids() const;
  // The host name of a VM (by id or name); empty when unknown.
  std::string host_of(const std::string& vm) const;

  // Applies a fault now. `vm` (id or name) is ignored for host faults.
  // kNotFound for an unknown host or VM; kUnavailable for a VM fault on a lost
  // host; kFailedPrecondition when the VM has no process to fault.
  Status inject(FaultKind kind, const std::string& host, const std::string& vm = "");
  // Ends a partition or brings a lost host back (its VMs boot).
  Status heal_host(const std::string& host);
  // Out-of-band cure (an operator fixed it): drops hang, soft hang, flapping
  // and slow boot from a VM. A panicked or crashed VM stays so until a verb.
  Status clear_faults(const std::string& vm);
  // Called for each applied fault (the demo's timeline); may be empty.
  void on_fault(std::function<void(const InjectedFault&)> cb) { on_fault_ = std::move(cb); }

  // Ground truth, independent of what any collector can see.
  bool is_healthy(const std::string& vm) const;
  std::vector<FaultKind> active_faults(const std::string& vm) const;
  Result<VmInfo> true_info(const std::string& vm) const;
  uint32_t verbs_executed(const std::string& vm, Verb verb) const;
  uint32_t verbs_refused(const std::string& vm, Verb verb) const;
  uint64_t total_executed(Verb verb) const;

  const std::vector<InjectedFault>& injections() const { return injections_; }
  const InjectorStats& injector_stats() const { return injector_; }
  uint64_t heartbeats_delivered() const { return heartbeats_delivered_; }

 private:
  friend class SimHost;
  enum class TaskKind : uint8_t {
    kTick,
    kBootDone,
    kShutdownDone,
    kFlapFail,
    kFlapHeal,
    kInject,
    kHostHeal,
  };
  struct Task {
    TaskKind kind;
    uint32_t host = 0;
    uint32_t vm = 0;
    uint32_t gen = 0;
  };

  void schedule(Time at, Task task);
  void run(const Task& task);
  void schedule_next_injection();
  void scheduled_injection();
  void record(FaultKind kind, const SimHost& h, const std::string& vm, bool scheduled);
  Status inject_at(FaultKind kind, uint32_t hi, std::optional<uint32_t> vi, bool scheduled);
  const SimHost::Vm* find_vm(const std::string& vm, uint32_t* host = nullptr) const;
  void index_vm(uint32_t hi, uint32_t vi);
  void unindex_vm(uint32_t hi, uint32_t vi);

  Clock& clock_;
  SimOptions opts_;
  std::vector<std::unique_ptr<SimHost>> hosts_;
  // VM id and name -> (host, index).
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>> vm_index_;
  std::vector<std::string> template_names_;        // opts_.templates' keys, sorted
  std::unordered_map<uint64_t, TimerId> pending_;  // our timers, cancelled on destruction
  uint64_t next_task_key_ = 0;
  uint64_t fault_rng_;
  std::array<double, kFaultKindCount> weights_{};
  std::vector<InjectedFault> injections_;
  InjectorStats injector_;
  uint64_t heartbeats_delivered_ = 0;
  std::function<void(const InjectedFault&)> on_fault_;
};

}  // namespace medic::vmm::sim
