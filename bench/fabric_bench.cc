// Seal and open throughput of signed event batches, in events per second.
// open = envelope checks + Ed25519 verify + replay guard + payload decode,
// i.e. everything an engine does before an event reaches the rules.
//
//   build/bench/fabric_bench --benchmark_filter='Open|Seal'
#include <benchmark/benchmark.h>

#include "fabric/envelope.h"

namespace medic::fabric {
namespace {

Identity bench_identity() {
  std::array<uint8_t, 32> seed{};
  seed.fill(7);
  return Identity::from_seed(seed);
}

medic::v1::EventBatch make_batch(int n) {
  medic::v1::EventBatch b;
  for (int i = 0; i < n; ++i) {
    auto* e = b.add_events();
    e->set_host("host-01");
    e->set_vm("5f0c3a52-8d7e-4b1a-9c2e-" + std::to_string(100000000000 + i));
    e->set_observed_at_ns(1'700'000'000'000'000'000 + i);
    auto* s = e->mutable_state();
    s->set_state(medic::v1::VM_STATE_RUNNING);
    s->set_last_heartbeat_ns(1'700'000'000'000'000'000);
    s->set_cpu_percent(3.5);
    s->set_rss_bytes(268'435'456);
    auto* l = s->add_labels();
    l->set_key("tier");
    l->set_value("web");
  }
  return b;
}

void BM_Seal(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Identity id = bench_identity();
  Sealer sealer(id);
  VirtualClock clock;
  std::string payload = make_batch(n).SerializeAsString();
  for (auto _ : state) {
    std::string frame = sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-01", payload, clock.now());
    benchmark::DoNotOptimize(frame);
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * n, benchmark::Counter::kIsRate);
  state.counters["bytes/envelope"] = static_cast<double>(payload.size());
}

void BM_OpenAndDecode(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Identity id = bench_identity();
  TrustStore trust;
  TrustedNode node;
  node.name = "host-01";
  node.key = id.public_key();
  node.roles = static_cast<uint8_t>(Role::kCollector);
  node.hosts = {"host-01"};
  if (!trust.add(node).ok()) {
    state.SkipWithError("trust store");
    return;
  }
  VirtualClock clock;
  std::string payload = make_batch(n).SerializeAsString();
  // Frames are pre-sealed (fresh seq numbers); when the pool runs out a new
  // Opener (fresh replay state) takes over, outside the timed region.
  const size_t pool_size = 1024;
  std::vector<std::string> pool;
  Sealer sealer(id);
  for (size_t i = 0; i < pool_size; ++i) {
    pool.push_back(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-01", payload, clock.now()));
  }
  auto opener = std::make_unique<Opener>(trust, clock);
  size_t next = 0;
  Opened opened;
  BatchDecoder decoder;
  int64_t events = 0;
  for (auto _ : state) {
    if (next == pool_size) {
      state.PauseTiming();
      opener = std::make_unique<Opener>(trust, clock);
      next = 0;
      state.ResumeTiming();
    }
    if (opener->open(pool[next++], &opened) != OpenError::kOk) {
      state.SkipWithError("open failed");
      return;
    }
    auto batch = decoder.decode(opened);
    if (!batch.ok()) {
      state.SkipWithError("decode failed");
      return;
    }
    events += (*batch)->events_size();
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Seal)->Arg(1)->Arg(16)->Arg(256);
BENCHMARK(BM_OpenAndDecode)->Arg(1)->Arg(16)->Arg(256);

}  // namespace
}  // namespace medic::fabric

BENCHMARK_MAIN();
