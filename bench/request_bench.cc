// A requester's ask, timed end to end on loopback: `medic request`'s path
// through the C++ client (fabric::ControlClient, CurveZMQ, signed) to a real
// EngineNode with its SQLite audit log (fsync'd commits), and the agent of a
// simulated host, on the system clock. One request per VM, one at a time;
// measured from just before the request is sealed to
//   accepted    the engine's first reply (scope checked, decided, recorded
//               in memory; the reply leaves before the audit commit)
//   dispatched  the reply saying the action went to the actuator, which the
//               engine sends only once the decision's audit rows are durable
// The engine, the agent and the client each run on a thread of their own.
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
#include "bench/floor/durable_floor.h"
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

struct Samples {
  std::vector<double> accepted, dispatched;
  int failures = 0;
};

// One reset request per VM, each followed to its dispatched reply (5 s a reply).
Samples ask(fabric::ControlClient& client, const std::vector<std::string>& vms, int requests) {
  Samples out;
  for (int i = 0; i < requests; ++i) {
    medic::v1::ControlRequest q;
    q.set_request_id("bench-" + std::to_string(i));
    q.mutable_request()->set_verb(medic::v1::VERB_RESET);
    q.mutable_request()->set_vm(vms[static_cast<size_t>(i)]);
    q.mutable_request()->set_follow(true);
    const auto t0 = Steady::now();
    if (!client.send(q).ok()) break;
    auto first = client.next(q.request_id(), 5000ms);
    if (!first.ok() || first->stage() != medic::v1::STAGE_ACCEPTED) {
      ++out.failures;
      continue;
    }
    out.accepted.push_back(ms(Steady::now() - t0));
    for (auto r = client.next(q.request_id(), 5000ms); r.ok();
         r = client.next(q.request_id(), 5000ms)) {
      if (r->stage() == medic::v1::STAGE_DISPATCHED) {
        out.dispatched.push_back(ms(Steady::now() - t0));
        break;
      }
      if (r->done()) break;
    }
  }
  return out;
}

// Where the dispatched figure's time goes, by the engine's own histograms.
void print_engine_histograms(const node::EngineNode& engine) {
  for (const auto& h : engine.counters().histogram_samples()) {
    if (h.name != "audit_commit_seconds" && h.name != "decided_to_dispatched_seconds") continue;
    const HistogramSnapshot& v = h.value;
    if (v.count == 0) continue;
    size_t at5 = 0;
    while (at5 < v.bounds.size() && v.bounds[at5] < 0.005) ++at5;
    std::printf("engine: %-30s %llu, mean %.2f ms, %.1f%% within 5 ms\n", h.name.c_str(),
                static_cast<unsigned long long>(v.count), 1000 * v.sum_seconds / v.count,
                at5 < v.cumulative.size() ? 100.0 * v.cumulative[at5] / v.count : 100.0);
  }
}

void report(int requests, const Samples& got, const std::vector<double>& floor) {
  std::printf("requests %d (accepted %zu, dispatched %zu, failed %d)\n", requests,
              got.accepted.size(), got.dispatched.size(), got.failures);
  print_latency("request -> accepted reply", got.accepted);
  print_latency("request -> dispatched reply", got.dispatched);
  print_latency("floor: one durable commit", floor);
  if (percentile(floor, 0.5) > 0 && percentile(floor, 0.99) > 0)
    std::printf("dispatched / floor            p50 %.2fx  p99 %.2fx\n",
                percentile(got.dispatched, 0.5) / percentile(floor, 0.5),
                percentile(got.dispatched, 0.99) / percentile(floor, 0.99));
}

std::string trust_text(const fabric::Identity& engine, const fabric::Identity& host,
                       const fabric::Identity& app) {
  return "nodes:\n  - {name: engine-1, key: " + engine.id() + ", roles: [engine]}\n" +
         "  - {name: host-a, key: " + host.id() + ", roles: [collector, actuator]}\n" +
         "  - {name: app, key: " + app.id() + ", roles: [requester], hosts: [host-a], " +
         "verbs: [reset]}\n";
}

// An engine that never stands in a request's way: no cooldown, no budget
// to spend, no slot or storm limit within the bench's counts.
node::EngineConfig engine_config() {
  node::EngineConfig c;
  c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  c.actions_endpoint = "tcp://127.0.0.1:*";
  c.control_endpoint = "tcp://127.0.0.1:*";
  c.engine.defaults.cooldown = Duration(0);
  c.engine.defaults.budget = {1'000'000, std::chrono::hours(1)};
  c.engine.max_in_flight_per_host = 100'000;
  c.engine.max_in_flight_fleet = 100'000;
  c.engine.storm.min_vms = 1'000'000;
  return c;
}

// host-a's agent: its collector and actuator to `engine`.
node::AgentConfig agent_config(const node::EngineNode& engine, const fabric::Identity& engine_id,
                               const std::string& dir) {
  node::AgentConfig ac;
  ac.host = "host-a";
  collectors::CollectorConfig cc;
  cc.host = "host-a";
  cc.engines.push_back(
      {"engine-1", engine_id.public_key(), engine.events_endpoint(), engine.urgent_endpoint()});
  ac.collector = cc;
  actuators::ActuatorConfig act;
  act.options.host = "host-a";
  act.options.engine_endpoint = engine.actions_endpoint();
  act.options.engine_key = engine_id.public_key();
  act.options.journal_path = dir + "/journal.db";
  ac.actuator = act;
  return ac;
}

// The engine and the agent, each on a thread of its own with its loop
// waiting in poll as in its own process (a loop that spins would take a
// core from the audit writer on this 2-core machine).
class Daemons {
 public:
  Daemons(node::EngineNode& engine, node::AgentNode& agent, const std::vector<std::string>& vms)
      : engine_thread_([&engine, &vms, this] {
          while (!stop_.load()) {
            engine.run_once(std::chrono::milliseconds(20));
            if (known_.load()) continue;
            bool all = true;
            for (const auto& v : vms) all = all && engine.engine().knows_vm(v);
            known_.store(all);
          }
        }),
        agent_thread_([&agent, this] {
          while (!stop_.load()) agent.run_once(std::chrono::milliseconds(20));
        }) {}
  ~Daemons() { stop(); }
  // Whether the engine knew every VM within `limit`.
  bool wait_known(std::chrono::seconds limit) {
    const auto end = Steady::now() + limit;
    while (!known_.load() && Steady::now() < end) std::this_thread::sleep_for(10ms);
    return known_.load();
  }
  void stop() {
    stop_.store(true);
    if (engine_thread_.joinable()) engine_thread_.join();
    if (agent_thread_.joinable()) agent_thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> known_{false};
  std::thread engine_thread_;
  std::thread agent_thread_;
};

int run(int requests) {
  spdlog::set_level(spdlog::level::warn);
  char tmpl[] = "/tmp/medic-request-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return std::fprintf(stderr, "no temp dir\n"), 1;
  const std::string dir = tmpl;
  // One clock per daemon thread: a Clock's timers belong to one loop.
  SystemClock clock;
  SystemClock agent_clock;
  auto engine_id = fabric::Identity::generate();
  auto host_id = fabric::Identity::generate();
  auto app_id = fabric::Identity::generate();
  auto trust = fabric::TrustStore::parse(trust_text(engine_id, host_id, app_id), "trust.yaml");
  if (!trust.ok()) return std::fprintf(stderr, "%s\n", trust.status().message().c_str()), 1;
  auto ctx = fabric::Context::create(*trust);
  auto rules = rules::load_rule_text("rules:\n  - {name: p, on: vm.panicked, do: reset}\n", "r");
  auto store = audit::open_sqlite_store(dir + "/audit.db", clock, engine_id);
  if (!ctx.ok() || !store.ok()) return std::fprintf(stderr, "set-up failed\n"), 1;
  auto engine = node::EngineNode::create(engine_config(), {**ctx, engine_id, *trust, clock},
                                         rules.rules, std::move(*store), nullptr);
  if (!engine.ok()) return std::fprintf(stderr, "%s\n", engine.status().message().c_str()), 1;
  vmm::sim::SimOptions so;
  so.host_names = {"host-a"};
  so.vms_per_host = requests;
  so.boot_time = 100ms;
  vmm::sim::SimFleet fleet(agent_clock, so);
  auto agent = node::AgentNode::create(agent_config(**engine, engine_id, dir),
                                       {**ctx, host_id, *trust, agent_clock}, fleet.host(0));
  if (!agent.ok()) return std::fprintf(stderr, "%s\n", agent.status().message().c_str()), 1;

  const std::vector<std::string> vms = fleet.vm_ids();
  const std::string control = (*engine)->control_endpoint();  // before its loop runs
  Samples got;
  {
    Daemons loops(**engine, **agent, vms);
    auto client = fabric::ControlClient::connect({control, engine_id.public_key()}, app_id, *trust);
    if (client.ok() && loops.wait_known(30s)) got = ask(**client, vms, requests);
    loops.stop();
    if (client.ok()) client->reset();  // the client's sockets go before the engine's
  }
  print_engine_histograms(**engine);
  agent->reset();
  engine->reset();
  report(requests, got, commit_floor(dir, requests));
  std::filesystem::remove_all(dir);
  return got.dispatched.size() == static_cast<size_t>(requests) ? 0 : 1;
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
