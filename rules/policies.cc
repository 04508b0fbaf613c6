#include "rules/policies.h"

#include <spdlog/spdlog.h>

#include "core/duration.h"
#include "rules/incident_book.h"

namespace medic::rules {

namespace {

std::string fmt(Duration d) {
  return format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

template <typename T>
T& grow_to(std::vector<T>& v, uint32_t i) {
  if (i >= v.size()) v.resize(i + 1);
  return v[i];
}

}  // namespace

// ------------------------------------------------------------ silence

PolicyCheck SilencePolicy::check(const PolicyContext& c) {
  if (c.approved()) return pass();  // a person said yes to this very step
  Time now = from_ns(c.now);
  for (auto it = silences_.begin(); it != silences_.end();) {
    if (it->second.until <= now) {
      it = silences_.erase(it);
    } else {
      ++it;
    }
  }
  const Silence* s = match(fleet_.vm_at(c.vm).facts, c.rule.name, now);
  if (!s) return pass();
  return hold_until(to_ns(s->until), "silenced by " +
                                         (s->by.empty() ? std::string("an operator") : s->by) +
                                         " for " + fmt(s->until - now) + " more: " + s->reason);
}

const Silence* SilencePolicy::match(const VmFacts& vm, const std::string& rule, Time now) const {
  for (const auto& [id, s] : silences_) {
    if (s.until <= now) continue;
    if ((s.vm.empty() || s.vm == vm.id) && (s.host.empty() || s.host == vm.host) &&
        (s.rule.empty() || s.rule == rule) &&
        (s.label_key.empty() || vm.label(s.label_key) == s.label_value)) {
      return &s;
    }
  }
  return nullptr;
}

std::string SilencePolicy::add(Silence s) {
  std::string id = "s-" + std::to_string(++counter_);
  silences_.emplace(id, std::move(s));
  return id;
}

void SilencePolicy::restore(std::map<std::string, Silence> silences, uint64_t counter) {
  silences_ = std::move(silences);
  counter_ = counter;
}

// ------------------------------------------------------------ dry run

PolicyCheck DryRunPolicy::check(const PolicyContext& c) {
  if (all_) return answer(Verdict::kDryRun, "the engine runs every rule in dry run");
  if (c.rule.mode == Mode::kDryRun) return answer(Verdict::kDryRun, "the rule is in dry run");
  return pass();
}

// ------------------------------------------------------------ host silent

PolicyCheck HostSilentPolicy::check(const PolicyContext& c) {
  if (!fleet_.host_silent(c.host, c.now)) return pass();
  const HostEntry& host = fleet_.host_at(c.host);
  if (c.approved()) {
    return answer(Verdict::kSuppress, "approved by " + std::string(c.approved_by) + ", but host " +
                                          host.name + " is silent");
  }
  notice(c.host, c.now);
  return answer(Verdict::kHold, "host " + host.name + " has been silent for " +
                                    fmt(Duration(c.now - host.last_seen_ns)) + " (limit " +
                                    fmt(fleet_.host_silent_after()) +
                                    "): no facts about its VMs, so no action on them");
}

void HostSilentPolicy::notice(uint32_t h, int64_t now) {
  HostEntry& host = fleet_.host_at(h);
  if (host.silence_noticed) return;
  host.silence_noticed = true;
  Decision d;
  d.host = host.name;
  d.step = Step::kNotify;
  d.policy = Policy::kHostSilent;
  d.trigger = "host silent";
  d.reason = "host " + host.name + " has been silent for " +
             fmt(Duration(now - host.last_seen_ns)) + ": no facts about its " +
             std::to_string(host.vms.size()) +
             " VMs, so the engine takes no action on them until it speaks again";
  spdlog::warn("rules: {}", d.reason);
  notices_(std::move(d));
}

// ------------------------------------------------------------ cooldown

PolicyCheck CooldownPolicy::check(const PolicyContext& c) {
  if (c.approved()) return pass();
  Duration cooldown = c.rule.cooldown.value_or(fallback_);
  int64_t last = last_action(c.vm);
  if (c.incident.step != 0 || last == 0 || c.now - last >= cooldown.count()) return pass();
  return hold_until(last + cooldown.count(), "the last action on this VM was " +
                                                 fmt(Duration(c.now - last)) + " ago (cooldown " +
                                                 fmt(cooldown) + ")");
}

void CooldownPolicy::on_dispatched(uint32_t vm, uint32_t, int64_t now) { grow_to(last_, vm) = now; }

void CooldownPolicy::restore(uint32_t vm, int64_t last_action_ns) {
  grow_to(last_, vm) = last_action_ns;
}

// ------------------------------------------------------------ budget

BudgetPolicy::VmBooks& BudgetPolicy::at(uint32_t vm) { return grow_to(vms_, vm); }

PolicyCheck BudgetPolicy::check(const PolicyContext& c) {
  if (c.approved()) return pass();
  Budget budget = c.rule.budget.value_or(fallback_);
  // The action times in the window, oldest first (they are kept in order).
  std::vector<int64_t> used;
  if (const VmBooks* b = books(c.vm)) {
    for (int64_t t : b->actions) {
      if (c.now - t < budget.window.count()) used.push_back(t);
    }
  }
  if (used.size() < budget.count) return pass();
  notice(c, budget);
  // Room again once all but count-1 of them have left the window.
  int64_t room_at = budget.count ? used[used.size() - budget.count] + budget.window.count() : 0;
  return hold_until(room_at, "the VM had " + std::to_string(budget.count) +
                                 " actions in the last " + fmt(budget.window) + " (budget " +
                                 std::to_string(budget.count) + " per " + fmt(budget.window) +
                                 ")");
}

void BudgetPolicy::notice(const PolicyContext& c, const Budget& b) {
  VmBooks& books = at(c.vm);
  if (books.notice_ns != 0 && c.now - books.notice_ns < b.window.count()) return;
  books.notice_ns = c.now;
  Decision d;
  d.rule = c.draft.rule;
  d.rule_version = c.draft.rule_version;
  d.vm = c.draft.vm;
  d.host = c.draft.host;
  d.step = Step::kNotify;
  d.policy = Policy::kBudget;
  d.evidence = c.draft.evidence;
  d.trigger = c.draft.trigger;
  d.reason = "VM " + c.draft.vm + " used its action budget (" + std::to_string(b.count) + " per " +
             fmt(b.window) +
             "); automatic actions on it stop until the window passes: it needs a person";
  notices_(std::move(d));
}

void BudgetPolicy::on_dispatched(uint32_t vm, uint32_t, int64_t now) {
  auto& actions = at(vm).actions;
  actions.push_back(now);
  if (actions.size() > kMaxActionTimes) actions.erase(actions.begin());
}

void BudgetPolicy::restore(uint32_t vm, VmBooks books) { at(vm) = std::move(books); }

// ------------------------------------------------------------ one action per VM

VmInFlightPolicy::VmSlot& VmInFlightPolicy::at(uint32_t vm) { return grow_to(vms_, vm); }

PolicyCheck VmInFlightPolicy::check(const PolicyContext& c) {
  if (in_flight(c.vm)) {
    if (c.approved()) {
      return answer(Verdict::kSuppress, "approved by " + std::string(c.approved_by) +
                                            ", but another action on this VM is in flight");
    }
    return answer(Verdict::kSuppress, "another action on this VM is still in flight");
  }
  if (awaiting(c.vm)) {
    return answer(Verdict::kSuppress, "another action on this VM is waiting for approval");
  }
  return pass();
}

void VmInFlightPolicy::on_dispatched(uint32_t vm, uint32_t, int64_t) { at(vm).in_flight = true; }
void VmInFlightPolicy::on_finished(uint32_t vm, uint32_t) { at(vm).in_flight = false; }
void VmInFlightPolicy::on_awaiting(uint32_t vm, int delta) {
  at(vm).awaiting = static_cast<uint32_t>(static_cast<int>(at(vm).awaiting) + delta);
}

// ------------------------------------------------------------ concurrency

namespace {

std::string slot_wait(const PolicyContext& c, std::string full) {
  if (c.approved()) {
    return "approved by " + std::string(c.approved_by) + "; waiting for a free action slot";
  }
  return full + "; waiting for one to finish";
}

}  // namespace

PolicyCheck HostConcurrencyPolicy::check(const PolicyContext& c) {
  if (!full(c.host)) return pass();
  return answer(Verdict::kWait,
                slot_wait(c, "host " + fleet_.host_at(c.host).name + " has " +
                                 std::to_string(in_flight(c.host)) + " actions in flight (limit " +
                                 std::to_string(limit_) + ")"));
}

void HostConcurrencyPolicy::on_dispatched(uint32_t, uint32_t host, int64_t) {
  ++grow_to(hosts_, host);
}
void HostConcurrencyPolicy::on_finished(uint32_t, uint32_t host) { --grow_to(hosts_, host); }

PolicyCheck FleetConcurrencyPolicy::check(const PolicyContext& c) {
  if (!full()) return pass();
  return answer(Verdict::kWait,
                slot_wait(c, "the fleet has " + std::to_string(in_flight_) +
                                 " actions in flight (limit " + std::to_string(limit_) + ")"));
}

// ------------------------------------------------------------ approval

PolicyCheck ApprovalPolicy::check(const PolicyContext& c) {
  if (!c.rule.approval_required && !c.incident.needs_approval) return pass();
  if (c.approved()) return answer(Verdict::kPass, "approved by " + std::string(c.approved_by));
  const std::string who = c.incident.needs_approval ? "the requester's scope" : "rule";
  return answer(Verdict::kWait, who + " requires operator approval within " + fmt(timeout(c.rule)));
}

}  // namespace medic::rules
