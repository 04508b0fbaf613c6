// How the rules engine's cost grows with the number of rules: 1, 10, 100,
// 1,000 and 10,000 rules, rules::Engine directly (no sockets) on a
// VirtualClock, 10k VMs on 100 hosts. Half the rules are label rules
// (`on: vm.state where: vm.labels.tier == "tN"`), which the rule set's label
// index skips for a VM of another tier; the other half read a number of
// every state report (`on: vm.state where: vm.cpu_percent > 900 + N`), so
// each of them is evaluated for every state report. One more rule turns a
// panic into a reset.
//   ingest    state reports (3 labels) through Engine::ingest per thread CPU
//             second, bounded: at most 200k reports or about 2 s of CPU;
//   decision  thread CPU time of the Engine::ingest call of a panic that the
//             panic rule turns into a decision, p50 / p99 over 1000 panics
//             of distinct VMs (one a virtual second, storm settle off), after
//             100 untimed ones that grow the engine's incident tables.
//
//   build/bench/cost_bench [--rules 1,10,100,1000,10000] [--csv FILE]
// Exits 1 if a panic made no decision. Google Benchmark's --benchmark_*
// flags are accepted and ignored. Plots: bench/cost_plots.sh.
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "rules/engine.h"
#include "rules/loader.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;

constexpr size_t kVms = 10'000;
constexpr size_t kHosts = 100;
constexpr int kPanics = 1000;
constexpr int kWarmPanics = 100;

int64_t cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string rule_text(int n) {
  std::string y = "rules:\n  - name: guest-panicked\n    on: vm.panicked\n    do: reset\n";
  for (int i = 0; i < n; ++i) {
    const std::string name = std::to_string(i);
    y += "  - name: r-" + name + "\n    on: vm.state\n    where: " +
         (i % 2 == 0 ? "vm.labels.tier == \"t" + name + "\""
                     : "vm.cpu_percent > " + std::to_string(900 + i)) +
         "\n    do: notify\n";
  }
  return y;
}

class CountingSink final : public rules::DecisionSink {
 public:
  void on_decision(const rules::Decision&) override { ++decisions; }
  uint64_t decisions = 0;
};

struct Row {
  int rules = 0;
  double events_per_cpu_s = 0;
  double decision_p50_us = 0, decision_p99_us = 0;
  uint64_t decisions = 0;
};

medic::v1::Event state_report() {
  medic::v1::Event e;
  auto* s = e.mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  s->set_cpu_percent(10);
  const char* kv[][2] = {{"tier", "bulk"}, {"team", "core"}, {"zone", "z1"}};
  for (auto& p : kv) {
    auto* l = s->add_labels();
    l->set_key(p[0]);
    l->set_value(p[1]);
  }
  return e;
}

Row run_rules(int n, std::shared_ptr<const rules::RuleSet> rules) {
  VirtualClock clock(from_ns(1'700'000'000'000'000'000));
  CountingSink sink;
  rules::EngineOptions opts;
  opts.storm.min_vms = 1'000'000'000;
  opts.storm.host_settle = 0s;
  opts.storm.fleet_settle = 0s;
  opts.max_in_flight_per_host = 1'000'000;
  opts.max_in_flight_fleet = 1'000'000;
  opts.host_silent_after = std::chrono::hours(24);
  rules::Engine engine(clock, rules, opts, sink);
  std::vector<std::string> ids(kVms), hosts(kHosts);
  for (size_t i = 0; i < kVms; ++i) ids[i] = "vm-" + std::to_string(i);
  for (size_t h = 0; h < kHosts; ++h) hosts[h] = "host-" + std::to_string(h);
  medic::v1::Event state = state_report();
  auto send = [&](medic::v1::Event& e, size_t i) {
    e.set_host(hosts[i % kHosts]);
    e.set_vm(ids[i]);
    e.set_observed_at_ns(to_ns(clock.now()));
    engine.ingest(e, i);
  };
  for (size_t i = 0; i < kVms; ++i) send(state, i);  // every VM known: steady state
  Row row;
  row.rules = n;
  uint64_t events = 0;
  const int64_t c0 = cpu_ns();
  while (events < 200'000 && cpu_ns() - c0 < 2'000'000'000) {
    for (size_t i = 0; i < 1000; ++i, ++events) send(state, events % kVms);
  }
  row.events_per_cpu_s = static_cast<double>(events) * 1e9 / static_cast<double>(cpu_ns() - c0);

  medic::v1::Event panic;
  panic.mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
  std::vector<int64_t> took;
  const uint64_t before = sink.decisions;
  for (int p = 0; p < kWarmPanics + kPanics; ++p) {
    clock.advance(1s);
    const int64_t t0 = cpu_ns();
    send(panic, static_cast<size_t>(p));
    if (p >= kWarmPanics) took.push_back(cpu_ns() - t0);
  }
  row.decisions = sink.decisions - before;
  std::sort(took.begin(), took.end());
  row.decision_p50_us = static_cast<double>(took[took.size() / 2]) / 1e3;
  row.decision_p99_us = static_cast<double>(took[(took.size() - 1) * 99 / 100]) / 1e3;
  return row;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  std::vector<int> counts = {1, 10, 100, 1000, 10000};
  std::string csv_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rules" && i + 1 < argc) {
      counts.clear();
      std::stringstream ss(argv[++i]);
      std::string part;
      while (std::getline(ss, part, ',')) counts.push_back(std::stoi(part));
    } else if (a == "--csv" && i + 1 < argc) {
      csv_path = argv[++i];
    } else if (a.rfind("--benchmark", 0) == 0) {
      continue;
    } else {
      std::cerr << "usage: cost_bench [--rules N,N,...] [--csv FILE]\n";
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::err);  // a line per panic's decision and timeout
  std::FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
  if (!csv_path.empty() && !csv) {
    std::cerr << "cost_bench: cannot write " << csv_path << "\n";
    return 2;
  }
  if (csv) std::fprintf(csv, "rules,events_per_cpu_s,decision_p50_us,decision_p99_us\n");
  std::printf("cost_bench: rules::Engine, %zu VMs on %zu hosts, VirtualClock\n", medic::bench::kVms,
              medic::bench::kHosts);
  std::printf("%8s %14s %14s %14s\n", "rules", "ingest ev/CPU-s", "decision p50", "decision p99");
  for (int n : counts) {
    auto loaded = medic::rules::load_rule_text(medic::bench::rule_text(n), "cost.rules.yaml");
    if (!loaded.ok()) {
      std::cerr << loaded.text();
      return 2;
    }
    const auto r = medic::bench::run_rules(n, loaded.rules);
    std::printf("%8d %14.0f %12.1fus %12.1fus\n", r.rules, r.events_per_cpu_s, r.decision_p50_us,
                r.decision_p99_us);
    std::fflush(stdout);
    if (r.decisions != static_cast<uint64_t>(medic::bench::kWarmPanics + medic::bench::kPanics)) {
      std::fprintf(stderr, "cost_bench: %llu decisions for %d panics\n",
                   static_cast<unsigned long long>(r.decisions),
                   medic::bench::kWarmPanics + medic::bench::kPanics);
      return 1;
    }
    if (csv) {
      std::fprintf(csv, "%d,%.0f,%.2f,%.2f\n", r.rules, r.events_per_cpu_s, r.decision_p50_us,
                   r.decision_p99_us);
    }
  }
  if (csv && std::fclose(csv) != 0) {
    std::cerr << "cost_bench: cannot write " << csv_path << "\n";
    return 1;
  }
  return 0;
}
