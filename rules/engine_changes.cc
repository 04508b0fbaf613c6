// Engine::take_changes(): what changed since the state was last handed to a
// store, so the owner writes the rows that changed (a few per decision), not a
// snapshot of 100k VMs. And the grace an engine gives its VMs after a restart.
#include <algorithm>

#include "rules/engine_impl.h"

namespace medic::rules {

void Engine::Impl::touch_vm(uint32_t v) {
  if (v >= vm_dirty_.size()) vm_dirty_.resize(std::max<size_t>(v + 1, vm_dirty_.size() * 2), 0);
  if (vm_dirty_[v]) return;
  vm_dirty_[v] = 1;
  dirty_vms_.push_back(v);
}

void Engine::Impl::touch_host(uint32_t h) {
  if (h == kNoHost) return;
  if (h >= host_dirty_.size()) host_dirty_.resize(h + 1, 0);
  if (host_dirty_[h]) return;
  host_dirty_[h] = 1;
  dirty_hosts_.push_back(h);
}

// A decision spends budget, starts cooldowns, opens or moves an incident, or
// freezes a host or the fleet: its VM, its host and the engine-wide values.
void Engine::Impl::touch_decision(const Decision& d) {
  engine_dirty_ = true;
  if (d.host.empty()) return;
  auto h = fleet_.find_host(d.host);
  if (!h) return;
  touch_host(*h);
  if (d.vm.empty()) return;
  if (auto v = fleet_.find_vm(*h, d.vm)) touch_vm(*v);
}

StateChanges Engine::Impl::take_changes(bool refresh_seen) {
  StateChanges c;
  if (refresh_seen) {
    const int64_t lag = opt_.forget_vm_after.count() / 2;
    stored_seen_.resize(fleet_.vm_count(), 0);
    for (uint32_t v = 0; v < fleet_.vm_count(); ++v) {
      if (fleet_.vm_at(v).last_seen_ns - stored_seen_[v] > lag) touch_vm(v);
    }
  }
  if (!dirty_vms_.empty()) changed_vms_into(&c);
  for (uint32_t h : dirty_hosts_) {
    c.state.hosts.push_back(host_record(h, fleet_, chain_));
    host_dirty_[h] = 0;
  }
  dirty_hosts_.clear();
  if (silences_dirty_) changed_silences_into(&c);
  if (engine_dirty_) {
    engine_values_into(&c.state);
    c.engine_changed = true;
    engine_dirty_ = false;
  }
  return c;
}

void Engine::Impl::changed_vms_into(StateChanges* c) {
  std::sort(dirty_vms_.begin(), dirty_vms_.end());
  stored_seen_.resize(fleet_.vm_count(), 0);
  for (uint32_t v : dirty_vms_) {
    c->state.vms.push_back(full_vm_record(v, fleet_, chain_));
    stored_seen_[v] = fleet_.vm_at(v).last_seen_ns;
  }
  for (const Incident* inc : book_.all()) {
    if (vm_dirty_[inc->vm]) c->state.incidents.push_back(incident_record(*inc, fleet_));
  }
  for (const auto& [id, f] : in_flight_) {
    if (!vm_dirty_[f.vm]) continue;
    const Incident* inc = book_.by_action(id);
    c->state.in_flight.push_back({id, fleet_.vm_at(f.vm).facts.id, fleet_.host_at(f.host).name,
                                  to_ns(f.expires), inc ? inc->rule->heal_within : Duration{0}});
  }
  for (uint32_t v : dirty_vms_) vm_dirty_[v] = 0;
  dirty_vms_.clear();
}

void Engine::Impl::changed_silences_into(StateChanges* c) {
  std::vector<std::string> now_held;
  for (const auto& [id, sil] : chain_.silences().silences()) {
    c->state.silences.emplace_back(id, sil);
    now_held.push_back(id);
  }
  std::sort(now_held.begin(), now_held.end());
  std::set_difference(stored_silences_.begin(), stored_silences_.end(), now_held.begin(),
                      now_held.end(), std::back_inserter(c->silences_removed));
  stored_silences_ = std::move(now_held);
  silences_dirty_ = false;
}

// What was restored is what the store holds: nothing has changed yet.
void Engine::Impl::reset_changes(const EngineState& s) {
  for (uint32_t v : dirty_vms_) vm_dirty_[v] = 0;
  dirty_vms_.clear();
  for (uint32_t h : dirty_hosts_) host_dirty_[h] = 0;
  dirty_hosts_.clear();
  stored_seen_.assign(fleet_.vm_count(), 0);
  for (const VmRecord& r : s.vms) {
    auto h = fleet_.find_host(r.host);
    if (!h) continue;
    if (auto v = fleet_.find_vm(*h, r.id)) stored_seen_[*v] = r.last_seen_ns;
  }
  stored_silences_.clear();
  for (const auto& [id, sil] : s.silences) stored_silences_.push_back(id);
  std::sort(stored_silences_.begin(), stored_silences_.end());
  silences_dirty_ = false;
  engine_dirty_ = false;
}

void Engine::Impl::grant_absence_grace() {
  const int64_t now = now_ns();
  const int64_t forget = opt_.forget_vm_after.count();
  std::vector<uint32_t> alive;
  for (uint32_t v = 0; v < fleet_.vm_count(); ++v) {
    VmEntry& vm = fleet_.vm_at(v);
    if (vm.last_seen_ns == 0 || now - vm.last_seen_ns > forget) continue;
    vm.last_seen_ns = now;
    alive.push_back(v);
  }
  // Hosts likewise: a host is not "silent" for the time the engine was down.
  for (uint32_t h = 0; h < fleet_.host_count(); ++h) {
    HostEntry& host = fleet_.host_at(h);
    if (host.last_seen_ns != 0 && now - host.last_seen_ns <= forget) host.last_seen_ns = now;
  }
  absence_.rearm(alive, now);
  absence_.ensure_timer();
}

}  // namespace medic::rules
