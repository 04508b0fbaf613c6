// The engine thread's work per flood batch of pipeline_bench, without the
// sockets: open a signed EventBatch of 1000 VM state reports (envelope
// checks, Ed25519 verify, strict payload walk filling the receiver's reused
// batch, replay guard), take the decoded batch, then host_seen
// and Engine::ingest for every event, with pipeline_bench's 103 rules. Deterministic, so it also runs
// under callgrind to count instructions per stage:
//
//   build/bench/ingest_bench
//   bench/ingest_callgrind.sh build/bench/ingest_bench   (instructions per event, by stage)
//
// Figures: docs/PERFORMANCE.md, "Session 3".
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/bench_rules.h"
#include "core/clock.h"
#include "fabric/envelope.h"
#include "rules/engine.h"
#include "rules/loader.h"

namespace medic::bench {
namespace {

constexpr int kBatch = 1000;
constexpr int kHosts = 4;
constexpr size_t kFramesPerHost = 64;

// pipeline_bench's rules: 100 tier rules the flood never matches, plus the
// rules a real deployment has.
std::string rule_text() {
  std::string y = tier_rules(100);
  y += R"(  - name: guest-panicked
    on: vm.panicked
    do: reset
    cooldown: 1s
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

// pipeline_bench's flood event: a running VM with three labels.
void add_state_event(medic::v1::EventBatch* b, const std::string& host, const std::string& vm,
                     Time now) {
  auto* e = b->add_events();
  e->set_host(host);
  e->set_vm(vm);
  e->set_observed_at_ns(to_ns(now));
  auto* s = e->mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  s->set_last_heartbeat_ns(to_ns(now));
  s->set_cpu_percent(12.5);
  s->set_rss_bytes(512ull << 20);
  s->set_uptime_ns(3'600'000'000'000);
  const char* labels[][2] = {{"tier", "bulk"}, {"team", "core"}, {"zone", "z1"}};
  for (const auto& kv : labels) {
    auto* l = s->add_labels();
    l->set_key(kv[0]);
    l->set_value(kv[1]);
  }
}

class CountingSink final : public rules::DecisionSink {
 public:
  void on_decision(const rules::Decision&) override { ++decisions; }
  uint64_t decisions = 0;
};

struct Collector {
  explicit Collector(int i)
      : host("host-" + std::to_string(i)),
        id(fabric::Identity::from_seed(seed(i))),
        sealer(id, 0, 1) {}
  static std::array<uint8_t, 32> seed(int i) {
    std::array<uint8_t, 32> s{};
    s.fill(static_cast<uint8_t>(10 + i));
    return s;
  }
  std::string host;
  fabric::Identity id;
  fabric::Sealer sealer;
};

// Pre-sealed frames, round-robin over the hosts; a fresh Opener (fresh
// replay state) takes over when they run out, outside the timed region.
void BM_IngestPath(benchmark::State& state) {
  VirtualClock clock;
  fabric::TrustStore trust;
  std::vector<std::unique_ptr<Collector>> collectors;
  for (int c = 0; c < kHosts; ++c) {
    collectors.push_back(std::make_unique<Collector>(c));
    fabric::TrustedNode n;
    n.name = collectors.back()->host;
    n.key = collectors.back()->id.public_key();
    n.roles = static_cast<uint8_t>(fabric::Role::kCollector);
    n.hosts = {collectors.back()->host};
    if (!trust.add(n).ok()) return state.SkipWithError("trust store");
  }
  std::vector<std::string> frames;
  for (size_t f = 0; f < kFramesPerHost; ++f) {
    for (auto& c : collectors) {
      medic::v1::EventBatch b;
      for (int v = 0; v < kBatch; ++v) {
        add_state_event(&b, c->host, c->host + "-vm-" + std::to_string(v), clock.now());
      }
      frames.push_back(c->sealer.seal(medic::v1::KIND_EVENT_BATCH, c->host, b.SerializeAsString(),
                                      clock.now()));
    }
  }
  auto loaded = rules::load_rule_text(rule_text(), "ingest.rules.yaml");
  if (!loaded.ok()) return state.SkipWithError(loaded.text().c_str());
  rules::EngineOptions options;
  options.max_in_flight_per_host = 10'000;
  options.max_in_flight_fleet = 10'000;
  options.storm.min_vms = 1'000'000'000;
  CountingSink sink;
  rules::Engine engine(clock, loaded.rules, options, sink);

  fabric::BatchDecoder decoder;
  auto opener = std::make_unique<fabric::Opener>(trust, clock);
  opener->fill_batches(&decoder);  // as EventReceiver does: the walk decodes
  fabric::Opened opened;
  size_t next = 0;
  int64_t events = 0;
  for (auto _ : state) {
    if (next == frames.size()) {
      state.PauseTiming();
      opener = std::make_unique<fabric::Opener>(trust, clock);
      opener->fill_batches(&decoder);
      next = 0;
      state.ResumeTiming();
    }
    if (opener->open(frames[next++], &opened) != fabric::OpenError::kOk) {
      return state.SkipWithError("open refused a frame");
    }
    auto batch = decoder.decode(opened);
    if (!batch.ok()) return state.SkipWithError("decode refused a batch");
    engine.host_seen(opened.envelope.host(), clock.now());
    const auto& b = **batch;
    for (int i = 0; i < b.events_size(); ++i) engine.ingest(b.events(i), events + i);
    events += b.events_size();
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["decisions"] = static_cast<double>(sink.decisions);
}
BENCHMARK(BM_IngestPath)->Unit(benchmark::kMicrosecond);
// Fixed counts for callgrind: the difference of the two runs is 64 batches
// of VMs the engine already knows (the first 4 batches add them).
BENCHMARK(BM_IngestPath)->Iterations(8)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_IngestPath)->Iterations(72)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace medic::bench

BENCHMARK_MAIN();
