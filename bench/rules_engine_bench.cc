// Rules engine throughput and absence tracking at fleet scale.
//   build/bench/rules_engine_bench
// Figures and the machine they came from: docs/PERFORMANCE.md, "Rules engine".
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/clock.h"
#include "rules/absence.h"
#include "rules/engine.h"
#include "rules/loader.h"

namespace medic::rules {
namespace {

class CountingSink : public DecisionSink {
 public:
  void on_decision(const Decision&) override { ++n; }
  uint64_t n = 0;
};

// Bytes the allocator handed out: small blocks plus mmapped large ones.
size_t heap_bytes() {
  auto m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

std::string vm_name(size_t i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08zx-4f1c-4b7e-9a51-%012zx", i * 2654435761u % 0xffffffffu, i);
  return buf;
}

// 100 rules of the kinds a real rule set has: most wake on rare lifecycle and
// probe events, some on every state report, ten count rules and ten absence
// rules. Their where clauses read labels, numbers and durations.
std::string hundred_rules() {
  const char* lifecycle[] = {"vm.panicked", "vm.watchdog", "vm.crashed",
                             "vm.stopped",  "vm.shutdown", "vm.reset"};
  std::string y = "rules:\n";
  for (int i = 0; i < 50; ++i) {
    y += "  - name: life-" + std::to_string(i) + "\n    on: " + lifecycle[i % 6] +
         "\n    where: vm.labels.team == \"t" + std::to_string(i % 10) +
         "\" and vm.labels.tier in [\"web\", \"api\"]" + "\n    do: [reset, notify]\n";
  }
  for (int i = 0; i < 15; ++i) {
    y += "  - name: probe-" + std::to_string(i) +
         "\n    on: probe.failed\n    where: probe.name == \"p" + std::to_string(i) +
         "\" and probe.status >= 500\n    key: [vm.id, probe.name]\n    do: [reboot, notify]\n";
  }
  for (int i = 0; i < 15; ++i) {
    y += "  - name: state-" + std::to_string(i) +
         "\n    on: vm.state\n    where: vm.cpu_percent > " + std::to_string(990 + i / 10) +
         " and vm.uptime > 1h and vm.labels.zone matches \"^z[0-9]$\"\n    do: reboot\n    mode: "
         "dry-run\n";
  }
  for (int i = 0; i < 10; ++i) {
    y += "  - name: count-" + std::to_string(i) +
         "\n    on: probe.failed\n    count: 5\n    within: 1m\n    where: probe.name == \"q" +
         std::to_string(i) + "\"\n    do: notify\n";
  }
  for (int i = 0; i < 10; ++i) {
    y += "  - name: absent-" + std::to_string(i) +
         "\n    absent: " + (i < 5 ? "vm.heartbeat" : "vm.state") +
         "\n    for: " + std::to_string(60 + i) + "s\n    where: vm.labels.team == \"t" +
         std::to_string(i) + "\"\n    do: [reboot, reset, restart, notify]\n";
  }
  return y;
}

std::vector<medic::v1::Event> make_events(size_t vms, size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<medic::v1::Event> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    size_t v = i % vms;
    medic::v1::Event e;
    e.set_host("host-" + std::to_string(v % 1000));
    e.set_vm(vm_name(v));
    uint64_t r = rng() % 100;
    if (r < 50) {
      e.mutable_heartbeat()->set_counter(i);
    } else if (r < 90) {
      auto* s = e.mutable_state();
      s->set_state(medic::v1::VM_STATE_RUNNING);
      s->set_cpu_percent(static_cast<double>(rng() % 100));
      s->set_uptime_ns(3'600'000'000'000 * 2);
      const char* keys[] = {"team", "tier", "zone"};
      std::string vals[] = {"t" + std::to_string(v % 10), v % 3 ? "web" : "batch",
                            "z" + std::to_string(v % 7)};
      for (int k = 0; k < 3; ++k) {
        auto* l = s->add_labels();
        l->set_key(keys[k]);
        l->set_value(vals[k]);
      }
    } else if (r < 99) {
      auto* p = e.mutable_probe();
      p->set_probe("p" + std::to_string(rng() % 20));
      p->set_ok(rng() % 4 != 0);
      p->set_status(p->ok() ? 200 : 404);
    } else {
      e.mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_RESET);
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Decoded events per second through Engine::ingest: 100 rules, 100k VMs.
void BM_EngineIngest(benchmark::State& state) {
  const size_t kVms = 100'000;
  auto loaded = load_rule_text(hundred_rules(), "bench.yaml");
  if (!loaded.ok()) {
    state.SkipWithError(loaded.text().c_str());
    return;
  }
  VirtualClock clock;
  CountingSink sink;
  Engine engine(clock, loaded.rules, EngineOptions{}, sink);
  auto warm = make_events(kVms, kVms, 1);
  for (auto& e : warm) {
    e.clear_body();
    e.mutable_heartbeat();
    engine.ingest(e, 1);
  }
  auto events = make_events(kVms, 1'000'000, 2);
  size_t i = 0;
  for (auto _ : state) {
    engine.ingest(events[i], i);
    if (++i == events.size()) i = 0;
    // 10us of virtual time per event: each VM is heard from every ~2s, well
    // inside every absence window, as in a healthy fleet.
    clock.advance(std::chrono::microseconds(10));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["rules"] = static_cast<double>(loaded.rules->size());
  state.counters["vms"] = static_cast<double>(engine.stats().vms);
  state.counters["decisions"] = static_cast<double>(sink.n);
}
BENCHMARK(BM_EngineIngest)->Unit(benchmark::kNanosecond)->MinTime(3.0);

// Memory of absence tracking for 1M VMs: the tracker alone, and the whole
// engine (VM table, host table, tracker) per VM, with one absence rule.
void BM_AbsenceMemory(benchmark::State& state) {
  const size_t kVms = 1'000'000;
  for (auto _ : state) {
    size_t before = heap_bytes();
    AbsenceTracker t;
    for (AbsenceTracker::Key k = 0; k < kVms; ++k) t.arm(k, 1'000 + k);
    for (AbsenceTracker::Key k = 0; k < kVms; ++k) t.arm(k, 5'000'000 + k);  // refreshes
    size_t tracker = heap_bytes() - before;
    state.counters["tracker_bytes_per_key"] = static_cast<double>(tracker) / kVms;

    auto loaded = load_rule_text(
        "rules:\n  - {name: hang, absent: vm.heartbeat, for: 30s, do: [reboot, reset, notify]}\n",
        "m.yaml");
    VirtualClock clock;
    CountingSink sink;
    size_t base = heap_bytes();
    {
      Engine engine(clock, loaded.rules, EngineOptions{}, sink);
      medic::v1::Event e;
      e.mutable_heartbeat();
      for (size_t v = 0; v < kVms; ++v) {
        e.set_host("host-" + std::to_string(v % 10'000));
        e.set_vm(vm_name(v));
        engine.ingest(e, v);
      }
      size_t used = heap_bytes() - base;
      state.counters["engine_bytes_per_vm"] = static_cast<double>(used) / kVms;
      state.counters["absence_keys"] = static_cast<double>(engine.stats().absence_keys);
    }
  }
}
BENCHMARK(BM_AbsenceMemory)->Unit(benchmark::kMillisecond)->Iterations(1);

// How late deadlines fire on a real clock: 1M keys kept alive by heartbeats
// (each key refreshed once a second, 1M refreshes/s) while 1% fall silent.
// Each loop turn refreshes the keys whose heartbeat is due, pops what is due
// and measures, for each fired key, how long after its deadline it came out.
// Argument: the absence window in seconds. Runs for window + 2s.
void BM_AbsenceDeadlineLateness(benchmark::State& state) {
  const size_t kKeys = 1'000'000;
  const int64_t kFor = state.range(0) * 1'000'000'000;
  const int64_t kSecond = 1'000'000'000;
  for (auto _ : state) {
    AbsenceTracker t;
    t.reserve(kKeys);
    std::vector<int64_t> armed_at(kKeys);
    int64_t start = to_ns(SystemClock::wall_now());
    for (AbsenceTracker::Key k = 0; k < kKeys; ++k) {
      // Spread initial deadlines over one second, as heartbeats are.
      armed_at[k] =
          start + kFor + static_cast<int64_t>(k) * (kSecond / static_cast<int64_t>(kKeys));
      t.arm(k, armed_at[k]);
    }
    std::vector<int64_t> late;
    std::vector<AbsenceTracker::Key> fired;
    uint64_t refreshes = 0;
    int64_t max_turn = 0;
    int64_t end = start + kFor + 2 * kSecond;
    for (int64_t now = start; now < end; now = to_ns(SystemClock::wall_now())) {
      uint64_t target = static_cast<uint64_t>((now - start) / 1000);  // 1 per microsecond
      for (; refreshes < target; ++refreshes) {
        auto k = static_cast<AbsenceTracker::Key>(refreshes % kKeys);
        if (k % 100 == 0) continue;  // every 100th key is dead
        armed_at[k] = now + kFor;
        t.arm(k, armed_at[k]);
      }
      fired.clear();
      t.pop_due(now, &fired);
      int64_t after = to_ns(SystemClock::wall_now());
      for (auto k : fired) late.push_back(after - armed_at[k]);
      max_turn = std::max(max_turn, after - now);
    }
    std::sort(late.begin(), late.end());
    auto pct = [&](double p) {
      return late.empty()
                 ? 0.0
                 : static_cast<double>(late[static_cast<size_t>(p * (late.size() - 1))]) / 1e6;
    };
    state.counters["fired"] = static_cast<double>(late.size());
    state.counters["late_p50_ms"] = pct(0.5);
    state.counters["late_p99_ms"] = pct(0.99);
    state.counters["late_max_ms"] = pct(1.0);
    state.counters["refreshes_per_s"] = static_cast<double>(refreshes) / ((end - start) / 1e9);
    // The longest loop turn: lateness cannot be below it, and on a shared
    // machine it includes time the process was not scheduled.
    state.counters["max_turn_ms"] = static_cast<double>(max_turn) / 1e6;
  }
}
BENCHMARK(BM_AbsenceDeadlineLateness)
    ->Arg(5)
    ->Arg(30)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace
}  // namespace medic::rules

BENCHMARK_MAIN();
