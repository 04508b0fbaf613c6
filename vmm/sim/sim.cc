#include "vmm/sim/sim.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "core/duration.h"
#include "vmm/provisioning.h"

namespace medic::vmm::sim {
namespace {

using medic::v1::VM_STATE_BOOTING;
using medic::v1::VM_STATE_CRASHED;
using medic::v1::VM_STATE_PANICKED;
using medic::v1::VM_STATE_RUNNING;
using medic::v1::VM_STATE_SHUTTING_DOWN;
using medic::v1::VM_STATE_STOPPED;

constexpr const char* kFaultNames[kFaultKindCount] = {
    "hang", "soft_hang", "panic", "crash", "slow_boot", "flapping", "partition", "host_loss"};
constexpr double kDefaultWeights[kFaultKindCount] = {30, 10, 20, 20, 10, 5, 4, 1};
constexpr const char* kTiers[] = {"web", "db", "batch"};
constexpr const char* kOwners[] = {"team-a", "team-b"};

// SplitMix64: tiny, fast, and the same sequence on every platform (the
// standard library's distributions are not), so a seed means one fleet.
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in (0, 1].
double next_unit(uint64_t& state) {
  return (static_cast<double>(next_random(state) >> 11) + 1.0) / 9007199254740992.0;
}

uint32_t next_below(uint64_t& state, uint32_t n) {
  return static_cast<uint32_t>(next_random(state) % n);
}

std::string make_uuid(uint64_t& state) {
  uint64_t hi = next_random(state);
  uint64_t lo = next_random(state);
  hi = (hi & ~0xF000ull) | 0x4000ull;                         // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

int digits(int n) {
  int d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

std::string numbered(const std::string& prefix, int n, int width) {
  std::string digits_of_n = std::to_string(n);
  if (static_cast<int>(digits_of_n.size()) < width) {
    digits_of_n.insert(0, static_cast<size_t>(width) - digits_of_n.size(), '0');
  }
  return prefix + digits_of_n;
}

size_t verb_slot(Verb v) {
  if (v == medic::v1::VERB_DELETE) return 6;
  auto i = static_cast<size_t>(v);
  return i < 6 ? i : 0;
}

bool has_process(VmState s) { return s != VM_STATE_STOPPED && s != VM_STATE_CRASHED; }

}  // namespace

const char* fault_name(FaultKind kind) {
  auto i = static_cast<size_t>(kind);
  return i < kFaultKindCount ? kFaultNames[i] : "unknown";
}

std::optional<FaultKind> fault_from_name(std::string_view name) {
  for (int i = 0; i < kFaultKindCount; ++i) {
    if (name == kFaultNames[i]) return static_cast<FaultKind>(i);
  }
  return std::nullopt;
}

bool is_host_fault(FaultKind kind) {
  return kind == FaultKind::kPartition || kind == FaultKind::kHostLoss;
}

// ---------------------------------------------------------------- SimHost

SimHost::SimHost(SimFleet& fleet, uint32_t index, std::string name)
    : fleet_(fleet), index_(index), name_(std::move(name)) {
  scratch_.type = VmEvent::Type::kHeartbeat;
}

bool SimHost::heartbeating(const Vm& v) const {
  return v.state == VM_STATE_RUNNING && !(v.bits & (kBitHang | kBitSoftHang)) && !v.flap_down;
}

VmInfo SimHost::info(const Vm& v) const {
  VmInfo i;
  i.id = v.id;
  i.name = v.name;
  i.state = v.state;
  if (v.clone_of == 0) {
    i.labels = {{"tier", kTiers[v.tier]}, {"owner", kOwners[v.owner]}};
  } else {
    const std::string& t = fleet_.template_names_[v.clone_of - 1u];
    i.labels = fleet_.opts_.templates.at(t);
    i.labels["template"] = t;
  }
  i.last_heartbeat = v.last_heartbeat;
  i.pid = v.pid;
  return i;
}

Result<std::vector<VmInfo>> SimHost::list() {
  if (lost_) return unavailable("host " + name_ + " is down");
  if (partitioned_) return unavailable("host " + name_ + " is unreachable (partition)");
  std::vector<VmInfo> out;
  out.reserve(vms_.size());
  for (const auto& v : vms_) {
    if (!v.removed) out.push_back(info(v));
  }
  return out;
}

Result<VmInfo> SimHost::get(const std::string& vm) {
  // An unreachable host cannot say whether it has the VM either.
  if (lost_) return unavailable("host " + name_ + " is down");
  if (partitioned_) return unavailable("host " + name_ + " is unreachable (partition)");
  auto it = by_id_.find(vm);
  if (it == by_id_.end()) return not_found("no VM " + vm + " on host " + name_);
  return info(vms_[it->second]);
}

void SimHost::tick() {
  Time now = fleet_.clock_.now();
  if (!lost_) {
    bool deliver = sink_ && !partitioned_;
    scratch_.at = now;
    for (auto& v : vms_) {
      if (!heartbeating(v)) continue;
      ++v.heartbeats;
      v.last_heartbeat = now;
      if (!deliver) continue;
      scratch_.vm.assign(v.id);
      scratch_.counter = v.heartbeats;
      sink_(scratch_);
      ++fleet_.heartbeats_delivered_;
    }
  }
  // Tick on a fixed grid so a late SystemClock does not drift the phase.
  next_tick_ += fleet_.opts_.heartbeat_interval;
  if (next_tick_ <= now) next_tick_ = now + fleet_.opts_.heartbeat_interval;
  fleet_.schedule(next_tick_, {SimFleet::TaskKind::kTick, index_, 0, 0});
}

void SimHost::emit_lifecycle(Vm& v, Lifecycle what, const std::string& detail) {
  if (!sink_ || partitioned_ || lost_) return;
  VmEvent e;
  e.type = VmEvent::Type::kLifecycle;
  e.vm = v.id;
  e.what = what;
  e.detail = detail;
  e.at = fleet_.clock_.now();
  sink_(e);
}

void SimHost::clear_guest_faults(Vm& v) {
  v.bits &= static_cast<uint16_t>(~(kBitHang | kBitSoftHang));
  v.flap_down = false;
}

void SimHost::begin_boot(uint32_t vi, bool new_process) {
  Vm& v = vms_[vi];
  ++v.gen;
  clear_guest_faults(v);
  if (new_process) v.pid = next_pid_++;
  v.state = VM_STATE_BOOTING;
  Duration d = (v.bits & kBitSlowBoot) ? fleet_.opts_.slow_boot_time : fleet_.opts_.boot_time;
  fleet_.schedule(fleet_.clock_.now() + d, {SimFleet::TaskKind::kBootDone, index_, vi, v.gen});
}

void SimHost::boot_done(uint32_t vi, uint32_t gen) {
  Vm& v = vms_[vi];
  if (v.gen != gen || v.state != VM_STATE_BOOTING || lost_) return;
  v.state = VM_STATE_RUNNING;
  v.bits &= static_cast<uint16_t>(~kBitSlowBoot);
  if (v.bits & kBitFlapping) {
    fleet_.schedule(fleet_.clock_.now() + fleet_.opts_.flap_up,
                    {SimFleet::TaskKind::kFlapFail, index_, vi, v.gen});
  }
}

void SimHost::shutdown_done(uint32_t vi, uint32_t gen) {
  Vm& v = vms_[vi];
  if (v.gen != gen || v.state != VM_STATE_SHUTTING_DOWN || lost_) return;
  emit_lifecycle(v, medic::v1::LIFECYCLE_SHUTDOWN, "guest powered off (ACPI)");
  begin_boot(vi, /*new_process=*/true);
  emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, "reboot");
}

void SimHost::flap_fail(uint32_t vi, uint32_t gen) {
  Vm& v = vms_[vi];
  if (v.gen != gen || !(v.bits & kBitFlapping) || v.state != VM_STATE_RUNNING || lost_) return;
  v.flap_down = true;
  fleet_.schedule(fleet_.clock_.now() + fleet_.opts_.flap_down,
                  {SimFleet::TaskKind::kFlapHeal, index_, vi, v.gen});
}

void SimHost::flap_heal(uint32_t vi, uint32_t gen) {
  Vm& v = vms_[vi];
  if (v.gen != gen || !v.flap_down || lost_) return;
  v.flap_down = false;
  fleet_.schedule(fleet_.clock_.now() + fleet_.opts_.flap_up,
                  {SimFleet::TaskKind::kFlapFail, index_, vi, v.gen});
}

void SimHost::execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) {
  const Duration takes = fleet_.opts_.verb_time;
  const uint64_t seq = next_verb_++;
  Clock& clock = fleet_.clock_;
  if (takes > timeout) {
    verbs_[seq] = clock.schedule_after(timeout, [this, seq, verb, timeout, done] {
      verbs_.erase(seq);
      done(timeout_error(std::string(verb_name(verb)) + " did not finish within " +
                         format_duration(timeout)));
    });
    return;
  }
  verbs_[seq] = clock.schedule_after(takes, [this, seq, verb, vm, done] {
    verbs_.erase(seq);
    done(run_verb(verb, vm));
  });
}

Status SimHost::run_verb(Verb verb, const std::string& vm) {
  auto it = by_id_.find(vm);
  if (it == by_id_.end()) {
    if (lost_ || partitioned_) return unavailable("host " + name_ + " is unreachable");
    return not_found("no VM " + vm + " on host " + name_);
  }
  Vm& v = vms_[it->second];
  Status s = apply(verb, it->second);
  if (s.ok()) {
    ++v.executed[verb_slot(verb)];
  } else {
    ++v.refused[verb_slot(verb)];
  }
  return s;
}

Status SimHost::apply(Verb verb, uint32_t vi) {
  Vm& v = vms_[vi];
  if (lost_) return unavailable("host " + name_ + " is down");
  if (partitioned_) return unavailable("host " + name_ + " is unreachable (partition)");
  const std::string state = state_name(v.state);
  switch (verb) {
    case medic::v1::VERB_REBOOT:
      if (!has_process(v.state)) {
        return failed_precondition("cannot reboot " + v.name + ": it is " + state);
      }
      // A hung or panicked guest (and one still booting) ignores the ACPI
      // button: the request is accepted and nothing happens.
      if (v.state == VM_STATE_RUNNING && !(v.bits & kBitHang) && !v.flap_down) {
        ++v.gen;
        v.state = VM_STATE_SHUTTING_DOWN;
        fleet_.schedule(fleet_.clock_.now() + fleet_.opts_.shutdown_time,
                        {SimFleet::TaskKind::kShutdownDone, index_, vi, v.gen});
      }
      return {};
    case medic::v1::VERB_RESET:
      if (!has_process(v.state)) {
        return failed_precondition("cannot reset " + v.name + ": it is " + state + " (no process)");
      }
      begin_boot(vi, /*new_process=*/false);
      emit_lifecycle(v, medic::v1::LIFECYCLE_RESET, "reset");
      return {};
    case medic::v1::VERB_RESTART:
      if (v.state == VM_STATE_STOPPED) {
        return failed_precondition("cannot restart " + v.name +
                                   ": it was stopped on purpose; use start");
      }
      begin_boot(vi, /*new_process=*/true);
      emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, "restart");
      return {};
    case medic::v1::VERB_STOP:
      if (v.state == VM_STATE_STOPPED) {
        return failed_precondition("cannot stop " + v.name + ": it is already stopped");
      }
      ++v.gen;
      clear_guest_faults(v);
      v.state = VM_STATE_STOPPED;
      v.pid = 0;
      emit_lifecycle(v, medic::v1::LIFECYCLE_STOPPED, "stop");
      return {};
    case medic::v1::VERB_START:
      if (has_process(v.state)) {
        return failed_precondition("cannot start " + v.name + ": it is " + state +
                                   " (its process is alive)");
      }
      begin_boot(vi, /*new_process=*/true);
      emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, "start");
      return {};
    case medic::v1::VERB_DELETE:
      return remove_clone(vi);
    default:
      return invalid_argument("unknown verb " + std::to_string(static_cast<int>(verb)));
  }
}

Status SimHost::inject_fault(const std::string& fault, const std::string& vm) {
  auto kind = fault_from_name(fault);
  if (!kind || is_host_fault(*kind)) {
    std::string names;
    for (int i = 0; i < kFaultKindCount; ++i) {
      if (is_host_fault(static_cast<FaultKind>(i))) continue;
      names += std::string(names.empty() ? "" : ", ") + kFaultNames[i];
    }
    return invalid_argument("no VM fault \"" + fault + "\" (one of: " + names + ")");
  }
  return fleet_.inject(*kind, name_, vm);
}

std::vector<std::string> SimHost::templates() const { return fleet_.template_names_; }

Status SimHost::check_clone(const CloneSpec& spec) const {
  if (fleet_.vm_index_.count(spec.id)) return already_exists("a VM with id " + spec.id + " exists");
  if (fleet_.vm_index_.count(spec.name)) {
    return already_exists("a VM named " + spec.name + " exists");
  }
  for (const auto& [seq, c] : cloning_) {
    if (c.spec.id == spec.id || c.spec.name == spec.name) {
      return already_exists("VM " + c.spec.name + " (" + c.spec.id + ") is being cloned");
    }
  }
  return {};
}

Status SimHost::begin_clone(const CloneSpec& spec, Duration timeout, VerbDone done) {
  MEDIC_RETURN_IF_ERROR(check_clone_spec(spec));
  if (lost_) return unavailable("host " + name_ + " is down");
  if (partitioned_) return unavailable("host " + name_ + " is unreachable (partition)");
  const auto& names = fleet_.template_names_;
  auto t = std::lower_bound(names.begin(), names.end(), spec.template_name);
  if (t == names.end() || *t != spec.template_name) {
    return unknown_template(name_, spec.template_name, names);
  }
  MEDIC_RETURN_IF_ERROR(check_clone(spec));
  if (t - names.begin() >= UINT16_MAX) {
    return failed_precondition("template " + *t + " is past the simulator's 65534 templates");
  }
  const uint64_t seq = next_verb_++;
  cloning_[seq] = {spec, static_cast<uint16_t>(t - names.begin() + 1)};
  Clock& clock = fleet_.clock_;
  const Duration takes = fleet_.opts_.verb_time;
  if (takes > timeout) {
    verbs_[seq] = clock.schedule_after(timeout, [this, seq, timeout, done] {
      verbs_.erase(seq);
      const std::string what = cloning_[seq].spec.name;
      cloning_.erase(seq);
      done(timeout_error("clone " + what + " did not finish within " + format_duration(timeout)));
    });
    return {};
  }
  verbs_[seq] = clock.schedule_after(takes, [this, seq, done] {
    verbs_.erase(seq);
    PendingClone c = std::move(cloning_[seq]);
    cloning_.erase(seq);
    done(add_clone(c));
  });
  return {};
}

// The clone's VM appears (in a deleted clone's slot when there is one) and
// boots as a started VM does.
Status SimHost::add_clone(const PendingClone& c) {
  if (lost_ || partitioned_) return unavailable("host " + name_ + " is unreachable");
  uint32_t vi = 0;
  if (free_slots_.empty()) {
    vi = static_cast<uint32_t>(vms_.size());
    vms_.emplace_back();
  } else {
    vi = free_slots_.back();
    free_slots_.pop_back();
    const uint32_t gen = vms_[vi].gen;
    vms_[vi] = Vm{};
    vms_[vi].gen = gen;  // timers of the slot's last VM stay void
  }
  Vm& v = vms_[vi];
  v.id = c.spec.id;
  v.name = c.spec.name;
  v.clone_of = c.template_slot;
  by_id_.emplace(v.id, vi);
  fleet_.index_vm(index_, vi);
  begin_boot(vi, /*new_process=*/true);
  emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, "clone of template " + c.spec.template_name);
  return {};
}

Status SimHost::remove_clone(uint32_t vi) {
  Vm& v = vms_[vi];
  if (v.clone_of == 0) {
    return failed_precondition("cannot delete " + v.name +
                               ": it was not cloned from a template (a configured VM is the "
                               "operator's, only clones are deleted)");
  }
  const bool alive = has_process(v.state);
  ++v.gen;
  v.bits = 0;
  clear_guest_faults(v);
  v.state = VM_STATE_STOPPED;
  v.pid = 0;
  if (alive) emit_lifecycle(v, medic::v1::LIFECYCLE_STOPPED, "delete");
  fleet_.unindex_vm(index_, vi);
  by_id_.erase(v.id);
  v.removed = true;
  free_slots_.push_back(vi);
  return {};
}

Status SimHost::inject_vm(FaultKind kind, uint32_t vi) {
  Vm& v = vms_[vi];
  if (lost_) return unavailable("host " + name_ + " is down");
  bool alive = has_process(v.state);
  auto need_process = [&]() -> Status {
    if (alive) return {};
    return failed_precondition(std::string("cannot inject ") + fault_name(kind) + " into " +
                               v.name + ": it is " + state_name(v.state));
  };
  switch (kind) {
    case FaultKind::kHang:
      MEDIC_RETURN_IF_ERROR(need_process());
      v.bits |= kBitHang;
      return {};
    case FaultKind::kSoftHang:
      MEDIC_RETURN_IF_ERROR(need_process());
      v.bits |= kBitSoftHang;
      return {};
    case FaultKind::kPanic:
      MEDIC_RETURN_IF_ERROR(need_process());
      ++v.gen;
      v.state = VM_STATE_PANICKED;
      emit_lifecycle(v, medic::v1::LIFECYCLE_PANICKED,
                     "Kernel panic - not syncing: simulated fault");
      return {};
    case FaultKind::kCrash:
      MEDIC_RETURN_IF_ERROR(need_process());
      ++v.gen;
      clear_guest_faults(v);
      v.state = VM_STATE_CRASHED;
      v.pid = 0;
      emit_lifecycle(v, medic::v1::LIFECYCLE_CRASHED, "qemu exited unexpectedly (simulated)");
      return {};
    case FaultKind::kSlowBoot:
      v.bits |= kBitSlowBoot;
      if (v.state == VM_STATE_RUNNING) {
        // The guest reboots by itself and its boot is slow (say, an fsck).
        begin_boot(vi, /*new_process=*/false);
        emit_lifecycle(v, medic::v1::LIFECYCLE_RESET, "guest rebooted itself");
      } else if (v.state == VM_STATE_BOOTING) {
        ++v.gen;
        fleet_.schedule(fleet_.clock_.now() + fleet_.opts_.slow_boot_time,
                        {SimFleet::TaskKind::kBootDone, index_, vi, v.gen});
      }
      return {};
    case FaultKind::kFlapping:
      MEDIC_RETURN_IF_ERROR(need_process());
      if (v.bits & kBitFlapping) return {};  // one flap cycle per VM, not two interleaved
      v.bits |= kBitFlapping;
      if (v.state == VM_STATE_RUNNING && !v.flap_down) {
        v.flap_down = true;
        fleet_.schedule(fleet_.clock_.now() + fleet_.opts_.flap_down,
                        {SimFleet::TaskKind::kFlapHeal, index_, vi, v.gen});
      }
      return {};
    default:
      return invalid_argument(std::string(fault_name(kind)) + " is a host fault");
  }
}

void SimHost::lose() {
  lost_ = true;
  for (auto& v : vms_) {
    if (v.removed) continue;
    ++v.gen;
    clear_guest_faults(v);
    v.state = VM_STATE_CRASHED;
    v.pid = 0;
  }
}

void SimHost::restore() {
  lost_ = false;
  for (uint32_t i = 0; i < vms_.size(); ++i) {
    if (vms_[i].removed) continue;
    begin_boot(i, /*new_process=*/true);
    emit_lifecycle(vms_[i], medic::v1::LIFECYCLE_STARTED, "host came back (autoboot)");
  }
}

// --------------------------------------------------------------- SimFleet

SimFleet::SimFleet(Clock& clock, SimOptions options)
    : clock_(clock), opts_(std::move(options)), fault_rng_(opts_.seed ^ 0x5EEDFA17ull) {
  // A zero interval would tick forever at one instant.
  if (opts_.heartbeat_interval <= Duration::zero()) {
    opts_.heartbeat_interval = std::chrono::seconds(1);
  }
  if (!opts_.host_names.empty()) opts_.hosts = static_cast<int>(opts_.host_names.size());
  opts_.hosts = std::max(opts_.hosts, 0);
  opts_.vms_per_host = std::max(opts_.vms_per_host, 0);
  uint64_t id_rng = opts_.seed;
  const int host_width = std::max(2, digits(opts_.hosts));
  const int vm_width = std::max(3, digits(opts_.vms_per_host));
  const Time start = clock_.now();
  for (int h = 0; h < opts_.hosts; ++h) {
    auto host = std::unique_ptr<SimHost>(
        new SimHost(*this, static_cast<uint32_t>(h),
                    opts_.host_names.empty() ? numbered("host-", h + 1, host_width)
                                             : opts_.host_names[static_cast<size_t>(h)]));
    host->vms_.resize(static_cast<size_t>(opts_.vms_per_host));
    for (int m = 0; m < opts_.vms_per_host; ++m) {
      auto& v = host->vms_[static_cast<size_t>(m)];
      v.id = make_uuid(id_rng);
      v.name = numbered(host->name_ + "-vm-", m + 1, vm_width);
      v.tier = static_cast<uint8_t>(next_below(id_rng, 3));
      v.owner = static_cast<uint8_t>(next_below(id_rng, 2));
      v.pid = host->next_pid_++;
      host->by_id_.emplace(v.id, static_cast<uint32_t>(m));
      vm_index_.emplace(v.id, std::make_pair(static_cast<uint32_t>(h), static_cast<uint32_t>(m)));
      vm_index_.emplace(v.name, std::make_pair(static_cast<uint32_t>(h), static_cast<uint32_t>(m)));
    }
    // Spread the hosts' ticks over the interval, as real hosts are not in step.
    host->next_tick_ = start + opts_.heartbeat_interval * (h + 1) / opts_.hosts;
    schedule(host->next_tick_, {TaskKind::kTick, static_cast<uint32_t>(h), 0, 0});
    hosts_.push_back(std::move(host));
  }
  for (const auto& [name, labels] : opts_.templates) template_names_.push_back(name);
  for (int i = 0; i < kFaultKindCount; ++i) {
    auto it = opts_.fault_weights.find(static_cast<FaultKind>(i));
    if (opts_.fault_weights.empty()) {
      weights_[static_cast<size_t>(i)] = kDefaultWeights[i];
    } else {
      weights_[static_cast<size_t>(i)] = it == opts_.fault_weights.end() ? 0 : it->second;
    }
  }
  schedule_next_injection();
}

SimFleet::~SimFleet() {
  for (const auto& [key, id] : pending_) clock_.cancel(id);
  for (auto& h : hosts_) {
    for (const auto& [seq, id] : h->verbs_) clock_.cancel(id);
  }
}

void SimFleet::schedule(Time at, Task task) {
  uint64_t key = next_task_key_++;
  TimerId id = clock_.schedule_at(at, [this, key, task] {
    pending_.erase(key);
    run(task);
  });
  pending_.emplace(key, id);
}

void SimFleet::run(const Task& t) {
  switch (t.kind) {
    case TaskKind::kTick:
      hosts_[t.host]->tick();
      break;
    case TaskKind::kBootDone:
      hosts_[t.host]->boot_done(t.vm, t.gen);
      break;
    case TaskKind::kShutdownDone:
      hosts_[t.host]->shutdown_done(t.vm, t.gen);
      break;
    case TaskKind::kFlapFail:
      hosts_[t.host]->flap_fail(t.vm, t.gen);
      break;
    case TaskKind::kFlapHeal:
      hosts_[t.host]->flap_heal(t.vm, t.gen);
      break;
    case TaskKind::kInject:
      scheduled_injection();
      break;
    case TaskKind::kHostHeal: {
      SimHost& h = *hosts_[t.host];
      if (h.host_fault_gen_ == t.gen) (void)heal_host(h.name_);
      break;
    }
  }
}

void SimFleet::schedule_next_injection() {
  if (opts_.faults_per_hour <= 0 || hosts_.empty()) return;
  double total = 0;
  for (double w : weights_) total += w;
  if (total <= 0) return;
  // Exponential gaps give a Poisson process at the configured mean rate.
  double gap_s = -std::log(next_unit(fault_rng_)) * 3600.0 / opts_.faults_per_hour;
  auto gap = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(gap_s));
  schedule(clock_.now() + std::max(gap, Duration(1)), {TaskKind::kInject, 0, 0, 0});
}

void SimFleet::scheduled_injection() {
  ++injector_.attempted;
  double total = 0;
  for (double w : weights_) total += w;
  double pick = next_unit(fault_rng_) * total;
  int kind_index = -1;
  for (int i = 0; i < kFaultKindCount; ++i) {
    double w = weights_[static_cast<size_t>(i)];
    if (w <= 0) continue;
    kind_index = i;  // the last kind with weight absorbs rounding
    pick -= w;
    if (pick <= 0) break;
  }
  auto kind = static_cast<FaultKind>(kind_index);
  Status s;
  if (is_host_fault(kind)) {
    s = inject_at(kind, next_below(fault_rng_, static_cast<uint32_t>(hosts_.size())), std::nullopt,
                  true);
  } else {
    uint32_t per_host = static_cast<uint32_t>(opts_.vms_per_host);
    if (per_host == 0) {
      s = failed_precondition("no VMs");
    } else {
      uint32_t n = next_below(fault_rng_, per_host * static_cast<uint32_t>(hosts_.size()));
      s = inject_at(kind, n / per_host, n % per_host, true);
    }
  }
  if (s.ok()) {
    ++injector_.injected;
  } else {
    ++injector_.skipped;
  }
  schedule_next_injection();
}

void SimFleet::record(FaultKind kind, const SimHost& h, const std::string& vm, bool scheduled) {
  injections_.push_back({clock_.now(), kind, h.name_, vm, scheduled});
  if (on_fault_) on_fault_(injections_.back());
}

Status SimFleet::inject_at(FaultKind kind, uint32_t hi, std::optional<uint32_t> vi,
                           bool scheduled) {
  SimHost& h = *hosts_[hi];
  if (kind == FaultKind::kPartition) {
    if (h.lost_) return failed_precondition("host " + h.name_ + " is down");
    h.partitioned_ = true;
  } else if (kind == FaultKind::kHostLoss) {
    h.lose();
  } else {
    MEDIC_RETURN_IF_ERROR(h.inject_vm(kind, *vi));
  }
  if (is_host_fault(kind)) {
    ++h.host_fault_gen_;
    if (scheduled) {
      Duration d =
          kind == FaultKind::kPartition ? opts_.partition_duration : opts_.host_loss_duration;
      schedule(clock_.now() + d, {TaskKind::kHostHeal, hi, 0, h.host_fault_gen_});
    }
  }
  record(kind, h, vi ? h.vms_[*vi].id : std::string(), scheduled);
  return {};
}

void SimFleet::index_vm(uint32_t hi, uint32_t vi) {
  const SimHost::Vm& v = hosts_[hi]->vms_[vi];
  vm_index_[v.id] = {hi, vi};
  vm_index_[v.name] = {hi, vi};
}

void SimFleet::unindex_vm(uint32_t hi, uint32_t vi) {
  const SimHost::Vm& v = hosts_[hi]->vms_[vi];
  vm_index_.erase(v.id);
  vm_index_.erase(v.name);
}

SimHost* SimFleet::find_host(const std::string& name) {
  for (auto& h : hosts_) {
    if (h->name_ == name) return h.get();
  }
  return nullptr;
}

std::vector<std::string> SimFleet::vm_ids() const {
  std::vector<std::string> out;
  for (const auto& h : hosts_) {
    for (const auto& v : h->vms_) {
      if (!v.removed) out.push_back(v.id);
    }
  }
  return out;
}

std::string SimFleet::host_of(const std::string& vm) const {
  uint32_t hi = 0;
  if (!find_vm(vm, &hi)) return {};
  return hosts_[hi]->name_;
}

const SimHost::Vm* SimFleet::find_vm(const std::string& vm, uint32_t* host) const {
  auto it = vm_index_.find(vm);
  if (it == vm_index_.end()) return nullptr;
  if (host) *host = it->second.first;
  return &hosts_[it->second.first]->vms_[it->second.second];
}

Status SimFleet::inject(FaultKind kind, const std::string& host, const std::string& vm) {
  SimHost* h = find_host(host);
  if (!h) return not_found("no host " + host);
  if (is_host_fault(kind)) return inject_at(kind, h->index_, std::nullopt, false);
  auto it = vm_index_.find(vm);
  if (it == vm_index_.end() || it->second.first != h->index_) {
    return not_found("no VM " + vm + " on host " + host);
  }
  return inject_at(kind, h->index_, it->second.second, false);
}

Status SimFleet::heal_host(const std::string& host) {
  SimHost* h = find_host(host);
  if (!h) return not_found("no host " + host);
  ++h->host_fault_gen_;
  h->partitioned_ = false;
  if (h->lost_) h->restore();
  return {};
}

Status SimFleet::clear_faults(const std::string& vm) {
  auto it = vm_index_.find(vm);
  if (it == vm_index_.end()) return not_found("no VM " + vm);
  SimHost& h = *hosts_[it->second.first];
  SimHost::Vm& v = h.vms_[it->second.second];
  v.bits = 0;
  v.flap_down = false;
  return {};
}

bool SimFleet::is_healthy(const std::string& vm) const {
  uint32_t hi = 0;
  const SimHost::Vm* v = find_vm(vm, &hi);
  return v && !hosts_[hi]->lost_ && hosts_[hi]->heartbeating(*v);
}

std::vector<FaultKind> SimFleet::active_faults(const std::string& vm) const {
  std::vector<FaultKind> out;
  uint32_t hi = 0;
  const SimHost::Vm* v = find_vm(vm, &hi);
  if (!v) return out;
  const SimHost& h = *hosts_[hi];
  if (h.lost_) out.push_back(FaultKind::kHostLoss);
  if (h.partitioned_) out.push_back(FaultKind::kPartition);
  if (h.lost_) return out;
  if (v->bits & SimHost::kBitHang) out.push_back(FaultKind::kHang);
  if (v->bits & SimHost::kBitSoftHang) out.push_back(FaultKind::kSoftHang);
  if (v->state == VM_STATE_PANICKED) out.push_back(FaultKind::kPanic);
  if (v->state == VM_STATE_CRASHED) out.push_back(FaultKind::kCrash);
  if (v->bits & SimHost::kBitSlowBoot) out.push_back(FaultKind::kSlowBoot);
  if (v->bits & SimHost::kBitFlapping) out.push_back(FaultKind::kFlapping);
  return out;
}

Result<VmInfo> SimFleet::true_info(const std::string& vm) const {
  uint32_t hi = 0;
  const SimHost::Vm* v = find_vm(vm, &hi);
  if (!v) return not_found("no VM " + vm);
  return hosts_[hi]->info(*v);
}

uint32_t SimFleet::verbs_executed(const std::string& vm, Verb verb) const {
  const SimHost::Vm* v = find_vm(vm);
  return v ? v->executed[verb_slot(verb)] : 0;
}

uint32_t SimFleet::verbs_refused(const std::string& vm, Verb verb) const {
  const SimHost::Vm* v = find_vm(vm);
  return v ? v->refused[verb_slot(verb)] : 0;
}

uint64_t SimFleet::total_executed(Verb verb) const {
  uint64_t n = 0;
  for (const auto& h : hosts_) {
    for (const auto& v : h->vms_) n += v.executed[verb_slot(verb)];
  }
  return n;
}

}  // namespace medic::vmm::sim
