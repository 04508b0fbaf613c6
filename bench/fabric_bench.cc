// Seal and open throughput of signed event batches, in events per second.
// open = envelope checks + Ed25519 verify + replay guard + payload decode,
// i.e. everything an engine does before an event reaches the rules, as the
// engine's receiver does it (the Opener fills the decoder's batch).
// BM_VerifyAndParseFloor is its floor: the libraries' share of that work
// alone (envelope parse, the signing input, Ed25519 verify, protobuf parse
// of the payload), none of medic's checks; open / floor is the ratio
// docs/PERFORMANCE.md reports.
//
//   build/bench/fabric_bench --benchmark_filter='Open|Seal|Floor'
#include <benchmark/benchmark.h>
#include <google/protobuf/arena.h>

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
  opener->fill_batches(&decoder);
  int64_t events = 0;
  for (auto _ : state) {
    if (next == pool_size) {
      state.PauseTiming();
      opener = std::make_unique<Opener>(trust, clock);
      opener->fill_batches(&decoder);
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

// The same frames through the libraries alone: protobuf parses the envelope,
// the signing input is built (Ed25519 verifies one contiguous message),
// libsodium verifies, and protobuf parses the payload into an arena reset
// per batch (its fastest way to parse batch after batch).
void BM_VerifyAndParseFloor(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Identity id = bench_identity();
  VirtualClock clock;
  Sealer sealer(id);
  const std::string frame = sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-01",
                                        make_batch(n).SerializeAsString(), clock.now());
  google::protobuf::Arena arena;
  medic::v1::Envelope env;
  std::string input;
  int64_t events = 0;
  for (auto _ : state) {
    if (!env.ParseFromString(frame)) {
      state.SkipWithError("envelope parse failed");
      return;
    }
    input.clear();
    signing_input(env, &input);
    PublicKey key;
    std::copy(env.sender().begin(), env.sender().end(), key.begin());
    if (!verify_signature(key, reinterpret_cast<const uint8_t*>(input.data()), input.size(),
                          reinterpret_cast<const uint8_t*>(env.signature().data()))) {
      state.SkipWithError("verify failed");
      return;
    }
    arena.Reset();
    auto* batch = google::protobuf::Arena::CreateMessage<medic::v1::EventBatch>(&arena);
    if (!batch->ParseFromString(env.payload())) {
      state.SkipWithError("payload parse failed");
      return;
    }
    events += batch->events_size();
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Seal)->Arg(1)->Arg(16)->Arg(256);
BENCHMARK(BM_OpenAndDecode)->Arg(1)->Arg(16)->Arg(256);
BENCHMARK(BM_VerifyAndParseFloor)->Arg(1)->Arg(16)->Arg(256);

}  // namespace
}  // namespace medic::fabric

BENCHMARK_MAIN();
