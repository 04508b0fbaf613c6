// A requester's ask, timed end to end on loopback: `medic request`'s path
// through the C++ client (fabric::ControlClient, CurveZMQ, signed) to a real
// EngineNode with its SQLite audit log (fsync'd commits), and the agent of a
// simulated host, on the system clock. One request per VM, one at a time;
// measured from just before the request is sealed to
//   accepted    the engine's first reply (scope checked, decided, recorded
//               in memory; the reply leaves before the audit commit)
//   dispatched  the reply saying the action went to the actuator, which the
//               engine sends only once the decision's audit rows are durable
// The engine and agent run on one thread, the client on another.
// Then, in the same directory, the floor of the dispatched figure: one
// SQLite commit in WAL mode with synchronous=FULL (the audit log's
// settings) of one small row, timed the same number of times. The real
// commit writes more pages (rows, indexes, state), so it can only be slower.
//
//   build/bench/request_bench [--requests N]   (default 200, at most 2000)
// Every wait is bounded (5 s a reply). Google Benchmark's --benchmark_*
// flags are accepted and ignored. Figures: docs/PERFORMANCE.md, "Requests".
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "audit/log.h"
#include "bench/latency.h"
#include "fabric/control.h"
#include "node/agent_node.h"
#include "node/engine_node.h"
#include "rules/loader.h"
#include "vmm/sim/sim.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

// `n` durable commits of one 512-byte row into a fresh SQLite file in
// `dir`, as the audit log is opened (WAL, synchronous=FULL); their times.
std::vector<double> commit_floor(const std::string& dir, int n) {
  std::vector<double> out;
  sqlite3* db = nullptr;
  const std::string path = dir + "/floor.db";
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return out;
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE t(x BLOB)", nullptr, nullptr, nullptr);
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO t(x) VALUES (zeroblob(512))", -1, &ins, nullptr);
  for (int i = 0; ins && i < n; ++i) {
    const auto t0 = Steady::now();
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    sqlite3_step(ins);
    sqlite3_reset(ins);
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) break;
    out.push_back(ms(Steady::now() - t0));
  }
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return out;
}

int run(int requests) {
  spdlog::set_level(spdlog::level::warn);
  char tmpl[] = "/tmp/medic-request-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return std::fprintf(stderr, "no temp dir\n"), 1;
  const std::string dir = tmpl;
  SystemClock clock;
  auto engine_id = fabric::Identity::generate();
  auto host_id = fabric::Identity::generate();
  auto app_id = fabric::Identity::generate();
  auto trust = fabric::TrustStore::parse(
      "nodes:\n  - {name: engine-1, key: " + engine_id.id() + ", roles: [engine]}\n" +
          "  - {name: host-a, key: " + host_id.id() + ", roles: [collector, actuator]}\n" +
          "  - {name: app, key: " + app_id.id() + ", roles: [requester], hosts: [host-a], " +
          "verbs: [reset]}\n",
      "trust.yaml");
  if (!trust.ok()) return std::fprintf(stderr, "%s\n", trust.status().message().c_str()), 1;
  auto ctx = fabric::Context::create(*trust);
  auto rules = rules::load_rule_text("rules:\n  - {name: p, on: vm.panicked, do: reset}\n", "r");
  node::EngineConfig c;
  c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  c.actions_endpoint = "tcp://127.0.0.1:*";
  c.control_endpoint = "tcp://127.0.0.1:*";
  c.engine.defaults.cooldown = Duration(0);
  c.engine.defaults.budget = {1'000'000, std::chrono::hours(1)};
  c.engine.max_in_flight_per_host = 100'000;
  c.engine.max_in_flight_fleet = 100'000;
  c.engine.storm.min_vms = 1'000'000;
  auto store = audit::open_sqlite_store(dir + "/audit.db", clock, engine_id);
  if (!ctx.ok() || !store.ok()) return std::fprintf(stderr, "set-up failed\n"), 1;
  auto engine = node::EngineNode::create(c, {**ctx, engine_id, *trust, clock}, rules.rules,
                                         std::move(*store), nullptr);
  if (!engine.ok()) return std::fprintf(stderr, "%s\n", engine.status().message().c_str()), 1;
  vmm::sim::SimOptions so;
  so.host_names = {"host-a"};
  so.vms_per_host = requests;
  so.boot_time = 100ms;
  vmm::sim::SimFleet fleet(clock, so);
  node::AgentConfig ac;
  ac.host = "host-a";
  collectors::CollectorConfig cc;
  cc.host = "host-a";
  cc.engines.push_back({"engine-1", engine_id.public_key(), (*engine)->events_endpoint(),
                        (*engine)->urgent_endpoint()});
  ac.collector = cc;
  actuators::ActuatorConfig act;
  act.options.host = "host-a";
  act.options.engine_endpoint = (*engine)->actions_endpoint();
  act.options.engine_key = engine_id.public_key();
  act.options.journal_path = dir + "/journal.db";
  ac.actuator = act;
  auto agent = node::AgentNode::create(ac, {**ctx, host_id, *trust, clock}, fleet.host(0));
  if (!agent.ok()) return std::fprintf(stderr, "%s\n", agent.status().message().c_str()), 1;

  std::atomic<bool> stop{false};
  std::atomic<bool> known{false};
  const std::vector<std::string> vms = fleet.vm_ids();
  std::thread daemons([&] {
    while (!stop.load()) {
      (*engine)->run_once(Duration(0));
      (*agent)->run_once(Duration(0));
      if (!known.load()) {
        bool all = true;
        for (const auto& v : vms) all = all && (*engine)->engine().knows_vm(v);
        known.store(all);
      }
    }
  });
  const auto start_deadline = Steady::now() + 30s;
  while (!known.load() && Steady::now() < start_deadline) std::this_thread::sleep_for(10ms);
  std::vector<double> accepted, dispatched;
  int failures = 0;
  auto client = fabric::ControlClient::connect(
      {(*engine)->control_endpoint(), engine_id.public_key()}, app_id, *trust);
  for (int i = 0; client.ok() && known.load() && i < requests; ++i) {
    medic::v1::ControlRequest q;
    q.set_request_id("bench-" + std::to_string(i));
    q.mutable_request()->set_verb(medic::v1::VERB_RESET);
    q.mutable_request()->set_vm(vms[static_cast<size_t>(i)]);
    q.mutable_request()->set_follow(true);
    const auto t0 = Steady::now();
    if (!(*client)->send(q).ok()) break;
    auto first = (*client)->next(q.request_id(), 5000ms);
    if (!first.ok() || first->stage() != medic::v1::STAGE_ACCEPTED) {
      ++failures;
      continue;
    }
    accepted.push_back(ms(Steady::now() - t0));
    for (auto r = (*client)->next(q.request_id(), 5000ms); r.ok();
         r = (*client)->next(q.request_id(), 5000ms)) {
      if (r->stage() == medic::v1::STAGE_DISPATCHED) {
        dispatched.push_back(ms(Steady::now() - t0));
        break;
      }
      if (r->done()) break;
    }
  }
  stop.store(true);
  daemons.join();
  if (client.ok()) client->reset();  // the client's sockets go before the engine's
  agent->reset();
  engine->reset();
  const std::vector<double> floor = commit_floor(dir, requests);
  std::filesystem::remove_all(dir);
  std::printf("requests %d (accepted %zu, dispatched %zu, failed %d)\n", requests, accepted.size(),
              dispatched.size(), failures);
  print_latency("request -> accepted reply", accepted);
  print_latency("request -> dispatched reply", dispatched);
  print_latency("floor: one durable commit", floor);
  if (!floor.empty() && percentile(floor, 0.5) > 0 && percentile(floor, 0.99) > 0)
    std::printf("dispatched / floor            p50 %.2fx  p99 %.2fx\n",
                percentile(dispatched, 0.5) / percentile(floor, 0.5),
                percentile(dispatched, 0.99) / percentile(floor, 0.99));
  return dispatched.size() == static_cast<size_t>(requests) ? 0 : 1;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  int requests = 200;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--requests") == 0 && i + 1 < argc) {
      requests = std::clamp(std::atoi(argv[++i]), 1, 2000);
    } else if (std::strncmp(argv[i], "--benchmark", 11) != 0) {
      std::fprintf(stderr, "usage: request_bench [--requests N]\n");
      return 2;
    }
  }
  return medic::bench::run(requests);
}
