// Replay speed (issue 19): `medic rules replay`'s work over a synthetic
// recording of a 10k-VM fleet: 100 hosts x 100 VMs, each host's collector
// flushing once a second one signed envelope with every VM's state report
// (3 labels) and heartbeat (200 events); every 10 s one VM panics (an urgent
// envelope of its own). The recording is written with RecordingWriter to a
// real directory first (not timed); then replay_recording reads it back,
// opens every envelope (Ed25519 verify, strict payload walk, replay guard)
// and feeds the rules engine the pipeline bench's 103 rules on the virtual
// clock. Timed: the replay alone, wall and thread CPU, median of --runs.
//
// The default recording is 5 minutes of that fleet (about 420 MB, 6 M
// events), not the hour the goal speaks of: replay work is linear in the
// frames and events (the engine's state is bounded by the fleet, not by
// time), so the hour's figure is extrapolated from the rate, and says so.
//
//   build/bench/replay_bench [--vms 10000] [--seconds 300] [--runs 3] [--dir DIR] [--reuse] [--csv FILE]
// Google Benchmark's --benchmark_* flags are accepted and ignored. Figures:
// docs/PERFORMANCE.md, "Replay".
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/bench_rules.h"
#include "fabric/envelope.h"
#include "replay/replay.h"
#include "rules/loader.h"

namespace medic::bench {
namespace {

using namespace std::chrono_literals;

constexpr int kVmsPerHost = 100;
const Time kStart = from_ns(1'800'000'000'000'000'000);

std::string rule_text() {
  return tier_rules(100) + R"(  - name: guest-panicked
    on: vm.panicked
    do: reset
    cooldown: 1m
  - name: guest-crashed
    on: vm.crashed
    do: restart
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    where: vm.state == "running"
    do: [reboot, reset, restart, notify]
)";
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

fabric::Identity host_identity(int h) {
  std::array<uint8_t, 32> seed{};
  seed.fill(static_cast<uint8_t>(h + 1));
  seed[1] = static_cast<uint8_t>(h >> 8);
  return fabric::Identity::from_seed(seed);
}

std::string host_name(int h) { return "host-" + std::to_string(h); }
std::string vm_name(int h, int v) { return "vm-" + std::to_string(h) + "-" + std::to_string(v); }

void add_state(medic::v1::EventBatch* b, const std::string& host, const std::string& vm, Time t) {
  auto* e = b->add_events();
  e->set_host(host);
  e->set_vm(vm);
  e->set_observed_at_ns(to_ns(t));
  auto* s = e->mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  s->set_last_heartbeat_ns(to_ns(t));
  for (auto [k, v] : {std::pair{"tier", "web"}, {"owner", "team-a"}, {"name", "web"}}) {
    auto* l = s->add_labels();
    l->set_key(k);
    l->set_value(v);
  }
}

void add_heartbeat(medic::v1::EventBatch* b, const std::string& host, const std::string& vm,
                   Time t) {
  auto* e = b->add_events();
  e->set_host(host);
  e->set_vm(vm);
  e->set_observed_at_ns(to_ns(t));
  e->mutable_heartbeat()->set_source("sim");
}

struct Fleet {
  std::vector<fabric::Identity> ids;
  fabric::TrustStore trust;
  uint64_t events = 0;
  uint64_t frames = 0;
};

// The hosts' identities and the trust store that lists them.
Status make_fleet(int hosts, Fleet* fleet) {
  for (int h = 0; h < hosts; ++h) {
    fleet->ids.push_back(host_identity(h));
    fabric::TrustedNode n;
    n.name = host_name(h);
    n.key = fleet->ids.back().public_key();
    n.roles = static_cast<uint8_t>(fabric::Role::kCollector);
    n.hosts = {n.name};
    MEDIC_RETURN_IF_ERROR(fleet->trust.add(n));
  }
  return {};
}

// Writes `seconds` of the fleet into `dir`.
Status write_recording(const std::string& dir, int hosts, int seconds, Fleet* fleet) {
  replay::RecordingOptions o;
  o.keep = 24h;
  o.max_bytes = uint64_t{64} << 30;
  auto w = replay::RecordingWriter::open(dir, o, kStart);
  if (!w.ok()) return w.status();
  std::vector<fabric::Sealer> sealers;
  for (int h = 0; h < hosts; ++h) sealers.emplace_back(fleet->ids[h], 0, 1);
  for (int s = 0; s < seconds; ++s) {
    for (int h = 0; h < hosts; ++h) {
      const Time t = kStart + s * 1s + h * 9ms;
      const std::string host = host_name(h);
      medic::v1::EventBatch b;
      for (int v = 0; v < kVmsPerHost; ++v) {
        add_state(&b, host, vm_name(h, v), t);
        add_heartbeat(&b, host, vm_name(h, v), t);
      }
      const bool panics = s % 10 == 5 && h == (s / 10) % hosts;
      if (panics) {
        auto* e = b.add_events();
        e->set_host(host);
        e->set_vm(vm_name(h, (s / 10) % kVmsPerHost));
        e->set_observed_at_ns(to_ns(t));
        e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
      }
      fleet->events += static_cast<uint64_t>(b.events_size());
      ++fleet->frames;
      replay::RecordedFrame f{
          t + 1ms, panics,
          sealers[h].seal(medic::v1::KIND_EVENT_BATCH, host, b.SerializeAsString(), t)};
      MEDIC_RETURN_IF_ERROR((*w)->append(f));
    }
  }
  return (*w)->close();
}

// Appends one row to `path` (its header first when the file is new), for
// bench/cost_plots.sh: replay speed against fleet size.
bool append_csv(const std::string& path, int vms, const Fleet& fleet, double wall, double cpu,
                double speed) {
  const bool fresh = !std::filesystem::exists(path) || std::filesystem::file_size(path) == 0;
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) return false;
  if (fresh) std::fprintf(f, "vms,events,wall_s,cpu_s,times_real_time,events_per_wall_s\n");
  std::fprintf(f, "%d,%llu,%.3f,%.3f,%.1f,%.0f\n", vms,
               static_cast<unsigned long long>(fleet.events), wall, cpu, speed,
               static_cast<double>(fleet.events) / wall);
  return std::fclose(f) == 0;
}

int run(int vms, int seconds, int runs, const std::string& dir, bool reuse,
        const std::string& csv) {
  const int hosts = std::max(1, vms / kVmsPerHost);
  Fleet fleet;
  const auto gen0 = std::chrono::steady_clock::now();
  Status s = make_fleet(hosts, &fleet);
  if (s.ok() && !(reuse && std::filesystem::exists(dir))) {
    std::filesystem::remove_all(dir);
    s = write_recording(dir, hosts, seconds, &fleet);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "replay_bench: %s\n", s.message().c_str());
    return 1;
  }
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) bytes += e.file_size();
  std::printf(
      "recording: %d hosts x %d VMs, %d s, %llu frames, %llu events, %.1f MB (written in "
      "%.1f s)\n",
      hosts, kVmsPerHost, seconds, static_cast<unsigned long long>(fleet.frames),
      static_cast<unsigned long long>(fleet.events), static_cast<double>(bytes) / 1e6,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - gen0).count());
  auto loaded = rules::load_rule_text(rule_text(), "bench.rules.yaml");
  if (!loaded.ok()) {
    std::fprintf(stderr, "replay_bench: rules: %s\n", loaded.text().c_str());
    return 1;
  }
  std::vector<double> walls, cpus;
  for (int r = 0; r < runs; ++r) {
    const auto w0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_s();
    auto result = replay::replay_recording(dir, fleet.trust, loaded.rules, {});
    const double cpu = thread_cpu_s() - c0;
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    if (!result.ok() || !result->clean() || (!reuse && result->events != fleet.events)) {
      std::fprintf(stderr, "replay_bench: the replay did not verify every frame: %s\n",
                   result.ok() ? replay::replay_text(*result, dir).substr(0, 2000).c_str()
                               : result.status().message().c_str());
      return 1;
    }
    std::printf("run %d: %.2f s wall, %.2f s CPU, %zu decisions\n", r + 1, wall, cpu,
                result->decisions.size());
    fleet.events = result->events;
    fleet.frames = result->frames;
    walls.push_back(wall);
    cpus.push_back(cpu);
  }
  std::sort(walls.begin(), walls.end());
  std::sort(cpus.begin(), cpus.end());
  const double wall = walls[walls.size() / 2], cpu = cpus[cpus.size() / 2];
  const double speed = seconds / wall;
  std::printf(
      "median of %d: %.2f s wall (%.2f s CPU): %.2f M events/s, %.0f frames/s, %.0fx real "
      "time; 1 h of this fleet extrapolated: %.1f s\n",
      runs, wall, cpu, static_cast<double>(fleet.events) / wall / 1e6,
      static_cast<double>(fleet.frames) / wall, speed, 3600.0 / speed);
  if (!reuse) std::filesystem::remove_all(dir);
  if (!csv.empty() && !append_csv(csv, vms, fleet, wall, cpu, speed)) {
    std::fprintf(stderr, "replay_bench: cannot write %s\n", csv.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace medic::bench

int main(int argc, char** argv) {
  int vms = 10'000, seconds = 300, runs = 3;
  std::string dir = std::filesystem::temp_directory_path().string() + "/medic-replay-bench";
  bool reuse = false;  // --reuse: keep the recording in --dir and replay it again next time
  std::string csv;     // --csv FILE: append the median's row
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reuse") == 0) reuse = true;
    if (i + 1 >= argc) break;
    if (std::strcmp(argv[i], "--vms") == 0)
      vms = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--seconds") == 0)
      seconds = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--runs") == 0)
      runs = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--dir") == 0)
      dir = argv[++i];
    else if (std::strcmp(argv[i], "--csv") == 0)
      csv = argv[++i];
  }
  if (vms <= 0 || seconds <= 0 || runs <= 0) {
    std::fprintf(
        stderr,
        "usage: replay_bench [--vms N] [--seconds N] [--runs N] [--dir DIR] [--csv FILE]\n");
    return 2;
  }
  return medic::bench::run(vms, seconds, runs, dir, reuse, csv);
}
