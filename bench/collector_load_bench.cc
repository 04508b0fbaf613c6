// Collector benchmarks.
//
// Without a mode argument: Google Benchmark micro-benchmarks (building and
// sealing one flush of a 100-VM host), run by scripts/bench.
//
// With a mode, the three processes of bench/collector_bench.sh:
//   --http    SECONDS                 a loopback HTTP server; prints "port N"
//   --engine  SECONDS                 an engine-side SUB per lane (CurveZMQ),
//                                     opens every batch; prints its endpoints,
//                                     then totals at exit
//   --collector SECONDS PORT EVENTS URGENT [VMS PROBES [reuse]]
//             a collector for 100 simulated VMs (an in-bench Hypervisor
//             double: vmm/sim was not available when this was written) and
//             100 HTTP probes at 1 s against PORT; prints its RSS and CPU
//             share at exit.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "collectors/collector.h"
#include "collectors/publisher.h"
#include "fabric/envelope.h"
#include "fabric/transport.h"
#include "tests/unit/collectors/test_http_server.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;
using collectors::Lane;

constexpr const char* kHost = "bench-host";

fabric::Identity key(uint8_t b) {
  std::array<uint8_t, 32> seed{};
  seed.fill(b);
  return fabric::Identity::from_seed(seed);
}

fabric::TrustStore trust(const fabric::Identity& collector) {
  fabric::TrustStore t;
  fabric::TrustedNode n;
  n.name = kHost;
  n.key = collector.public_key();
  n.roles = static_cast<uint8_t>(fabric::Role::kCollector);
  n.hosts = {kHost};
  (void)t.add(n);
  return t;
}

// 100 VMs that beat once a second each, with a watchdog event every 10 s;
// driven by the Clock through poll(), like the sim backend.
class BenchHypervisor : public vmm::Hypervisor {
 public:
  BenchHypervisor(Clock& clock, int vms) : clock_(clock), host_(kHost) {
    for (int i = 0; i < vms; ++i) {
      vmm::VmInfo vm;
      vm.id = "00000000-0000-4000-8000-" + std::to_string(100000000000 + i);
      vm.name = "vm-" + std::to_string(i);
      vm.state = medic::v1::VM_STATE_RUNNING;
      vm.labels = {{"tier", i % 3 ? "web" : "batch"}, {"owner", "team-" + std::to_string(i % 7)}};
      vm.pid = ::getpid();  // real /proc reads, one per VM per flush
      vms_.push_back(vm);
    }
    next_beat_ = clock_.now() + 1s;
    next_lifecycle_ = clock_.now() + 10s;
  }
  const std::string& host() const override { return host_; }
  Result<std::vector<vmm::VmInfo>> list() override { return vms_; }
  Result<vmm::VmInfo> get(const std::string& id) override {
    for (const auto& vm : vms_) {
      if (vm.id == id) return vm;
    }
    return not_found(id);
  }
  void subscribe(EventSink sink) override { sink_ = std::move(sink); }
  void poll() override {
    const Time now = clock_.now();
    if (now >= next_beat_) {
      next_beat_ += 1s;
      ++counter_;
      for (const auto& vm : vms_) {
        if (sink_) sink_({vmm::VmEvent::Type::kHeartbeat, vm.id, {}, "", counter_, now});
      }
    }
    if (now >= next_lifecycle_) {
      next_lifecycle_ += 10s;
      if (sink_) {
        sink_({vmm::VmEvent::Type::kLifecycle,
               vms_.empty() ? std::string() : vms_[counter_ % vms_.size()].id,
               medic::v1::LIFECYCLE_WATCHDOG, "bench", 0, now});
      }
    }
  }
  void execute(vmm::Verb, const std::string&, Duration, VerbDone done) override {
    clock_.schedule_after(Duration::zero(), [done = std::move(done)] { done(Status()); });
  }

 private:
  Clock& clock_;
  std::string host_;
  std::vector<vmm::VmInfo> vms_;
  EventSink sink_;
  Time next_beat_, next_lifecycle_;
  uint64_t counter_ = 0;
};

class NullPublisher : public collectors::Publisher {
 public:
  void publish(Lane, const std::vector<std::string>& frames) override {
    for (const auto& f : frames) bytes += f.size();
  }
  collectors::PublisherCounters counters() const override { return {}; }
  size_t bytes = 0;
};

void BM_FlushOfAHundredVmHost(benchmark::State& state) {
  VirtualClock clock;
  BenchHypervisor hv(clock, static_cast<int>(state.range(0)));
  fabric::Identity id = key(1);
  NullPublisher pub;
  collectors::CollectorOptions opts;
  opts.host = kHost;
  auto c = collectors::Collector::create(opts, {&hv, &clock, &id, &pub, nullptr, nullptr});
  if (!c.ok()) {
    state.SkipWithError(c.status().to_string().c_str());
    return;
  }
  for (auto _ : state) (*c)->flush();
  state.counters["bytes_per_flush"] =
      static_cast<double>(pub.bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_FlushOfAHundredVmHost)->Arg(100)->Arg(1000);

void BM_UrgentLifecycleEvent(benchmark::State& state) {
  VirtualClock clock;
  BenchHypervisor hv(clock, 100);
  fabric::Identity id = key(1);
  NullPublisher pub;
  collectors::CollectorOptions opts;
  opts.host = kHost;
  auto c = collectors::Collector::create(opts, {&hv, &clock, &id, &pub, nullptr, nullptr});
  if (!c.ok()) {
    state.SkipWithError(c.status().to_string().c_str());
    return;
  }
  (*c)->start();
  vmm::VmEvent e{
      vmm::VmEvent::Type::kLifecycle, "vm-1", medic::v1::LIFECYCLE_PANICKED, "", 0, clock.now()};
  for (auto _ : state) (*c)->on_vm_event(e);  // seals and publishes at once
}
BENCHMARK(BM_UrgentLifecycleEvent);

std::atomic<bool> g_stop{false};

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::stoull(line.substr(n + 1));
  }
  return 0;
}

// Pss of this process (its share of pages shared with other processes).
uint64_t pss_kib() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Pss:", 0) == 0) return std::stoull(line.substr(4));
  }
  return 0;
}

// Resident KiB per mapped file, largest first: where the RSS goes.
std::vector<std::pair<uint64_t, std::string>> rss_by_file() {
  std::ifstream in("/proc/self/smaps");
  std::map<std::string, uint64_t> by;
  std::string line, name;
  while (std::getline(in, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') < line.find(' ')) {
      auto slash = line.find('/');
      auto bracket = line.find('[');
      name = slash != std::string::npos     ? line.substr(line.rfind('/') + 1)
             : bracket != std::string::npos ? line.substr(bracket)
                                            : "[anonymous]";
    } else if (line.rfind("Rss:", 0) == 0) {
      by[name] += std::stoull(line.substr(4));
    }
  }
  std::vector<std::pair<uint64_t, std::string>> out;
  for (const auto& [n, kib] : by) out.emplace_back(kib, n);
  std::sort(out.rbegin(), out.rend());
  return out;
}

int run_http(int seconds) {
  testing::TestHttpServer server;
  std::printf("port %d\n", server.port());
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!g_stop && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(100ms);
  std::printf("http: %zu requests\n", server.requests());
  return 0;
}

int run_engine(int seconds) {
  fabric::Identity engine = key(2), collector = key(1);
  fabric::TrustStore t = trust(collector);
  SystemClock clock;
  auto ctx = fabric::Context::create(t);
  if (!ctx.ok()) return std::fprintf(stderr, "%s\n", ctx.status().to_string().c_str()), 1;
  auto bulk = (*ctx)->bind(zmq::socket_type::sub, "tcp://127.0.0.1:*", engine);
  auto urgent = (*ctx)->bind(zmq::socket_type::sub, "tcp://127.0.0.1:*", engine);
  if (!bulk.ok() || !urgent.ok()) return std::fprintf(stderr, "cannot bind\n"), 1;
  bulk->set(zmq::sockopt::subscribe, "");
  urgent->set(zmq::sockopt::subscribe, "");
  std::printf("events %s\nurgent %s\n", bulk->get(zmq::sockopt::last_endpoint).c_str(),
              urgent->get(zmq::sockopt::last_endpoint).c_str());
  std::fflush(stdout);
  fabric::Opener opener(t, clock);
  uint64_t batches[2] = {0, 0}, events = 0, bad = 0;
  zmq::pollitem_t items[] = {{urgent->handle(), 0, ZMQ_POLLIN, 0},
                             {bulk->handle(), 0, ZMQ_POLLIN, 0}};
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!g_stop && std::chrono::steady_clock::now() < end) {
    try {
      zmq::poll(items, 2, 200ms);
    } catch (const zmq::error_t&) {
      continue;  // EINTR from the stop signal
    }
    for (int lane = 0; lane < 2; ++lane) {  // urgent first
      zmq::socket_t& s = lane == 0 ? *urgent : *bulk;
      zmq::message_t m;
      while (s.recv(m, zmq::recv_flags::dontwait)) {
        fabric::Opened o;
        medic::v1::EventBatch b;
        if (opener.open(m.to_string_view(), &o) != fabric::OpenError::kOk ||
            !fabric::decode_event_batch(o, &b).ok()) {
          ++bad;
          continue;
        }
        ++batches[lane];
        events += static_cast<uint64_t>(b.events_size());
      }
    }
  }
  std::printf("engine: %lu bulk batches, %lu urgent batches, %lu events, %lu rejected\n",
              batches[1], batches[0], events, bad);
  return 0;
}

int run_collector(int seconds, int port, const std::string& events, const std::string& urgent,
                  int vms, int probes, bool reuse) {
  fabric::Identity engine = key(2), collector = key(1);
  fabric::TrustStore none;
  SystemClock clock;
  auto ctx = fabric::Context::create(none);
  if (!ctx.ok()) return 1;
  collectors::EngineEndpoint ep{"engine", engine.public_key(), events, urgent};
  auto pub = collectors::ZmqPublisher::create({ep}, collectors::LaneConfig{},
                                              {**ctx, collector, none, clock});
  if (!pub.ok()) return std::fprintf(stderr, "%s\n", pub.status().to_string().c_str()), 1;
  BenchHypervisor hv(clock, vms);
  auto stats = collectors::make_process_stats();
  collectors::CollectorOptions opts;
  opts.host = kHost;
  opts.seed = 99;
  // For comparing timer slacks: MEDIC_COLLECTOR_TIMER_SLACK_MS=0 ...
  if (const char* slack = std::getenv("MEDIC_COLLECTOR_TIMER_SLACK_MS")) {
    opts.timer_slack = std::chrono::milliseconds(std::atoi(slack));
  }
  for (int i = 0; i < probes; ++i) {
    collectors::ProbeSpec p;
    p.name = "http-" + std::to_string(i);
    p.url = "http://127.0.0.1:" + std::to_string(port) + "/ok";
    p.body_contains = "medic";
    p.interval = 1s;
    p.timeout = 900ms;
    p.reuse_connection = reuse;
    opts.probes.push_back(p);
  }
  collectors::CollectorDeps deps{&hv, &clock, &collector, pub->get(), stats.get(), nullptr};
  auto c = collectors::Collector::create(opts, deps);
  if (!c.ok()) return std::fprintf(stderr, "%s\n", c.status().to_string().c_str()), 1;
  (*c)->start();
  // Warm up for 2 s (connections, first probe runs), then measure.
  const auto t0 = std::chrono::steady_clock::now();
  while (!g_stop && std::chrono::steady_clock::now() < t0 + 2s) (*c)->run_once(100ms);
  const double cpu0 = cpu_seconds();
  const auto w0 = std::chrono::steady_clock::now();
  const auto end = w0 + std::chrono::seconds(seconds);
  uint64_t peak_rss_kib = 0;
  auto next_sample = w0;
  while (!g_stop && std::chrono::steady_clock::now() < end) {
    (*c)->run_once(100ms);
    if (std::chrono::steady_clock::now() >= next_sample) {  // once a second: cheap
      next_sample += 1s;
      peak_rss_kib = std::max(peak_rss_kib, status_kib("VmRSS:"));
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  const double cpu = cpu_seconds() - cpu0;
  const auto& cc = (*c)->counters();
  const auto pc = (*pub)->counters();
  const auto& probe = (*c)->probes().counters();
  std::printf(
      "collector: %d VMs, %d HTTP probes at 1s (%s), measured %.1f s after a 2 s "
      "warm-up\n",
      vms, probes, reuse ? "connections reused" : "fresh connection per run", wall);
  std::printf("collector: cpu %.3f s = %.2f%% of one core\n", cpu, 100.0 * cpu / wall);
  std::printf(
      "collector: rss now %lu KiB (anonymous %lu KiB, file-backed library pages %lu "
      "KiB), peak during run %lu KiB, VmHWM %lu KiB\n",
      status_kib("VmRSS:"), status_kib("RssAnon:"), status_kib("RssFile:"), peak_rss_kib,
      status_kib("VmHWM:"));
  std::printf("collector: pss %lu KiB; largest resident mappings:", pss_kib());
  auto maps = rss_by_file();
  for (size_t i = 0; i < maps.size() && i < 8; ++i) {
    std::printf(" %s %lu KiB%s", maps[i].second.c_str(), maps[i].first, i < 7 ? "," : "\n");
  }
  std::printf(
      "collector: %lu flushes, %lu bulk batches, %lu urgent batches, %lu heartbeats, "
      "max urgent latency %ld us\n",
      cc.flushes, cc.bulk_batches, cc.urgent_batches, cc.heartbeats,
      static_cast<long>(cc.max_urgent_latency.count() / 1000));
  std::printf("collector: probes started %lu ok %lu failed %lu skipped %lu\n", probe.started,
              probe.succeeded, probe.failed, probe.skipped_overlap);
  std::printf("collector: frames sent bulk %lu urgent %lu, dropped bulk %lu urgent %lu\n",
              pc.sent[0], pc.sent[1], pc.dropped[0], pc.dropped[1]);
  c->reset();
  pub->reset();
  return 0;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  using namespace medic::bench;
  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::signal(SIGINT, [](int) { g_stop = true; });
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--http" && argc > 2) return run_http(std::atoi(argv[2]));
  if (mode == "--engine" && argc > 2) return run_engine(std::atoi(argv[2]));
  if (mode == "--collector" && argc > 5) {
    return run_collector(std::atoi(argv[2]), std::atoi(argv[3]), argv[4], argv[5],
                         argc > 6 ? std::atoi(argv[6]) : 100, argc > 7 ? std::atoi(argv[7]) : 100,
                         argc > 8 && std::string(argv[8]) == "reuse");
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
