#include "core/counters.h"

#include "core/json.h"

namespace medic {

Counter& CounterRegistry::counter(const std::string& name, const CounterLabels& labels,
                                  const std::string& help) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = index_.try_emplace(Key{name, labels}, nullptr);
  if (fresh) it->second = &entries_.emplace_back();
  if (!help.empty()) help_.try_emplace(name, help);
  return it->second->owned;
}

void CounterRegistry::observe(const std::string& name, const CounterLabels& labels,
                              std::function<uint64_t()> read, const std::string& help) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = index_.try_emplace(Key{name, labels}, nullptr);
  if (fresh) it->second = &entries_.emplace_back();
  it->second->read = std::move(read);
  if (!help.empty()) help_.try_emplace(name, help);
}

std::vector<CounterSample> CounterRegistry::samples() const {
  std::lock_guard lock(mu_);
  std::vector<CounterSample> out;
  out.reserve(index_.size());
  for (const auto& [key, e] : index_) {
    auto h = help_.find(key.first);
    out.push_back({key.first, key.second, read(*e), h == help_.end() ? "" : h->second});
  }
  return out;
}

uint64_t CounterRegistry::value(const std::string& name, const CounterLabels& labels) const {
  std::lock_guard lock(mu_);
  auto it = index_.find(Key{name, labels});
  return it == index_.end() ? 0 : read(*it->second);
}

Json CounterRegistry::to_json() const {
  Json out = Json::object();
  for (const CounterSample& s : samples()) {
    Json labels = Json::object();
    for (const auto& [k, v] : s.labels) labels[k] = v;
    Json& series = out[s.name];
    if (series.is_null()) series = Json::array();
    series.push_back(Json{{"labels", std::move(labels)}, {"value", s.value}});
  }
  return out;
}

}  // namespace medic
