// How the rules engine grows with the fleet: rules::Engine directly (no
// sockets), a VirtualClock, the pipeline bench's 103 rules, and 10k, 100k,
// 1M simulated VMs on 1000 hosts. For each size:
//   memory    RSS delta (/proc/self/statm) after every VM sent one state report
//             with 3 labels and one heartbeat, divided by the VMs;
//   ingest    heartbeats through Engine::ingest per wall second and per CPU
//             second, every VM once per simulated second, spread over it;
//   lateness  1% of the VMs stop their heartbeats; the `absent: vm.heartbeat
//             for: 10s` rule's decision time (virtual) minus the deadline
//             (last heartbeat + 10s). The clock moves in 10 ms steps, so 10 ms
//             is the resolution of this virtual figure;
//   turn      wall time of one 10 ms step (that step's heartbeats plus the
//             timers the advance fires): on a real clock a deadline is late
//             by at most the turn it falls in, and a turn above 10 ms means
//             the engine falls behind; "wall/sim-s" is wall seconds per
//             simulated second (below 1: the engine keeps up).
//
//   build/bench/scale_bench [--sizes 10000,100000,1000000] [--seconds 13] [--csv FILE]
// Bounded: (seconds + 1) events per VM. Google Benchmark's --benchmark_*
// flags are accepted and ignored. Figures: docs/PERFORMANCE.md, "Scale".
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "rules/engine.h"
#include "rules/loader.h"
#include "bench/bench_rules.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;

size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  size_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

int64_t cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string rule_text() {
  std::string y = medic::bench::tier_rules(100);
  y += R"(  - name: guest-panicked
    on: vm.panicked
    do: reset
  - name: guest-crashed
    on: vm.crashed
    do: restart
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 10s
    where: vm.state == "running"
    do: [reboot, reset, restart, notify]
    storm_guard: false
)";
  return y;
}

std::string vm_id(size_t i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08zx-4f1c-4b7e-9a51-%012zx", i * 2654435761u % 0xffffffffu, i);
  return buf;
}

class LatenessSink final : public rules::DecisionSink {
 public:
  void on_decision(const rules::Decision& d) override {
    ++decisions;
    if (d.rule != "guest-unresponsive" || d.ladder_step != 1) return;
    auto it = deadline.find(d.vm);
    if (it == deadline.end()) return;
    lateness_ns.push_back(to_ns(d.at) - it->second);
    deadline.erase(it);
  }
  uint64_t decisions = 0;
  std::unordered_map<std::string, int64_t> deadline;  // silent VMs only
  std::vector<int64_t> lateness_ns;
};

struct Row {
  size_t vms = 0;
  double bytes_per_vm = 0;
  double rate_wall = 0, rate_cpu = 0;
  double realtime_factor = 0;
  size_t silent = 0, fired = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double turn_p99_ms = 0, turn_max_ms = 0;
};

Row run_size(size_t vms, int seconds, std::shared_ptr<const rules::RuleSet> rules) {
  Row row;
  row.vms = vms;
  VirtualClock clock(from_ns(1'700'000'000'000'000'000));
  LatenessSink sink;
  rules::EngineOptions opts;
  opts.storm.min_vms = 1'000'000'000;  // a 1% outage is the point here, not a storm
  opts.max_in_flight_per_host = 1'000'000;
  opts.max_in_flight_fleet = 1'000'000;
  opts.host_silent_after = std::chrono::hours(1);
  // Ids and hosts are prepared before the baseline: they are the bench's
  // memory, not the engine's.
  std::vector<std::string> ids(vms), hosts(1000);
  for (size_t i = 0; i < vms; ++i) ids[i] = vm_id(i);
  for (size_t h = 0; h < hosts.size(); ++h) hosts[h] = "host-" + std::to_string(h);
  medic::v1::Event state, hb;
  {
    auto* s = state.mutable_state();
    s->set_state(medic::v1::VM_STATE_RUNNING);
    s->set_cpu_percent(10);
    s->set_uptime_ns(3'600'000'000'000);
    const char* kv[][2] = {{"tier", "bulk"}, {"team", "core"}, {"zone", "z1"}};
    for (auto& p : kv) {
      auto* l = s->add_labels();
      l->set_key(p[0]);
      l->set_value(p[1]);
    }
    hb.mutable_heartbeat()->set_counter(1);
  }

  const size_t rss_before = rss_bytes();
  auto engine = std::make_unique<rules::Engine>(clock, rules, opts, sink);
  for (size_t i = 0; i < vms; ++i) {
    state.set_host(hosts[i % hosts.size()]);
    state.set_vm(ids[i]);
    state.set_observed_at_ns(to_ns(clock.now()));
    engine->ingest(state, i);
  }
  // Heartbeats: each simulated second in 100 steps of 10 ms; VM i speaks in
  // step i % 100. From second 1, every 100th VM is silent.
  const int kSteps = 100;
  const Duration kStep = 10ms;
  uint64_t events = 0;
  int64_t wall_start = 0, cpu_start = 0;
  std::vector<int64_t> turns;
  for (int sec = 0; sec < seconds; ++sec) {
    if (sec == 1) {
      row.bytes_per_vm =
          static_cast<double>(rss_bytes() - rss_before) / static_cast<double>(vms);
      wall_start = wall_ns();
      cpu_start = cpu_ns();
    }
    for (int step = 0; step < kSteps; ++step) {
      const int64_t turn_start = wall_ns();
      const Time now = clock.now();
      for (size_t i = static_cast<size_t>(step); i < vms; i += kSteps) {
        const bool silent = i % 100 == 7;
        if (silent && sec >= 1) continue;
        hb.set_host(hosts[i % hosts.size()]);
        hb.set_vm(ids[i]);
        hb.set_observed_at_ns(to_ns(now));
        engine->ingest(hb, i);
        ++events;
        if (silent) sink.deadline[ids[i]] = to_ns(now) + 10'000'000'000;
      }
      clock.advance(kStep);
      if (sec >= 1) turns.push_back(wall_ns() - turn_start);
    }
  }
  // Let the last deadlines pass.
  for (int step = 0; step < 2 * kSteps; ++step) clock.advance(kStep);
  const double wall_s = static_cast<double>(wall_ns() - wall_start) / 1e9;
  const double cpu_s = static_cast<double>(cpu_ns() - cpu_start) / 1e9;
  const uint64_t measured = events - vms;  // second 0 is warm-up
  row.rate_wall = static_cast<double>(measured) / wall_s;
  row.rate_cpu = static_cast<double>(measured) / cpu_s;
  row.realtime_factor = wall_s / (seconds - 1 + 2.0);
  row.silent = vms / 100;
  row.fired = sink.lateness_ns.size();
  auto& l = sink.lateness_ns;
  std::sort(l.begin(), l.end());
  if (!l.empty()) {
    auto at = [&](double q) {
      return static_cast<double>(l[static_cast<size_t>(q * static_cast<double>(l.size() - 1))]) /
             1e6;
    };
    row.p50_ms = at(0.5);
    row.p99_ms = at(0.99);
    row.max_ms = static_cast<double>(l.back()) / 1e6;
  }
  std::sort(turns.begin(), turns.end());
  if (!turns.empty()) {
    row.turn_p99_ms = static_cast<double>(turns[(turns.size() - 1) * 99 / 100]) / 1e6;
    row.turn_max_ms = static_cast<double>(turns.back()) / 1e6;
  }
  engine.reset();
  return row;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  std::vector<size_t> sizes = {10'000, 100'000, 1'000'000};
  int seconds = 13;
  std::string csv_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--csv" && i + 1 < argc) {
      csv_path = argv[++i];
    } else if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::stringstream ss(argv[++i]);
      std::string part;
      while (std::getline(ss, part, ',')) sizes.push_back(std::stoul(part));
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stoi(argv[++i]);
    } else if (a.rfind("--benchmark", 0) == 0) {
      continue;
    } else {
      std::cerr << "usage: scale_bench [--sizes N,N,...] [--seconds S] [--csv FILE]\n";
      return 2;
    }
  }
  if (seconds < 12 || sizes.empty()) {
    std::cerr << "scale_bench: need --seconds >= 12 (the absence window is 10s) and a size\n";
    return 2;
  }
  auto loaded = medic::rules::load_rule_text(medic::bench::rule_text(), "scale.rules.yaml");
  if (!loaded.ok()) {
    std::cerr << loaded.text();
    return 2;
  }
  std::printf("scale_bench: rules::Engine, %zu rules, VirtualClock in 10 ms steps, %d simulated "
              "seconds, 1 heartbeat per VM per second, 1%% of VMs silent from second 1\n",
              loaded.rules->size(), seconds);
  std::printf("%10s %10s %12s %12s %10s %7s %7s %9s %9s %9s %9s %9s\n", "VMs", "RSS B/VM",
              "ingest ev/s", "ev/CPU-s", "wall/sim-s", "silent", "fired", "late p50", "late p99",
              "late max", "turn p99", "turn max");
  // One row per size for bench/cost_plots.sh.
  std::FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
  if (!csv_path.empty() && !csv) {
    std::cerr << "scale_bench: cannot write " << csv_path << "\n";
    return 2;
  }
  if (csv)
    std::fprintf(csv, "vms,rss_bytes_per_vm,events_per_wall_s,events_per_cpu_s,turn_p99_ms\n");
  for (size_t n : sizes) {
    auto r = medic::bench::run_size(n, seconds, loaded.rules);
    std::printf("%10zu %10.0f %12.0f %12.0f %10.3f %7zu %7zu %7.1fms %7.1fms %7.1fms %7.2fms "
                "%7.2fms\n",
                r.vms, r.bytes_per_vm, r.rate_wall, r.rate_cpu, r.realtime_factor, r.silent,
                r.fired, r.p50_ms, r.p99_ms, r.max_ms, r.turn_p99_ms, r.turn_max_ms);
    std::fflush(stdout);
    if (csv) {
      std::fprintf(csv, "%zu,%.0f,%.0f,%.0f,%.3f\n", r.vms, r.bytes_per_vm, r.rate_wall, r.rate_cpu,
                   r.turn_p99_ms);
    }
  }
  if (csv && std::fclose(csv) != 0) {
    std::cerr << "scale_bench: cannot write " << csv_path << "\n";
    return 1;
  }
  return 0;
}
