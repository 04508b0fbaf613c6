#include "rules/storm_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/duration.h"

namespace medic::rules {

namespace {

std::string fmt(Duration d) {
  return format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

void prune(std::deque<int64_t>& d, int64_t floor) {
  while (!d.empty() && d.front() <= floor) d.pop_front();
}

}  // namespace

StormGuard::StormGuard(Clock& clock, const Fleet& fleet, StormOptions options, Notices notices,
                       OnLifted on_lifted)
    : clock_(clock),
      fleet_table_(fleet),
      opt_(options),
      notices_(std::move(notices)),
      on_lifted_(std::move(on_lifted)) {}

StormGuard::~StormGuard() {
  for (auto& h : hosts_) {
    if (h.timer) clock_.cancel(h.timer);
  }
  if (fleet_.timer) clock_.cancel(fleet_.timer);
}

StormGuard::Freeze& StormGuard::at(uint32_t host) {
  if (host == kNoHost) return fleet_;
  while (hosts_.size() <= host) hosts_.emplace_back();
  return hosts_[host];
}

PolicyCheck StormGuard::check(const PolicyContext& c) {
  // A storm freeze does not override a person: they looked at this VM and said yes.
  if (c.approved() || !c.rule.storm_guard) return pass();
  bool host = frozen(c.host);
  if (!host && !fleet_.frozen) return pass();
  return answer(Verdict::kHold, std::string("automatic actions are frozen on ") +
                                    (host ? "host " + fleet_table_.host_at(c.host).name
                                          : std::string("the fleet")) +
                                    " by the storm guard");
}

void StormGuard::mark_bad(uint32_t v, int64_t now) {
  if (v >= vms_.size()) vms_.resize(v + 1);
  VmMarks& m = vms_[v];
  if (m.bad_since_ns != 0 && now - m.bad_since_ns < opt_.window.count()) return;
  m.bad_since_ns = now;
  // A storm is many distinct VMs going bad: a VM that heals and fails
  // again within the window counts once.
  if (m.counted_ns != 0 && now - m.counted_ns < opt_.window.count()) return;
  m.counted_ns = now;
  uint32_t h = fleet_table_.vm_at(v).host;
  Freeze& host = at(h);
  host.bad_times.push_back(now);
  host.last_bad_ns = now;
  fleet_.bad_times.push_back(now);
  fleet_.last_bad_ns = now;
  touched_.push_back(h);
}

void StormGuard::healed(uint32_t v) {
  if (v < vms_.size()) vms_[v].bad_since_ns = 0;
}

bool StormGuard::over(size_t bad, size_t total, double fraction) const {
  return bad >= opt_.min_vms && static_cast<double>(bad) > fraction * static_cast<double>(total);
}

void StormGuard::evaluate(int64_t now) {
  int64_t floor = now - opt_.window.count();
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  for (uint32_t h : touched_) {
    Freeze& host = at(h);
    prune(host.bad_times, floor);
    size_t total = fleet_table_.host_at(h).vms.size();
    if (!host.frozen && over(host.bad_times.size(), total, opt_.host_fraction)) {
      host.frozen = true;
      notice(fleet_table_.host_at(h).name, host.bad_times.size(), total);
      schedule_unfreeze(h);
    }
  }
  touched_.clear();
  prune(fleet_.bad_times, floor);
  size_t total = fleet_table_.vm_count();
  if (!fleet_.frozen && over(fleet_.bad_times.size(), total, opt_.fleet_fraction)) {
    fleet_.frozen = true;
    notice("", fleet_.bad_times.size(), total);
    schedule_unfreeze(kNoHost);
  }
}

void StormGuard::notice(const std::string& host, size_t bad, size_t total) {
  Decision d;
  d.host = host;
  d.step = Step::kNotify;
  d.policy = Policy::kStormGuard;
  d.outcome = Outcome::kProposed;
  std::string scope = host.empty() ? "the fleet" : "host " + host;
  d.trigger = "storm guard";
  d.reason = "storm guard: " + std::to_string(bad) + " of " + std::to_string(total) + " VMs of " +
             scope + " turned bad within " + fmt(opt_.window) +
             "; automatic actions on them are frozen until " + fmt(opt_.quiet) +
             " pass quietly or an operator unfreezes (the cause is probably the host or the "
             "network, not the guests)";
  spdlog::warn("rules: {}", d.reason);
  notices_(std::move(d));
}

void StormGuard::schedule_unfreeze(uint32_t h) {
  Freeze& f = at(h);
  Time when = from_ns(f.last_bad_ns + opt_.quiet.count());
  f.timer = clock_.schedule_at(when, [this, h] { on_unfreeze_timer(h); });
}

void StormGuard::on_unfreeze_timer(uint32_t h) {
  Freeze& f = at(h);
  f.timer = 0;
  if (to_ns(clock_.now()) - f.last_bad_ns < opt_.quiet.count()) {
    schedule_unfreeze(h);
    return;
  }
  lift(h, "quiet for " + fmt(opt_.quiet));
}

Status StormGuard::unfreeze(uint32_t h, const std::string& by) {
  if (!at(h).frozen) {
    if (h == kNoHost) return failed_precondition("the fleet is not frozen");
    return failed_precondition("host " + fleet_table_.host_at(h).name + " is not frozen");
  }
  lift(h, "unfrozen by " + by);
  return {};
}

void StormGuard::lift(uint32_t h, const std::string& why) {
  Freeze& f = at(h);
  f.frozen = false;
  if (f.timer) clock_.cancel(f.timer);
  f.timer = 0;
  f.bad_times.clear();
  if (h == kNoHost) {
    spdlog::info("rules: storm guard lifted for the fleet ({})", why);
  } else {
    spdlog::info("rules: storm guard lifted for host {} ({})", fleet_table_.host_at(h).name, why);
  }
  on_lifted_();
}

void StormGuard::restore(uint32_t h, Tally s) {
  Freeze& f = at(h);
  static_cast<Tally&>(f) = std::move(s);
  if (f.frozen) schedule_unfreeze(h);
}

void StormGuard::restore_marks(uint32_t v, VmMarks m) {
  if (v >= vms_.size()) vms_.resize(v + 1);
  vms_[v] = m;
}

}  // namespace medic::rules
