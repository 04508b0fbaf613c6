// Action round trip: the engine's Dispatcher seals and sends an action, the
// host's Actuator opens it, journals it (fsync'd `executing` record), executes
// it on a Hypervisor double that returns at once with the VM healthy, and the
// result travels back; the latency is dispatch() to the `succeeded` event.
// tcp loopback with CURVE, dispatcher and actuator on their own threads.
//
//   build/bench/dispatch_bench --benchmark_filter=Dispatch
//
// Arg 0: journal on disk (the real configuration); arg 1: journal in memory,
// to show what the fsync costs.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "actuators/actuator.h"
#include "actuators/dispatcher.h"
#include "fabric/transport.h"

namespace medic::actuators {
namespace {

using namespace std::chrono_literals;

fabric::Identity seeded(uint8_t b) {
  std::array<uint8_t, 32> seed;
  seed.fill(b);
  return fabric::Identity::from_seed(seed);
}

class InstantHypervisor final : public vmm::Hypervisor {
 public:
  explicit InstantHypervisor(Clock& clock) : clock_(clock) {
    info_.id = "vm-1";
    info_.state = medic::v1::VM_STATE_RUNNING;
  }
  const std::string& host() const override { return host_; }
  Result<std::vector<vmm::VmInfo>> list() override { return std::vector<vmm::VmInfo>{info_}; }
  Result<vmm::VmInfo> get(const std::string& vm) override {
    if (vm != info_.id) return not_found(vm);
    return info_;
  }
  void subscribe(EventSink) override {}
  void poll() override {}
  void execute(vmm::Verb, const std::string&, Duration, VerbDone done) override {
    info_.last_heartbeat = clock_.now();
    clock_.schedule_after(Duration::zero(), [done = std::move(done)] { done(Status()); });
  }

 private:
  Clock& clock_;
  std::string host_ = "host-a";
  vmm::VmInfo info_;
};

void BM_DispatchRoundTrip(benchmark::State& state) {
  spdlog::set_level(spdlog::level::warn);
  const bool in_memory = state.range(0) == 1;
  auto engine = seeded(1);
  auto host = seeded(2);
  fabric::TrustStore trust;
  fabric::TrustedNode e{"engine-1", engine.public_key(), {}, 2, {"*"}};
  fabric::TrustedNode h{"host-a", host.public_key(), {}, 4, {"host-a"}};
  (void)trust.add(e);
  (void)trust.add(h);
  auto ctx = fabric::Context::create(trust);
  if (!ctx.ok()) {
    state.SkipWithError(ctx.status().to_string().c_str());
    return;
  }
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("medic-dispatch-bench-" + std::to_string(::getpid())))
                        .string();
  std::filesystem::create_directories(dir);

  SystemClock engine_clock;
  std::map<std::string, bool> done;
  DispatcherOptions dopts;
  dopts.endpoint = "tcp://127.0.0.1:*";
  dopts.initial_backoff = 50ms;
  dopts.max_backoff = 1s;
  auto disp =
      Dispatcher::create(dopts, {**ctx, engine, trust, engine_clock}, [&](const DispatchEvent& ev) {
        if (ev.state == ActionState::kSucceeded) {
          done[ev.action.id()] = true;
        }
      });
  if (!disp.ok()) {
    state.SkipWithError(disp.status().to_string().c_str());
    return;
  }

  std::atomic<bool> stop{false};
  std::atomic<bool> ready{false};
  std::thread host_thread([&] {
    SystemClock clock;
    InstantHypervisor hv(clock);
    ActuatorOptions o;
    o.host = "host-a";
    o.engine_endpoint = (*disp)->endpoint();
    o.engine_key = engine.public_key();
    o.journal_path = in_memory ? ":memory:" : dir + "/journal.db";
    auto act = Actuator::create(o, {**ctx, host, trust, clock}, hv);
    if (!act.ok()) {
      spdlog::error("{}", act.status().to_string());
      ready = true;
      return;
    }
    ready = true;
    while (!stop.load(std::memory_order_relaxed)) (*act)->run_once(1ms);
  });
  while (!ready) std::this_thread::sleep_for(1ms);

  auto run_one = [&](const std::string& id) {
    medic::v1::Action a;
    a.set_id(id);
    a.set_verb(medic::v1::VERB_RESET);
    a.set_host("host-a");
    a.set_vm("vm-1");
    a.set_expires_at_ns(to_ns(engine_clock.now() + 60s));
    a.set_watch_ns((10s).count());
    (void)(*disp)->dispatch(a);
    auto limit = std::chrono::steady_clock::now() + 10s;
    while (!done.count(id) && std::chrono::steady_clock::now() < limit) (*disp)->run_once(1ms);
    return done.count(id) > 0;
  };

  // The first action also waits for the connection and the CURVE handshake.
  if (!run_one("warm-up")) state.SkipWithError("the warm-up action never completed");
  std::vector<double> lat_us;
  lat_us.reserve(static_cast<size_t>(state.max_iterations));
  uint64_t n = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    if (!run_one("a-" + std::to_string(++n))) {
      state.SkipWithError("an action did not complete within 10 s");
      break;
    }
    lat_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  stop = true;
  host_thread.join();
  disp->reset();
  std::filesystem::remove_all(dir);

  if (!lat_us.empty()) {
    std::sort(lat_us.begin(), lat_us.end());
    auto pct = [&](double p) {
      size_t i = std::min(lat_us.size() - 1, static_cast<size_t>(p * lat_us.size()));
      return lat_us[i];
    };
    state.counters["p50_us"] = pct(0.50);
    state.counters["p99_us"] = pct(0.99);
    state.counters["max_us"] = lat_us.back();
  }
}

BENCHMARK(BM_DispatchRoundTrip)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(10000)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The journal's share of the round trip: the three commits an executed
// action costs (received, executing with fsync, done), on the same disk.
void BM_JournalCommitsPerAction(benchmark::State& state) {
  const bool in_memory = state.range(0) == 1;
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("medic-journal-bench-" + std::to_string(::getpid())))
                        .string();
  std::filesystem::create_directories(dir);
  auto j = Journal::open(in_memory ? ":memory:" : dir + "/journal.db");
  if (!j.ok()) {
    state.SkipWithError(j.status().to_string().c_str());
    return;
  }
  SystemClock clock;
  medic::v1::Action a;
  a.set_verb(medic::v1::VERB_RESET);
  a.set_host("host-a");
  a.set_vm("vm-1");
  medic::v1::ActionResult r;
  r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
  std::vector<double> lat_us;
  uint64_t n = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    a.set_id("j-" + std::to_string(++n));
    r.set_action_id(a.id());
    bool ok = (*j)->insert(a, JournalState::kReceived, clock.now()).ok() &&
              (*j)->mark_executing(a.id(), clock.now()).ok() &&
              (*j)->finish(a.id(), r, clock.now()).ok();
    if (!ok) {
      state.SkipWithError("a journal write failed");
      break;
    }
    lat_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  j->reset();
  std::filesystem::remove_all(dir);
  if (!lat_us.empty()) {
    std::sort(lat_us.begin(), lat_us.end());
    state.counters["p50_us"] = lat_us[lat_us.size() / 2];
    state.counters["p99_us"] = lat_us[std::min(lat_us.size() - 1, lat_us.size() * 99 / 100)];
  }
}

BENCHMARK(BM_JournalCommitsPerAction)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace medic::actuators

BENCHMARK_MAIN();
