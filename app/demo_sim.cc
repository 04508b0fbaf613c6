// medic demo on a simulated fleet (3 hosts x 20 VMs by default) with one
// collector and one actuator per host and a scripted fault scenario, all over
// real ZeroMQ sockets (tcp loopback with CurveZMQ), real signatures and a
// real SQLite audit file.
#include <iostream>
#include <random>

#include "app/demo.h"
#include "app/demo_view.h"
#include "app/signals.h"
#include "app/timeline.h"
#include "core/duration.h"

namespace medic::app {
namespace {

using namespace std::chrono_literals;

// The scripted scenario, scaled to the run's length: one of each VM fault
// that the rules heal, then a host partition (host-silent suppression: its
// VMs are left alone), then a burst on one host (the storm guard freezes it).
struct ScriptedFault {
  double at;  // fraction of the duration
  vmm::sim::FaultKind kind;
  int host;
  int vm;
};

std::vector<ScriptedFault> scenario(const DemoOptions& o) {
  using K = vmm::sim::FaultKind;
  std::vector<ScriptedFault> s = {
      {0.06, K::kPanic, 0, 2},   {0.14, K::kHang, 1, 4},     {0.22, K::kCrash, 0, 7},
      {0.30, K::kSoftHang, 1, 1}, {0.38, K::kPanic, 0, 2},   {0.46, K::kHang, 0, 11},
  };
  if (o.hosts >= 3) s.push_back({0.55, K::kPartition, 2, 0});
  if (o.hosts >= 2 && o.vms >= 12) {
    for (int v = 12; v < 12 + std::max(3, o.vms / 2); ++v) {
      if (v < o.vms) s.push_back({0.70, K::kPanic, 1, v});
    }
  }
  s.erase(std::remove_if(s.begin(), s.end(),
                         [&](const ScriptedFault& f) { return f.host >= o.hosts || f.vm >= o.vms; }),
          s.end());
  return s;
}

vmm::sim::SimOptions demo_fleet_options(const DemoOptions& o) {
  vmm::sim::SimOptions so;
  so.hosts = o.hosts;
  so.vms_per_host = o.vms;
  so.seed = o.seed;
  so.boot_time = 2s;
  so.shutdown_time = 1s;
  so.partition_duration = o.duration / 5;
  return so;
}

// One agent per simulated host, each with its own clock, as separate
// processes would have. Prints why and returns false if one cannot start.
bool start_sim_agents(vmm::sim::SimFleet& fleet, node::EngineNode& engine,
                      const fabric::Identity& engine_id,
                      const std::vector<std::unique_ptr<fabric::Identity>>& host_ids,
                      const fabric::TrustStore& trust, fabric::Context& ctx,
                      const std::string& dir,
                      std::vector<std::unique_ptr<SystemClock>>* agent_clocks,
                      std::vector<std::unique_ptr<node::AgentNode>>* agents) {
  for (size_t i = 0; i < fleet.host_count(); ++i) {
    agent_clocks->push_back(std::make_unique<SystemClock>());
    const std::string host = fleet.host(i).host();
    node::AgentConfig ac = demo_agent_config(host, engine, engine_id, dir);
    auto agent = node::AgentNode::create(ac, {ctx, *host_ids[i], trust, *agent_clocks->back()},
                                         fleet.host(i));
    if (!agent.ok()) {
      std::cerr << "medic demo: " << agent.status().message() << "\n";
      return false;
    }
    agents->push_back(std::move(*agent));
  }
  return true;
}

// The scripted faults, then `o.faults` random ones, on the fleet's clock.
void schedule_sim_faults(const DemoOptions& o, vmm::sim::SimFleet& fleet, SystemClock& fleet_clock,
                         Time start) {
  const auto ids = fleet.vm_ids();
  for (const auto& f : scenario(o)) {
    Time at = start + std::chrono::duration_cast<Duration>(o.duration * f.at);
    const std::string host = fleet.host(static_cast<size_t>(f.host)).host();
    const std::string vm = ids[static_cast<size_t>(f.host * o.vms + f.vm)];
    fleet_clock.schedule_at(at, [&fleet, f, host, vm] { (void)fleet.inject(f.kind, host, vm); });
  }
  std::mt19937_64 rng(o.seed * 7919);
  for (int i = 0; i < o.faults; ++i) {
    using K = vmm::sim::FaultKind;
    const K kinds[] = {K::kPanic, K::kHang, K::kCrash, K::kSoftHang};
    K kind = kinds[rng() % 4];
    const std::string vm = ids[rng() % ids.size()];
    Time at = start + Duration(static_cast<int64_t>(
                          (0.05 + 0.6 * static_cast<double>(rng() % 1000) / 1000.0) *
                          static_cast<double>(o.duration.count())));
    fleet_clock.schedule_at(at, [&fleet, kind, vm] { (void)fleet.inject(kind, fleet.host_of(vm), vm); });
  }
}

// Runs every part in turn until `end` or a stop signal.
void run_sim_until(Time end, Clock& clock, SystemClock& fleet_clock, vmm::sim::SimFleet& fleet,
                   node::EngineNode& engine,
                   const std::vector<std::unique_ptr<node::AgentNode>>& agents, DemoView& view) {
  SignalFlags& signals = install_signal_handlers();
  while (clock.now() < end && !signals.stop.load()) {
    fleet_clock.run_due();
    engine.run_once(2ms);
    for (size_t i = 0; i < agents.size(); ++i) {
      // A partitioned host's agent cannot reach the engine: nothing it would
      // send gets through, so it is not run until the partition ends.
      if (!fleet.host(i).partitioned()) agents[i]->run_once(Duration(0));
    }
    view.check_healed();
  }
}

int demo_error(const Status& s) {
  std::cerr << "medic demo: " << s.message() << "\n";
  return 2;
}

// A fresh key for each simulated host, trusted to collect and act for it.
std::vector<std::unique_ptr<fabric::Identity>> trust_sim_hosts(vmm::sim::SimFleet& fleet,
                                                               fabric::TrustStore& trust) {
  std::vector<std::unique_ptr<fabric::Identity>> host_ids;
  for (size_t i = 0; i < fleet.host_count(); ++i) {
    host_ids.push_back(std::make_unique<fabric::Identity>(fabric::Identity::generate()));
    add_trusted(trust, fleet.host(i).host(), *host_ids.back(), fabric::Role::kCollector,
                {fleet.host(i).host()});
  }
  return host_ids;
}

void print_sim_banner(const DemoOptions& o, const std::string& audit_path, Time start,
                      Timeline& tl) {
  std::cout << "medic demo: " << o.hosts << " hosts x " << o.vms << " VMs, "
            << format_duration(o.duration) << ", seed " << o.seed << "; engine, collectors and "
            << "actuators over CurveZMQ on 127.0.0.1; audit log " << audit_path << "\n\n";
  tl.note(start, "fleet up; collectors report every 1s, rules: guest-panicked, guest-crashed, "
                 "guest-unresponsive (ladder reboot -> reset -> restart -> notify)");
}

}  // namespace

int run_sim_demo(const DemoOptions& o, const std::string& dir) {
  SystemClock clock;
  // Identities and the trust store, in memory.
  fabric::Identity engine_id = fabric::Identity::generate();
  fabric::Identity operator_id = fabric::Identity::generate();
  fabric::TrustStore trust;
  add_trusted(trust, "engine-1", engine_id, fabric::Role::kEngine, {"*"});
  add_trusted(trust, "operator", operator_id, fabric::Role::kOperator, {"*"});
  // Each part keeps its own timers, as separate processes would: the fleet,
  // the engine and every agent have their own clock (all read wall time).
  SystemClock fleet_clock;
  vmm::sim::SimFleet fleet(fleet_clock, demo_fleet_options(o));
  auto host_ids = trust_sim_hosts(fleet, trust);
  auto ctx = fabric::Context::create(trust);
  if (!ctx.ok()) return demo_error(ctx.status());

  auto loaded = rules::load_rule_text(demo_rules("8s"), "demo.rules.yaml");
  if (!loaded.ok()) {
    std::cerr << "medic demo: embedded rules: " << loaded.text();
    return 2;
  }
  node::EngineConfig ec_cfg = demo_engine_config(dir, o.duration);
  auto store = audit::open_sqlite_store(ec_cfg.audit_path, clock, engine_id, ec_cfg.audit);
  if (!store.ok()) return demo_error(store.status());

  const Time start = clock.now();
  Timeline tl(std::cout, colour_wanted(), start);
  DemoView view(
      tl, clock,
      [&fleet](const std::string& vm) {
        auto info = fleet.true_info(vm);
        return info.ok() && !info->name.empty() ? info->name : vm;
      },
      [&fleet](const std::string& vm, Time) { return fleet.is_healthy(vm); });
  fleet.on_fault([&](const vmm::sim::InjectedFault& f) { view.on_fault(f); });

  auto engine = node::EngineNode::create(ec_cfg, {**ctx, engine_id, trust, clock}, loaded.rules,
                                         std::move(*store), &view);
  if (!engine.ok()) return demo_error(engine.status());
  std::vector<std::unique_ptr<node::AgentNode>> agents;
  std::vector<std::unique_ptr<SystemClock>> agent_clocks;
  if (!start_sim_agents(fleet, **engine, engine_id, host_ids, trust, **ctx, dir, &agent_clocks,
                        &agents)) {
    return 2;
  }

  print_sim_banner(o, ec_cfg.audit_path, start, tl);
  schedule_sim_faults(o, fleet, fleet_clock, start);
  run_sim_until(start + o.duration, clock, fleet_clock, fleet, **engine, agents, view);
  const Time stopped = clock.now();
  agents.clear();
  Status closed = (*engine)->shutdown();
  tl.print_summary(stopped, demo_hints(ec_cfg.audit_path, closed, {"  daemon log           " + dir + "/demo.log"},
                                       view.example_action()));
  return 0;
}

}  // namespace medic::app
