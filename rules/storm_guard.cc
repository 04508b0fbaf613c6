#include "rules/storm_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/duration.h"
#include "rules/incident_book.h"

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
  if (defer_timer_) clock_.cancel(defer_timer_);
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
  if (host || fleet_.frozen) {
    return answer(Verdict::kHold, std::string("automatic actions are frozen on ") +
                                      (host ? "host " + fleet_table_.host_at(c.host).name
                                            : std::string("the fleet")) +
                                      " by the storm guard");
  }
  int64_t until = c.incident.settled ? 0 : settling_until(c.host, c.now);
  if (until == 0) return pass();
  const Freeze* host_scope = at_or_null(c.host);
  bool on_host = host_scope && host_scope->settle_until_ns == until;
  const Tally& scope = on_host ? *host_scope : fleet_;
  std::string where = on_host ? "host " + fleet_table_.host_at(c.host).name : "the fleet";
  return hold_until(until, "the storm guard is settling: " + std::to_string(scope.bad_times.size()) +
                               " VMs of " + where + " turned bad within " +
                               fmt(on_host ? opt_.host_settle : opt_.fleet_settle) +
                               " of each other; actions there wait " +
                               fmt(Duration(until - c.now)) + " to see whether a storm follows");
}

int64_t StormGuard::settling_until(uint32_t host, int64_t now) const {
  int64_t until = fleet_.settle_until_ns > now ? fleet_.settle_until_ns : 0;
  if (const Freeze* h = at_or_null(host); h && h->settle_until_ns > now) {
    until = std::max(until, h->settle_until_ns);
  }
  return until;
}

const StormGuard::Freeze* StormGuard::at_or_null(uint32_t host) const {
  return host < hosts_.size() ? &hosts_[host] : nullptr;
}

void StormGuard::begin_settle(Tally& scope, size_t total, int64_t now, Duration settle) const {
  settle = std::min(settle, opt_.window);
  if (settle.count() <= 0 || total < opt_.min_vms) return;  // no storm possible there
  if (scope.last_bad_ns == 0 || now - scope.last_bad_ns >= settle.count()) return;
  if (scope.settle_until_ns <= now) scope.settle_until_ns = now + settle.count();
}

void StormGuard::mark_bad(uint32_t v, int64_t now) {
  if (v >= vms_.size()) vms_.resize(v + 1);
  VmMarks& m = vms_[v];
  if (m.bad_since_ns != 0 && now - m.bad_since_ns < opt_.window.count()) return;
  m.bad_since_ns = now;
  // A storm is many distinct VMs going bad: a VM that heals and fails
  // again within the window counts once.
  if (m.counted_ns == kPardoned) return;
  if (m.counted_ns != 0 && now - m.counted_ns < opt_.window.count()) return;
  m.counted_ns = now;
  uint32_t h = fleet_table_.vm_at(v).host;
  Freeze& host = at(h);
  begin_settle(host, fleet_table_.host_at(h).live_vms(), now, opt_.host_settle);
  begin_settle(fleet_, fleet_table_.live_vm_count(), now, opt_.fleet_settle);
  host.bad_times.push_back(now);
  host.last_bad_ns = now;
  fleet_.bad_times.push_back(now);
  fleet_.last_bad_ns = now;
  touched_.push_back(h);
}

void StormGuard::healed(uint32_t v) {
  if (v >= vms_.size()) return;
  vms_[v].bad_since_ns = 0;
  if (vms_[v].counted_ns == kPardoned) vms_[v].counted_ns = 0;
}

bool StormGuard::over(size_t bad, size_t total, double fraction) const {
  return bad >= opt_.min_vms && static_cast<double>(bad) > fraction * static_cast<double>(total);
}

void StormGuard::freeze(Tally& scope, uint32_t h) {
  scope.frozen = true;
  scope.settle_until_ns = 0;
  schedule_unfreeze(h);
}

bool StormGuard::news(const Tally& scope, uint32_t h, int64_t now) const {
  bool repeat = scope.paged_ns != 0 && now - scope.paged_ns < opt_.repeat_interval.count() &&
                scope.bad_times.size() <= scope.paged_count;
  if (repeat) {
    spdlog::info("rules: storm guard froze {} again ({} bad VMs, no more than its page {} ago)",
                 h == kNoHost ? "the fleet" : "host " + fleet_table_.host_at(h).name,
                 scope.bad_times.size(), fmt(Duration(now - scope.paged_ns)));
  }
  return !repeat;
}

void StormGuard::evaluate(int64_t now) {
  int64_t floor = now - opt_.window.count();
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  std::vector<uint32_t> to_page;  // hosts frozen now whose freeze is news
  for (uint32_t h : touched_) {
    Freeze& host = at(h);
    prune(host.bad_times, floor);
    size_t total = fleet_table_.host_at(h).live_vms();
    if (host.frozen || !over(host.bad_times.size(), total, opt_.host_fraction)) continue;
    freeze(host, h);
    if (news(host, h, now)) to_page.push_back(h);
  }
  touched_.clear();
  prune(fleet_.bad_times, floor);
  if (!fleet_.frozen &&
      over(fleet_.bad_times.size(), fleet_table_.live_vm_count(), opt_.fleet_fraction)) {
    freeze(fleet_, kNoHost);
    if (news(fleet_, kNoHost, now)) page(kNoHost, now, hosts_with_bad(floor));
    // The fleet's page covers the hosts frozen with it.
    to_page.insert(to_page.end(), deferred_.begin(), deferred_.end());
    deferred_.clear();
    for (uint32_t h : to_page) {
      at(h).paged_ns = now;
      at(h).paged_count = static_cast<uint32_t>(at(h).bad_times.size());
    }
    return;
  }
  if (fleet_.frozen) return;  // covered by the fleet's freeze
  if (fleet_.settle_until_ns > now) {
    // The fleet may be freezing too: its settle decides whether these pages
    // are one fleet page or one per host.
    deferred_.insert(deferred_.end(), to_page.begin(), to_page.end());
    if (!deferred_.empty() && !defer_timer_) {
      defer_timer_ = clock_.schedule_at(from_ns(fleet_.settle_until_ns), [this] {
        defer_timer_ = 0;
        flush_deferred();
      });
    }
    return;
  }
  for (uint32_t h : to_page) page(h, now, "");
}

void StormGuard::flush_deferred() {
  std::vector<uint32_t> hosts;
  hosts.swap(deferred_);
  if (fleet_.frozen) return;
  for (uint32_t h : hosts) {
    if (at(h).frozen) page(h, to_ns(clock_.now()), "");
  }
}

void StormGuard::page(uint32_t h, int64_t now, const std::string& hosts) {
  Tally& scope = at(h);
  scope.paged_ns = now;
  scope.paged_count = static_cast<uint32_t>(scope.bad_times.size());
  if (h == kNoHost) {
    notice("", scope.bad_times.size(), fleet_table_.live_vm_count(), hosts);
  } else {
    notice(fleet_table_.host_at(h).name, scope.bad_times.size(), fleet_table_.host_at(h).live_vms(),
           "");
  }
}

std::string StormGuard::hosts_with_bad(int64_t floor) const {
  std::string out;
  for (uint32_t h = 0; h < hosts_.size(); ++h) {
    size_t bad = 0;
    for (int64_t t : hosts_[h].bad_times) bad += t > floor;
    if (bad == 0) continue;
    if (!out.empty()) out += ", ";
    out += fleet_table_.host_at(h).name + " (" + std::to_string(bad) + " of " +
           std::to_string(fleet_table_.host_at(h).live_vms()) + ")";
  }
  return out;
}

void StormGuard::notice(const std::string& host, size_t bad, size_t total,
                        const std::string& hosts) {
  Decision d;
  d.host = host;
  d.step = Step::kNotify;
  d.policy = Policy::kStormGuard;
  d.outcome = Outcome::kProposed;
  std::string scope = host.empty() ? "the fleet" : "host " + host;
  d.trigger = "storm guard";
  d.reason = "storm guard: " + std::to_string(bad) + " of " + std::to_string(total) + " VMs of " +
             scope + " turned bad within " + fmt(opt_.window) +
             (hosts.empty() ? "" : " (hosts " + hosts + ")") +
             "; automatic actions on them are frozen until " + fmt(opt_.quiet) +
             " pass quietly or an operator unfreezes (the cause is probably the host or the "
             "network, not the guests)";
  spdlog::warn("rules: {}", d.reason);
  notices_(std::move(d));
}

void StormGuard::schedule_unfreeze(uint32_t h) {
  Freeze& f = at(h);
  if (f.timer) clock_.cancel(f.timer);
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
  // The VMs bad now are what the person looked at: they do not freeze the
  // scope again until they heal and fail anew.
  for (uint32_t v = 0; v < vms_.size(); ++v) {
    if (vms_[v].bad_since_ns != 0 && (h == kNoHost || fleet_table_.vm_at(v).host == h)) {
      vms_[v].counted_ns = kPardoned;
    }
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
