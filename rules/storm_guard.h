// The storm guard: when more than a share of a host's VMs (or of the fleet's)
// turn bad within a window, the cause is probably the host or the network,
// not the guests, so automatic actions on them freeze until things stay quiet
// for a while or an operator unfreezes.
//
// Contract:
// - mark_bad() counts a VM turning bad (each distinct VM once per window);
//   evaluate() then freezes what crossed the line. The engine marks a whole
//   batch of triggers before evaluating, so a burst (a partition: many
//   absence deadlines at once) freezes before any one of them is acted on.
// - Settling: a VM turning bad within `host_settle` (`fleet_settle`) of the
//   scope's previous bad VM starts a settle of that length on the scope, so a
//   storm that arrives staggered is counted before it is acted on. An
//   isolated failure (no other bad VM that recently) is not held at all, nor
//   is any failure in a scope of fewer than `min_vms` VMs.
// - One page per storm: a freeze is paged once; when the fleet freezes with
//   hosts (in the same evaluation, or while the fleet settles after a host
//   froze), one fleet page names them, and a host that freezes inside a
//   frozen fleet is not paged. A scope that freezes again
//   with no more bad VMs than its last page is paged again only after
//   `repeat_interval`.
// - A freeze lifts `quiet` after the last bad VM (a timer on the Clock) or by
//   unfreeze(); either way `on_lifted` is called so held incidents can close.
//   VMs that stay bad count again after a quiet lift (a silent re-freeze),
//   but not after an operator's unfreeze: a person said "act on these".
// - As a policy it holds verbs of rules with storm_guard on a frozen host or
//   fleet (until the freeze lifts), or on a settling one (until the settle
//   ends), except a step an operator approved.
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
  // When the settle on `host` or on the fleet ends, if one is on at `now`
  // (the later of the two); 0 when neither settles.
  int64_t settling_until(uint32_t host, int64_t now) const;
  // Lifts the freeze of `host` (kNoHost: the fleet). Fails when not frozen.
  Status unfreeze(uint32_t host, const std::string& by);

  // What a restart must keep: the bad-VM counts and the freezes.
  struct Tally {
    std::deque<int64_t> bad_times;
    int64_t last_bad_ns = 0;
    bool frozen = false;
    int64_t settle_until_ns = 0;  // a settle is on until then
    int64_t paged_ns = 0;         // the last freeze page of this scope
    uint32_t paged_count = 0;     // ... and how many bad VMs it named
  };
  struct VmMarks {
    int64_t bad_since_ns = 0;
    // When it last counted toward a storm; kPardoned: an operator unfroze
    // its scope while it was bad, so it counts again only once it healed.
    int64_t counted_ns = 0;
  };
  static constexpr int64_t kPardoned = -1;
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
  const Freeze* at_or_null(uint32_t host) const;
  bool over(size_t bad, size_t total, double fraction) const;
  // Starts a settle on `scope` (of `total` VMs) when `now` follows its last
  // bad VM closely, and the scope is big enough for a storm (min_vms).
  void begin_settle(Tally& scope, size_t total, int64_t now, Duration settle) const;
  void freeze(Tally& scope, uint32_t h);
  // Whether the freeze of `scope` is news to page (see the contract).
  bool news(const Tally& scope, uint32_t h, int64_t now) const;
  // Pages the freeze of `h` (kNoHost: the fleet, naming `hosts`).
  void page(uint32_t h, int64_t now, const std::string& hosts);
  void flush_deferred();
  // The hosts with bad VMs in the window, as "h1 (3 of 4), h2 (1 of 5)".
  std::string hosts_with_bad(int64_t floor) const;
  void notice(const std::string& host, size_t bad, size_t total, const std::string& hosts);
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
  std::vector<uint32_t> deferred_;  // host pages waiting for the fleet's settle
  TimerId defer_timer_ = 0;
};

}  // namespace medic::rules
