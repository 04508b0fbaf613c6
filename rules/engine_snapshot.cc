// Engine::snapshot() and Engine::restore(): the state a restart must keep,
// out of the engine's parts into plain values (rules/engine_state.h) and back.
#include <algorithm>

#include "rules/engine_impl.h"

namespace medic::rules {

namespace {

VmRecord vm_record(const VmEntry& vm, const Fleet& fleet) {
  VmRecord r;
  r.id = vm.facts.id;
  r.host = fleet.host_at(vm.host).name;
  r.owner = vm.owner;
  r.claim_noticed = vm.claim_noticed;
  r.retired = vm.retired;
  r.last_seen_ns = vm.last_seen_ns;
  r.last_ref = vm.last_ref;
  r.labels = vm.facts.labels;
  r.last_heartbeat_ns = vm.facts.last_heartbeat_ns;
  r.uptime_ns = vm.facts.uptime_ns;
  r.rss_bytes = vm.facts.rss_bytes;
  r.cpu_percent = vm.facts.cpu_percent;
  r.state = vm.facts.state;
  return r;
}

}  // namespace

IncidentRecord incident_record(const Incident& inc, const Fleet& fleet) {
  IncidentRecord r;
  r.id = inc.id.value;
  r.key = inc.key;
  r.rule = inc.rule->name;
  r.rule_version = inc.rule->version;
  r.vm = fleet.vm_at(inc.vm).facts.id;
  r.host = fleet.vm_at(inc.vm).facts.host;
  r.step = inc.step;
  r.state = static_cast<uint8_t>(inc.state);
  r.waiting_on = inc.waiting_on;
  r.held_by = inc.held_by;
  r.action_id = inc.action_id;
  r.deadline_ns = to_ns(inc.deadline);
  r.step_decision = inc.step_decision;
  r.evidence = inc.evidence;
  r.trigger = inc.trigger;
  r.probe = inc.probe;
  r.healed_seen = inc.healed_seen;
  r.progress = inc.progress;
  r.watch_from_ns = to_ns(inc.watch_from);
  r.waiting_reported = inc.waiting_reported;
  r.approved_step = inc.approved_step;
  r.approved_by = inc.approved_by;
  r.needs_approval = inc.needs_approval;
  return r;
}

VmRecord full_vm_record(uint32_t v, const Fleet& fleet, const PolicyChain& chain) {
  VmRecord r = vm_record(fleet.vm_at(v), fleet);
  r.last_action_ns = chain.cooldown().last_action(v);
  if (const auto* b = chain.budget().books(v)) {
    r.action_times = b->actions;
    r.budget_notice_ns = b->notice_ns;
  }
  auto marks = chain.storm().marks(v);
  r.bad_since_ns = marks.bad_since_ns;
  r.storm_counted_ns = marks.counted_ns;
  return r;
}

HostRecord host_record(uint32_t h, const Fleet& fleet, const PolicyChain& chain) {
  const HostEntry& host = fleet.host_at(h);
  HostRecord r{host.name, host.last_seen_ns, host.silence_noticed, {}, 0, false};
  if (h < chain.storm().host_scopes()) {
    const auto& t = chain.storm().tally(h);
    r.bad_times.assign(t.bad_times.begin(), t.bad_times.end());
    r.last_bad_ns = t.last_bad_ns;
    r.frozen = t.frozen;
    r.settle_until_ns = t.settle_until_ns;
    r.paged_ns = t.paged_ns;
    r.paged_count = t.paged_count;
  }
  return r;
}

// The values that are not per VM, host or silence.
void Engine::Impl::engine_values_into(EngineState* s) const {
  s->at_ns = now_ns();
  s->decision_counter = id_counter_;
  s->last_incident_id = book_.last_id();
  s->silence_counter = chain_.silences().counter();
  const auto& fleet_tally = chain_.storm().tally(kNoHost);
  s->fleet_bad_times.assign(fleet_tally.bad_times.begin(), fleet_tally.bad_times.end());
  s->fleet_last_bad_ns = fleet_tally.last_bad_ns;
  s->fleet_frozen = fleet_tally.frozen;
  s->fleet_settle_until_ns = fleet_tally.settle_until_ns;
  s->fleet_paged_ns = fleet_tally.paged_ns;
  s->fleet_paged_count = fleet_tally.paged_count;
  s->waiting.clear();
  for (IncidentId id : waiting_) s->waiting.push_back(id.value);
  s->clones_by.assign(clones_by_.begin(), clones_by_.end());
}

EngineState Engine::Impl::snapshot() const {
  const PolicyChain& chain = chain_;
  EngineState s;
  for (uint32_t h = 0; h < fleet_.host_count(); ++h) s.hosts.push_back(host_record(h, fleet_, chain));
  for (uint32_t v = 0; v < fleet_.vm_count(); ++v) s.vms.push_back(full_vm_record(v, fleet_, chain));
  for (const Incident* inc : book_.all()) s.incidents.push_back(incident_record(*inc, fleet_));
  for (const auto& [id, f] : in_flight_) {
    const Incident* inc = book_.by_action(id);
    s.in_flight.push_back({id, fleet_.vm_at(f.vm).facts.id, fleet_.host_at(f.host).name,
                           to_ns(f.expires), inc ? inc->rule->heal_within : Duration{0}});
  }
  std::sort(s.in_flight.begin(), s.in_flight.end(),
            [](const auto& a, const auto& b) { return a.action_id < b.action_id; });
  for (const auto& [id, sil] : chain.silences().silences()) s.silences.emplace_back(id, sil);
  engine_values_into(&s);
  absence_.for_each_armed(fleet_.vm_count(), [&](const Rule& r, uint32_t v, int64_t deadline) {
    const VmFacts& vm = fleet_.vm_at(v).facts;
    s.absence.push_back({r.name, vm.id, std::string(vm.host), deadline});
  });
  for (const auto& [key, times] : counts_.windows()) s.counts.emplace_back(key, times);
  std::sort(s.counts.begin(), s.counts.end());
  return s;
}

Status Engine::Impl::restore(const EngineState& s) {
  if (touched_ || fleet_.host_count() != 0) {
    return failed_precondition("restore: the engine has already been fed; restore a fresh one");
  }
  for (const auto& r : s.incidents) {
    const RulePtr* rule = rule_named(r.rule);
    if (!rule) return not_found("restore: incident " + r.key + ": no rule " + r.rule);
    if (r.step >= (*rule)->ladder.size())
      return invalid_argument("restore: incident " + r.key + ": rule " + r.rule + " has no step " +
                              std::to_string(r.step + 1));
    if (r.state > static_cast<uint8_t>(IncidentState::kHeld))
      return invalid_argument("restore: incident " + r.key + ": no state " +
                              std::to_string(r.state));
  }
  restore_fleet(s);
  // Slots first: the dispatch hook also stamps cooldown and budget, which
  // restore_books() then sets to what they were.
  for (const auto& f : s.in_flight) {
    uint32_t h = host_index(f.host);
    auto v = fleet_.find_vm(h, f.vm);
    if (!v) return not_found("restore: action " + f.action_id + ": no VM " + f.vm + " on " + f.host);
    chain_.on_dispatched(*v, h, s.at_ns, Step::kReboot);  // any verb: the books follow
    start_action(f.action_id, *v, h, from_ns(f.expires_ns));
  }
  restore_books(s);
  for (const auto& r : s.absence) {
    const Rule* rule = rules_->find(r.rule);
    auto h = fleet_.find_host(r.host);
    auto v = h ? fleet_.find_vm(*h, r.vm) : std::nullopt;
    if (rule && v) absence_.arm(*rule, *v, r.deadline_ns);
  }
  absence_.ensure_timer();
  for (const auto& [key, times] : s.counts) counts_.restore(key, times);
  clones_by_ = {s.clones_by.begin(), s.clones_by.end()};
  for (const auto& r : s.incidents) {
    if (Status st = restore_incident(r); !st.ok()) return st;
  }
  for (uint64_t id : s.waiting) waiting_.push_back(IncidentId{id});
  book_.set_last_id(s.last_incident_id);
  id_counter_ = s.decision_counter;
  touched_ = true;
  reset_changes(s);
  return {};
}

// Hosts and VMs, in the order the engine first heard of them, so that their
// indices (and with them every order that depends on them) are as they were.
void Engine::Impl::restore_fleet(const EngineState& s) {
  for (const HostRecord& r : s.hosts) {
    uint32_t h = host_index(r.name);
    fleet_.host_at(h).last_seen_ns = r.last_seen_ns;
    fleet_.host_at(h).silence_noticed = r.silence_noticed;
  }
  for (const VmRecord& r : s.vms) {
    bool created = false;
    uint32_t v = fleet_.vm(r.id, host_index(r.host), &created);
    if (r.owner) fleet_.make_owner(v);
    VmEntry& vm = fleet_.vm_at(v);
    vm.claim_noticed = r.claim_noticed;
    vm.last_seen_ns = r.last_seen_ns;
    vm.last_ref = r.last_ref;
    vm.facts.labels = r.labels;
    vm.facts.last_heartbeat_ns = r.last_heartbeat_ns;
    vm.facts.uptime_ns = r.uptime_ns;
    vm.facts.rss_bytes = r.rss_bytes;
    vm.facts.cpu_percent = r.cpu_percent;
    vm.facts.state = r.state;
    if (r.retired) fleet_.retire(v);
  }
}

// The policies' own books: cooldown, budget, storm guard, silences.
void Engine::Impl::restore_books(const EngineState& s) {
  for (const HostRecord& r : s.hosts) {
    StormGuard::Tally t{{r.bad_times.begin(), r.bad_times.end()}, r.last_bad_ns, r.frozen,
                        r.settle_until_ns, r.paged_ns, r.paged_count};
    chain_.storm().restore(*fleet_.find_host(r.name), std::move(t));
  }
  for (const VmRecord& r : s.vms) {
    uint32_t v = *fleet_.find_vm(*fleet_.find_host(r.host), r.id);
    chain_.cooldown().restore(v, r.last_action_ns);
    chain_.budget().restore(v, {r.action_times, r.budget_notice_ns});
    chain_.storm().restore_marks(v, {r.bad_since_ns, r.storm_counted_ns});
  }
  StormGuard::Tally fleet{
      {s.fleet_bad_times.begin(), s.fleet_bad_times.end()}, s.fleet_last_bad_ns, s.fleet_frozen,
      s.fleet_settle_until_ns, s.fleet_paged_ns, s.fleet_paged_count};
  chain_.storm().restore(kNoHost, std::move(fleet));
  std::map<std::string, Silence> silences(s.silences.begin(), s.silences.end());
  chain_.silences().restore(std::move(silences), s.silence_counter);
}

Status Engine::Impl::restore_incident(const IncidentRecord& r) {
  auto h = fleet_.find_host(r.host);
  auto v = h ? fleet_.find_vm(*h, r.vm) : std::nullopt;
  if (!v) return not_found("restore: incident " + r.key + ": no VM " + r.vm + " on " + r.host);
  const RulePtr* rule = rule_named(r.rule);
  Incident& inc = book_.open(r.key, *rule, *v, IncidentId{r.id});
  inc.step = r.step;
  inc.state = static_cast<IncidentState>(r.state);
  inc.waiting_on = r.waiting_on;
  inc.held_by = r.held_by;
  inc.action_id = r.action_id;
  inc.deadline = from_ns(r.deadline_ns);
  inc.step_decision = r.step_decision;
  inc.evidence = r.evidence;
  inc.trigger = r.trigger;
  inc.probe = r.probe;
  inc.healed_seen = r.healed_seen;
  inc.progress = r.progress;
  inc.watch_from = from_ns(r.watch_from_ns);
  inc.waiting_reported = r.waiting_reported;
  inc.approved_step = r.approved_step;
  inc.approved_by = r.approved_by;
  inc.needs_approval = r.needs_approval;
  ++fleet_.vm_at(*v).open;
  if (!inc.action_id.empty() && (inc.state == IncidentState::kActing || inc.awaiting_approval())) {
    book_.bind_action(inc.action_id, inc.id);
  }
  if (inc.awaiting_approval()) {
    chain_.on_awaiting(*v, +1);
    arm_approval_timer(inc);
  } else if (inc.state == IncidentState::kWatching) {
    IncidentId id = inc.id;
    inc.timer = clock_.schedule_at(inc.deadline, [this, id] { on_watch_end(id); });
  } else if (inc.state == IncidentState::kHeld && r.deadline_ns != 0) {
    arm_hold_timer(inc);  // one already past fires at once
  }
  return {};
}

}  // namespace medic::rules
