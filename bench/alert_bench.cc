// An Alertmanager webhook, timed to the action it causes, on loopback: an
// HTTP POST of a webhook body (version 4, one firing alert) to a real
// AlertBridge (libmicrohttpd, bearer token), which seals it as an urgent
// alert.firing event for a real EngineNode (CurveZMQ, SQLite audit log with
// fsync'd commits) whose rule resets the VM, and the agent of a simulated
// host that executes it. On the system clock; one alert per VM, one at a
// time; measured from just before the POST to
//   answered    the bridge's 200 (the event is published)
//   dispatched  the engine's dispatch count moved: the action left for the
//               actuator, which happens only once its audit rows are durable
//   executed    the simulated host ran the reset
// The bridge, the engine, the agent and the HTTP client each run on a thread
// of their own, every loop waiting in poll as it does in its own process.
//
//   build/bench/alert_bench [--alerts N]   (default 200, at most 2000)
// Every wait is bounded (5 s an alert). Google Benchmark's --benchmark_*
// flags are accepted and ignored. Figures: docs/PERFORMANCE.md, "Alerts".
#include <curl/curl.h>
#include <spdlog/spdlog.h>
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
#include "core/json.h"
#include "node/agent_node.h"
#include "node/alert_bridge.h"
#include "node/engine_node.h"
#include "rules/loader.h"
#include "vmm/sim/sim.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kToken = "bench-token";

std::string webhook(const std::string& vm) {
  Json alert{{"status", "firing"},
             {"labels", {{"alertname", "AppUnresponsive"}, {"vm_id", vm}, {"host", "host-a"}}},
             {"annotations", {{"summary", "checkout answers 503"}}},
             {"startsAt", "2026-12-03T11:00:00.250Z"},
             {"fingerprint", vm.substr(0, 8)}};
  return dump_json(Json{{"version", "4"}, {"status", "firing"}, {"alerts", Json::array({alert})}});
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

// One POST; its HTTP status, 0 when it did not complete.
long post(CURL* curl, const std::string& url, const std::string& body) {
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  if (curl_easy_perform(curl) != CURLE_OK) return 0;
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

// Each daemon turns on its own thread with its own clock (a Clock's timers
// belong to one loop), waiting in poll as in its own process.
struct Fixture {
  std::string dir;
  SystemClock clock;         // the engine's
  SystemClock agent_clock;   // the agent's and its simulated host's
  SystemClock bridge_clock;  // the bridge's
  fabric::Identity engine_id = fabric::Identity::generate();
  fabric::Identity host_id = fabric::Identity::generate();
  fabric::Identity bridge_id = fabric::Identity::generate();
  std::optional<fabric::TrustStore> trust;
  std::unique_ptr<fabric::Context> ctx;
  std::unique_ptr<vmm::sim::SimFleet> fleet;
  std::unique_ptr<node::EngineNode> engine;
  std::unique_ptr<node::AgentNode> agent;
  std::unique_ptr<node::AlertBridge> bridge;
  std::atomic<bool> bridge_ready{false};
};

// The engine: a reset for every AppUnresponsive alert, no policy in the way.
std::string make_engine(Fixture& f) {
  auto rules = rules::load_rule_text(
      "rules:\n  - {name: app-down, on: alert.firing, where: alert.name == \"AppUnresponsive\", "
      "do: reset}\n",
      "r");
  if (!rules.ok()) return rules.text();
  node::EngineConfig c;
  c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  c.actions_endpoint = "tcp://127.0.0.1:*";
  c.control_endpoint = "tcp://127.0.0.1:*";
  c.engine.defaults.cooldown = Duration(0);
  c.engine.defaults.budget = {1'000'000, std::chrono::hours(1)};
  c.engine.max_in_flight_per_host = 100'000;
  c.engine.max_in_flight_fleet = 100'000;
  c.engine.storm.min_vms = 1'000'000;
  auto store = audit::open_sqlite_store(f.dir + "/audit.db", f.clock, f.engine_id);
  if (!store.ok()) return store.status().message();
  const fabric::Party engine_party{*f.ctx, f.engine_id, *f.trust, f.clock};
  auto engine = node::EngineNode::create(c, engine_party, rules.rules, std::move(*store), nullptr);
  if (!engine.ok()) return engine.status().message();
  f.engine = std::move(*engine);
  return "";
}

// The agent of host-a with `vms` simulated VMs, and the bridge.
std::string make_agent_and_bridge(Fixture& f, int vms) {
  vmm::sim::SimOptions so;
  so.host_names = {"host-a"};
  so.vms_per_host = vms;
  so.boot_time = 100ms;
  f.fleet = std::make_unique<vmm::sim::SimFleet>(f.agent_clock, so);
  const collectors::EngineEndpoint to{"engine-1", f.engine_id.public_key(),
                                      f.engine->events_endpoint(), f.engine->urgent_endpoint()};
  node::AgentConfig ac;
  ac.host = "host-a";
  collectors::CollectorConfig cc;
  cc.host = "host-a";
  cc.engines.push_back(to);
  ac.collector = cc;
  actuators::ActuatorConfig act;
  act.options.host = "host-a";
  act.options.engine_endpoint = f.engine->actions_endpoint();
  act.options.engine_key = f.engine_id.public_key();
  act.options.journal_path = f.dir + "/journal.db";
  ac.actuator = act;
  auto agent =
      node::AgentNode::create(ac, {*f.ctx, f.host_id, *f.trust, f.agent_clock}, f.fleet->host(0));
  if (!agent.ok()) return agent.status().message();
  f.agent = std::move(*agent);
  node::BridgeConfig bc;
  bc.engines.push_back(to);
  bc.http = {"127.0.0.1:0", "", "", kToken};
  auto bridge = node::AlertBridge::create(bc, {*f.ctx, f.bridge_id, *f.trust, f.bridge_clock});
  if (!bridge.ok()) return bridge.status().message();
  f.bridge = std::move(*bridge);
  return "";
}

// Everything, on loopback; an error message, or "".
std::string set_up(Fixture& f, int vms) {
  auto trust = fabric::TrustStore::parse(
      "nodes:\n  - {name: engine-1, key: " + f.engine_id.id() + ", roles: [engine]}\n" +
          "  - {name: host-a, key: " + f.host_id.id() + ", roles: [collector, actuator]}\n" +
          "  - {name: alerts, key: " + f.bridge_id.id() +
          ", roles: [collector], hosts: [host-a]}\n",
      "trust.yaml");
  if (!trust.ok()) return trust.status().message();
  f.trust = std::move(*trust);
  auto ctx = fabric::Context::create(*f.trust);
  if (!ctx.ok()) return ctx.status().message();
  f.ctx = std::move(*ctx);
  if (std::string e = make_engine(f); !e.empty()) return e;
  return make_agent_and_bridge(f, vms);
}

// What the daemon thread tells the client: how many actions the engine
// dispatched and the host executed so far, and when each count last moved.
struct Progress {
  std::atomic<uint64_t> dispatched{0}, executed{0};
  std::atomic<int64_t> dispatched_at{0}, executed_at{0};
  std::atomic<bool> stop{false}, ready{false};
};

constexpr auto kTurn = std::chrono::milliseconds(20);  // a loop's longest wait in poll

// The engine, turned until `p.stop`; each dispatch is stamped when seen.
void drive_engine(Fixture& f, const std::vector<std::string>& vms, Progress& p) {
  while (!p.stop.load()) {
    f.engine->run_once(kTurn);
    if (f.engine->stats().dispatched != p.dispatched.load()) {
      p.dispatched_at.store(Steady::now().time_since_epoch().count());
      p.dispatched.store(f.engine->stats().dispatched);
    }
    if (!p.ready.load()) {
      bool all = f.bridge_ready.load();
      for (const auto& v : vms) all = all && f.engine->engine().knows_vm(v);
      p.ready.store(all);
    }
  }
}

// The agent, likewise with each reset it executed.
void drive_agent(Fixture& f, Progress& p) {
  while (!p.stop.load()) {
    f.agent->run_once(kTurn);
    const uint64_t ran = f.fleet->total_executed(medic::v1::VERB_RESET);
    if (ran != p.executed.load()) {
      p.executed_at.store(Steady::now().time_since_epoch().count());
      p.executed.store(ran);
    }
  }
}

void drive_bridge(Fixture& f, Progress& p) {
  while (!p.stop.load()) {
    f.bridge->run_once(kTurn);
    f.bridge_ready.store(f.bridge->connected());
  }
}

struct Samples {
  std::vector<double> answered, dispatched, executed;
  int failures = 0;
};

// One alert per VM, each waited for to its reset (5 s at most).
Samples post_alerts(const std::string& url, const std::vector<std::string>& vms, Progress& p) {
  Samples out;
  CURL* curl = curl_easy_init();
  if (!curl) return out;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, (std::string("Authorization: Bearer ") + kToken).c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  for (size_t i = 0; p.ready.load() && i < vms.size(); ++i) {
    const std::string body = webhook(vms[i]);
    const auto t0 = Steady::now();
    if (post(curl, url, body) != 200) {
      ++out.failures;
      continue;
    }
    out.answered.push_back(ms(Steady::now() - t0));
    const uint64_t want = i + 1;
    while (p.executed.load() < want && Steady::now() < t0 + 5s)
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    if (p.executed.load() < want || p.dispatched.load() < want) {
      ++out.failures;
      break;  // the counts no longer line up with the alerts
    }
    const auto since = t0.time_since_epoch().count();
    out.dispatched.push_back(static_cast<double>(p.dispatched_at.load() - since) / 1e6);
    out.executed.push_back(static_cast<double>(p.executed_at.load() - since) / 1e6);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return out;
}

int run(int alerts) {
  spdlog::set_level(spdlog::level::warn);
  char tmpl[] = "/tmp/medic-alert-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return std::fprintf(stderr, "no temp dir\n"), 1;
  Fixture f;
  f.dir = tmpl;
  if (std::string e = set_up(f, alerts); !e.empty()) {
    std::fprintf(stderr, "set-up failed: %s\n", e.c_str());
    return 1;
  }
  const std::vector<std::string> vms = f.fleet->vm_ids();
  Progress p;
  std::thread engine_loop([&] { drive_engine(f, vms, p); });
  std::thread agent_loop([&] { drive_agent(f, p); });
  std::thread bridge_loop([&] { drive_bridge(f, p); });
  const auto start_deadline = Steady::now() + 30s;
  while (!p.ready.load() && Steady::now() < start_deadline) std::this_thread::sleep_for(10ms);
  const Samples s = post_alerts(f.bridge->url() + "/api/v1/alerts", vms, p);
  p.stop.store(true);
  engine_loop.join();
  agent_loop.join();
  bridge_loop.join();
  f.bridge.reset();
  f.agent.reset();
  f.engine.reset();
  std::filesystem::remove_all(f.dir);
  std::printf("alerts %d (answered %zu, executed %zu, failed %d)\n", alerts, s.answered.size(),
              s.executed.size(), s.failures);
  print_latency("webhook -> 200 answer", s.answered);
  print_latency("webhook -> action dispatched", s.dispatched);
  print_latency("webhook -> reset executed", s.executed);
  return s.executed.size() == static_cast<size_t>(alerts) ? 0 : 1;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  int alerts = 200;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--alerts") == 0 && i + 1 < argc) {
      alerts = std::clamp(std::atoi(argv[++i]), 1, 2000);
    } else if (std::strncmp(argv[i], "--benchmark", 11) != 0) {
      std::fprintf(stderr, "usage: alert_bench [--alerts N]\n");
      return 2;
    }
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = medic::bench::run(alerts);
  curl_global_cleanup();
  return rc;
}
