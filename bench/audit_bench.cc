// Audit log speed: durable append throughput with group commit, the cost of
// one outbox round trip (decision + dispatched, durable before dispatch), and
// `verify` on a large log.
//
//   build/bench/audit_bench                                    # everything, 1M-row verify
//   MEDIC_AUDIT_BENCH_ROWS=100000 build/bench/audit_bench      # a smaller verify
//   build/bench/audit_bench --benchmark_filter=Append
//
// The log lives under $TMPDIR (default /tmp); the disk under it decides the
// fsync cost of Durability::kPowerLoss.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "audit/log.h"
#include "fabric/envelope.h"
#include "medic/v1/actions.pb.h"
#include "medic/v1/events.pb.h"

namespace medic::audit {
namespace {

fabric::Identity identity(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  return fabric::Identity::from_seed(seed);
}

Time t0() { return from_ns(1'767'236'400'000'000'000); }

std::string temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/medic-audit-bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) std::abort();
  return tmpl;
}

// A pool of distinct signed envelopes, as collectors and actuators send them.
struct Envelopes {
  Envelopes() : collector(identity(2)), actuator(identity(3)) {
    fabric::Sealer cs(collector, 0, 1), as(actuator, 0, 1);
    for (int i = 0; i < 1024; ++i) {
      medic::v1::EventBatch b;
      auto* e = b.add_events();
      e->set_host("host-07");
      e->set_vm("vm-" + std::to_string(i));
      e->set_observed_at_ns(to_ns(t0()) + i);
      e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
      events.push_back(
          cs.seal(medic::v1::KIND_EVENT_BATCH, "host-07", b.SerializeAsString(), t0()));
      medic::v1::ActionResult r;
      r.set_action_id("a-" + std::to_string(i));
      r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
      r.set_healed(true);
      results.push_back(
          as.seal(medic::v1::KIND_ACTION_RESULT, "host-07", r.SerializeAsString(), t0()));
    }
  }
  fabric::Identity collector, actuator;
  std::vector<std::string> events, results;
};

Envelopes& envelopes() {
  static Envelopes e;
  return e;
}

Decision make_decision(int64_t i, Seq evidence) {
  Decision d;
  d.id = "d-" + std::to_string(i);
  d.action_id = "a-" + std::to_string(i);
  d.at = t0() + std::chrono::milliseconds(i);
  d.rule = "guest-panicked";
  d.rule_version = "3";
  d.vm = "vm-" + std::to_string(i % 5000);
  d.host = "host-07";
  d.verb = "reset";
  d.policies_passed = {"cooldown", "budget", "storm-guard", "host-silent"};
  if (evidence) d.evidence = {{evidence, 0}};
  d.action_expires_at = d.at + std::chrono::minutes(5);
  return d;
}

StoreOptions options(Durability d) {
  StoreOptions o;
  o.durability = d;
  o.checkpoint_every_rows = 1000;
  return o;
}

// The engine's thread appends one record at a time (decision, then its
// dispatched transition) and never waits; the writer batches them. Timing
// includes waiting for the last one to be durable.
void BM_DurableAppend(benchmark::State& state) {
  auto durability = static_cast<Durability>(state.range(0));
  std::string dir = temp_dir();
  auto engine = identity(1);
  SystemClock clock;
  auto store = open_sqlite_store(dir + "/a.db", clock, engine, options(durability));
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  int64_t i = 0;
  Seq first = (*store)->durable_seq();
  Seq last = first;
  for (auto _ : state) {
    for (int k = 0; k < 1000; ++k, ++i) {
      (void)(*store)->append_decision(make_decision(i, 0));
      last = (*store)
                 ->append_transition(
                     {"a-" + std::to_string(i), t0(), ActionState::kDispatched, "engine", "", 0})
                 .value();
    }
  }
  if (!(*store)->wait_durable(last, std::chrono::seconds(120)).ok()) {
    state.SkipWithError("not durable");
  }
  state.SetItemsProcessed(last - first);  // rows (records), checkpoints included
  state.counters["rows"] = static_cast<double>(last - first);
  (void)(*store)->close();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_DurableAppend)
    ->Arg(static_cast<int>(Durability::kPowerLoss))
    ->Arg(static_cast<int>(Durability::kProcessCrash))
    ->ArgName("durability")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

// One action through the outbox rule: decision + dispatched appended, then
// wait until durable before "sending". This is the latency an action pays.
void BM_OutboxRoundTrip(benchmark::State& state) {
  auto durability = static_cast<Durability>(state.range(0));
  std::string dir = temp_dir();
  auto engine = identity(1);
  SystemClock clock;
  auto store = open_sqlite_store(dir + "/a.db", clock, engine, options(durability));
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  int64_t i = 0;
  for (auto _ : state) {
    std::vector<Record> batch;
    batch.push_back(Record::of(make_decision(i, 0)));
    batch.push_back(Record::of(
        Transition{"a-" + std::to_string(i), t0(), ActionState::kDispatched, "engine", "", 0}));
    ++i;
    auto seq = (*store)->append_batch(std::move(batch));
    if (!seq.ok() || !(*store)->wait_durable(*seq).ok()) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations());
  (void)(*store)->close();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_OutboxRoundTrip)
    ->Arg(static_cast<int>(Durability::kPowerLoss))
    ->Arg(static_cast<int>(Durability::kProcessCrash))
    ->ArgName("durability")
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

int64_t verify_rows() {
  const char* env = std::getenv("MEDIC_AUDIT_BENCH_ROWS");
  int64_t n = env && *env ? std::atoll(env) : 1'000'000;
  return n > 0 ? n : 1'000'000;
}

// A log of about `rows` rows shaped like real healing: per action, the panic
// evidence, the decision, proposed/dispatched/acked/succeeded and the signed
// result (7 rows, 2 signed envelopes), plus checkpoints every 1000 rows.
// Without `with_evidence`, only the 5 unsigned rows per action: the chain's
// own cost.
std::string build_log(const std::string& dir, int64_t rows, bool with_evidence) {
  auto engine = identity(1);
  SystemClock clock;
  auto& env = envelopes();
  std::string path = dir + "/verify.db";
  auto store = open_sqlite_store(path, clock, engine, options(Durability::kProcessCrash));
  if (!store.ok()) std::abort();
  Seq last = 0;
  for (int64_t i = 0; last < rows; ++i) {
    std::vector<Record> b;
    auto id = "a-" + std::to_string(i);
    Seq ev = 0;
    if (with_evidence) {
      ev = (*store)->append_evidence({t0(), env.events[i % env.events.size()], "host-07"}).value();
    }
    b.push_back(Record::of(make_decision(i, ev)));
    b.push_back(Record::of(Transition{id, t0(), ActionState::kDispatched, "engine", "", 0}));
    b.push_back(Record::of(Transition{id, t0(), ActionState::kAcked, "host-07", "", 0}));
    if (with_evidence) {
      b.push_back(Record::of(Evidence{t0(), env.results[i % env.results.size()], "host-07"}));
    }
    Seq batch_last = (*store)->append_batch(std::move(b)).value();
    Seq result = with_evidence ? batch_last : 0;  // the signed result row
    last = (*store)
               ->append_transition({id, t0(), ActionState::kSucceeded, "host-07", "done", result})
               .value();
  }
  if (!(*store)->close().ok()) std::abort();
  return path;
}

void BM_Verify(benchmark::State& state) {
  const int64_t rows = verify_rows();
  std::string dir = temp_dir();
  std::string path = build_log(dir, rows, state.range(0) != 0);
  VerifyReport report;
  for (auto _ : state) {
    auto r = verify_log(path, {{identity(1).public_key()}, std::nullopt});
    if (!r.ok() || !r->ok) state.SkipWithError("verify failed");
    report = *r;
  }
  state.SetItemsProcessed(state.iterations() * report.rows);
  state.counters["rows"] = static_cast<double>(report.rows);
  state.counters["signatures"] = static_cast<double>(report.envelopes + report.checkpoints);
  state.counters["db_MB"] =
      static_cast<double>(std::filesystem::file_size(path)) / (1024.0 * 1024.0);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Verify)
    ->Arg(1)
    ->Arg(0)
    ->ArgName("evidence")
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
}  // namespace medic::audit

BENCHMARK_MAIN();
