// Counters: one registry per process of named, labelled counts that only go
// up — rejections by cause and socket, dropped batches, refused actions —
// and of latency histograms, for `medic status --json` (counters) and for
// /metrics, which exports each as medic_<name>{<labels>}.
//
// Contract:
// - Names are Prometheus-style: snake_case, no `medic_` prefix (the exporter
//   adds it), ending in `_total`; label names are snake_case. One (name,
//   labels) is one counter: asking for it again returns the same one.
// - Two kinds of entry, one view:
//   - counter(): a Counter the registry owns. Look it up once, keep the
//     reference (it lives as long as the registry); add() is one relaxed
//     atomic add, from any thread, with no lookup.
//   - observe(): a count a part already keeps (a field of its stats struct),
//     read through a function when the registry is read. The function runs
//     on the thread that calls samples(), so a part whose counts are plain
//     fields is observed only by a registry read on its own thread (the
//     engine's loop answers `medic status` on that thread).
// - histogram(): a Histogram of durations the registry owns, in fixed
//   buckets (kLatencyBuckets unless given); observe() is relaxed atomic adds
//   from any thread. Names end in `_seconds`.
// - Registering takes a lock; samples() takes it too and returns every entry
//   sorted by name, then labels.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/json_fwd.h"

namespace medic {

class Counter {
 public:
  void add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Bucket upper bounds in seconds, from half a millisecond to a minute.
inline const std::vector<double> kLatencyBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

struct HistogramSnapshot {
  std::vector<double> bounds;        // upper bounds in seconds, ascending
  std::vector<uint64_t> cumulative;  // observations <= bounds[i]
  uint64_t count = 0;                // all observations (the +Inf bucket)
  double sum_seconds = 0;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds_seconds);
  // A negative duration counts as 0.
  void observe(std::chrono::nanoseconds d);
  HistogramSnapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> bounds_ns_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative; last is +Inf
  std::atomic<int64_t> sum_ns_{0};
};

// Label name -> value, in the order given (the registry keys on it as given).
using CounterLabels = std::vector<std::pair<std::string, std::string>>;

struct CounterSample {
  std::string name;
  CounterLabels labels;
  uint64_t value = 0;
  std::string help;
};

class CounterRegistry {
 public:
  CounterRegistry() = default;
  CounterRegistry(const CounterRegistry&) = delete;
  CounterRegistry& operator=(const CounterRegistry&) = delete;

  // The counter (name, labels), made on first use. `help` is kept from the
  // first registration of `name`. A name already observed is not a counter:
  // REQUIRES each (name, labels) be one kind.
  Counter& counter(const std::string& name, const CounterLabels& labels = {},
                   const std::string& help = "");
  // Reads (name, labels) through `read` whenever the registry is read; a
  // second observe() of the same (name, labels) replaces the function.
  void observe(const std::string& name, const CounterLabels& labels, std::function<uint64_t()> read,
               const std::string& help = "");

  // The histogram (name, labels), made on first use with `bounds`.
  Histogram& histogram(const std::string& name, const CounterLabels& labels = {},
                       const std::string& help = "",
                       const std::vector<double>& bounds = kLatencyBuckets);

  // Every entry, sorted by name then labels.
  std::vector<CounterSample> samples() const;
  struct HistogramSample {
    std::string name;
    CounterLabels labels;
    HistogramSnapshot value;
    std::string help;
  };
  std::vector<HistogramSample> histogram_samples() const;
  // The value of (name, labels), 0 when there is no such entry.
  uint64_t value(const std::string& name, const CounterLabels& labels = {}) const;
  // {"<name>": [{"labels": {...}, "value": N}, ...], ...}, names sorted.
  Json to_json() const;

 private:
  struct Entry {
    Counter owned;
    std::function<uint64_t()> read;  // set for an observed entry
  };
  using Key = std::pair<std::string, CounterLabels>;
  uint64_t read(const Entry& e) const { return e.read ? e.read() : e.owned.value(); }

  mutable std::mutex mu_;
  std::map<Key, Entry*> index_;
  std::deque<Entry> entries_;  // stable addresses
  std::map<std::string, std::string> help_;
  std::map<Key, std::unique_ptr<Histogram>> histograms_;
};

}  // namespace medic
