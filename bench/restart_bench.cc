// The engine's restart cost with a big fleet (issue: durable state): N VMs
// of stored state (each with a spent budget; every 100th with an open
// incident and an action in flight) written to a real SQLite audit file,
// then the time from opening the store to an EngineNode ready to accept its
// first event (state read, decoded and restored), wall and engine-thread
// CPU, median of --runs restarts. Checks that every VM and in-flight action
// came back (exit 1 otherwise), so the figure is for a correct restore.
//
//   build/bench/restart_bench [--vms 100000] [--runs 3]
// Google Benchmark's --benchmark_* flags are accepted and ignored. Figures:
// docs/PERFORMANCE.md, "Restart with stored state".
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "audit/log.h"
#include "core/clock.h"
#include "fabric/transport.h"
#include "node/engine_node.h"
#include "node/engine_state_rows.h"
#include "rules/loader.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRules =
    "rules:\n  - {name: db-panicked, on: vm.panicked, do: reset, cooldown: 0s, budget: 3 per 1h, "
    "heal_within: 20s}\n";

double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

rules::StateChanges fleet_state(int vms, int64_t now) {
  rules::StateChanges c;
  for (int i = 0; i < vms; ++i) {
    rules::VmRecord vm;
    vm.id = "vm-" + std::to_string(i);
    vm.host = "host-" + std::to_string(i / 50);
    vm.owner = true;
    vm.last_seen_ns = now;
    vm.labels = {{"tier", "web"}, {"team", "t" + std::to_string(i % 7)}};
    vm.last_action_ns = now - 1'000'000'000;
    vm.action_times = {now - 1'000'000'000};
    if (i % 100 == 0) {
      rules::IncidentRecord inc;
      inc.id = static_cast<uint64_t>(i + 1);
      inc.key = "db-panicked/" + vm.id;
      inc.rule = "db-panicked";
      inc.vm = vm.id;
      inc.host = vm.host;
      inc.state = 1;  // acting
      inc.action_id = "old-" + std::to_string(i);
      c.state.incidents.push_back(inc);
      c.state.in_flight.push_back({inc.action_id, vm.id, vm.host, now + 3'600'000'000'000, 20s});
    }
    c.state.vms.push_back(std::move(vm));
  }
  for (int h = 0; h < (vms + 49) / 50; ++h) {
    c.state.hosts.push_back({"host-" + std::to_string(h), now});
  }
  c.state.last_incident_id = static_cast<uint64_t>(vms) + 1;
  c.engine_changed = true;
  return c;
}

struct Run {
  double wall_ms = 0;
  double cpu_ms = 0;
};

int run(int vms, int runs) {
  char tmpl[] = "/tmp/medic-restart-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return 2;
  const std::string db = std::string(tmpl) + "/audit.db";
  SystemClock clock;
  fabric::Identity engine = fabric::Identity::generate();
  fabric::TrustStore trust;
  fabric::TrustedNode self;
  self.name = "engine-1";
  self.key = engine.public_key();
  self.roles = static_cast<uint8_t>(fabric::Role::kEngine);
  if (!trust.add(self).ok()) return 2;
  {
    auto store = audit::open_sqlite_store(db, clock, engine, {});
    if (!store.ok()) return 2;
    std::vector<audit::StateRow> rows;
    node::append_state_rows(fleet_state(vms, to_ns(clock.now())), &rows);
    if (!(*store)->commit_unit(std::move(rows)).ok() || !(*store)->close().ok()) return 2;
  }
  auto loaded = rules::load_rule_text(kRules, "rules.yaml");
  auto ctx = fabric::Context::create(trust);
  if (!loaded.rules || !ctx.ok()) return 2;
  node::EngineConfig c;
  c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  c.actions_endpoint = "tcp://127.0.0.1:*";
  c.control_endpoint = "tcp://127.0.0.1:*";
  std::vector<Run> results;
  for (int r = 0; r < runs; ++r) {
    const double cpu0 = thread_cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    auto store = audit::open_sqlite_store(db, clock, engine, {});
    if (!store.ok()) return 2;
    auto node =
        node::EngineNode::create(c, {**ctx, engine, trust, clock}, loaded.rules, std::move(*store));
    if (!node.ok()) {
      std::fprintf(stderr, "restart_bench: %s\n", node.status().message().c_str());
      return 2;
    }
    Run one{std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count(),
            thread_cpu_ms() - cpu0};
    const auto stats = (*node)->engine().stats();
    if (stats.vms != static_cast<size_t>(vms) ||
        stats.in_flight != static_cast<size_t>((vms + 99) / 100)) {
      std::fprintf(stderr, "restart_bench: restored %zu VMs and %zu in flight, wanted %d and %d\n",
                   stats.vms, stats.in_flight, vms, (vms + 99) / 100);
      return 1;
    }
    if (!(*node)->shutdown().ok()) return 2;
    results.push_back(one);
  }
  std::filesystem::remove_all(tmpl);
  auto median = [&](double Run::*f) {
    std::vector<double> v;
    for (const Run& r : results) v.push_back(r.*f);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("restart -> ready to accept events, %d VMs of state, median of %d: %.0f ms wall, "
              "%.0f ms engine-thread CPU\n",
              vms, runs, median(&Run::wall_ms), median(&Run::cpu_ms));
  return 0;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  int vms = 100'000, runs = 3;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--vms") == 0) vms = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--runs") == 0) runs = std::atoi(argv[++i]);
  }
  if (vms <= 0 || runs <= 0) {
    std::fprintf(stderr, "usage: restart_bench [--vms N] [--runs N]\n");
    return 2;
  }
  return medic::bench::run(vms, runs);
}
