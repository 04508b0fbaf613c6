#include "rules/incident_book.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace medic::rules {

std::string_view incident_state_name(IncidentState s) {
  switch (s) {
    case IncidentState::kOpen:
      return "open";
    case IncidentState::kActing:
      return "acting";
    case IncidentState::kWatching:
      return "watching";
    case IncidentState::kHeld:
      return "held";
  }
  return "?";
}

std::string_view incident_end_name(IncidentEnd e) {
  switch (e) {
    case IncidentEnd::kHealed:
      return "healed";
    case IncidentEnd::kEscalated:
      return "escalated";
    case IncidentEnd::kClosed:
      return "closed";
  }
  return "?";
}

bool IncidentBook::allowed(IncidentState from, IncidentState to) {
  using S = IncidentState;
  switch (from) {
    case S::kOpen:
      return true;  // acts, watches (notify, dry run), is held, or waits again
    case S::kActing:
    case S::kWatching:
      return to == S::kOpen || to == S::kWatching;  // next step, or watch after success
    case S::kHeld:
      return to == S::kOpen;  // a storm-guard settle ended with no storm: try the step
  }
  return false;
}

Incident& IncidentBook::open(std::string key, RulePtr rule, uint32_t vm, IncidentId id) {
  if (!id) id = IncidentId{++next_id_};
  auto inc = std::make_unique<Incident>();
  inc->id = id;
  inc->key = key;
  inc->rule = std::move(rule);
  inc->vm = vm;
  Incident* p = inc.get();
  by_key_.emplace(std::move(key), std::move(inc));
  by_id_[id.value] = p;
  by_vm_[vm].push_back(p);
  return *p;
}

bool IncidentBook::move_to(Incident& inc, IncidentState to) {
  if (!allowed(inc.state, to)) {
    spdlog::error("rules: incident {} of rule {}: no transition from {} to {}", inc.id.value,
                  inc.rule->name, incident_state_name(inc.state), incident_state_name(to));
    return false;
  }
  inc.state = to;
  inc.waiting_on = Policy::kNone;
  return true;
}

void IncidentBook::close(Incident& inc, IncidentEnd end) {
  ++ended_[static_cast<size_t>(end)];
  auto& list = by_vm_[inc.vm];
  list.erase(std::remove(list.begin(), list.end(), &inc), list.end());
  if (list.empty()) by_vm_.erase(inc.vm);
  by_id_.erase(inc.id.value);
  std::string key = inc.key;
  by_key_.erase(key);  // destroys inc
}

Incident* IncidentBook::find(IncidentId id) {
  auto it = by_id_.find(id.value);
  return it == by_id_.end() ? nullptr : it->second;
}

Incident* IncidentBook::find_key(const std::string& key) {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : it->second.get();
}

std::vector<Incident*> IncidentBook::of_vm(uint32_t v) const {
  auto it = by_vm_.find(v);
  if (it == by_vm_.end()) return {};
  return it->second;
}

Incident* IncidentBook::by_action(const std::string& action_id) {
  auto it = by_action_.find(action_id);
  return it == by_action_.end() ? nullptr : find(it->second);
}

std::vector<const Incident*> IncidentBook::all() const {
  std::vector<const Incident*> out;
  out.reserve(by_id_.size());
  for (const auto& [id, p] : by_id_) out.push_back(p);
  std::sort(out.begin(), out.end(),
            [](const Incident* a, const Incident* b) { return a->id.value < b->id.value; });
  return out;
}

}  // namespace medic::rules
