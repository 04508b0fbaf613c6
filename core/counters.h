// Counters: one registry per process of named, labelled counts that only go
// up — rejections by cause and socket, dropped batches, refused actions —
// for `medic status --json`, and for a Prometheus endpoint that will export
// each as medic_<name>{<labels>}.
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
// - Registering takes a lock; samples() takes it too and returns every entry
//   sorted by name, then labels.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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

  // Every entry, sorted by name then labels.
  std::vector<CounterSample> samples() const;
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
};

}  // namespace medic
