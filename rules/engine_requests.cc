// Requests: a person asks for one verb on one VM (rules/engine.h, Request).
// The request opens an incident under a built-in one-step rule and meets the
// policy chain as a step its requester approved; from there it is an incident
// like any other (dispatched, watched, healed or not, snapshot and restored).
#include <spdlog/spdlog.h>

#include "core/duration.h"
#include "rules/engine_impl.h"

namespace medic::rules {

namespace {

constexpr std::string_view kRequestPrefix = "request:";

// One built-in rule per verb. A start or a clone is healed when the guest
// beats (a start is progress, so a slow boot is watched up to
// boot_timeout); a stop when the VM reports it stopped; a delete when the
// actuator sees the VM gone (no event says so).
RulePtr request_rule(Step s, const PolicyDefaults& d) {
  auto r = std::make_shared<Rule>();
  r->name = request_rule_name(s);
  r->version = "built-in";
  r->description = "a person's request";
  r->request = true;
  r->ladder = {s};
  r->healed_by =
      s == Step::kStop || s == Step::kDelete ? EventType::kVmStopped : EventType::kVmHeartbeat;
  r->heal_within = d.heal_within;
  r->boot_timeout = std::max(d.boot_timeout, d.heal_within);
  return r;
}

}  // namespace

std::vector<RulePtr> request_rules(const PolicyDefaults& d) {
  std::vector<RulePtr> out;
  for (Step s : {Step::kReboot, Step::kReset, Step::kRestart, Step::kStop, Step::kStart,
                 Step::kClone, Step::kDelete})
    out.push_back(request_rule(s, d));
  return out;
}

std::string request_rule_name(Step s) { return std::string(kRequestPrefix) + std::string(step_name(s)); }

bool is_request_rule(std::string_view name) { return name.starts_with(kRequestPrefix); }

const RulePtr* Engine::Impl::rule_named(const std::string& name) const {
  if (is_request_rule(name)) {
    for (const RulePtr& r : request_rules_) {
      if (r->name == name) return &r;
    }
    return nullptr;
  }
  for (const RulePtr& r : rules_->rules()) {
    if (r->name == name) return &r;
  }
  return nullptr;
}

Result<Decision> Engine::Impl::request(const Request& q) {
  touched_ = true;
  if (q.step == Step::kNotify) return invalid_argument("a request names a verb, not notify");
  std::optional<uint32_t> v;
  if (q.step == Step::kClone) {
    MEDIC_RETURN_IF_ERROR(clone_allowance(q));
    auto made = clone_vm(q);
    if (!made.ok()) return made.status();
    v = *made;
  } else {
    v = fleet_.owner_of(q.vm);
  }
  if (!v || fleet_.vm_at(*v).host == kNoHost)
    return not_found("no VM \"" + q.vm + "\" has reported to this engine");
  const RulePtr& rule = *rule_named(request_rule_name(q.step));
  std::string key;
  incident_key(*rule, fleet_.vm_at(*v).facts, nullptr, &key);
  if (Incident* open = live_incident(key, now_ns())) {
    return already_exists("a " + std::string(step_name(q.step)) + " of VM " + q.vm +
                          " is already in progress (incident " + std::to_string(open->id.value) +
                          ", " + std::string(incident_state_name(open->state)) + ")");
  }
  Incident& inc = book_.open(key, rule, *v);
  if (q.evidence) inc.evidence.push_back(q.evidence);
  inc.trigger = "request " + q.request_id + " by " + q.by + ": " + std::string(step_name(q.step)) +
                (q.step == Step::kClone
                     ? " of template " + q.template_name + " on " + q.host + " as " + q.vm_name
                     : "") +
                (q.reason.empty() ? "" : " (" + q.reason + ")");
  if (q.by_operator) {
    inc.approved_step = 1;
    inc.approved_by = q.by;
  }
  inc.needs_approval = !q.by_operator && q.needs_approval;
  ++fleet_.vm_at(*v).open;
  const IncidentId id = inc.id;
  Decision d = base(inc);
  run_step(inc, d);
  Incident* still = book_.find(id);
  // A clone that goes on (sent, waiting for a slot or for a person) counts
  // toward its requester's limit; one a policy refused or a dry run does not.
  if (q.step == Step::kClone && still && still->state != IncidentState::kHeld &&
      d.outcome != Outcome::kDryRun)
    count_clone(q);
  if (still && d.outcome == Outcome::kProposed && q.step == Step::kStop) end_others(*still, q.by);
  // A hold absorbs a rule's repeated triggers; a request does not repeat, so
  // a refusal ends it (and the same ask may be made again).
  if (still && still->state == IncidentState::kHeld) close(*still, IncidentEnd::kClosed);
  spdlog::info("rules: {} asked for {} of VM {}: {} ({})", q.by, step_name(q.step), q.vm,
               outcome_name(d.outcome), d.id);
  return d;
}

// The VM's other incidents were about healing it; a person stopped it, so
// none of their steps is wanted any more. Those waiting for a slot, watching
// or held close; none is acting or awaiting approval (the stop met
// vm-in-flight, which refuses both).
void Engine::Impl::end_others(const Incident& stop, const std::string& by) {
  for (Incident* other : book_.of_vm(stop.vm)) {
    if (other->id == stop.id || other->state == IncidentState::kActing) continue;
    verdict(*other, false, "ended: " + by + " stopped the VM (" + stop.action_id + ")", "", 0);
    close(*other, IncidentEnd::kClosed);
  }
}

// The new VM is on its host at once, named as asked, with the label the
// backend gives a clone (template), so rules and views see it as what it is.
// Never seen yet: its first report arms its absence rules, as a new VM's
// does.
Result<uint32_t> Engine::Impl::clone_vm(const Request& q) {
  auto h = fleet_.find_host(q.host);
  if (!h) return not_found("no host \"" + q.host + "\" has reported to this engine");
  if (q.vm.empty() || q.template_name.empty() || q.vm_name.empty())
    return invalid_argument("a clone names a new VM id, a template and a name");
  if (fleet_.owner_of(q.vm)) return already_exists("a VM " + q.vm + " exists already");
  bool created = false;
  const uint32_t v = fleet_.vm(q.vm, *h, &created);
  VmEntry& vm = fleet_.vm_at(v);
  vm.facts.labels = {{"name", q.vm_name}, {"template", q.template_name}};
  touch_vm(v);
  return v;
}

Status Engine::Impl::clone_allowance(const Request& q) {
  if (q.clones.count == 0) return {};
  auto it = clones_by_.find(q.by);
  if (it == clones_by_.end()) return {};
  std::vector<int64_t>& made = it->second;
  const int64_t since = now_ns() - q.clones.window.count();
  std::erase_if(made, [&](int64_t t) { return t <= since; });
  if (made.empty()) {
    clones_by_.erase(it);
    engine_dirty_ = true;
    return {};
  }
  if (made.size() < q.clones.count) return {};
  // Allowed again when all but count - 1 of them have left the window (a
  // limit lowered since may hold more than count).
  const Duration wait{made[made.size() - q.clones.count] - since};
  return failed_precondition(q.by + " has made " + std::to_string(made.size()) +
                             (made.size() == 1 ? " clone" : " clones") + " in the last " +
                             format_duration(q.clones.window) +
                             " (its limit: clones: " + std::to_string(q.clones.count) + " per " +
                             format_duration(q.clones.window) + "); the next is allowed in " +
                             format_duration(wait));
}

// Only the last `count` times can decide the next clone: older ones go, so a
// requester's list stays at most as long as its limit.
void Engine::Impl::count_clone(const Request& q) {
  if (q.clones.count == 0) return;
  std::vector<int64_t>& made = clones_by_[q.by];
  made.push_back(now_ns());
  if (made.size() > q.clones.count)
    made.erase(made.begin(), made.end() - static_cast<std::ptrdiff_t>(q.clones.count));
  engine_dirty_ = true;
}

void Engine::Impl::retire(uint32_t v, const std::string& why) {
  for (Incident* other : book_.of_vm(v)) {
    if (other->state == IncidentState::kActing) continue;
    verdict(*other, false, "ended: " + why, "", 0);
    close(*other, IncidentEnd::kClosed);
  }
  fleet_.retire(v);
  touch_vm(v);
}

Result<Decision> Engine::request(const Request& r) { return impl_->request(r); }

}  // namespace medic::rules
