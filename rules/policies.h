// The engine's safety policies, one class each, in the order the chain runs
// them (rules/policy_chain.h): silence, dry-run, host-silent, storm guard
// (rules/storm_guard.h), cooldown, budget, vm-in-flight, host concurrency,
// fleet concurrency, approval. Each owns the state it decides on; per-VM and
// per-host state is keyed by Fleet index (rules/fleet.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rules/fleet.h"
#include "rules/policy.h"

namespace medic::rules {

// Operators' silences, by id ("s-1", ...). Expired ones are dropped as found.
class SilencePolicy final : public SafetyPolicy {
 public:
  explicit SilencePolicy(const Fleet& fleet) : fleet_(fleet) {}
  Policy id() const override { return Policy::kSilence; }
  bool guards_notify() const override { return true; }
  PolicyCheck check(const PolicyContext& c) override;

  // The first silence (by id) that covers rule `rule` on `vm` at `now`.
  const Silence* match(const VmFacts& vm, const std::string& rule, Time now) const;
  std::string add(Silence s);
  bool remove(const std::string& id) { return silences_.erase(id) != 0; }
  const std::map<std::string, Silence>& silences() const { return silences_; }
  uint64_t counter() const { return counter_; }
  void restore(std::map<std::string, Silence> silences, uint64_t counter);

 private:
  const Fleet& fleet_;
  std::map<std::string, Silence> silences_;
  uint64_t counter_ = 0;
};

// Every rule in dry run (engine option), or this rule (mode: dry-run).
class DryRunPolicy final : public SafetyPolicy {
 public:
  explicit DryRunPolicy(bool all) : all_(all) {}
  Policy id() const override { return Policy::kDryRun; }
  bool guards_notify() const override { return true; }
  PolicyCheck check(const PolicyContext& c) override;

 private:
  bool all_;
};

// No verb on a VM whose host is silent: the engine has no facts about it.
// Holds the step, and notices the silence once per spell.
class HostSilentPolicy final : public SafetyPolicy {
 public:
  HostSilentPolicy(Fleet& fleet, Notices notices) : fleet_(fleet), notices_(std::move(notices)) {}
  Policy id() const override { return Policy::kHostSilent; }
  PolicyCheck check(const PolicyContext& c) override;
  // Says once per silent spell that host `h` went silent.
  void notice(uint32_t h, int64_t now);

 private:
  Fleet& fleet_;
  Notices notices_;
};

// No first step on a VM acted on less than `cooldown` ago.
class CooldownPolicy final : public SafetyPolicy {
 public:
  explicit CooldownPolicy(Duration fallback) : fallback_(fallback) {}
  Policy id() const override { return Policy::kCooldown; }
  bool books_remediation() const override { return true; }
  PolicyCheck check(const PolicyContext& c) override;
  void on_dispatched(uint32_t vm, uint32_t host, int64_t now) override;

  int64_t last_action(uint32_t vm) const { return vm < last_.size() ? last_[vm] : 0; }
  void restore(uint32_t vm, int64_t last_action_ns);

 private:
  Duration fallback_;
  std::vector<int64_t> last_;  // by VM; 0 = never
};

// At most `count` verbs per VM in any `window`; the first refusal in a
// window notices that the VM needs a person.
class BudgetPolicy final : public SafetyPolicy {
 public:
  static constexpr size_t kMaxActionTimes = 32;  // history kept per VM
  BudgetPolicy(Budget fallback, Notices notices)
      : fallback_(fallback), notices_(std::move(notices)) {}
  bool books_remediation() const override { return true; }
  Policy id() const override { return Policy::kBudget; }
  PolicyCheck check(const PolicyContext& c) override;
  void on_dispatched(uint32_t vm, uint32_t host, int64_t now) override;

  struct VmBooks {
    std::vector<int64_t> actions;  // times of verbs, oldest first
    int64_t notice_ns = 0;         // when the last budget notice went out
  };
  const VmBooks* books(uint32_t vm) const { return vm < vms_.size() ? &vms_[vm] : nullptr; }
  void restore(uint32_t vm, VmBooks books);

 private:
  VmBooks& at(uint32_t vm);
  void notice(const PolicyContext& c, const Budget& b);
  Budget fallback_;
  Notices notices_;
  std::vector<VmBooks> vms_;
};

// One action per VM at a time, counting one waiting for approval.
class VmInFlightPolicy final : public SafetyPolicy {
 public:
  Policy id() const override { return Policy::kVmInFlight; }
  PolicyCheck check(const PolicyContext& c) override;
  void on_dispatched(uint32_t vm, uint32_t host, int64_t now) override;
  void on_finished(uint32_t vm, uint32_t host) override;
  void on_awaiting(uint32_t vm, int delta) override;

  bool in_flight(uint32_t vm) const { return vm < vms_.size() && vms_[vm].in_flight; }
  uint32_t awaiting(uint32_t vm) const { return vm < vms_.size() ? vms_[vm].awaiting : 0; }

 private:
  struct VmSlot {
    bool in_flight = false;
    uint32_t awaiting = 0;
  };
  VmSlot& at(uint32_t vm);
  std::vector<VmSlot> vms_;
};

// At most `limit` actions in flight per host; more wait for a slot.
class HostConcurrencyPolicy final : public SafetyPolicy {
 public:
  HostConcurrencyPolicy(const Fleet& fleet, uint32_t limit) : fleet_(fleet), limit_(limit) {}
  Policy id() const override { return Policy::kHostConcurrency; }
  PolicyCheck check(const PolicyContext& c) override;
  void on_dispatched(uint32_t vm, uint32_t host, int64_t now) override;
  void on_finished(uint32_t vm, uint32_t host) override;

  bool full(uint32_t host) const { return in_flight(host) >= limit_; }
  uint32_t in_flight(uint32_t host) const { return host < hosts_.size() ? hosts_[host] : 0; }

 private:
  const Fleet& fleet_;
  uint32_t limit_;
  std::vector<uint32_t> hosts_;  // actions in flight, by host
};

// At most `limit` actions in flight in the fleet; more wait for a slot.
class FleetConcurrencyPolicy final : public SafetyPolicy {
 public:
  explicit FleetConcurrencyPolicy(uint32_t limit) : limit_(limit) {}
  Policy id() const override { return Policy::kFleetConcurrency; }
  PolicyCheck check(const PolicyContext& c) override;
  void on_dispatched(uint32_t, uint32_t, int64_t) override { ++in_flight_; }
  void on_finished(uint32_t, uint32_t) override { --in_flight_; }

  bool full() const { return in_flight_ >= limit_; }
  uint32_t in_flight() const { return in_flight_; }

 private:
  uint32_t limit_;
  uint32_t in_flight_ = 0;
};

// Rules with `approval: required` wait for an operator's yes, per step.
class ApprovalPolicy final : public SafetyPolicy {
 public:
  explicit ApprovalPolicy(Duration fallback_timeout) : fallback_(fallback_timeout) {}
  Policy id() const override { return Policy::kApproval; }
  PolicyCheck check(const PolicyContext& c) override;
  Duration timeout(const Rule& r) const { return r.approval_timeout.value_or(fallback_); }

 private:
  Duration fallback_;
};

}  // namespace medic::rules
