// Prometheus text exposition of a daemon's figures, through prometheus-cpp's
// TextSerializer (Debian prometheus-cpp-dev): the families are built when
// /metrics is read, from the counts the daemon's parts already keep, so the
// hot path pays nothing for metrics (its counts are relaxed atomic adds or
// plain fields of the loop's own thread).
//
// Contract: names carry the `medic_` prefix; counters end in `_total`,
// durations are `_seconds` (histograms); label names are snake_case. A family is added
// once with every sample of it; MetricsText::text() serializes them in the
// order they were added.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

#include "core/counters.h"

namespace medic::node {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsText {
 public:
  // A sample of counter family `name` (made on first use with `help`).
  void counter(const std::string& name, const std::string& help, const MetricLabels& labels,
               double value);
  void gauge(const std::string& name, const std::string& help, const MetricLabels& labels,
             double value);
  // A histogram sample in seconds (its +Inf bucket is the count).
  void histogram(const std::string& name, const std::string& help, const MetricLabels& labels,
                 const HistogramSnapshot& h);
  // Every counter and histogram of `counters`, as medic_<name>{labels}.
  void registry(const CounterRegistry& counters);
  std::string text() const;

 private:
  prometheus::MetricFamily& family(const std::string& name, const std::string& help,
                                   prometheus::MetricType type);
  void add(const std::string& name, const std::string& help, prometheus::MetricType type,
           const MetricLabels& labels, double value);
  std::vector<prometheus::MetricFamily> families_;
};

}  // namespace medic::node
