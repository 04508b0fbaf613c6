// The whole decision path under load, in one process over real sockets:
// N simulated collectors (one thread each) send signed EventBatches over tcp
// loopback with CurveZMQ to one EngineNode (main thread) with 100 generated
// rules plus the realistic ones and the audit log on (a temp SQLite file); an
// Actuator on its own thread with an in-process Hypervisor double that
// returns at once. Measures:
//   ingest     events/s the engine consumed (EngineNode::stats().events),
//              per wall second and per second of the engine thread's CPU;
//   decision   urgent panic batch sent -> EngineObserver::on_decision, and a
//              bulk-lane state report sent -> its rule's decision;
//   executed   urgent panic batch sent -> Hypervisor::execute in the actuator.
// Latencies are measured idle and while the collectors flood the bulk lane.
// Then the floor of the idle panic -> executed in the same directory (two
// durable SQLite commits and a loopback round trip per sample,
// bench/floor/durable_floor.h) and the idle figure's ratio to it.
//
//   build/bench/pipeline_bench [--collectors N] [--events N] [--batch N]
//                              [--panics N] [--json FILE]
//                              [--audit-durability power-loss|process-crash]
//                              [--scrape-ms N]
// --scrape-ms N turns metrics on as an operator would run them: the engine's
// HTTP listener, and a thread that GETs /metrics every N ms for the whole
// run (each scrape is rendered on the engine's thread). Without it the
// listener is off. The cost of metrics is the ingest ratio of the two:
//   B_ARGS="--scrape-ms 100" bench/pipeline_ab BIN BIN 5
// Every phase is bounded in count and in time. Google Benchmark's
// --benchmark_* flags (scripts/bench passes them) are accepted and ignored.
// Figures: docs/PERFORMANCE.md, "Pipeline".
#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actuators/actuator.h"
#include "bench/bench_rules.h"
#include "bench/floor/durable_floor.h"
#include "core/clock.h"
#include "fabric/envelope.h"
#include "fabric/transport.h"
#include "node/engine_http.h"
#include "node/engine_metrics.h"
#include "node/engine_node.h"
#include "rules/loader.h"
#include "vmm/hypervisor.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch())
      .count();
}

int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct Options {
  int collectors = 4;
  int64_t events = 3'000'000;  // bulk events in the flood, all collectors together
  int batch = 1000;            // events per envelope: one host's 1000 VMs
  int panics = 200;            // per latency phase
  std::string json;
  bool power_loss = true;  // audit durability: fsync at every commit (the default)
  int scrape_ms = 0;       // 0: no HTTP listener, no scrapes
};

// GETs /metrics every `every` until destroyed, on its own thread.
class Scraper {
 public:
  Scraper(std::string url, std::chrono::milliseconds every)
      : url_(std::move(url)), every_(every), thread_([this] { loop(); }) {}
  ~Scraper() {
    stop_.store(true);
    thread_.join();
  }
  uint64_t scrapes() const { return scrapes_.load(); }
  uint64_t failures() const { return failures_.load(); }
  size_t last_bytes() const { return last_bytes_.load(); }

 private:
  static size_t append(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  void loop() {
    CURL* c = curl_easy_init();
    const std::string url = url_ + "/metrics";
    std::string body;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    for (int i = 0; i < 100'000 && !stop_.load(); ++i) {
      body.clear();
      long status = 0;
      if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
      if (status == 200) {
        ++scrapes_;
        last_bytes_.store(body.size());
      } else {
        ++failures_;
      }
      std::this_thread::sleep_for(every_);
    }
    curl_easy_cleanup(c);
  }
  std::string url_;
  std::chrono::milliseconds every_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> scrapes_{0}, failures_{0};
  std::atomic<size_t> last_bytes_{0};
  std::thread thread_;
};

// 100 rules that each read a label of every state report and never match the
// flood (its tier is "bulk"), one per tier t0..t99 that the bulk-lane
// latency probes hit, plus the rules a real deployment has.
std::string rule_text() {
  std::string y = medic::bench::tier_rules(100);
  y += R"(  - name: guest-panicked
    on: vm.panicked
    do: reset
    cooldown: 1s
    budget: 100 per 1m
    storm_guard: false
  - name: guest-crashed
    on: vm.crashed
    do: restart
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    where: vm.state == "running"
    do: [reboot, reset, restart, notify]
)";
  return y;
}

// Answers every VM as running with a fresh heartbeat, executes at once and
// records when each panic's verb arrived.
class InstantHypervisor final : public vmm::Hypervisor {
 public:
  InstantHypervisor(std::string host, Clock& clock, std::vector<std::atomic<int64_t>>& executed)
      : host_(std::move(host)), clock_(clock), executed_(executed) {}
  const std::string& host() const override { return host_; }
  Result<std::vector<vmm::VmInfo>> list() override { return std::vector<vmm::VmInfo>{}; }
  Result<vmm::VmInfo> get(const std::string& vm) override {
    vmm::VmInfo info;
    info.id = vm;
    info.name = vm;
    info.state = medic::v1::VM_STATE_RUNNING;
    info.last_heartbeat = clock_.now();
    return info;
  }
  void subscribe(EventSink) override {}
  void poll() override {}
  void execute(vmm::Verb, const std::string& vm, Duration, VerbDone done) override {
    const int64_t now = steady_ns();
    // VM ids of the probes are "p<k>"
    if (vm.size() > 1 && vm[0] == 'p') {
      size_t k = std::stoul(vm.substr(1));
      if (k < executed_.size()) executed_[k].store(now);
    }
    ++count;
    clock_.schedule_after(Duration::zero(), [done = std::move(done)] { done(Status()); });
  }
  std::atomic<uint64_t> count{0};

 private:
  std::string host_;
  Clock& clock_;
  std::vector<std::atomic<int64_t>>& executed_;
};

// Timestamps of decisions on the probe VMs ("p<k>"), taken on the engine thread.
class Observer final : public node::EngineObserver {
 public:
  Observer(std::vector<std::atomic<int64_t>>& decided, std::vector<std::atomic<int64_t>>& dispatched)
      : decided_(decided), dispatched_(dispatched) {}
  // The first send of an action: its decision and "dispatched" record are
  // durable in the audit log.
  void on_dispatch_event(const actuators::DispatchEvent& e) override {
    if (e.state != ActionState::kDispatched) return;
    const std::string& vm = e.action.vm();
    if (vm.size() > 1 && vm[0] == 'p') {
      size_t k = std::stoul(vm.substr(1));
      if (k < dispatched_.size() && dispatched_[k].load() == 0) dispatched_[k].store(steady_ns());
    }
  }
  void on_decision(const rules::Decision& d) override {
    const int64_t now = steady_ns();
    ++decisions;
    if (d.vm.size() > 1 && d.vm[0] == 'p') {
      size_t k = std::stoul(d.vm.substr(1));
      if (k < decided_.size() && decided_[k].load() == 0) decided_[k].store(now);
    }
  }
  uint64_t decisions = 0;

 private:
  std::vector<std::atomic<int64_t>>& decided_;
  std::vector<std::atomic<int64_t>>& dispatched_;
};

struct Percentiles {
  size_t n = 0;
  size_t missing = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;
};

// One latency phase: sent -> decided, sent -> executed, and the executed
// path split at the dispatch: decided -> dispatched (the audit outbox made
// durable), dispatched -> executed (to the actuator, its journal, execute).
struct PhaseResult {
  Percentiles decision, executed, durable, delivered;
};

Percentiles percentiles(std::vector<int64_t> ns, size_t missing) {
  Percentiles p;
  p.n = ns.size();
  p.missing = missing;
  if (ns.empty()) return p;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(ns.size() - 1) + 0.5);
    return static_cast<double>(ns[i]) / 1000.0;
  };
  p.p50_us = at(0.50);
  p.p99_us = at(0.99);
  p.max_us = static_cast<double>(ns.back()) / 1000.0;
  return p;
}

medic::v1::Event state_event(const std::string& host, const std::string& vm, Time now,
                             const std::string& tier) {
  medic::v1::Event e;
  e.set_host(host);
  e.set_vm(vm);
  e.set_observed_at_ns(to_ns(now));
  auto* s = e.mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  s->set_last_heartbeat_ns(to_ns(now));
  s->set_cpu_percent(12.5);
  s->set_rss_bytes(512ull << 20);
  s->set_uptime_ns(3'600'000'000'000);
  const std::pair<const char*, std::string> labels[] = {
      {"tier", tier}, {"team", "core"}, {"zone", "z1"}};
  for (const auto& [k, v] : labels) {
    auto* l = s->add_labels();
    l->set_key(k);
    l->set_value(v);
  }
  return e;
}

struct Fleet {
  fabric::Identity engine_id = fabric::Identity::generate();
  fabric::Identity probe_id = fabric::Identity::generate();
  std::vector<fabric::Identity> collector_ids;
  fabric::TrustStore trust;
};

void add_trusted(fabric::TrustStore& trust, const std::string& name, const fabric::Identity& id,
                 uint8_t roles, std::vector<std::string> hosts) {
  fabric::TrustedNode n;
  n.name = name;
  n.key = id.public_key();
  n.roles = roles;
  n.hosts = std::move(hosts);
  Status s = trust.add(n);
  if (!s.ok()) {
    std::cerr << "trust: " << s.message() << "\n";
    std::exit(2);
  }
}

fabric::SocketOptions pub_options(int hwm) {
  fabric::SocketOptions o;
  o.pub_nodrop = true;
  o.send_hwm = hwm;
  o.linger_ms = 0;
  return o;
}

// Sends `frame` on a PUB socket with ZMQ_XPUB_NODROP, retrying on EAGAIN
// until `deadline_ns`; false when it could not be sent in time.
bool send_frame(zmq::socket_t& s, const std::string& frame, int64_t deadline_ns) {
  while (true) {
    auto r = s.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    if (r.has_value()) return true;
    if (steady_ns() > deadline_ns) return false;
    std::this_thread::sleep_for(50us);
  }
}

// Metrics on: the engine's listener, and a scraper at `every_ms`.
bool start_metrics(node::EngineNode& engine, int every_ms, std::unique_ptr<node::EngineHttp>* web,
                   std::unique_ptr<Scraper>* scraper) {
  auto started = node::EngineHttp::start({"127.0.0.1:0", "", "", ""}, engine,
                                         [&engine] { return node::engine_metrics_text(engine); });
  if (!started.ok()) {
    std::cerr << started.status().message() << "\n";
    return false;
  }
  *web = std::move(*started);
  *scraper = std::make_unique<Scraper>((*web)->url(), std::chrono::milliseconds(every_ms));
  return true;
}

// The floor of panic -> executed, idle, measured after the run in the same
// directory: per sample two durable commits (the audit log's and the
// actuator journal's) and one loopback round trip (collector -> engine and
// engine -> actuator are two one-way hops), as many samples as panics.
void report_floor(const std::filesystem::path& dir, const Percentiles& executed) {
  const int n = static_cast<int>(std::max<size_t>(executed.n, 1));
  std::filesystem::create_directories(dir / "floor-audit");
  std::filesystem::create_directories(dir / "floor-journal");
  const auto audit = commit_floor((dir / "floor-audit").string(), n);
  const auto journal = commit_floor((dir / "floor-journal").string(), n);
  const auto trip = round_trip_floor(n);
  if (audit.size() != static_cast<size_t>(n) || journal.size() != audit.size() ||
      trip.size() != audit.size()) {
    std::printf("floor: not measured (a step failed)\n");
    return;
  }
  std::vector<double> floor;
  for (int i = 0; i < n; ++i) floor.push_back(audit[i] + journal[i] + trip[i]);
  const double p50 = percentile(floor, 0.5) * 1000, p99 = percentile(floor, 0.99) * 1000;
  std::printf("%-44s n=%4d p50=%9.1f us  p99=%9.1f us  (commit p50 %.1f us, round trip p50 %.1f us)\n",
              "floor: 2 durable commits + 1 round trip", n, p50, p99,
              percentile(audit, 0.5) * 1000, percentile(trip, 0.5) * 1000);
  std::printf("panic -> executed, idle / floor: p50 %.2fx  p99 %.2fx (goal p99 within 1.3x)\n",
              executed.p50_us / p50, executed.p99_us / p99);
}

int run(const Options& o) {
  spdlog::set_level(spdlog::level::err);  // the tier rules notify on every probe
  const auto dir = std::filesystem::temp_directory_path() /
                   ("medic-pipeline-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);

  Fleet fleet;
  const uint8_t collector_roles = static_cast<uint8_t>(fabric::Role::kCollector) |
                                  static_cast<uint8_t>(fabric::Role::kActuator);
  add_trusted(fleet.trust, "engine-1", fleet.engine_id, static_cast<uint8_t>(fabric::Role::kEngine),
              {"*"});
  add_trusted(fleet.trust, "host-act", fleet.probe_id, collector_roles, {"host-act"});
  for (int i = 0; i < o.collectors; ++i) {
    fleet.collector_ids.push_back(fabric::Identity::generate());
    add_trusted(fleet.trust, "host-" + std::to_string(i), fleet.collector_ids.back(),
                collector_roles, {"host-" + std::to_string(i)});
  }
  auto ctx = fabric::Context::create(fleet.trust);
  if (!ctx.ok()) {
    std::cerr << ctx.status().message() << "\n";
    return 2;
  }

  auto loaded = rules::load_rule_text(rule_text(), "pipeline.rules.yaml");
  if (!loaded.ok()) {
    std::cerr << loaded.text();
    return 2;
  }
  node::EngineConfig cfg;
  cfg.name = "engine-1";
  cfg.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  cfg.actions_endpoint = "tcp://127.0.0.1:*";
  cfg.control_endpoint = "tcp://127.0.0.1:*";
  cfg.audit_path = (dir / "audit.db").string();
  cfg.engine.max_in_flight_per_host = 10'000;
  cfg.engine.max_in_flight_fleet = 10'000;
  cfg.engine.storm.min_vms = 1'000'000'000;
  cfg.audit.durability =
      o.power_loss ? audit::Durability::kPowerLoss : audit::Durability::kProcessCrash;
  SystemClock clock;  // the engine's, and so the audit store's
  auto store = audit::open_sqlite_store(cfg.audit_path, clock, fleet.engine_id, cfg.audit);
  if (!store.ok()) {
    std::cerr << store.status().message() << "\n";
    return 2;
  }

  // Probe k (a VM named "p<k>") is used once: sent, decided, executed.
  const size_t probes = static_cast<size_t>(o.panics) * 3;
  std::vector<std::atomic<int64_t>> sent(probes), decided(probes), dispatched(probes),
      executed(probes);
  Observer observer(decided, dispatched);
  auto node = node::EngineNode::create(cfg, {**ctx, fleet.engine_id, fleet.trust, clock},
                                       loaded.rules, std::move(*store), &observer);
  if (!node.ok()) {
    std::cerr << node.status().message() << "\n";
    return 2;
  }
  node::EngineNode& engine = **node;
  std::unique_ptr<node::EngineHttp> web;
  std::unique_ptr<Scraper> scraper;
  if (o.scrape_ms > 0 && !start_metrics(engine, o.scrape_ms, &web, &scraper)) return 2;

  // The actuator, on its own thread with its own clock.
  std::atomic<bool> stop_actuator{false};
  SystemClock act_clock;
  InstantHypervisor hv("host-act", act_clock, executed);
  actuators::ActuatorOptions ao;
  ao.host = "host-act";
  ao.engine_endpoint = engine.actions_endpoint();
  ao.engine_key = fleet.engine_id.public_key();
  ao.journal_path = (dir / "journal.db").string();
  ao.default_watch = 2s;
  ao.watch_poll = 5ms;
  auto act = actuators::Actuator::create(ao, {**ctx, fleet.probe_id, fleet.trust, act_clock}, hv);
  if (!act.ok()) {
    std::cerr << act.status().message() << "\n";
    return 2;
  }
  std::thread actuator_thread([&] {
    while (!stop_actuator.load()) (*act)->run_once(1ms);
  });

  // The probe sender: urgent panics and bulk-lane tier reports for host-act.
  auto probe_urgent = (*ctx)->connect(zmq::socket_type::pub, engine.urgent_endpoint(),
                                      fleet.probe_id, fleet.engine_id.public_key(),
                                      pub_options(1000));
  auto probe_bulk = (*ctx)->connect(zmq::socket_type::pub, engine.events_endpoint(),
                                    fleet.probe_id, fleet.engine_id.public_key(),
                                    pub_options(1000));
  if (!probe_urgent.ok() || !probe_bulk.ok()) {
    std::cerr << "probe sockets failed\n";
    return 2;
  }
  // One sealer per lane, as a collector has: each its own stream of sequence numbers.
  fabric::Sealer probe_bulk_sealer(fleet.probe_id, 0, 1);
  fabric::Sealer probe_urgent_sealer(fleet.probe_id, 1, 1);

  // Runs the engine on this thread until `done` or `limit` passes.
  auto pump = [&](const std::function<bool()>& done, Duration limit) {
    const auto end = Steady::now() + limit;
    while (!done() && Steady::now() < end) engine.run_once(1ms);
    return done();
  };

  // Slow joiners: a PUB drops what it sends before the engine's SUB has
  // subscribed, so each lane says hello until the engine has heard it.
  auto hello = [&](zmq::socket_t& s, bool urgent, const std::string& host,
                   fabric::Sealer& sealer) {
    medic::v1::EventBatch b;
    b.set_urgent(urgent);
    auto* e = b.add_events();
    e->set_host(host);
    e->mutable_heartbeat()->set_counter(1);
    e->set_vm("hello");
    const uint64_t before = engine.stats().batches;
    for (int i = 0; i < 200; ++i) {
      (void)send_frame(s, sealer.seal(medic::v1::KIND_EVENT_BATCH, host, b.SerializeAsString(),
                                      clock.now()),
                       steady_ns() + 100'000'000);
      if (pump([&] { return engine.stats().batches > before; }, 20ms)) return true;
    }
    return false;
  };
  if (!hello(*probe_urgent, true, "host-act", probe_urgent_sealer) ||
      !hello(*probe_bulk, false, "host-act", probe_bulk_sealer)) {
    std::cerr << "the engine never heard the probe sender\n";
    return 2;
  }

  // One latency phase: `count` probes from `first`, each sent after the
  // previous one was decided (and executed, for panics), on the probe thread
  // while this thread runs the engine.
  auto probe_phase = [&](size_t first, size_t count, bool panic, std::atomic<bool>* flood_on) {
    std::atomic<bool> finished{false};
    std::thread sender([&] {
      for (size_t k = first; k < first + count; ++k) {
        if (flood_on && !flood_on->load()) break;
        medic::v1::EventBatch b;
        const std::string vm = "p" + std::to_string(k);
        std::string frame;
        if (panic) {
          b.set_urgent(true);
          auto* e = b.add_events();
          e->set_host("host-act");
          e->set_vm(vm);
          e->set_observed_at_ns(to_ns(clock.now()));
          e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
          e->mutable_lifecycle()->set_detail("Kernel panic - not syncing: bench");
        } else {
          *b.add_events() = state_event("host-act", vm, clock.now(), "t" + std::to_string(k % 100));
        }
        frame = (panic ? probe_urgent_sealer : probe_bulk_sealer).seal(medic::v1::KIND_EVENT_BATCH, "host-act", b.SerializeAsString(),
                                  clock.now());
        sent[k].store(steady_ns());
        if (!send_frame(panic ? *probe_urgent : *probe_bulk, frame, steady_ns() + 1'000'000'000)) {
          continue;
        }
        const int64_t limit = steady_ns() + 200'000'000;
        while (steady_ns() < limit) {
          bool done = decided[k].load() != 0 && (!panic || executed[k].load() != 0);
          if (done) break;
          std::this_thread::sleep_for(20us);
        }
        std::this_thread::sleep_for(1ms);  // space them: one incident at a time
      }
      finished.store(true);
    });
    pump([&] { return finished.load(); }, 120s);
    sender.join();
    std::vector<int64_t> dec, exe, durable, delivered;
    size_t dec_missing = 0, exe_missing = 0;
    for (size_t k = first; k < first + count; ++k) {
      if (sent[k].load() == 0) continue;
      if (decided[k].load()) dec.push_back(decided[k].load() - sent[k].load());
      else ++dec_missing;
      if (panic) {
        if (executed[k].load()) exe.push_back(executed[k].load() - sent[k].load());
        else ++exe_missing;
        if (decided[k].load() && dispatched[k].load()) {
          durable.push_back(dispatched[k].load() - decided[k].load());
        }
        if (dispatched[k].load() && executed[k].load()) {
          delivered.push_back(executed[k].load() - dispatched[k].load());
        }
      }
    }
    return PhaseResult{percentiles(dec, dec_missing), percentiles(exe, exe_missing),
                       percentiles(durable, 0), percentiles(delivered, 0)};
  };

  const size_t n = static_cast<size_t>(o.panics);
  const PhaseResult idle_panic = probe_phase(0, n, true, nullptr);
  const PhaseResult idle_bulk = probe_phase(n, n, false, nullptr);

  // The flood: each collector pre-seals its share (one envelope = one host's
  // `batch` VMs), then sends as fast as the engine takes them.
  const int64_t frames_per_collector =
      std::max<int64_t>(1, o.events / o.batch / std::max(1, o.collectors));
  std::vector<std::vector<std::string>> frames(static_cast<size_t>(o.collectors));
  size_t frame_bytes = 0;
  {
    std::vector<std::thread> sealers;
    for (int c = 0; c < o.collectors; ++c) {
      sealers.emplace_back([&, c] {
        const std::string host = "host-" + std::to_string(c);
        fabric::Sealer sealer(fleet.collector_ids[static_cast<size_t>(c)], 0, 1);
        auto& out = frames[static_cast<size_t>(c)];
        out.reserve(static_cast<size_t>(frames_per_collector) + 1);
        // The first frame is the hello (same sealer, so sequence numbers rise).
        medic::v1::EventBatch b;
        std::vector<std::string> vms;
        for (int v = 0; v < o.batch; ++v) vms.push_back(host + "-vm-" + std::to_string(v));
        for (int64_t f = 0; f <= frames_per_collector; ++f) {
          b.Clear();
          const Time now = clock.now();
          if (f == 0) {
            auto* e = b.add_events();
            e->set_host(host);
            e->set_vm("hello");
            e->mutable_heartbeat()->set_counter(1);
          } else {
            for (int v = 0; v < o.batch; ++v) {
              *b.add_events() = state_event(host, vms[static_cast<size_t>(v)], now, "bulk");
            }
          }
          out.push_back(sealer.seal(medic::v1::KIND_EVENT_BATCH, host, b.SerializeAsString(), now));
        }
      });
    }
    for (auto& t : sealers) t.join();
    frame_bytes = frames[0].back().size();
  }
  std::vector<zmq::socket_t> pubs;
  for (int c = 0; c < o.collectors; ++c) {
    auto s = (*ctx)->connect(zmq::socket_type::pub, engine.events_endpoint(),
                             fleet.collector_ids[static_cast<size_t>(c)],
                             fleet.engine_id.public_key(), pub_options(64));
    if (!s.ok()) {
      std::cerr << s.status().message() << "\n";
      return 2;
    }
    pubs.push_back(std::move(*s));
  }
  // Hello per collector: resend the pre-sealed hello until heard; the
  // engine's replay check accepts the first copy only.
  for (int c = 0; c < o.collectors; ++c) {
    const uint64_t before = engine.stats().batches;
    bool heard = false;
    for (int i = 0; i < 200 && !heard; ++i) {
      (void)pubs[static_cast<size_t>(c)].send(zmq::buffer(frames[static_cast<size_t>(c)][0]),
                                              zmq::send_flags::dontwait);
      heard = pump([&] { return engine.stats().batches > before; }, 20ms);
    }
    if (!heard) {
      std::cerr << "the engine never heard collector " << c << "\n";
      return 2;
    }
  }

  std::atomic<bool> flood_on{true};
  std::atomic<int> flooding{o.collectors};
  std::atomic<int64_t> frames_sent{0}, frames_unsent{0};
  const uint64_t events_before = engine.stats().events;
  const uint64_t batches_before = engine.stats().batches;
  const int64_t flood_start = steady_ns();
  const int64_t flood_deadline = flood_start + 60'000'000'000;  // bound: 60 s
  std::vector<std::thread> senders;
  for (int c = 0; c < o.collectors; ++c) {
    senders.emplace_back([&, c] {
      auto& fs = frames[static_cast<size_t>(c)];
      for (size_t f = 1; f < fs.size(); ++f) {
        if (!flood_on.load()) break;
        if (send_frame(pubs[static_cast<size_t>(c)], fs[f], flood_deadline)) ++frames_sent;
        else ++frames_unsent;
      }
      --flooding;
    });
  }
  // Panic latency under the flood, then drain what is left of the flood.
  const int64_t cpu_before = thread_cpu_ns();
  const PhaseResult load_panic = probe_phase(2 * n, n, true, nullptr);
  const uint64_t expected = static_cast<uint64_t>(frames_per_collector) *
                            static_cast<uint64_t>(o.collectors) * static_cast<uint64_t>(o.batch);
  int64_t last_progress = steady_ns();
  uint64_t last_events = engine.stats().events;
  while (engine.stats().events - events_before < expected + n && steady_ns() < flood_deadline) {
    engine.run_once(1ms);
    if (engine.stats().events != last_events) {
      last_events = engine.stats().events;
      last_progress = steady_ns();
    } else if (flooding.load() == 0 && steady_ns() - last_progress > 500'000'000) {
      break;  // senders done and nothing arrived for 0.5 s: the rest was lost
    }
  }
  const int64_t flood_end = last_progress;
  const int64_t cpu_used = thread_cpu_ns() - cpu_before;
  flood_on.store(false);
  for (auto& t : senders) t.join();
  const uint64_t consumed = engine.stats().events - events_before;
  const uint64_t batches = engine.stats().batches - batches_before;
  const double wall_s = static_cast<double>(flood_end - flood_start) / 1e9;
  const double cpu_s = static_cast<double>(cpu_used) / 1e9;
  const double rate_wall = static_cast<double>(consumed) / wall_s;
  const double rate_cpu = static_cast<double>(consumed) / cpu_s;

  stop_actuator.store(true);
  actuator_thread.join();
  const uint64_t scrapes = scraper ? scraper->scrapes() : 0;
  const uint64_t scrape_failures = scraper ? scraper->failures() : 0;
  const size_t scrape_bytes = scraper ? scraper->last_bytes() : 0;
  scraper.reset();
  web.reset();
  const auto st = engine.stats();
  const uint64_t rejected = engine.receiver().rejections().rejected();
  pubs.clear();
  probe_urgent->close();
  probe_bulk->close();
  act->reset();
  (void)engine.shutdown();
  node->reset();

  auto line = [](const char* what, const Percentiles& p, double goal_us) {
    std::printf("%-44s n=%4zu missing=%zu p50=%9.1f us  p99=%9.1f us  max=%9.1f us", what, p.n,
                p.missing, p.p50_us, p.p99_us, p.max_us);
    if (goal_us > 0) std::printf("  (p99 goal %.0f us: ratio %.2f)", goal_us, p.p99_us / goal_us);
    std::printf("\n");
  };
  std::printf(
      "pipeline_bench: %d collectors, %d events/envelope (%zu bytes), 103 rules, audit on "
      "(%s, durability %s), tcp loopback + CurveZMQ\n",
      o.collectors, o.batch, frame_bytes, cfg.audit_path.c_str(),
      o.power_loss ? "power-loss" : "process-crash");
  if (o.scrape_ms > 0) {
    std::printf("metrics: /metrics scraped %llu times (every %d ms, %zu bytes), %llu failed\n",
                static_cast<unsigned long long>(scrapes), o.scrape_ms, scrape_bytes,
                static_cast<unsigned long long>(scrape_failures));
  } else {
    std::printf("metrics: listener off\n");
  }
  std::printf("ingest: %llu events in %llu batches over %.2f s wall; engine thread CPU %.2f s\n",
              static_cast<unsigned long long>(consumed), static_cast<unsigned long long>(batches),
              wall_s, cpu_s);
  std::printf("ingest rate: %.0f events/s wall (goal 1M: ratio %.2f), %.0f events per engine "
              "CPU second (ratio %.2f)\n",
              rate_wall, rate_wall / 1e6, rate_cpu, rate_cpu / 1e6);
  std::printf("flood frames sent %lld, not sent in time %lld, events expected %llu, lost %lld\n",
              static_cast<long long>(frames_sent.load()),
              static_cast<long long>(frames_unsent.load()),
              static_cast<unsigned long long>(expected),
              static_cast<long long>(expected + n) - static_cast<long long>(consumed));
  line("decision, panic (urgent), idle", idle_panic.decision, 0);
  line("panic -> executed, idle", idle_panic.executed, 2000);
  line("  of which decided -> dispatched (durable)", idle_panic.durable, 0);
  line("  of which dispatched -> executed", idle_panic.delivered, 0);
  line("decision, state report (bulk lane), idle", idle_bulk.decision, 0);
  line("decision, panic (urgent), under flood", load_panic.decision, 0);
  line("panic -> executed, under flood", load_panic.executed, 2000);
  line("  of which decided -> dispatched (durable)", load_panic.durable, 0);
  line("  of which dispatched -> executed", load_panic.delivered, 0);
  report_floor(dir, idle_panic.executed);
  std::printf("engine: %llu decisions, %llu dispatched, %llu audit errors, %llu rejected frames; "
              "actuator executed %llu\n",
              static_cast<unsigned long long>(st.decisions),
              static_cast<unsigned long long>(st.dispatched),
              static_cast<unsigned long long>(st.audit_errors),
              static_cast<unsigned long long>(rejected),
              static_cast<unsigned long long>(hv.count.load()));

  if (!o.json.empty()) {
    std::ofstream j(o.json);
    auto pj = [&](const char* k, const Percentiles& p) {
      j << "  \"" << k << "\": {\"n\": " << p.n << ", \"missing\": " << p.missing
        << ", \"p50_us\": " << p.p50_us << ", \"p99_us\": " << p.p99_us
        << ", \"max_us\": " << p.max_us << "},\n";
    };
    j << "{\n  \"collectors\": " << o.collectors << ",\n  \"batch\": " << o.batch
      << ",\n  \"events\": " << consumed << ",\n  \"events_per_s_wall\": " << rate_wall
      << ",\n  \"events_per_engine_cpu_s\": " << rate_cpu << ",\n";
    pj("decision_panic_idle", idle_panic.decision);
    pj("executed_panic_idle", idle_panic.executed);
    pj("decision_bulk_idle", idle_bulk.decision);
    pj("decision_panic_flood", load_panic.decision);
    pj("executed_panic_flood", load_panic.executed);
    j << "  \"decisions\": " << st.decisions << "\n}\n";
  }
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
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--collectors") o.collectors = std::stoi(next());
    else if (a == "--events") o.events = std::stoll(next());
    else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--panics") o.panics = std::stoi(next());
    else if (a == "--json") o.json = next();
    else if (a == "--scrape-ms") o.scrape_ms = std::stoi(next());
    else if (a == "--audit-durability") {
      const std::string v = next();
      if (v != "power-loss" && v != "process-crash") {
        std::cerr << "pipeline_bench: --audit-durability power-loss|process-crash\n";
        return 2;
      }
      o.power_loss = v == "power-loss";
    }
    else if (a.rfind("--benchmark_out=", 0) == 0) o.json = a.substr(16);
    else if (a.rfind("--benchmark", 0) == 0) continue;
    else {
      std::cerr << "usage: pipeline_bench [--collectors N] [--events N] [--batch N] "
                   "[--panics N] [--json FILE] [--audit-durability power-loss|process-crash] "
                   "[--scrape-ms N]\n";
      return 2;
    }
  }
  if (o.collectors < 1 || o.batch < 1 || o.panics < 1 || o.events < 1) {
    std::cerr << "pipeline_bench: every count must be >= 1\n";
    return 2;
  }
  return medic::bench::run(o);
}
