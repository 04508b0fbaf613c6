// The on-call page and the engine's HTTP API at fleet size: one EngineNode
// (real sockets, the audit log on) that knows 10k VMs on 100 hosts, each
// with a name, and holds 1k open incidents waiting for approval (a panic
// each, under a rule with `approval: required`). Measures, with the engine's
// loop turning on this thread:
//   - GET /api/v1/overview (what the page fetches every 2 s) and
//     GET /metrics: latency and size, N requests each;
//   - the page in a real headless Chromium (tests/integration/web/
//     page_check.py), RUNS times: when the page itself had its first data on
//     screen (performance.now() at that moment: ms since navigation began),
//     and when the check, polling the page's text, found the newest
//     approval's `medic approve` command (that includes WebDriver's reading
//     of a large page's text).
//
//   build/bench/page_bench [--vms N] [--incidents N] [--requests N] [--runs N]
//
// Every phase is bounded in count and time. Google Benchmark's --benchmark_*
// flags (scripts/bench passes them) are accepted and ignored.
// Figures: docs/PERFORMANCE.md, "Metrics and the on-call page".
#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "audit/log.h"
#include "core/clock.h"
#include "fabric/envelope.h"
#include "fabric/transport.h"
#include "node/engine_http.h"
#include "node/engine_metrics.h"
#include "node/engine_node.h"
#include "rules/loader.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

struct Options {
  int vms = 10'000;
  int incidents = 1'000;
  int hosts = 100;
  int requests = 20;
  int runs = 3;
};

double ms_since(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

size_t append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string http_body(const std::string& url) {
  std::string body;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  return status == 200 ? body : std::string();
}

std::string host_name(int h) { return "host-" + std::to_string(h); }
std::string vm_id(int v) { return "vm-" + std::to_string(v); }

medic::v1::Event state(const Options& o, int v, Time now) {
  medic::v1::Event e;
  e.set_host(host_name(v % o.hosts));
  e.set_vm(vm_id(v));
  e.set_observed_at_ns(to_ns(now));
  auto* s = e.mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  s->set_last_heartbeat_ns(to_ns(now));
  auto* l = s->add_labels();
  l->set_key("name");
  l->set_value("web-" + std::to_string(v));
  return e;
}

medic::v1::Event panic(const Options& o, int v, Time now) {
  medic::v1::Event e;
  e.set_host(host_name(v % o.hosts));
  e.set_vm(vm_id(v));
  e.set_observed_at_ns(to_ns(now));
  e.mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
  return e;
}

// The engine, its fleet's one collector key (scoped to every host) and the
// two lanes that key publishes on.
struct Bench {
  fabric::Identity engine_id = fabric::Identity::generate();
  fabric::Identity fleet_id = fabric::Identity::generate();
  fabric::TrustStore trust;
  std::unique_ptr<fabric::Context> ctx;
  std::unique_ptr<node::EngineNode> engine;
  zmq::socket_t bulk, urgent;
  std::unique_ptr<fabric::Sealer> bulk_sealer, urgent_sealer;
  SystemClock clock;

  void pump_for(Duration d) {
    const auto end = Steady::now() + d;
    while (Steady::now() < end) engine->run_once(1ms);
  }
  // Sends one batch per host of `make(v)` for v in [0, n), on `lane`.
  template <typename Make>
  void send(const Options& o, int n, bool on_urgent, Make make) {
    for (int h = 0; h < o.hosts; ++h) {
      medic::v1::EventBatch b;
      b.set_urgent(on_urgent);
      for (int v = h; v < n; v += o.hosts) *b.add_events() = make(v);
      if (b.events_size() == 0) continue;
      auto& sealer = on_urgent ? *urgent_sealer : *bulk_sealer;
      auto& socket = on_urgent ? urgent : bulk;
      socket.send(zmq::buffer(sealer.seal(medic::v1::KIND_EVENT_BATCH, host_name(h),
                                          b.SerializeAsString(), clock.now())),
                  zmq::send_flags::none);
      engine->run_once(Duration(0));
    }
  }
  // Repeats send() until `done` (a PUB drops what it sends before the SUB joined).
  template <typename Make>
  bool fill(const Options& o, int n, bool on_urgent, Make make, const std::function<bool()>& done) {
    for (int round = 0; round < 30 && !done(); ++round) {
      send(o, n, on_urgent, make);
      for (int i = 0; i < 100 && !done(); ++i) pump_for(10ms);
    }
    return done();
  }
};

Status start(const Options& o, const std::filesystem::path& dir, Bench& b) {
  std::vector<std::string> hosts;
  for (int h = 0; h < o.hosts; ++h) hosts.push_back(host_name(h));
  auto trusted = [](const std::string& name, const fabric::Identity& id, fabric::Role role,
                    std::vector<std::string> scope) {
    fabric::TrustedNode n;
    n.name = name;
    n.key = id.public_key();
    n.roles = static_cast<uint8_t>(role);
    n.hosts = std::move(scope);
    return n;
  };
  MEDIC_RETURN_IF_ERROR(
      b.trust.add(trusted("engine-1", b.engine_id, fabric::Role::kEngine, {"*"})));
  MEDIC_RETURN_IF_ERROR(b.trust.add(trusted("fleet", b.fleet_id, fabric::Role::kCollector, hosts)));
  auto ctx = fabric::Context::create(b.trust);
  if (!ctx.ok()) return ctx.status();
  b.ctx = std::move(*ctx);
  auto rules = rules::load_rule_text(
      "rules:\n  - {name: guest-panicked, on: vm.panicked, do: reset, approval: required,"
      " approval_timeout: 1h}\n",
      "page.rules.yaml");
  if (!rules.ok()) return invalid_argument(rules.text());
  node::EngineConfig cfg;
  cfg.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  cfg.actions_endpoint = "tcp://127.0.0.1:*";
  cfg.control_endpoint = "tcp://127.0.0.1:*";
  cfg.audit_path = (dir / "audit.db").string();
  cfg.engine.storm.min_vms = 1'000'000'000;  // 1k panics at once are the point here
  cfg.engine.max_in_flight_per_host = 10'000;
  cfg.engine.max_in_flight_fleet = 10'000;
  auto store = audit::open_sqlite_store(cfg.audit_path, b.clock, b.engine_id, cfg.audit);
  if (!store.ok()) return store.status();
  auto engine = node::EngineNode::create(cfg, {*b.ctx, b.engine_id, b.trust, b.clock}, rules.rules,
                                         std::move(*store));
  if (!engine.ok()) return engine.status();
  b.engine = std::move(*engine);
  fabric::SocketOptions so;
  so.send_hwm = 100'000;
  auto bulk = b.ctx->connect(zmq::socket_type::pub, b.engine->events_endpoint(), b.fleet_id,
                             b.engine_id.public_key(), so);
  auto urgent = b.ctx->connect(zmq::socket_type::pub, b.engine->urgent_endpoint(), b.fleet_id,
                               b.engine_id.public_key(), so);
  if (!bulk.ok()) return bulk.status();
  if (!urgent.ok()) return urgent.status();
  b.bulk = std::move(*bulk);
  b.urgent = std::move(*urgent);
  b.bulk_sealer = std::make_unique<fabric::Sealer>(b.fleet_id, 0);
  b.urgent_sealer = std::make_unique<fabric::Sealer>(b.fleet_id, 1);
  return {};
}

// Runs `work` on another thread while this one turns the engine's loop.
template <typename F>
auto while_running(Bench& b, F work) {
  auto fut = std::async(std::launch::async, work);
  while (fut.wait_for(0ms) != std::future_status::ready) b.engine->run_once(1ms);
  return fut.get();
}

void measure_get(Bench& b, const std::string& url, int n, const char* what) {
  std::vector<double> ms;
  size_t bytes = 0;
  for (int i = 0; i < n; ++i) {
    const auto t = Steady::now();
    const std::string body = while_running(b, [&] { return http_body(url); });
    ms.push_back(ms_since(t));
    bytes = body.size();
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%-22s n=%d  p50=%7.1f ms  max=%7.1f ms  %zu bytes\n", what, n, ms[ms.size() / 2],
              ms.back(), bytes);
}

std::string newest_pending(Bench& b) {
  auto in_flight = b.engine->store().in_flight(b.clock.now());
  std::string id;
  if (in_flight.ok()) {
    for (const auto& a : *in_flight) {
      if (a.state == ActionState::kPendingApproval) id = a.action_id;
    }
  }
  return id;
}

// page_check.py prints "all N texts shown after X.XXs".
void measure_page(Bench& b, const std::string& url, const std::string& id, int runs,
                  const std::filesystem::path& dir) {
  const std::string script = std::string(MEDIC_SOURCE_DIR) + "/tests/integration/web/page_check.py";
  std::vector<double> secs, shown;
  for (int i = 0; i < runs; ++i) {
    const std::string cmd = "/usr/bin/python3 " + script + " " + url + "/ " +
                            (dir / "page.png").string() + " 'medic approve " + id + "' 2>&1";
    const std::string out = while_running(b, [&] {
      std::string text;
      if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        while (size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
        ::pclose(p);
      }
      return text;
    });
    const size_t at = out.find("shown after ");
    const size_t on_screen = out.find("on screen ");
    if (at == std::string::npos || on_screen == std::string::npos) {
      std::printf("page run %d failed: %s\n", i + 1, out.substr(0, 400).c_str());
      continue;
    }
    secs.push_back(std::stod(out.substr(at + 12)));
    shown.push_back(std::stod(out.substr(on_screen + 10)) / 1000);
    std::printf(
        "page run %d: data on screen %.2f s after navigation began; the check saw the "
        "approval command %.2f s after driver.get\n",
        i + 1, shown.back(), secs.back());
  }
  if (secs.empty()) return;
  std::sort(secs.begin(), secs.end());
  std::sort(shown.begin(), shown.end());
  std::printf(
      "page load (Chromium): data on screen median %.2f s after navigation began; "
      "the check's driver.get -> text found median %.2f s (%zu runs)\n",
      shown[shown.size() / 2], secs[secs.size() / 2], secs.size());
}

int run(const Options& o) {
  spdlog::set_level(spdlog::level::err);  // one info line per decision: 1k of them
  const auto dir =
      std::filesystem::temp_directory_path() / ("medic-page-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  Bench b;
  if (Status s = start(o, dir, b); !s.ok()) {
    std::cerr << "page_bench: " << s.message() << "\n";
    return 2;
  }
  const auto t0 = Steady::now();
  const bool vms = b.fill(
      o, o.vms, false, [&](int v) { return state(o, v, b.clock.now()); },
      [&] { return b.engine->engine().stats().vms >= size_t(o.vms); });
  const bool incidents =
      vms && b.fill(
                 o, o.incidents, true, [&](int v) { return panic(o, v, b.clock.now()); },
                 [&] { return b.engine->engine().stats().open_incidents >= size_t(o.incidents); });
  const auto es = b.engine->engine().stats();
  std::printf("page_bench: %zu VMs on %d hosts, %zu open incidents (set up in %.1f s)\n", es.vms,
              o.hosts, es.open_incidents, ms_since(t0) / 1000);
  if (!incidents) {
    std::cerr << "page_bench: the engine did not reach the fleet size in time\n";
    return 1;
  }
  auto web = node::EngineHttp::start({"127.0.0.1:0", "", "", ""}, *b.engine,
                                     [&b] { return node::engine_metrics_text(*b.engine); });
  if (!web.ok()) {
    std::cerr << "page_bench: " << web.status().message() << "\n";
    return 2;
  }
  const std::string url = (*web)->url();
  measure_get(b, url + "/api/v1/overview", o.requests, "GET /api/v1/overview");
  measure_get(b, url + "/api/v1/vms", o.requests, "GET /api/v1/vms");
  measure_get(b, url + "/metrics", o.requests, "GET /metrics");
  measure_page(b, url, newest_pending(b), o.runs, dir);
  web->reset();
  b.bulk.close();
  b.urgent.close();
  (void)b.engine->shutdown();
  b.engine.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  medic::bench::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : "0"; };
    if (a == "--vms") o.vms = std::stoi(next());
    else if (a == "--incidents") o.incidents = std::stoi(next());
    else if (a == "--requests") o.requests = std::max(1, std::stoi(next()));
    else if (a == "--runs") o.runs = std::stoi(next());
    else if (a.rfind("--benchmark", 0) == 0) continue;
    else {
      std::cerr << "usage: page_bench [--vms N] [--incidents N] [--requests N] [--runs N]\n";
      return 2;
    }
  }
  return medic::bench::run(o);
}
