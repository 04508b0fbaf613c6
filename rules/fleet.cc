#include "rules/fleet.h"

#include <algorithm>

namespace medic::rules {

size_t Fleet::VmIndex::hash(uint32_t h, std::string_view id) const {
  size_t x = std::hash<std::string_view>{}(id);
  if (!by_id_only_) x ^= (static_cast<size_t>(h) + 1) * 0x9e3779b97f4a7c15ull;
  return x;
}

size_t Fleet::VmIndex::slot(uint32_t h, std::string_view id) const {
  size_t mask = slots_.size() - 1;
  for (size_t i = hash(h, id) & mask;; i = (i + 1) & mask) {
    uint32_t v = slots_[i];
    if (v == kNone) return i;
    if (vms_[v].facts.id == id && (by_id_only_ || vms_[v].host == h)) return i;
  }
}

void Fleet::VmIndex::insert(uint32_t v) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  slots_[slot(vms_[v].host, vms_[v].facts.id)] = v;
  ++size_;
}

void Fleet::VmIndex::grow() {
  std::vector<uint32_t> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, kNone);
  for (uint32_t v : old) {
    if (v != kNone) slots_[slot(vms_[v].host, vms_[v].facts.id)] = v;
  }
}

Fleet::Fleet(Duration host_silent_after, Duration forget_vm_after)
    : host_silent_after_(host_silent_after), forget_vm_after_(forget_vm_after) {}

uint32_t Fleet::host(const std::string& name, bool* created) {
  if (last_name_ && *last_name_ == name) return last_host_;
  auto it = host_index_.find(name);
  if (it == host_index_.end()) {
    it = host_index_.emplace(name, static_cast<uint32_t>(hosts_.size())).first;
    hosts_.push_back({});
    hosts_.back().name = name;
    if (created) *created = true;
  }
  last_host_ = it->second;
  last_name_ = &hosts_[last_host_].name;  // a deque's push_back keeps its elements in place
  return last_host_;
}

std::optional<uint32_t> Fleet::find_host(const std::string& name) const {
  auto it = host_index_.find(name);
  if (it == host_index_.end()) return std::nullopt;
  return it->second;
}

// A host reports its VMs in the same order every time, each VM often
// twice in a row (its state, then its heartbeat): the VM found last on the
// host and the one after it in its list are tried before the index.
uint32_t Fleet::vm(const std::string& id, uint32_t h, bool* created) {
  HostEntry& host = hosts_[h];
  for (uint32_t at = host.last_found; at < host.vms.size() && at <= host.last_found + 1; ++at) {
    if (vms_[host.vms[at]].facts.id == id) {
      host.last_found = at;
      return host.vms[at];
    }
  }
  uint32_t found = vm_index_.find(h, id);
  if (found != VmIndex::kNone) {
    host.last_found = vms_[found].at_host;
    return found;
  }
  uint32_t v = static_cast<uint32_t>(vms_.size());
  vms_.push_back({});
  VmEntry& vm = vms_.back();
  vm.facts.id = id;
  vm.facts.host = host.name;
  vm.host = h;
  vm.at_host = static_cast<uint32_t>(host.vms.size());
  host.last_found = vm.at_host;
  host.vms.push_back(v);
  vm_index_.insert(v);
  if (owner_index_.find(0, id) == VmIndex::kNone) {
    vm.owner = true;
    owner_index_.insert(v);
  }
  *created = true;
  return v;
}

std::optional<uint32_t> Fleet::find_vm(uint32_t h, std::string_view id) const {
  uint32_t v = vm_index_.find(h, id);
  if (v == VmIndex::kNone) return std::nullopt;
  return v;
}

std::optional<uint32_t> Fleet::owner_of(std::string_view id) const {
  uint32_t v = owner_index_.find(0, id);
  if (v == VmIndex::kNone) return std::nullopt;
  return v;
}

bool Fleet::let_go(const VmEntry& owner, int64_t now) const {
  return forgotten(owner, now) || owner.facts.state == medic::v1::VM_STATE_STOPPED;
}

void Fleet::make_owner(uint32_t v) {
  VmEntry& vm = vms_[v];
  if (vm.owner) return;
  vms_[owner_index_.find(0, vm.facts.id)].owner = false;
  vm.owner = true;
  vm.claim_noticed = false;
  owner_index_.replace(v);
}

Claim Fleet::claim(uint32_t v, int64_t now) {
  VmEntry& vm = vms_[v];
  if (vm.owner) return Claim::kOwner;
  if (let_go(vms_[owner_index_.find(0, vm.facts.id)], now)) {
    make_owner(v);
    return Claim::kTakenOver;
  }
  if (vm.claim_noticed) return Claim::kConflict;
  vm.claim_noticed = true;
  return Claim::kFirstConflict;
}

bool Fleet::mark_seen(uint32_t h, int64_t at) {
  HostEntry& host = hosts_[h];
  bool was_silent = host.last_seen_ns != 0 && at - host.last_seen_ns > host_silent_after_.count();
  if (at > host.last_seen_ns) host.last_seen_ns = at;
  if (was_silent) host.silence_noticed = false;
  return was_silent;
}

bool Fleet::host_silent(uint32_t h, int64_t now) const {
  return now - hosts_[h].last_seen_ns > host_silent_after_.count();
}

void Fleet::retire(uint32_t v) {
  VmEntry& vm = vms_[v];
  vm.facts.state = medic::v1::VM_STATE_STOPPED;  // its host let it go (let_go)
  vm.last_seen_ns = 0;                           // forgotten: no absence fires for it
  if (vm.retired) return;
  vm.retired = true;
  ++retired_;
  ++hosts_[vm.host].retired;
}

bool Fleet::forgotten(const VmEntry& vm, int64_t now) const {
  return vm.last_seen_ns == 0 || now - vm.last_seen_ns > forget_vm_after_.count();
}

void Fleet::update_facts(VmEntry& vm, EventType type, const medic::v1::Event& e, int64_t now) {
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

}  // namespace medic::rules
