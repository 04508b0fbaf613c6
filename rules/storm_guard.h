// The storm guard: when more than a share of a host's VMs (or of the fleet's)
// turn bad within a window, the cause is probably the host or the network,
// not the guests, so automatic actions on them freeze until things stay quiet
// for a while or an operator unfreezes.
//
// Contract:
// - mark_bad() counts a VM turning bad (each distinct VM once per window);
//   evaluate() then freezes what crossed the line, noticing each freeze once.
//   The engine marks a whole batch of triggers before evaluating, so a burst
//   (a partition: many absence deadlines at once) freezes before any one of
//   them is acted on.
// - A freeze lifts `quiet` after the last bad VM (a timer on the Clock) or by
//   unfreeze(); either way `on_lifted` is called so held incidents can close.
// - As a policy it holds verbs of rules with storm_guard on a frozen host or
//   fleet, except a step an operator approved.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "rules/engine.h"
#include "rules/fleet.h"
#include "rules/policy.h"

namespace medic::rules {

class StormGuard final : public SafetyPolicy {
 public:
  using OnLifted = std::function<void()>;
  StormGuard(Clock& clock, const Fleet& fleet, StormOptions options, Notices notices,
             OnLifted on_lifted);
  ~StormGuard() override;
  StormGuard(const StormGuard&) = delete;
  StormGuard& operator=(const StormGuard&) = delete;

  Policy id() const override { return Policy::kStormGuard; }
  PolicyCheck check(const PolicyContext& c) override;

  // VM `v` turned bad at `now`.
  void mark_bad(uint32_t v, int64_t now);
  // VM `v` healed: the next time it turns bad is news again.
  void healed(uint32_t v);
  // Freezes the hosts touched since the last call, and the fleet, if over.
  void evaluate(int64_t now);

  bool frozen(uint32_t host) const { return host < hosts_.size() && hosts_[host].frozen; }
  bool fleet_frozen() const { return fleet_.frozen; }
  // Lifts the freeze of `host` (kNoHost: the fleet). Fails when not frozen.
  Status unfreeze(uint32_t host, const std::string& by);

  // What a restart must keep: the bad-VM counts and the freezes.
  struct Tally {
    std::deque<int64_t> bad_times;
    int64_t last_bad_ns = 0;
    bool frozen = false;
  };
  struct VmMarks {
    int64_t bad_since_ns = 0;
    int64_t counted_ns = 0;  // when it last counted toward a storm
  };
  const Tally& tally(uint32_t host) const { return host == kNoHost ? fleet_ : hosts_.at(host); }
  size_t host_scopes() const { return hosts_.size(); }
  VmMarks marks(uint32_t v) const { return v < vms_.size() ? vms_[v] : VmMarks{}; }
  void restore(uint32_t host, Tally s);
  void restore_marks(uint32_t v, VmMarks m);

 private:
  struct Freeze : Tally {
    TimerId timer = 0;
  };
  Freeze& at(uint32_t host);
  bool over(size_t bad, size_t total, double fraction) const;
  void notice(const std::string& host, size_t bad, size_t total);
  void schedule_unfreeze(uint32_t host);
  void on_unfreeze_timer(uint32_t host);
  void lift(uint32_t host, const std::string& why);

  Clock& clock_;
  const Fleet& fleet_table_;
  StormOptions opt_;
  Notices notices_;
  OnLifted on_lifted_;
  std::vector<VmMarks> vms_;
  std::deque<Freeze> hosts_;
  Freeze fleet_;
  std::vector<uint32_t> touched_;
};

}  // namespace medic::rules
