#include "rules/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <map>

#include "core/duration.h"

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

namespace {

constexpr uint32_t kNoHost = std::numeric_limits<uint32_t>::max();
constexpr size_t kMaxActionTimes = 32;  // budget history kept per VM

std::string fmt(Duration d) {
  return format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

}  // namespace

namespace {

// VM id -> index into the VM table, open addressing over 32-bit slots. The
// ids live once, in the table; a node-based map would store each id twice and
// spend ~70 bytes per VM on nodes.
template <typename Vms>
class FlatIndex {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  explicit FlatIndex(const Vms& vms) : vms_(vms), slots_(16, kNone) {}

  uint32_t find(std::string_view id) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(id) & mask;; i = (i + 1) & mask) {
      uint32_t v = slots_[i];
      if (v == kNone) return kNone;
      if (vms_[v].facts.id == id) return v;
    }
  }
  // REQUIRES: vms_[v] holds an id not yet indexed.
  void insert(uint32_t v) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(v);
    ++size_;
  }

 private:
  static size_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  void place(uint32_t v) {
    size_t mask = slots_.size() - 1;
    size_t i = hash(vms_[v].facts.id) & mask;
    while (slots_[i] != kNone) i = (i + 1) & mask;
    slots_[i] = v;
  }
  void grow() {
    std::vector<uint32_t> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, kNone);
    for (uint32_t v : old) {
      if (v != kNone) place(v);
    }
  }

  const Vms& vms_;
  std::vector<uint32_t> slots_;
  size_t size_ = 0;
};

}  // namespace

struct Engine::Impl {
  // kHeld: stopped by host-silent or storm-guard; absorbs repeated triggers
  // (one suppression per VM per spell, not one per absence period) and closes
  // when the host speaks again or the freeze lifts.
  enum class State : uint8_t { kActing, kAwaitApproval, kWatching, kWaitingSlot, kHeld };

  struct Incident {
    uint64_t serial = 0;
    std::string key;  // rule name, unit separator, key fields
    RulePtr rule;
    uint32_t vm = 0;
    uint32_t step = 0;
    State state = State::kWatching;
    std::string action_id;
    TimerId timer = 0;
    std::vector<EvidenceRef> evidence;
    std::string trigger;
    std::string probe;  // set when keyed by probe.name
    bool healed_seen = false;
    bool waiting_reported = false;
    Policy held_by = Policy::kNone;
    uint32_t approved_step = 0;  // 1-based step an operator approved
    std::string approved_by;
  };

  struct HostEntry {
    std::string name;
    int64_t last_seen_ns = 0;
    std::vector<uint32_t> vms;
    uint32_t in_flight = 0;
    bool frozen = false;
    std::deque<int64_t> bad_times;
    int64_t last_bad_ns = 0;
    TimerId unfreeze_timer = 0;
    bool silence_noticed = false;  // one notice per silent spell
  };

  struct VmEntry {
    VmFacts facts;
    uint32_t host = kNoHost;
    bool in_flight = false;
    uint8_t awaiting_approval = 0;
    uint16_t open = 0;
    int64_t last_action_ns = 0;
    int64_t bad_since_ns = 0;
    int64_t storm_counted_ns = 0;  // when this VM last counted toward a storm
    int64_t budget_notice_ns = 0;
    int64_t last_seen_ns = 0;
    EvidenceRef last_ref = 0;
    std::vector<int64_t> actions;  // times of verb actions, for the budget
  };

  using VmIndex = FlatIndex<std::vector<VmEntry>>;

  struct InFlight {
    uint32_t vm;
    TimerId timeout;
  };

  struct AbsenceSlot {
    RulePtr rule;
    AbsenceTracker tracker;
  };

  struct Trigger {
    RulePtr rule;
    uint32_t vm;
    std::string key;
    std::string probe;
    std::vector<EvidenceRef> evidence;
    std::string what;
  };

  Impl(Clock& c, std::shared_ptr<const RuleSet> r, EngineOptions o, DecisionSink& s)
      : clock(c), rules(std::move(r)), opt(std::move(o)), sink(s) {
    build_absence({});
  }

  ~Impl() {
    if (absence_timer) clock.cancel(absence_timer);
    for (auto& [k, inc] : incidents) {
      if (inc->timer) clock.cancel(inc->timer);
    }
    for (auto& [k, f] : in_flight) clock.cancel(f.timeout);
    for (auto& h : hosts) {
      if (h.unfreeze_timer) clock.cancel(h.unfreeze_timer);
    }
    if (fleet_unfreeze_timer) clock.cancel(fleet_unfreeze_timer);
    if (sweep_timer) clock.cancel(sweep_timer);
  }

  // ------------------------------------------------------------ lookups

  int64_t now_ns() const { return to_ns(clock.now()); }

  uint32_t host_id(const std::string& name) {
    auto it = host_index.find(name);
    if (it != host_index.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(hosts.size());
    host_index.emplace(name, id);
    hosts.push_back({});
    hosts.back().name = name;
    if (!sweep_timer) schedule_sweep();
    return id;
  }

  void mark_seen(uint32_t h, int64_t at) {
    HostEntry& host = hosts[h];
    bool was_silent =
        host.last_seen_ns != 0 && at - host.last_seen_ns > opt.host_silent_after.count();
    if (at > host.last_seen_ns) host.last_seen_ns = at;
    if (!was_silent) return;
    host.silence_noticed = false;
    // Back from silence: give its VMs' signals a full period to arrive before
    // absence can fire, so a partition that heals is not mistaken for hangs.
    spdlog::info("rules: host {} speaks again after silence; re-arming its absence timers",
                 host.name);
    for (auto& slot : absence) {
      for (uint32_t v : host.vms) slot.tracker.arm(v, at + slot.rule->absent_for.count());
    }
    ensure_absence_timer();
    release_held(Policy::kHostSilent, [&](uint32_t v) { return vms[v].host == h; });
  }

  // Closes incidents held by `policy` whose VM `pred` accepts. A trigger that
  // still holds opens a fresh incident, which meets the policies again.
  template <typename Pred>
  void release_held(Policy policy, Pred pred) {
    std::vector<Incident*> done;
    for (auto& [k, inc] : incidents) {
      if (inc->state == State::kHeld && inc->held_by == policy && pred(inc->vm))
        done.push_back(inc.get());
    }
    for (Incident* inc : done) close(*inc, false);
  }

  uint32_t vm_id(const std::string& id, uint32_t h, bool* created) {
    uint32_t found = vm_index.find(id);
    if (found != VmIndex::kNone) {
      if (vms[found].host != h) move_vm(found, h);
      return found;
    }
    uint32_t v = static_cast<uint32_t>(vms.size());
    vms.push_back({});
    vms.back().facts.id = id;
    vm_index.insert(v);
    move_vm(v, h);
    *created = true;
    return v;
  }

  void move_vm(uint32_t v, uint32_t h) {
    VmEntry& vm = vms[v];
    if (vm.host != kNoHost) {
      auto& list = hosts[vm.host].vms;
      list.erase(std::remove(list.begin(), list.end(), v), list.end());
    }
    vm.host = h;
    vm.facts.host = hosts[h].name;
    hosts[h].vms.push_back(v);
  }

  // ------------------------------------------------------------ ingest

  void update_facts(VmEntry& vm, EventType type, const medic::v1::Event& e, int64_t now) {
    if (type == EventType::kVmHeartbeat) {
      vm.facts.last_heartbeat_ns = now;
      return;
    }
    if (type != EventType::kVmState) return;
    const auto& s = e.state();
    vm.facts.state = s.state();
    vm.facts.cpu_percent = static_cast<float>(s.cpu_percent());
    vm.facts.rss_bytes = s.rss_bytes();
    vm.facts.uptime_ns = s.uptime_ns();
    auto& labels = vm.facts.labels;
    bool same = labels.size() == static_cast<size_t>(s.labels_size());
    for (int i = 0; same && i < s.labels_size(); ++i) {
      same = labels[i].first == s.labels(i).key() && labels[i].second == s.labels(i).value();
    }
    if (!same) {
      labels.clear();
      for (const auto& l : s.labels()) labels.emplace_back(l.key(), l.value());
    }
  }

  void ingest(const medic::v1::Event& e, EvidenceRef ref) {
    ++stats.events;
    int64_t now = now_ns();
    uint32_t h = host_id(e.host());
    mark_seen(h, now);
    auto type = classify(e);
    if (!type || e.vm().empty()) {
      ++stats.unknown_events;
      return;
    }
    bool arm_all = false;  // a VM new to the engine, or back after being forgotten
    uint32_t v = vm_id(e.vm(), h, &arm_all);
    VmEntry& vm = vms[v];
    vm.last_ref = ref;
    if (vm.last_seen_ns == 0 || now - vm.last_seen_ns > opt.forget_vm_after.count()) arm_all = true;
    vm.last_seen_ns = now;
    update_facts(vm, *type, e, now);
    if (arm_all) {
      for (auto& slot : absence) slot.tracker.arm(v, now + slot.rule->absent_for.count());
      ensure_absence_timer();
    } else {
      for (uint32_t i : rules->absence_signalled_by(*type)) {
        AbsenceSlot& slot = absence[slot_of_rule[i]];
        slot.tracker.arm(v, now + slot.rule->absent_for.count());
      }
    }
    if (vm.open) observe_heal(v, *type, e);

    const auto& candidates = rules->candidates(*type, vm.facts, &candidate_buf);
    if (candidates.empty()) return;
    EvalInput in{&vm.facts, &e, *type, clock.now()};
    batch.clear();
    for (uint32_t i : candidates) {
      const RulePtr& r = rules->rules()[i];
      if (!r->where.empty() && !r->where.eval(in)) continue;
      incident_key(*r, vm, &e, &key_buf);
      if (r->trigger == TriggerKind::kCount && !count_reached(*r, key_buf, now)) continue;
      // An open incident only gathers evidence: the common case while a VM
      // stays bad, so it builds nothing.
      if (auto open = incidents.find(key_buf); open != incidents.end()) {
        ++stats.triggers;
        add_evidence(*open->second, ref);
        continue;
      }
      Trigger t{r, v, key_buf, {}, {}, {}};
      if (e.has_probe() &&
          std::find(r->key.begin(), r->key.end(), KeyField::kProbeName) != r->key.end()) {
        t.probe = e.probe().probe();
      }
      if (r->trigger == TriggerKind::kCount) {
        t.what = std::to_string(r->count) + " " + std::string(event_type_name(r->event)) +
                 " within " + fmt(r->within);
      } else {
        t.what = std::string(event_type_name(*type));
        if (e.has_probe()) t.what += " (probe " + e.probe().probe() + ")";
      }
      t.evidence.push_back(ref);
      batch.push_back(std::move(t));
    }
    if (!batch.empty()) process_batch();
  }

  std::string incident_key(const Rule& r, const VmEntry& vm, const medic::v1::Event* e) const {
    std::string k;
    incident_key(r, vm, e, &k);
    return k;
  }

  // The same into `*k`, reusing its buffer.
  static void incident_key(const Rule& r, const VmEntry& vm, const medic::v1::Event* e,
                           std::string* k) {
    k->assign(r.name);
    for (KeyField f : r.key) {
      *k += '\x1f';
      switch (f) {
        case KeyField::kVmId:
          *k += vm.facts.id;
          break;
        case KeyField::kVmHost:
          *k += vm.facts.host;
          break;
        case KeyField::kProbeName:
          if (e) *k += e->probe().probe();
          break;
      }
    }
  }

  void add_evidence(Incident& inc, EvidenceRef ref) const {
    if (inc.evidence.size() < opt.max_evidence) inc.evidence.push_back(ref);
  }

  bool count_reached(const Rule& r, const std::string& key, int64_t now) {
    auto& times = counts[key];
    times.push_back(now);
    int64_t floor = now - r.within.count();
    times.erase(times.begin(),
                std::find_if(times.begin(), times.end(), [&](int64_t t) { return t > floor; }));
    if (times.size() < r.count) return false;
    times.clear();
    return true;
  }

  // ------------------------------------------------------------ absence

  void build_absence(std::vector<AbsenceSlot> old) {
    absence.clear();
    slot_of_rule.assign(rules->size(), 0);
    int64_t now = now_ns();
    for (uint32_t i : rules->absence_rules()) {
      const RulePtr& r = rules->rules()[i];
      slot_of_rule[i] = static_cast<uint32_t>(absence.size());
      auto same = std::find_if(old.begin(), old.end(), [&](const AbsenceSlot& s) {
        return s.rule && s.rule->name == r->name && s.rule->event == r->event;
      });
      if (same != old.end()) {
        absence.push_back({r, std::move(same->tracker)});
        same->rule = nullptr;
        continue;
      }
      absence.push_back({r, {}});
      for (uint32_t v = 0; v < vms.size(); ++v) {
        absence.back().tracker.arm(v, now + r->absent_for.count());
      }
    }
    ensure_absence_timer();
  }

  void ensure_absence_timer() {
    int64_t next = std::numeric_limits<int64_t>::max();
    for (const auto& s : absence) {
      if (auto n = s.tracker.next_check()) next = std::min(next, *n);
    }
    if (next >= absence_timer_at) return;
    if (absence_timer) clock.cancel(absence_timer);
    absence_timer_at = next;
    absence_timer = clock.schedule_at(from_ns(next), [this] { on_absence_timer(); });
  }

  void on_absence_timer() {
    absence_timer = 0;
    absence_timer_at = std::numeric_limits<int64_t>::max();
    int64_t now = now_ns();
    batch.clear();
    std::vector<AbsenceTracker::Key> due;
    for (auto& slot : absence) {
      due.clear();
      slot.tracker.pop_due(now, &due);
      // Heap order among equal deadlines is arbitrary; VM order is stable and
      // is the order the engine first heard of them.
      std::sort(due.begin(), due.end());
      const Rule& r = *slot.rule;
      for (uint32_t v : due) {
        VmEntry& vm = vms[v];
        if (now - vm.last_seen_ns > opt.forget_vm_after.count()) continue;  // gone: stop watching
        // Keep watching: if nothing heals it, the absence fires again.
        slot.tracker.arm(v, now + r.absent_for.count());
        EvalInput in{&vm.facts, nullptr, r.event, clock.now()};
        if (!r.where.empty() && !r.where.eval(in)) continue;
        Trigger t{slot.rule, v, incident_key(r, vm, nullptr), {}, {vm.last_ref}, {}};
        t.what = "no " + std::string(event_type_name(r.event)) + " for " + fmt(r.absent_for);
        batch.push_back(std::move(t));
      }
    }
    if (!batch.empty()) process_batch();
    ensure_absence_timer();
  }

  // ------------------------------------------------------------ triggers

  // Two phases so that a burst arriving together (a partition: many absence
  // deadlines at once) is counted by the storm guard before any one of them
  // is acted on.
  void process_batch() {
    std::vector<Trigger> work;
    work.swap(batch);
    int64_t now = now_ns();
    std::vector<Trigger> fresh;
    for (auto& t : work) {
      ++stats.triggers;
      auto it = incidents.find(t.key);
      if (it != incidents.end()) {
        for (auto r : t.evidence) add_evidence(*it->second, r);
        continue;
      }
      // A silent host's VMs look bad only because we hear nothing: no facts,
      // so they do not count toward a storm.
      if (!host_silent(vms[t.vm].host, now)) mark_bad(t.vm, now);
      fresh.push_back(std::move(t));
    }
    check_storm(now);
    for (auto& t : fresh) {
      if (incidents.count(t.key)) continue;  // two triggers of one key in one batch
      auto inc = std::make_unique<Incident>();
      inc->serial = ++next_serial;
      inc->key = t.key;
      inc->rule = t.rule;
      inc->vm = t.vm;
      inc->evidence = std::move(t.evidence);
      inc->trigger = std::move(t.what);
      inc->probe = std::move(t.probe);
      Incident* p = inc.get();
      incidents.emplace(t.key, std::move(inc));
      vm_incidents[t.vm].push_back(p);
      ++vms[t.vm].open;
      attempt_step(*p);
    }
  }

  void observe_heal(uint32_t v, EventType type, const medic::v1::Event& e) {
    auto it = vm_incidents.find(v);
    if (it == vm_incidents.end()) return;
    std::vector<Incident*> list = it->second;  // closing edits the original
    for (Incident* inc : list) {
      if (inc->rule->healed_by != type) continue;
      if (!inc->probe.empty() && (!e.has_probe() || e.probe().probe() != inc->probe)) continue;
      switch (inc->state) {
        case State::kWatching:
        case State::kHeld:
        case State::kWaitingSlot:
          close(*inc, true);
          break;
        case State::kActing:
          inc->healed_seen = true;
          break;
        case State::kAwaitApproval: {
          Decision d = base(*inc);
          d.id = inc->action_id;
          d.outcome = Outcome::kExpired;
          d.policy = Policy::kApproval;
          d.reason = "the VM healed (" + std::string(event_type_name(type)) + ") before approval";
          emit(d);
          close(*inc, true);
          break;
        }
      }
    }
  }

  // ------------------------------------------------------------ storm guard

  void mark_bad(uint32_t v, int64_t now) {
    VmEntry& vm = vms[v];
    if (vm.bad_since_ns != 0 && now - vm.bad_since_ns < opt.storm.window.count()) return;
    vm.bad_since_ns = now;
    // A storm is many distinct VMs going bad: a VM that heals and fails
    // again within the window counts once.
    if (vm.storm_counted_ns != 0 && now - vm.storm_counted_ns < opt.storm.window.count()) return;
    vm.storm_counted_ns = now;
    HostEntry& h = hosts[vm.host];
    h.bad_times.push_back(now);
    h.last_bad_ns = now;
    fleet_bad.push_back(now);
    fleet_last_bad_ns = now;
    storm_touched.push_back(vm.host);
  }

  static void prune(std::deque<int64_t>& d, int64_t floor) {
    while (!d.empty() && d.front() <= floor) d.pop_front();
  }

  bool over(size_t bad, size_t total, double fraction) const {
    return bad >= opt.storm.min_vms &&
           static_cast<double>(bad) > fraction * static_cast<double>(total);
  }

  void check_storm(int64_t now) {
    int64_t floor = now - opt.storm.window.count();
    std::sort(storm_touched.begin(), storm_touched.end());
    storm_touched.erase(std::unique(storm_touched.begin(), storm_touched.end()),
                        storm_touched.end());
    for (uint32_t h : storm_touched) {
      HostEntry& host = hosts[h];
      prune(host.bad_times, floor);
      if (!host.frozen && over(host.bad_times.size(), host.vms.size(), opt.storm.host_fraction)) {
        host.frozen = true;
        notice_freeze(host.name, host.bad_times.size(), host.vms.size());
        schedule_unfreeze(h);
      }
    }
    storm_touched.clear();
    prune(fleet_bad, floor);
    if (!fleet_frozen && over(fleet_bad.size(), vms.size(), opt.storm.fleet_fraction)) {
      fleet_frozen = true;
      notice_freeze("", fleet_bad.size(), vms.size());
      schedule_unfreeze(kNoHost);
    }
  }

  void notice_freeze(const std::string& host, size_t bad, size_t total) {
    Decision d;
    d.id = next_id();
    d.at = clock.now();
    d.host = host;
    d.step = Step::kNotify;
    d.policy = Policy::kStormGuard;
    d.outcome = Outcome::kProposed;
    std::string scope = host.empty() ? "the fleet" : "host " + host;
    d.trigger = "storm guard";
    d.reason = "storm guard: " + std::to_string(bad) + " of " + std::to_string(total) + " VMs of " +
               scope + " turned bad within " + fmt(opt.storm.window) +
               "; automatic actions on them are frozen until " + fmt(opt.storm.quiet) +
               " pass quietly or an operator unfreezes (the cause is probably the host or the "
               "network, not the guests)";
    spdlog::warn("rules: {}", d.reason);
    emit(d);
  }

  void schedule_unfreeze(uint32_t h) {
    int64_t last = h == kNoHost ? fleet_last_bad_ns : hosts[h].last_bad_ns;
    Time at = from_ns(last + opt.storm.quiet.count());
    TimerId id = clock.schedule_at(at, [this, h] { on_unfreeze_timer(h); });
    if (h == kNoHost)
      fleet_unfreeze_timer = id;
    else
      hosts[h].unfreeze_timer = id;
  }

  void on_unfreeze_timer(uint32_t h) {
    int64_t last = h == kNoHost ? fleet_last_bad_ns : hosts[h].last_bad_ns;
    if (h == kNoHost)
      fleet_unfreeze_timer = 0;
    else
      hosts[h].unfreeze_timer = 0;
    if (now_ns() - last < opt.storm.quiet.count()) {
      schedule_unfreeze(h);
      return;
    }
    lift_freeze(h, "quiet for " + fmt(opt.storm.quiet));
  }

  void lift_freeze(uint32_t h, const std::string& why) {
    if (h == kNoHost) {
      fleet_frozen = false;
      if (fleet_unfreeze_timer) clock.cancel(fleet_unfreeze_timer);
      fleet_unfreeze_timer = 0;
      fleet_bad.clear();
      spdlog::info("rules: storm guard lifted for the fleet ({})", why);
    } else {
      HostEntry& host = hosts[h];
      host.frozen = false;
      if (host.unfreeze_timer) clock.cancel(host.unfreeze_timer);
      host.unfreeze_timer = 0;
      host.bad_times.clear();
      spdlog::info("rules: storm guard lifted for host {} ({})", host.name, why);
    }
    release_held(Policy::kStormGuard,
                 [&](uint32_t v) { return !fleet_frozen && !hosts[vms[v].host].frozen; });
  }

  // ------------------------------------------------------------ host liveness

  // Silent hosts are noticed on the clock, not only when a rule wants to act
  // on one of their VMs: a partition is news even where no rule fires.
  void schedule_sweep() {
    Duration every = std::max<Duration>(opt.host_silent_after / 4, std::chrono::milliseconds(100));
    sweep_timer = clock.schedule_after(every, [this] {
      sweep_timer = 0;
      int64_t now = now_ns();
      for (auto& host : hosts) {
        if (!host.vms.empty() && host.last_seen_ns != 0 &&
            now - host.last_seen_ns > opt.host_silent_after.count()) {
          silence_notice(host, now);
        }
      }
      schedule_sweep();
    });
  }

  // ------------------------------------------------------------ decisions

  bool host_silent(uint32_t h, int64_t now) const {
    return now - hosts[h].last_seen_ns > opt.host_silent_after.count();
  }

  void silence_notice(HostEntry& host, int64_t now) {
    if (host.silence_noticed) return;
    host.silence_noticed = true;
    Decision d;
    d.id = next_id();
    d.at = clock.now();
    d.host = host.name;
    d.step = Step::kNotify;
    d.policy = Policy::kHostSilent;
    d.trigger = "host silent";
    d.reason = "host " + host.name + " has been silent for " +
               fmt(Duration(now - host.last_seen_ns)) + ": no facts about its " +
               std::to_string(host.vms.size()) +
               " VMs, so the engine takes no action on them until it speaks again";
    spdlog::warn("rules: {}", d.reason);
    emit(d);
  }

  std::string next_id() { return opt.id_prefix + "-" + std::to_string(++id_counter); }

  Decision base(const Incident& inc) {
    const Rule& r = *inc.rule;
    const VmEntry& vm = vms[inc.vm];
    Decision d;
    d.id = next_id();
    d.at = clock.now();
    d.rule = r.name;
    d.rule_version = r.version;
    d.vm = vm.facts.id;
    d.host = std::string(vm.facts.host);
    d.step = r.ladder[inc.step];
    d.ladder_step = inc.step + 1;
    d.ladder_size = static_cast<uint32_t>(r.ladder.size());
    d.evidence = inc.evidence;
    d.trigger = inc.trigger;
    d.heal_within = r.heal_within;
    return d;
  }

  void emit(const Decision& d) {
    ++stats.decisions;
    sink.on_decision(d);
  }

  const Silence* matching_silence(const Rule& r, const VmEntry& vm) {
    Time now = clock.now();
    for (auto it = silences.begin(); it != silences.end();) {
      if (it->second.until <= now) {
        it = silences.erase(it);
        continue;
      }
      const Silence& s = it->second;
      bool match = (s.vm.empty() || s.vm == vm.facts.id) &&
                   (s.host.empty() || s.host == vm.facts.host) &&
                   (s.rule.empty() || s.rule == r.name) &&
                   (s.label_key.empty() || vm.facts.label(s.label_key) == s.label_value);
      if (match) return &s;
      ++it;
    }
    return nullptr;
  }

  size_t actions_within(const VmEntry& vm, Duration window, int64_t now) const {
    size_t n = 0;
    for (int64_t t : vm.actions) n += now - t < window.count();
    return n;
  }

  void suppress(Incident& inc, Decision& d, Policy p, std::string reason) {
    d.outcome = Outcome::kSuppressed;
    d.policy = p;
    d.reason = std::move(reason);
    emit(d);
    close(inc, false);
  }

  void attempt_step(Incident& inc) {
    const Rule& r = *inc.rule;
    VmEntry& vm = vms[inc.vm];
    HostEntry& host = hosts[vm.host];
    int64_t now = now_ns();
    Decision d = base(inc);
    bool verb = d.step != Step::kNotify;

    if (const Silence* s = matching_silence(r, vm)) {
      return suppress(inc, d, Policy::kSilence,
                      "silenced by " + (s->by.empty() ? std::string("an operator") : s->by) +
                          " for " + fmt(s->until - clock.now()) + " more: " + s->reason);
    }
    if (opt.dry_run || r.mode == Mode::kDryRun) {
      d.outcome = Outcome::kDryRun;
      if (!verb) d.reason = notify_text(inc);
      emit(d);
      return watch(inc);
    }
    if (verb && host_silent(vms[inc.vm].host, now)) {
      silence_notice(host, now);
      return hold(inc, d, Policy::kHostSilent,
                  "host " + host.name + " has been silent for " +
                      fmt(Duration(now - host.last_seen_ns)) + " (limit " +
                      fmt(opt.host_silent_after) +
                      "): no facts about its VMs, so no action on them");
    }
    if (verb && r.storm_guard && (host.frozen || fleet_frozen)) {
      return hold(inc, d, Policy::kStormGuard,
                  std::string("automatic actions are frozen on ") +
                      (host.frozen ? "host " + host.name : std::string("the fleet")) +
                      " by the storm guard");
    }
    Duration cooldown = r.cooldown.value_or(opt.defaults.cooldown);
    if (verb && inc.step == 0 && vm.last_action_ns != 0 &&
        now - vm.last_action_ns < cooldown.count()) {
      return suppress(inc, d, Policy::kCooldown,
                      "the last action on this VM was " + fmt(Duration(now - vm.last_action_ns)) +
                          " ago (cooldown " + fmt(cooldown) + ")");
    }
    Budget budget = r.budget.value_or(opt.defaults.budget);
    if (verb && actions_within(vm, budget.window, now) >= budget.count) {
      budget_notice(inc, budget, now);
      return suppress(inc, d, Policy::kBudget,
                      "the VM had " + std::to_string(budget.count) + " actions in the last " +
                          fmt(budget.window) + " (budget " + std::to_string(budget.count) +
                          " per " + fmt(budget.window) + ")");
    }
    if (verb && vm.in_flight) {
      return suppress(inc, d, Policy::kVmInFlight, "another action on this VM is still in flight");
    }
    if (verb && vm.awaiting_approval) {
      return suppress(inc, d, Policy::kVmInFlight,
                      "another action on this VM is waiting for approval");
    }
    if (verb && host.in_flight >= opt.max_in_flight_per_host) {
      return wait_for_slot(inc, d, Policy::kHostConcurrency,
                           "host " + host.name + " has " + std::to_string(host.in_flight) +
                               " actions in flight (limit " +
                               std::to_string(opt.max_in_flight_per_host) +
                               "); waiting for one to finish");
    }
    if (verb && fleet_in_flight >= opt.max_in_flight_fleet) {
      return wait_for_slot(
          inc, d, Policy::kFleetConcurrency,
          "the fleet has " + std::to_string(fleet_in_flight) + " actions in flight (limit " +
              std::to_string(opt.max_in_flight_fleet) + "); waiting for one to finish");
    }
    if (verb && r.approval_required && inc.approved_step == inc.step + 1) {
      d.by = inc.approved_by;
      return dispatch(inc, d, Outcome::kApproved);
    }
    if (verb && r.approval_required) {
      Duration timeout = r.approval_timeout.value_or(opt.defaults.approval_timeout);
      d.outcome = Outcome::kPendingApproval;
      d.policy = Policy::kApproval;
      d.reason = "rule requires operator approval within " + fmt(timeout);
      d.expires_at = clock.now() + timeout;
      inc.state = State::kAwaitApproval;
      ++vm.awaiting_approval;
      inc.action_id = d.id;
      by_action[d.id] = {inc.key, inc.serial};
      uint64_t serial = inc.serial;
      std::string key = inc.key;
      inc.timer =
          clock.schedule_after(timeout, [this, key, serial] { on_approval_timeout(key, serial); });
      emit(d);
      return;
    }
    dispatch(inc, d, Outcome::kProposed);
  }

  void hold(Incident& inc, Decision& d, Policy p, std::string reason) {
    d.outcome = Outcome::kSuppressed;
    d.policy = p;
    d.reason = std::move(reason);
    emit(d);
    inc.state = State::kHeld;
    inc.held_by = p;
  }

  void wait_for_slot(Incident& inc, Decision& d, Policy p, std::string reason) {
    bool first = !inc.waiting_reported;
    inc.state = State::kWaitingSlot;
    inc.waiting_reported = true;
    waiting.push_back({inc.key, inc.serial});
    if (!first) return;
    d.outcome = Outcome::kSuppressed;
    d.policy = p;
    d.reason = std::move(reason);
    emit(d);
  }

  std::string notify_text(const Incident& inc) const {
    const Rule& r = *inc.rule;
    if (!r.message.empty()) return r.message;
    const VmEntry& vm = vms[inc.vm];
    std::string s = "rule " + r.name + ": VM " + vm.facts.id + " on host " +
                    std::string(vm.facts.host) + ": " + inc.trigger;
    if (inc.step > 0) {
      s += "; tried";
      for (uint32_t i = 0; i < inc.step; ++i) s += " " + std::string(step_name(r.ladder[i]));
      s += " without healing it";
    }
    return s;
  }

  void budget_notice(const Incident& inc, const Budget& b, int64_t now) {
    VmEntry& vm = vms[inc.vm];
    if (vm.budget_notice_ns != 0 && now - vm.budget_notice_ns < b.window.count()) return;
    vm.budget_notice_ns = now;
    Decision d;
    d.id = next_id();
    d.at = clock.now();
    d.rule = inc.rule->name;
    d.rule_version = inc.rule->version;
    d.vm = vm.facts.id;
    d.host = std::string(vm.facts.host);
    d.step = Step::kNotify;
    d.policy = Policy::kBudget;
    d.evidence = inc.evidence;
    d.trigger = inc.trigger;
    d.reason = "VM " + vm.facts.id + " used its action budget (" + std::to_string(b.count) +
               " per " + fmt(b.window) +
               "); automatic actions on it stop until the window passes: it needs a person";
    emit(d);
  }

  void dispatch(Incident& inc, Decision& d, Outcome outcome) {
    d.outcome = outcome;
    if (d.step == Step::kNotify) {
      d.reason = notify_text(inc);
      emit(d);
      return watch(inc);
    }
    VmEntry& vm = vms[inc.vm];
    int64_t now = now_ns();
    vm.in_flight = true;
    ++hosts[vm.host].in_flight;
    ++fleet_in_flight;
    vm.last_action_ns = now;
    vm.actions.push_back(now);
    if (vm.actions.size() > kMaxActionTimes) vm.actions.erase(vm.actions.begin());
    inc.state = State::kActing;
    inc.action_id = d.id;
    inc.healed_seen = false;
    by_action[d.id] = {inc.key, inc.serial};
    d.expires_at = clock.now() + opt.action_timeout;
    std::string id = d.id;
    TimerId t = clock.schedule_after(opt.action_timeout, [this, id] {
      in_flight[id].timeout = 0;
      result(id, ActionOutcome::kTimedOut, false, "no result within " + fmt(opt.action_timeout));
    });
    in_flight[d.id] = {inc.vm, t};
    emit(d);
  }

  void watch(Incident& inc) {
    inc.state = State::kWatching;
    std::string key = inc.key;
    uint64_t serial = inc.serial;
    inc.timer = clock.schedule_after(inc.rule->heal_within, [this, key, serial] {
      Incident* p = find(key, serial);
      if (!p) return;
      p->timer = 0;
      if (p->healed_seen) return close(*p, true);
      advance(*p);
    });
  }

  void advance(Incident& inc) {
    ++inc.step;
    inc.waiting_reported = false;
    if (inc.step >= inc.rule->ladder.size()) {
      spdlog::warn("rules: rule {} ran its whole ladder on VM {} without healing it",
                   inc.rule->name, vms[inc.vm].facts.id);
      return close(inc, false);
    }
    attempt_step(inc);
  }

  Incident* find(const std::string& key, uint64_t serial) {
    auto it = incidents.find(key);
    if (it == incidents.end() || it->second->serial != serial) return nullptr;
    return it->second.get();
  }

  void close(Incident& inc, bool healed) {
    if (inc.timer) clock.cancel(inc.timer);
    VmEntry& vm = vms[inc.vm];
    if (inc.state == State::kAwaitApproval) --vm.awaiting_approval;
    --vm.open;
    if (healed) vm.bad_since_ns = 0;
    auto& list = vm_incidents[inc.vm];
    list.erase(std::remove(list.begin(), list.end(), &inc), list.end());
    if (list.empty()) vm_incidents.erase(inc.vm);
    std::string key = inc.key;
    incidents.erase(key);  // destroys inc
  }

  // ------------------------------------------------------------ results

  void release_slot(const std::string& id) {
    auto it = in_flight.find(id);
    if (it == in_flight.end()) return;
    if (it->second.timeout) clock.cancel(it->second.timeout);
    VmEntry& vm = vms[it->second.vm];
    vm.in_flight = false;
    --hosts[vm.host].in_flight;
    --fleet_in_flight;
    in_flight.erase(it);
  }

  void result(const std::string& id, ActionOutcome outcome, bool healed,
              const std::string& reason) {
    if (!in_flight.count(id)) {
      spdlog::debug("rules: result for unknown or finished action {} ignored", id);
      return;
    }
    release_slot(id);
    auto ref = by_action.find(id);
    Incident* inc = nullptr;
    if (ref != by_action.end()) {
      inc = find(ref->second.first, ref->second.second);
      by_action.erase(ref);
    }
    if (inc && inc->state == State::kActing && inc->action_id == id) {
      switch (outcome) {
        case ActionOutcome::kSucceeded:
          if (healed || inc->healed_seen)
            close(*inc, true);
          else
            watch(*inc);
          break;
        case ActionOutcome::kFailed:
        case ActionOutcome::kTimedOut:
          spdlog::warn("rules: action {} {}: {}", id,
                       outcome == ActionOutcome::kFailed ? "failed" : "timed out", reason);
          advance(*inc);
          break;
        case ActionOutcome::kRejected:
          spdlog::warn("rules: action {} rejected by the actuator: {}", id, reason);
          close(*inc, false);
          break;
        default:  // not a result (on_action_result's contract)
          break;
      }
    }
    pump_waiting();
  }

  void pump_waiting() {
    while (!waiting.empty() && fleet_in_flight < opt.max_in_flight_fleet) {
      auto [key, serial] = waiting.front();
      waiting.pop_front();
      Incident* inc = find(key, serial);
      if (!inc || inc->state != State::kWaitingSlot) continue;
      if (hosts[vms[inc->vm].host].in_flight >= opt.max_in_flight_per_host) {
        // Its host is still full; look at it again after others had a turn.
        bool others = std::any_of(waiting.begin(), waiting.end(), [&](const auto& w) {
          Incident* o = find(w.first, w.second);
          return o && hosts[vms[o->vm].host].in_flight < opt.max_in_flight_per_host;
        });
        waiting.push_back({key, serial});
        if (!others) break;
        continue;
      }
      attempt_step(*inc);
    }
  }

  // ------------------------------------------------------------ operators

  void on_approval_timeout(const std::string& key, uint64_t serial) {
    Incident* inc = find(key, serial);
    if (!inc || inc->state != State::kAwaitApproval) return;
    inc->timer = 0;
    Decision d = base(*inc);
    d.id = inc->action_id;
    d.outcome = Outcome::kExpired;
    d.policy = Policy::kApproval;
    d.reason = "no operator approved it in time";
    by_action.erase(inc->action_id);
    emit(d);
    close(*inc, false);
  }

  Incident* pending(const std::string& id) {
    auto ref = by_action.find(id);
    if (ref == by_action.end()) return nullptr;
    Incident* inc = find(ref->second.first, ref->second.second);
    return inc && inc->state == State::kAwaitApproval ? inc : nullptr;
  }

  Status approve(const std::string& id, const std::string& by) {
    Incident* inc = pending(id);
    if (!inc) return not_found("no action " + id + " is waiting for approval");
    if (inc->timer) clock.cancel(inc->timer);
    inc->timer = 0;
    by_action.erase(id);
    VmEntry& vm = vms[inc->vm];
    --vm.awaiting_approval;
    inc->state = State::kWatching;  // no longer pending
    HostEntry& host = hosts[vm.host];
    Decision d = base(*inc);
    d.id = id;
    d.by = by;
    // The world may have changed while it waited: facts still rule. A storm
    // freeze does not: a person looked at this VM and said yes.
    int64_t now = now_ns();
    if (now - host.last_seen_ns > opt.host_silent_after.count()) {
      suppress(*inc, d, Policy::kHostSilent,
               "approved by " + by + ", but host " + host.name + " is silent");
      return {};
    }
    if (vm.in_flight) {
      suppress(*inc, d, Policy::kVmInFlight,
               "approved by " + by + ", but another action on this VM is in flight");
      return {};
    }
    // Approval is for this step: if it must wait for a slot, it does not ask again.
    inc->approved_step = inc->step + 1;
    inc->approved_by = by;
    if (host.in_flight >= opt.max_in_flight_per_host ||
        fleet_in_flight >= opt.max_in_flight_fleet) {
      wait_for_slot(*inc, d,
                    host.in_flight >= opt.max_in_flight_per_host ? Policy::kHostConcurrency
                                                                 : Policy::kFleetConcurrency,
                    "approved by " + by + "; waiting for a free action slot");
      return {};
    }
    dispatch(*inc, d, Outcome::kApproved);
    return {};
  }

  Status deny(const std::string& id, const std::string& by, const std::string& reason) {
    Incident* inc = pending(id);
    if (!inc) return not_found("no action " + id + " is waiting for approval");
    by_action.erase(id);
    Decision d = base(*inc);
    d.id = id;
    d.by = by;
    d.outcome = Outcome::kDenied;
    d.policy = Policy::kApproval;
    d.reason = reason;
    emit(d);
    close(*inc, false);
    return {};
  }

  // ------------------------------------------------------------ state

  Clock& clock;
  std::shared_ptr<const RuleSet> rules;
  EngineOptions opt;
  DecisionSink& sink;
  EngineStats stats;

  VmIndex vm_index{vms};
  std::vector<VmEntry> vms;
  std::unordered_map<std::string, uint32_t> host_index;
  std::deque<HostEntry> hosts;  // a deque: VmFacts::host views its names
  bool fleet_frozen = false;
  std::deque<int64_t> fleet_bad;
  int64_t fleet_last_bad_ns = 0;
  TimerId fleet_unfreeze_timer = 0;
  TimerId sweep_timer = 0;
  uint32_t fleet_in_flight = 0;
  std::vector<uint32_t> storm_touched;

  std::vector<AbsenceSlot> absence;
  std::vector<uint32_t> slot_of_rule;
  TimerId absence_timer = 0;
  int64_t absence_timer_at = std::numeric_limits<int64_t>::max();

  std::unordered_map<std::string, std::vector<int64_t>> counts;
  std::unordered_map<std::string, std::unique_ptr<Incident>> incidents;
  std::unordered_map<uint32_t, std::vector<Incident*>> vm_incidents;
  std::unordered_map<std::string, std::pair<std::string, uint64_t>> by_action;
  std::unordered_map<std::string, InFlight> in_flight;
  std::deque<std::pair<std::string, uint64_t>> waiting;
  std::map<std::string, Silence> silences;
  uint64_t next_serial = 0;
  uint64_t id_counter = 0;
  uint64_t silence_counter = 0;
  std::vector<Trigger> batch;
  std::vector<uint32_t> candidate_buf;  // RuleSet::candidates scratch
  std::string key_buf;                  // incident key of the trigger at hand
};

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
  impl_->mark_seen(impl_->host_id(host), to_ns(at));
}

void Engine::on_action_result(const std::string& action_id, ActionOutcome outcome, bool healed,
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
  std::string id = "s-" + std::to_string(++impl_->silence_counter);
  impl_->silences.emplace(id, std::move(s));
  return id;
}

Status Engine::unsilence(const std::string& id) {
  if (impl_->silences.erase(id) == 0) return not_found("no silence " + id);
  return {};
}

Status Engine::unfreeze(const std::string& host, const std::string& by) {
  if (host.empty()) {
    if (!impl_->fleet_frozen) return failed_precondition("the fleet is not frozen");
    impl_->lift_freeze(kNoHost, "unfrozen by " + by);
    return {};
  }
  auto it = impl_->host_index.find(host);
  if (it == impl_->host_index.end() || !impl_->hosts[it->second].frozen) {
    return failed_precondition("host " + host + " is not frozen");
  }
  impl_->lift_freeze(it->second, "unfrozen by " + by);
  return {};
}

void Engine::reload(std::shared_ptr<const RuleSet> rules) {
  std::vector<Impl::AbsenceSlot> old;
  old.swap(impl_->absence);
  impl_->rules = rules ? std::move(rules) : std::make_shared<const RuleSet>();
  impl_->build_absence(std::move(old));
}

EngineStats Engine::stats() const {
  EngineStats s = impl_->stats;
  s.vms = impl_->vms.size();
  s.hosts = impl_->hosts.size();
  s.open_incidents = impl_->incidents.size();
  s.in_flight = impl_->in_flight.size();
  for (const auto& a : impl_->absence) s.absence_keys += a.tracker.armed_count();
  return s;
}

bool Engine::frozen(const std::string& host) const {
  if (host.empty()) return impl_->fleet_frozen;
  auto it = impl_->host_index.find(host);
  return it != impl_->host_index.end() && impl_->hosts[it->second].frozen;
}

std::vector<std::pair<std::string, Silence>> Engine::silences() const {
  return {impl_->silences.begin(), impl_->silences.end()};
}

std::vector<std::string> Engine::hosts() const {
  std::vector<std::string> out;
  for (const auto& h : impl_->hosts) out.push_back(h.name);
  return out;
}

}  // namespace medic::rules
