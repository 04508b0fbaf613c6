// The Engine's public face, and how events become triggers and incidents.
#include "rules/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "rules/engine_impl.h"

namespace medic::rules {

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kProposed:
      return "proposed";
    case Outcome::kSuppressed:
      return "suppressed";
    case Outcome::kPendingApproval:
      return "pending_approval";
    case Outcome::kApproved:
      return "approved";
    case Outcome::kDenied:
      return "denied";
    case Outcome::kExpired:
      return "expired";
    case Outcome::kDryRun:
      return "dry_run";
  }
  return "?";
}

std::string_view policy_name(Policy p) {
  switch (p) {
    case Policy::kNone:
      return "";
    case Policy::kSilence:
      return "silence";
    case Policy::kDryRun:
      return "dry-run";
    case Policy::kHostSilent:
      return "host-silent";
    case Policy::kStormGuard:
      return "storm-guard";
    case Policy::kCooldown:
      return "cooldown";
    case Policy::kBudget:
      return "budget";
    case Policy::kVmInFlight:
      return "vm-in-flight";
    case Policy::kHostConcurrency:
      return "host-concurrency";
    case Policy::kFleetConcurrency:
      return "fleet-concurrency";
    case Policy::kApproval:
      return "approval";
  }
  return "?";
}

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kSuppress:
      return "suppress";
    case Verdict::kHold:
      return "hold";
    case Verdict::kWait:
      return "wait";
    case Verdict::kDryRun:
      return "dry_run";
  }
  return "?";
}

Engine::Impl::Impl(Clock& c, std::shared_ptr<const RuleSet> r, EngineOptions o, DecisionSink& s)
    : clock_(c),
      rules_(std::move(r)),
      opt_(std::move(o)),
      sink_(s),
      fleet_(opt_.host_silent_after, opt_.forget_vm_after),
      absence_(c, [this] { on_absence_due(); }),
      chain_(
          c, fleet_, opt_, [this](Decision d) { notice(std::move(d)); },
          [this] {
            const StormGuard& g = chain_.storm();
            for (uint32_t h = 0; h < fleet_.host_count(); ++h) touch_host(h);
            engine_dirty_ = true;
            // Those held by a settle (a timer on) end by their own timer.
            release_held(Policy::kStormGuard, "the storm guard lifted its freeze",
                         [&](const Incident& i) {
              return i.timer == 0 && !g.fleet_frozen() && !g.frozen(fleet_.vm_at(i.vm).host);
            });
          }),
      request_rules_(request_rules(opt_.defaults)) {
  absence_.rebuild(*rules_, 0, now_ns());
}

Engine::Impl::~Impl() {
  for (const Incident* inc : book_.all()) {
    if (inc->timer) clock_.cancel(inc->timer);
  }
  for (auto& [k, f] : in_flight_) {
    if (f.timeout) clock_.cancel(f.timeout);
  }
  if (sweep_timer_) clock_.cancel(sweep_timer_);
}

// ------------------------------------------------------------ hosts

uint32_t Engine::Impl::host_index(const std::string& name) {
  bool created = false;
  uint32_t h = fleet_.host(name, &created);
  if (created && !sweep_timer_) schedule_sweep();
  return h;
}

void Engine::Impl::host_seen(uint32_t h, int64_t at) {
  touched_ = true;
  if (!fleet_.mark_seen(h, at)) return;
  // Back from silence: give its VMs' signals a full period to arrive before
  // absence can fire, so a partition that heals is not mistaken for hangs.
  const HostEntry& host = fleet_.host_at(h);
  spdlog::info("rules: host {} speaks again after silence; re-arming its absence timers",
               host.name);
  absence_.rearm(host.vms, at);
  release_held(Policy::kHostSilent, "host " + host.name + " speaks again",
               [&](const Incident& i) { return fleet_.vm_at(i.vm).host == h; });
}

// Silent hosts are noticed on the clock, not only when a rule wants to act
// on one of their VMs: a partition is news even where no rule fires.
void Engine::Impl::schedule_sweep() {
  Duration every = std::max<Duration>(opt_.host_silent_after / 4, std::chrono::milliseconds(100));
  sweep_timer_ = clock_.schedule_after(every, [this] {
    sweep_timer_ = 0;
    int64_t now = now_ns();
    for (uint32_t h = 0; h < fleet_.host_count(); ++h) {
      const HostEntry& host = fleet_.host_at(h);
      if (!host.vms.empty() && host.last_seen_ns != 0 && fleet_.host_silent(h, now)) {
        chain_.host_silent().notice(h, now);
      }
    }
    schedule_sweep();
  });
}

// ------------------------------------------------------------ events

void Engine::Impl::ingest(const medic::v1::Event& e, EvidenceRef ref) {
  ++stats_.events;
  int64_t now = now_ns();
  uint32_t h = host_index(e.host());
  host_seen(h, now);
  auto type = classify(e);
  if (!type || e.vm().empty()) {
    ++stats_.unknown_events;
    return;
  }
  uint32_t v = note_vm(e, h, *type, ref, now);
  if (v == kRetiredVm) {  // deleted: what a host still said of it before is moot
    ++stats_.unknown_events;
    return;
  }
  if (fleet_.vm_at(v).open) observe_heal(v, *type, e, ref);
  match_rules(v, *type, e, ref, now);
}

// Updates the VM's facts and its absence deadlines; returns its index.
uint32_t Engine::Impl::note_vm(const medic::v1::Event& e, uint32_t h, EventType type,
                               EvidenceRef ref, int64_t now) {
  bool arm_all = false;  // a VM new to the engine, or back after being forgotten
  uint32_t v = fleet_.vm(e.vm(), h, &arm_all);
  if (fleet_.vm_at(v).retired) return kRetiredVm;
  note_claim(v, now);
  VmEntry& vm = fleet_.vm_at(v);
  vm.last_ref = ref;
  if (fleet_.forgotten(vm, now)) arm_all = true;
  vm.last_seen_ns = now;
  Fleet::update_facts(vm, type, e, now);
  if (arm_all) {
    touch_vm(v);
    absence_.arm_all(v, now);
  } else {
    absence_.signalled(*rules_, type, v, now);
  }
  return v;
}

// A VM id two hosts report: each host's reports stay its own VM (host, id),
// so neither changes what the engine knows or does for the other's; the
// claim against the owner is counted, and noticed once, so a person looks.
void Engine::Impl::note_claim(uint32_t v, int64_t now) {
  Claim c = fleet_.claim(v, now);
  if (c == Claim::kOwner) return;
  const VmEntry& vm = fleet_.vm_at(v);
  if (c == Claim::kTakenOver) {
    spdlog::info("rules: VM {} is now owned by host {} (its owner let it go)", vm.facts.id,
                 vm.facts.host);
    return;
  }
  ++stats_.vm_claims_refused;
  if (c != Claim::kFirstConflict) return;
  const VmEntry& owner = fleet_.vm_at(*fleet_.owner_of(vm.facts.id));
  Decision d;
  d.vm = vm.facts.id;
  d.host = vm.facts.host;
  d.step = Step::kNotify;
  d.trigger = "vm claimed by two hosts";
  d.reason = "host " + d.host + " reports VM " + d.vm + ", which host " +
             std::string(owner.facts.host) +
             " owns: a compromised host or a copied VM id. The engine keeps each host's "
             "reports apart, so neither claim changes what it does for the other host's VM";
  spdlog::warn("rules: {}", d.reason);
  notice(std::move(d));
}

void Engine::Impl::match_rules(uint32_t v, EventType type, const medic::v1::Event& e,
                               EvidenceRef ref, int64_t now) {
  const VmEntry& vm = fleet_.vm_at(v);
  const auto& candidates = rules_->candidates(type, vm.facts, &candidate_buf_);
  if (candidates.empty()) return;
  EvalInput in{&vm.facts, &e, type, clock_.now()};
  batch_.clear();
  for (uint32_t i : candidates) {
    const RulePtr& r = rules_->rules()[i];
    if (!r->where.empty() && !r->where.eval(in)) continue;
    incident_key(*r, vm.facts, &e, &key_buf_);
    if (r->trigger == TriggerKind::kCount && !counts_.reached(*r, key_buf_, now)) continue;
    // An open incident only gathers evidence: the common case while a VM
    // stays bad, so it builds nothing.
    if (Incident* open = live_incident(key_buf_, now)) {
      ++stats_.triggers;
      add_evidence(*open, ref);
      continue;
    }
    Trigger t{r, v, key_buf_, {}, {ref}, describe_event_trigger(*r, type, e)};
    if (e.has_probe() &&
        std::find(r->key.begin(), r->key.end(), KeyField::kProbeName) != r->key.end()) {
      t.probe = e.probe().probe();
    }
    if (e.has_alert() &&
        std::find(r->key.begin(), r->key.end(), KeyField::kAlertName) != r->key.end()) {
      t.probe = e.alert().name();
    }
    batch_.push_back(std::move(t));
  }
  if (!batch_.empty()) process_batch();
}

void Engine::Impl::on_absence_due() {
  int64_t now = now_ns();
  batch_.clear();
  due_buf_.clear();
  absence_.pop_due(now, &due_buf_);
  for (const auto& [rule, v] : due_buf_) {
    const VmEntry& vm = fleet_.vm_at(v);
    if (now - vm.last_seen_ns > opt_.forget_vm_after.count()) continue;  // gone: stop watching
    const Rule& r = *rule;
    // Keep watching: if nothing heals it, the absence fires again.
    absence_.arm(r, v, now + r.absent_for.count());
    EvalInput in{&vm.facts, nullptr, r.event, clock_.now()};
    if (!r.where.empty() && !r.where.eval(in)) continue;
    Trigger t{rule, v, {}, {}, {vm.last_ref}, describe_absence(r)};
    incident_key(r, vm.facts, nullptr, &t.key);
    batch_.push_back(std::move(t));
  }
  if (!batch_.empty()) process_batch();
}

// A hold whose time is up ends here even if its timer has not fired yet (a
// restored engine, or a timer due at this very instant), so the trigger at
// hand meets the policies afresh rather than joining a hold that is over.
Incident* Engine::Impl::live_incident(const std::string& key, int64_t now) {
  Incident* inc = book_.find_key(key);
  if (inc && inc->state == IncidentState::kHeld && inc->timer != 0 &&
      to_ns(inc->deadline) <= now) {
    clock_.cancel(inc->timer);
    on_hold_end(inc->id);
    return book_.find_key(key);  // a settle that ended goes on; other holds close
  }
  return inc;
}

void Engine::Impl::add_evidence(Incident& inc, EvidenceRef ref) const {
  if (inc.evidence.size() < opt_.max_evidence) inc.evidence.push_back(ref);
}

// ------------------------------------------------------------ triggers

// Two phases so that a burst arriving together (a partition: many absence
// deadlines at once) is counted by the storm guard before any one of them
// is acted on.
void Engine::Impl::process_batch() {
  std::vector<Trigger> work;
  work.swap(batch_);
  int64_t now = now_ns();
  std::vector<Trigger> fresh;
  for (auto& t : work) {
    ++stats_.triggers;
    if (Incident* open = live_incident(t.key, now)) {
      for (auto r : t.evidence) add_evidence(*open, r);
      continue;
    }
    // A silent host's VMs look bad only because we hear nothing: no facts,
    // so they do not count toward a storm.
    // Nor do rules the storm guard does not hold: their actions are no storm's.
    if (t.rule->storm_guard && !fleet_.host_silent(fleet_.vm_at(t.vm).host, now)) {
      chain_.storm().mark_bad(t.vm, now);
    }
    fresh.push_back(std::move(t));
  }
  chain_.storm().evaluate(now);
  for (auto& t : fresh) {
    if (book_.find_key(t.key)) continue;  // two triggers of one key in one batch
    open_incident(t);
  }
}

void Engine::Impl::open_incident(Trigger& t) {
  Incident& inc = book_.open(t.key, t.rule, t.vm);
  inc.evidence = std::move(t.evidence);
  inc.trigger = std::move(t.what);
  inc.probe = std::move(t.probe);
  ++fleet_.vm_at(t.vm).open;
  attempt_step(inc);
}

void Engine::Impl::observe_heal(uint32_t v, EventType type, const medic::v1::Event& e,
                                EvidenceRef ref) {
  for (Incident* inc : book_.of_vm(v)) {
    if (inc->state == IncidentState::kActing || inc->state == IncidentState::kWatching) {
      note_progress(*inc, type, e);
    }
    if (inc->rule->healed_by != type) continue;
    const std::string how = heal_words(*inc->rule);
    if (!inc->probe.empty() && signal_name(e) != inc->probe) continue;
    // A request is not about a failure: a healthy sign before its action
    // does not answer it (only the action's own heal watch does).
    const bool acted =
        inc->state == IncidentState::kActing || inc->state == IncidentState::kWatching;
    if (!acted && is_request_rule(inc->rule->name)) continue;
    // A VM that stops is not yet gone: only the actuator sees a delete done.
    if (inc->rule->request && inc->rule->ladder[0] == Step::kDelete) continue;
    if (inc->state == IncidentState::kActing) {
      inc->healed_seen = true;  // the action's result decides
      inc->healed_ref = ref;
    } else if (inc->awaiting_approval()) {
      Decision d = base(*inc);
      d.id = inc->action_id;
      d.outcome = Outcome::kExpired;
      d.policy = Policy::kApproval;
      d.reason = "the VM healed (" + std::string(event_type_name(type)) + ") before approval";
      emit(d);
      close_healed(*inc, how + " before any action", ref);
    } else if (inc->state == IncidentState::kWatching) {
      close_healed(*inc, how, ref);
    } else {
      close_healed(*inc, how + " before any action", ref);  // held, or waiting for a slot
    }
  }
}

void Engine::Impl::reload(std::shared_ptr<const RuleSet> rules) {
  rules_ = rules ? std::move(rules) : std::make_shared<const RuleSet>();
  absence_.rebuild(*rules_, fleet_.vm_count(), now_ns());
}

// ------------------------------------------------------------ Engine

Engine::Engine(Clock& clock, std::shared_ptr<const RuleSet> rules, EngineOptions options,
               DecisionSink& sink)
    : impl_(std::make_unique<Impl>(clock,
                                   rules ? std::move(rules) : std::make_shared<const RuleSet>(),
                                   std::move(options), sink)) {}

Engine::~Engine() = default;

void Engine::ingest(const medic::v1::Event& event, EvidenceRef evidence) {
  impl_->ingest(event, evidence);
}

void Engine::host_seen(const std::string& host, Time at) {
  impl_->host_seen(impl_->host_index(host), to_ns(at));
}

void Engine::on_action_result(const std::string& action_id, ActionState outcome, bool healed,
                              const std::string& reason) {
  impl_->result(action_id, outcome, healed, reason);
}

Status Engine::approve(const std::string& id, const std::string& by) {
  return impl_->approve(id, by);
}

Status Engine::deny(const std::string& id, const std::string& by, const std::string& reason) {
  return impl_->deny(id, by, reason);
}

std::string Engine::silence(Silence s) {
  impl_->touched_ = true;
  impl_->silences_dirty_ = true;
  impl_->engine_dirty_ = true;  // the silence counter
  return impl_->chain_.silences().add(std::move(s));
}

// What a removed silence held meets the policies again on its next trigger
// (another silence may still hold it).
Status Engine::unsilence(const std::string& id) {
  if (!impl_->chain_.silences().remove(id)) return not_found("no silence " + id);
  impl_->silences_dirty_ = true;
  Impl& m = *impl_;
  m.release_held(Policy::kSilence, "silence " + id + " was removed", [&m](const Incident& i) {
    return !m.chain_.silences().match(m.fleet_.vm_at(i.vm).facts, i.rule->name, m.clock_.now());
  });
  return {};
}

// The unfreeze pardons the scope's bad VMs (rules/storm_guard.h): their
// marks change, so their rows are written again.
Status Engine::unfreeze(const std::string& host, const std::string& by) {
  Impl& m = *impl_;
  m.engine_dirty_ = true;
  if (host.empty()) {
    for (uint32_t v = 0; v < m.fleet_.vm_count(); ++v) m.touch_vm(v);
    return m.chain_.storm().unfreeze(kNoHost, by);
  }
  auto h = m.fleet_.find_host(host);
  if (!h) return failed_precondition("host " + host + " is not frozen");
  m.touch_host(*h);
  for (uint32_t v : m.fleet_.host_at(*h).vms) m.touch_vm(v);
  return m.chain_.storm().unfreeze(*h, by);
}

void Engine::reload(std::shared_ptr<const RuleSet> rules) { impl_->reload(std::move(rules)); }

EngineState Engine::snapshot() const { return impl_->snapshot(); }

Status Engine::restore(const EngineState& state) { return impl_->restore(state); }

StateChanges Engine::take_changes(bool refresh_seen) { return impl_->take_changes(refresh_seen); }

void Engine::grant_absence_grace() { impl_->grant_absence_grace(); }

EngineStats Engine::stats() const {
  EngineStats s = impl_->stats_;
  s.vms = impl_->fleet_.vm_count();
  s.hosts = impl_->fleet_.host_count();
  s.open_incidents = impl_->book_.size();
  for (const Incident* inc : impl_->book_.all()) s.pending_approvals += inc->awaiting_approval();
  s.in_flight = impl_->in_flight_.size();
  s.absence_keys = impl_->absence_.armed_count();
  return s;
}

bool Engine::frozen(const std::string& host) const {
  const StormGuard& g = impl_->chain_.storm();
  if (host.empty()) return g.fleet_frozen();
  auto h = impl_->fleet_.find_host(host);
  return h && g.frozen(*h);
}

std::vector<std::pair<std::string, Silence>> Engine::silences() const {
  const auto& held = impl_->chain_.silences().silences();
  return {held.begin(), held.end()};
}

std::vector<std::string> Engine::hosts() const {
  std::vector<std::string> out;
  const Fleet& fleet = impl_->fleet_;
  for (uint32_t h = 0; h < fleet.host_count(); ++h) out.push_back(fleet.host_at(h).name);
  return out;
}

}  // namespace medic::rules
