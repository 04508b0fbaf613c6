#include "core/counters.h"

#include <algorithm>

#include "core/json.h"

namespace medic {

Histogram::Histogram(std::vector<double> bounds_seconds)
    : bounds_(std::move(bounds_seconds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (double b : bounds_) bounds_ns_.push_back(static_cast<int64_t>(b * 1e9));
}

void Histogram::observe(std::chrono::nanoseconds d) {
  const int64_t ns = std::max<int64_t>(0, d.count());
  size_t i = 0;
  while (i < bounds_ns_.size() && ns > bounds_ns_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running + buckets_[bounds_.size()].load(std::memory_order_relaxed);
  s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

Histogram& CounterRegistry::histogram(const std::string& name, const CounterLabels& labels,
                                      const std::string& help, const std::vector<double>& bounds) {
  std::lock_guard lock(mu_);
  auto& h = histograms_[Key{name, labels}];
  if (!h) h = std::make_unique<Histogram>(bounds);
  if (!help.empty()) help_.try_emplace(name, help);
  return *h;
}

std::vector<CounterRegistry::HistogramSample> CounterRegistry::histogram_samples() const {
  std::lock_guard lock(mu_);
  std::vector<HistogramSample> out;
  for (const auto& [key, h] : histograms_) {
    auto help = help_.find(key.first);
    out.push_back({key.first, key.second, h->snapshot(), help == help_.end() ? "" : help->second});
  }
  return out;
}

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
