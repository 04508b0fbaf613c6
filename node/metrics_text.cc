#include "node/metrics_text.h"

#include <prometheus/text_serializer.h>

#include <limits>

namespace medic::node {

void MetricsText::counter(const std::string& name, const std::string& help,
                          const MetricLabels& labels, double value) {
  add(name, help, prometheus::MetricType::Counter, labels, value);
}

void MetricsText::gauge(const std::string& name, const std::string& help,
                        const MetricLabels& labels, double value) {
  add(name, help, prometheus::MetricType::Gauge, labels, value);
}

prometheus::MetricFamily& MetricsText::family(const std::string& name, const std::string& help,
                                              prometheus::MetricType type) {
  for (auto& f : families_) {
    if (f.name == name) return f;
  }
  families_.push_back({name, help, type, {}});
  return families_.back();
}

void MetricsText::add(const std::string& name, const std::string& help, prometheus::MetricType type,
                      const MetricLabels& labels, double value) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family(name, help, type).metric.push_back(std::move(m));
}

void MetricsText::histogram(const std::string& name, const std::string& help,
                            const MetricLabels& labels, const HistogramSnapshot& h) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum_seconds;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    m.histogram.bucket.push_back({h.cumulative[i], h.bounds[i]});
  }
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  family(name, help, prometheus::MetricType::Histogram).metric.push_back(std::move(m));
}

void MetricsText::registry(const CounterRegistry& counters) {
  for (const CounterSample& c : counters.samples()) {
    MetricLabels labels(c.labels.begin(), c.labels.end());
    counter("medic_" + c.name, c.help.empty() ? c.name : c.help, labels,
            static_cast<double>(c.value));
  }
  for (const auto& h : counters.histogram_samples()) {
    MetricLabels labels(h.labels.begin(), h.labels.end());
    histogram("medic_" + h.name, h.help.empty() ? h.name : h.help, labels, h.value);
  }
}

std::string MetricsText::text() const { return prometheus::TextSerializer().Serialize(families_); }

}  // namespace medic::node
