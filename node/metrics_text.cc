#include "node/metrics_text.h"

#include <prometheus/text_serializer.h>

namespace medic::node {

void MetricsText::counter(const std::string& name, const std::string& help,
                          const MetricLabels& labels, double value) {
  add(name, help, prometheus::MetricType::Counter, labels, value);
}

void MetricsText::gauge(const std::string& name, const std::string& help,
                        const MetricLabels& labels, double value) {
  add(name, help, prometheus::MetricType::Gauge, labels, value);
}

void MetricsText::add(const std::string& name, const std::string& help,
                      prometheus::MetricType type, const MetricLabels& labels, double value) {
  prometheus::MetricFamily* family = nullptr;
  for (auto& f : families_) {
    if (f.name == name) family = &f;
  }
  if (!family) {
    families_.push_back({name, help, type, {}});
    family = &families_.back();
  }
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family->metric.push_back(std::move(m));
}

std::string MetricsText::text() const { return prometheus::TextSerializer().Serialize(families_); }

}  // namespace medic::node
