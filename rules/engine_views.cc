// Read-only views of the engine for operators: the open incidents with their
// ladder position and what each waits for, and the hosts with when each last
// spoke. Nothing here changes the engine.
#include "rules/engine_impl.h"

namespace medic::rules {
namespace {

std::string held_text(Policy p) {
  if (p == Policy::kStormGuard) return "the storm guard to lift (medic unfreeze HOST|fleet)";
  if (p == Policy::kHostSilent) return "its host to be heard from again";
  return std::string(policy_name(p)) + " to lift";
}

std::string open_text(const Incident& inc) {
  switch (inc.waiting_on) {
    case Policy::kApproval:
      return "an operator: medic approve " + inc.action_id + " (or deny)";
    case Policy::kHostConcurrency:
      return "a free action slot on its host (max_in_flight_per_host)";
    case Policy::kFleetConcurrency:
      return "a free action slot in the fleet (max_in_flight_fleet)";
    default:
      return "the safety policies for its next step";
  }
}

std::string waits_for(const Incident& inc) {
  switch (inc.state) {
    case IncidentState::kOpen: return open_text(inc);
    case IncidentState::kActing: return "the result of action " + inc.action_id;
    case IncidentState::kWatching:
      return std::string("the heal signal (") + std::string(event_type_name(inc.rule->healed_by)) +
             "); if it does not come, the next ladder step";
    case IncidentState::kHeld: return held_text(inc.held_by);
  }
  return "";
}

}  // namespace

std::vector<IncidentView> Engine::incidents() const {
  std::vector<IncidentView> out;
  const Fleet& fleet = impl_->fleet_;
  for (const Incident* inc : impl_->book_.all()) {
    IncidentView v;
    v.id = inc->id.value;
    v.rule = inc->rule->name;
    const VmEntry& vm = fleet.vm_at(inc->vm);
    v.vm = vm.facts.id;
    v.vm_name = std::string(vm.facts.label("name"));
    if (vm.host != kNoHost) v.host = fleet.host_at(vm.host).name;
    v.trigger = inc->trigger;
    v.step = inc->step + 1;
    v.ladder_size = static_cast<uint32_t>(inc->rule->ladder.size());
    if (inc->step < inc->rule->ladder.size()) v.step_name = step_name(inc->rule->ladder[inc->step]);
    v.state = incident_state_name(inc->state);
    v.waits_for = waits_for(*inc);
    v.action_id = inc->action_id;
    if (inc->state == IncidentState::kWatching || inc->awaiting_approval()) v.deadline = inc->deadline;
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<HostView> Engine::host_views(bool with_vms) const {
  std::vector<HostView> out;
  const Fleet& fleet = impl_->fleet_;
  const int64_t now = impl_->now_ns();
  for (uint32_t h = 0; h < fleet.host_count(); ++h) {
    const HostEntry& e = fleet.host_at(h);
    HostView v;
    v.name = e.name;
    v.last_seen = from_ns(e.last_seen_ns);
    v.silent = fleet.host_silent(h, now);
    v.frozen = impl_->chain_.storm().frozen(h);
    v.vms = e.vms.size();
    for (uint32_t i : with_vms ? e.vms : std::vector<uint32_t>{}) {
      const VmEntry& vm = fleet.vm_at(i);
      v.vm_list.push_back(
          {vm.facts.id, vm.facts.state, vm.facts.labels, from_ns(vm.last_seen_ns), vm.retired});
    }
    out.push_back(std::move(v));
  }
  return out;
}

bool Engine::knows_vm(const std::string& id) const {
  return impl_->fleet_.owner_of(id).has_value();
}

bool Engine::knows_label_key(const std::string& key) const {
  const Fleet& fleet = impl_->fleet_;
  for (uint32_t v = 0; v < fleet.vm_count(); ++v) {
    for (const auto& kv : fleet.vm_at(v).facts.labels) {
      if (kv.first == key) return true;
    }
  }
  return false;
}

std::string Engine::vm_host(const std::string& id) const {
  const Fleet& fleet = impl_->fleet_;
  // The owning host: the one a claim from another host does not displace.
  auto v = fleet.owner_of(id);
  if (!v || fleet.vm_at(*v).host == kNoHost) return "";
  return fleet.host_at(fleet.vm_at(*v).host).name;
}

std::string Engine::vm_name(const std::string& id) const { return vm_label(id, "name"); }

std::string Engine::vm_label(const std::string& id, const std::string& key) const {
  const Fleet& fleet = impl_->fleet_;
  auto v = fleet.owner_of(id);
  return v ? std::string(fleet.vm_at(*v).facts.label(key)) : std::string();
}

bool Engine::knows_rule(const std::string& name) const {
  return impl_->rules_->find(name) != nullptr;
}

}  // namespace medic::rules
