// medic demo: the whole system in one process on embedded defaults. An
// engine, a simulated fleet (3 hosts x 20 VMs) with one collector and one
// actuator per host, and a fault injector on a schedule, all talking over
// real ZeroMQ sockets (tcp loopback with CurveZMQ) with real signatures and a
// real SQLite audit file. A live timeline shows each incident from fault to
// healed; a summary closes the run.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "node/agent_node.h"
#include "app/commands.h"
#include "node/engine_node.h"
#include "app/signals.h"
#include "app/timeline.h"
#include "core/duration.h"
#include "core/log.h"
#include "core/subprocess.h"
#include "vmm/qmp/qmp_hypervisor.h"
#include "vmm/qmp/launcher.h"

namespace medic::app {
namespace {

using namespace std::chrono_literals;

// Short timings so a one-minute run shows detection, escalation and healing.
constexpr const char* kDemoRules = R"(rules:
  - name: guest-panicked
    description: A panicked guest is hard-reset.
    on: vm.panicked
    do: reset
    cooldown: 5s
    budget: 3 per 10m
  - name: guest-crashed
    description: A QEMU process that died is started again.
    on: vm.crashed
    do: restart
    cooldown: 5s
    budget: 3 per 10m
  - name: guest-unresponsive
    description: No heartbeat for 4s; gentle first, then harder, then a person.
    absent: vm.heartbeat
    for: 4s
    where: vm.state == "running"
    do: [reboot, reset, restart, notify]
    heal_within: HEAL
    cooldown: 2s
    budget: 3 per 10m
)";

// The demo rules with the unresponsive ladder's heal window set: real guests
// need time to boot after a reset before they can beat again.
std::string demo_rules(const std::string& heal_within) {
  std::string r = kDemoRules;
  r.replace(r.find("HEAL"), 4, heal_within);
  return r;
}

struct DemoOptions {
  Duration duration = 60s;
  int hosts = 3;
  int vms = 20;
  uint64_t seed = 1;
  int faults = 0;  // extra random VM faults on top of the scripted scenario
  bool qemu = false;
  std::string dir;
};

// Everything the demo shows goes through here, keyed by VM id.
class DemoView final : public node::EngineObserver {
 public:
  // `name_of` gives a VM's name for people; `healthy` is the ground truth a
  // fault is healed by (the simulator's, or a real guest's heartbeat).
  DemoView(Timeline& tl, Clock& clock, std::function<std::string(const std::string&)> name_of,
           std::function<bool(const std::string&, Time since)> healthy)
      : tl_(tl), clock_(clock), name_of_(std::move(name_of)), healthy_(std::move(healthy)) {}

  std::string name(const std::string& vm) const { return name_of_(vm); }

  void on_fault(const vmm::sim::InjectedFault& f) {
    if (f.vm.empty()) {
      tl_.host_fault(f.at, f.host, vmm::sim::fault_name(f.kind));
      return;
    }
    fault(f.at, f.vm, vmm::sim::fault_name(f.kind));
  }

  void fault(Time at, const std::string& vm, const std::string& what) {
    tl_.fault_injected(at, name(vm), what);
    watching_[vm] = at;
  }

  void on_batch(const medic::v1::EventBatch& batch, bool urgent) override {
    if (!urgent) return;
    for (const auto& e : batch.events()) {
      if (e.has_lifecycle()) {
        tl_.detected(clock_.now(), name(e.vm()),
                     std::string("vm.") + vmm::lifecycle_name(e.lifecycle().what()) +
                         " event, signed by " + e.host());
      }
    }
  }

  void on_decision(const rules::Decision& d) override {
    const Time now = clock_.now();
    const std::string vm = d.vm.empty() ? (d.host.empty() ? "fleet" : d.host) : name(d.vm);
    const std::string step(rules::step_name(d.step));
    switch (d.outcome) {
      case rules::Outcome::kProposed:
        if (d.step == rules::Step::kNotify) {
          tl_.note(now, "notify: " + d.reason);
          return;
        }
        if (d.trigger.rfind("no ", 0) == 0) tl_.detected(now, vm, d.trigger);
        tl_.decided(now, vm, d.rule, step,
                    "ladder step " + std::to_string(d.ladder_step) + "/" +
                        std::to_string(d.ladder_size) + ", all safety policies passed");
        names_[d.id] = vm;
        if (first_action_.empty()) first_action_ = d.id;
        return;
      case rules::Outcome::kSuppressed:
        tl_.suppressed(now, vm, d.rule, step, std::string(rules::policy_name(d.policy)), d.reason);
        return;
      case rules::Outcome::kDryRun:
        tl_.note(now, vm + ": dry-run " + step + " by rule " + d.rule);
        return;
      default:
        tl_.note(now, vm + ": " + std::string(rules::outcome_name(d.outcome)) + " " + step);
    }
  }

  void on_dispatch_event(const actuators::DispatchEvent& e) override {
    using T = ActionState;
    const std::string vm = names_.count(e.action.id()) ? names_[e.action.id()] : name(e.action.vm());
    switch (e.state) {
      case T::kDispatched:
        tl_.dispatched(e.at, vm, e.action.id(), vmm::verb_name(e.action.verb()));
        break;
      case T::kSucceeded:
        tl_.executed(e.at, vm, e.action.id(), true, e.result && e.result->healed() ? "VM healthy again" : "");
        if (succeeded_.empty()) succeeded_ = e.action.id();
        break;
      case T::kFailed:
      case T::kRejected:
      case T::kTimedOut:
        tl_.executed(e.at, vm, e.action.id(), false,
                     e.result ? e.result->reason() : e.reason);
        break;
      default:
        break;
    }
  }

  // Ground truth: a VM whose fault is gone is healed.
  void check_healed() {
    for (auto it = watching_.begin(); it != watching_.end();) {
      if (healthy_(it->first, it->second)) {
        tl_.healed(clock_.now(), name(it->first));
        it = watching_.erase(it);
      } else {
        ++it;
      }
    }
  }

  const std::string& example_action() const { return succeeded_.empty() ? first_action_ : succeeded_; }

 private:
  Timeline& tl_;
  Clock& clock_;
  std::function<std::string(const std::string&)> name_of_;
  std::function<bool(const std::string&, Time)> healthy_;
  std::map<std::string, Time> watching_;  // VM -> when its fault began
  std::map<std::string, std::string> names_;
  std::string first_action_;
  std::string succeeded_;
};

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

node::EngineConfig demo_engine_config(const std::string& dir, Duration duration) {
  node::EngineConfig c;
  c.name = "engine-1";
  c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  c.actions_endpoint = "tcp://127.0.0.1:*";
  c.control_endpoint = "tcp://127.0.0.1:*";
  c.audit_path = dir + "/audit.db";
  c.audit.durability = audit::Durability::kProcessCrash;
  c.engine.host_silent_after = 2500ms;
  c.engine.max_in_flight_per_host = 4;
  c.engine.storm.min_vms = 4;
  c.engine.storm.host_fraction = 0.2;
  c.engine.storm.fleet_fraction = 0.5;
  c.engine.storm.window = 10s;
  c.engine.storm.quiet = duration;
  c.engine.action_ttl = 30s;
  return c;
}

node::AgentConfig demo_agent_config(const std::string& host, node::EngineNode& engine,
                              const fabric::Identity& engine_id, const std::string& dir,
                              Duration watch = 8s) {
  node::AgentConfig ac;
  ac.host = host;
  collectors::CollectorConfig cc;
  cc.host = host;
  cc.interval = 1s;
  cc.engines.push_back(
      {"engine-1", engine_id.public_key(), engine.events_endpoint(), engine.urgent_endpoint()});
  ac.collector = cc;
  actuators::ActuatorConfig act;
  act.options.host = host;
  act.options.engine_endpoint = engine.actions_endpoint();
  act.options.engine_key = engine_id.public_key();
  act.options.journal_path = dir + "/" + host + ".journal.db";
  act.options.default_watch = watch;
  act.options.watch_poll = 500ms;
  ac.actuator = act;
  return ac;
}

bool colour_wanted() {
  const char* no = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  return isatty(1) && !(no && *no) && !(term && std::string(term) == "dumb");
}

int run_qemu_demo(const DemoOptions& o, const std::string& dir);

// Checks the options, creates the run's directory and sends the daemons' own
// logs to a file in it, so the terminal keeps the timeline. Returns 0, or the
// exit code after printing why.
int prepare_demo(const DemoOptions& o, std::string* dir, LogOptions* log) {
  if (o.hosts < 1 || o.vms < 1 || o.duration < 10s) {
    std::cerr << "medic demo: need --hosts >= 1, --vms >= 1 and --duration >= 10s\n";
    return 2;
  }
  *dir = o.dir;
  if (dir->empty()) *dir = "/tmp/medic-demo-" + std::to_string(::getpid());
  std::error_code ec;
  std::filesystem::create_directories(*dir, ec);
  if (ec) {
    std::cerr << "medic demo: cannot create " << *dir << ": " << ec.message() << "\n";
    return 2;
  }
  log->file = *dir + "/demo.log";
  log->level = "info";
  spdlog::drop("medic");
  if (Status s = setup_logging(*log); !s.ok()) {
    std::cerr << "medic demo: " << s.message() << "\n";
    return 2;
  }
  return 0;
}

// Trusts `id` as `name` in `role` for `hosts`; a collector also acts.
void add_trusted(fabric::TrustStore& trust, const std::string& name, const fabric::Identity& id,
                 fabric::Role role, std::vector<std::string> hosts) {
  fabric::TrustedNode n;
  n.name = name;
  n.key = id.public_key();
  n.roles = static_cast<uint8_t>(role);
  n.hosts = std::move(hosts);
  if (role == fabric::Role::kCollector) n.roles |= static_cast<uint8_t>(fabric::Role::kActuator);
  (void)trust.add(n);
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
    auto agent = node::AgentNode::create(
        ac, {&ctx, host_ids[i].get(), &trust, agent_clocks->back().get(), &fleet.host(i)});
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

std::vector<std::string> sim_hints(const std::string& audit_path, const Status& closed,
                                   const std::string& log_file, const std::string& example) {
  std::vector<std::string> hints;
  hints.push_back("");
  hints.push_back("  audit log            " + audit_path + (closed.ok() ? "" : " (not closed cleanly: " + closed.message() + ")"));
  hints.push_back("  daemon log           " + log_file);
  hints.push_back("");
  hints.push_back("Try:");
  if (!example.empty()) {
    hints.push_back("  medic audit why --db " + audit_path + " " + example);
  }
  hints.push_back("  medic audit list --db " + audit_path);
  hints.push_back("  medic audit verify --db " + audit_path);
  return hints;
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

int run_demo(const DemoOptions& o) {
  std::string dir;
  LogOptions log;
  if (int rc = prepare_demo(o, &dir, &log); rc != 0) return rc;
  if (o.qemu) return run_qemu_demo(o, dir);

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

  auto engine = node::EngineNode::create(ec_cfg, {ctx->get(), &engine_id, &trust, &clock, &view},
                                   loaded.rules, std::move(*store));
  if (!engine.ok()) return demo_error(engine.status());
  std::vector<std::unique_ptr<node::AgentNode>> agents;
  std::vector<std::unique_ptr<SystemClock>> agent_clocks;
  if (!start_sim_agents(fleet, **engine, engine_id, host_ids, trust, *ctx->get(), dir,
                        &agent_clocks, &agents)) {
    return 2;
  }

  print_sim_banner(o, ec_cfg.audit_path, start, tl);
  schedule_sim_faults(o, fleet, fleet_clock, start);
  run_sim_until(start + o.duration, clock, fleet_clock, fleet, **engine, agents, view);
  const Time stopped = clock.now();
  agents.clear();
  Status closed = (*engine)->shutdown();
  tl.print_summary(stopped, sim_hints(ec_cfg.audit_path, closed, log.file, view.example_action()));
  return 0;
}

// medic demo --qemu: one host with two real QEMU guests (TCG), the tiny test
// guest built from Debian packages by tests/guest/build-guest. Faults are
// real: a kernel panic (NMI), a guest that stops its heartbeat, a QEMU
// killed with SIGKILL.

const std::vector<std::string> kQemuUuids = {"6f1c2a3b-0000-4000-8000-000000000001",
                                             "6f1c2a3b-0000-4000-8000-000000000002"};

// Builds the test guest under `dir`; its kernel and initrd paths go to *kernel
// and *initrd. Prints why and returns false if it cannot.
bool build_test_guest(const std::string& dir, std::string* kernel, std::string* initrd) {
  const char* src_env = std::getenv("MEDIC_SOURCE_DIR");
  const std::string src = src_env && *src_env ? src_env : MEDIC_DEFAULT_SOURCE_DIR;
  RunOptions ro;
  ro.timeout = std::chrono::minutes(3);
  auto built = run_process({src + "/tests/guest/build-guest", dir + "/guest"}, ro);
  if (!built.ok() || built->exit_code != 0) {
    std::cerr << "medic demo --qemu: cannot build the test guest"
              << (built.ok() ? ": " + built->err : ": " + built.status().message())
              << "(needs qemu-system-x86, linux-image-amd64, busybox-static, cpio: "
                 "scripts/bootstrap installs them)\n";
    return false;
  }
  std::istringstream lines(built->out);
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("kernel=", 0) == 0) *kernel = l.substr(7);
    if (l.rfind("initrd=", 0) == 0) *initrd = l.substr(7);
  }
  return true;
}

// The VM specs of the demo's guests, in the vms.yaml format.
std::string qemu_vms_yaml(const std::string& accel, const std::string& kernel,
                          const std::string& initrd) {
  std::string yaml = "vms:\n";
  for (size_t i = 0; i < kQemuUuids.size(); ++i) {
    const std::string n = std::to_string(i + 1);
    yaml += "  - name: qemu-vm-" + n + "\n    uuid: " + kQemuUuids[i] +
            "\n    memory: 256M\n    accel: " + accel +
            "\n    kernel: " + kernel + "\n    initrd: " + initrd +
            "\n    append: console=ttyS0 panic=0 unknown_nmi_panic=1 quiet\n"
            "    qmp_socket: vm" + n + ".qmp\n    heartbeat_socket: vm" + n +
            ".hb\n    console_log: vm" + n + ".console.log\n    qemu_log: vm" + n +
            ".qemu.log\n    devices: [pvpanic]\n    labels: {tier: web}\n";
  }
  return yaml;
}

bool beating_since(vmm::qmp::QmpHypervisor& hv, const std::string& vm, Time since) {
  auto info = hv.get(vm);
  return info.ok() && info->state == medic::v1::VM_STATE_RUNNING && info->last_heartbeat > since;
}

// Starts the guests and waits (at most 120s) until each beats. Prints why
// and returns false if one cannot start.
bool boot_guests(vmm::qmp::QmpHypervisor& hv, Clock& clock) {
  for (const auto& u : kQemuUuids) {
    Status s = vmm::execute_and_wait(hv, clock, medic::v1::VERB_START, u, 60s);
    if (!s.ok()) {
      std::cerr << "medic demo --qemu: cannot start " << u << ": " << s.message() << "\n";
      return false;
    }
  }
  const Time boot_started = clock.now();
  while (clock.now() - boot_started < 120s) {
    hv.poll();
    bool all = true;
    for (const auto& u : kQemuUuids) all = all && beating_since(hv, u, boot_started);
    if (all) break;
    ::poll(nullptr, 0, 50);  // waiting on real guests booting, bounded above
  }
  return true;
}

std::string qemu_vm_name(const std::string& vm) {
  for (size_t i = 0; i < kQemuUuids.size(); ++i) {
    if (kQemuUuids[i] == vm) return "qemu-vm-" + std::to_string(i + 1);
  }
  return vm;
}

// A panic (NMI), a hang and a SIGKILLed QEMU, on `clock`.
void schedule_qemu_faults(const DemoOptions& o, SystemClock& clock, vmm::qmp::QmpHypervisor& hv,
                          DemoView& view, Time start) {
  struct Fault {
    double at;
    size_t vm;
    const char* what;
  };
  const std::vector<Fault> faults = {{0.08, 0, "panic"}, {0.20, 1, "hang"}, {0.60, 0, "crash"}};
  for (const auto& f : faults) {
    Time at = start + std::chrono::duration_cast<Duration>(o.duration * f.at);
    clock.schedule_at(at, [&, f] {
      const std::string& vm = kQemuUuids[f.vm];
      view.fault(clock.now(), vm, f.what);
      if (std::string(f.what) == "panic") {
        (void)hv.qmp_command(vm, "inject-nmi", 5s);
      } else if (std::string(f.what) == "hang") {
        (void)hv.send_to_guest(vm, "hang");
      } else if (auto info = hv.get(vm); info.ok() && info->pid > 0) {
        ::kill(info->pid, SIGKILL);
      }
    });
  }
}

std::vector<std::string> qemu_hints(const std::string& audit_path, const Status& closed,
                                    const std::string& dir, const std::string& example) {
  std::vector<std::string> hints = {
      "", "  audit log            " + audit_path + (closed.ok() ? "" : " (not closed cleanly)"),
      "  guest consoles       " + dir + "/vm*.console.log", "", "Try:"};
  if (!example.empty()) {
    hints.push_back("  medic audit why --db " + audit_path + " " + example);
  }
  hints.push_back("  medic audit verify --db " + audit_path);
  return hints;
}

int qemu_demo_error(const Status& s) {
  std::cerr << "medic demo --qemu: " << s.message() << "\n";
  return 2;
}

int run_qemu_demo(const DemoOptions& o, const std::string& dir) {
  std::string kernel, initrd;
  if (!build_test_guest(dir, &kernel, &initrd)) return 2;
  const char* accel_env = std::getenv("MEDIC_E2E_ACCEL");
  const std::string accel = accel_env && *accel_env ? accel_env : "tcg";
  auto specs = vmm::qmp::parse_vm_specs(qemu_vms_yaml(accel, kernel, initrd), "demo-vms.yaml", dir);
  if (!specs.ok()) return qemu_demo_error(specs.status());
  SystemClock clock, agent_clock;
  const std::string host = "qemu-host";
  vmm::qmp::QmpHypervisor hv(host, *specs, agent_clock);
  fabric::Identity engine_id = fabric::Identity::generate();
  fabric::Identity host_id = fabric::Identity::generate();
  fabric::TrustStore trust;
  add_trusted(trust, "engine-1", engine_id, fabric::Role::kEngine, {"*"});
  add_trusted(trust, host, host_id, fabric::Role::kCollector, {host});
  auto ctx = fabric::Context::create(trust);
  if (!ctx.ok()) return qemu_demo_error(ctx.status());
  std::cout << "medic demo --qemu: booting " << kQemuUuids.size()
            << " QEMU guests under " << accel << " ..." << std::endl;
  if (!boot_guests(hv, clock)) return 2;
  auto loaded = rules::load_rule_text(demo_rules("15s"), "demo.rules.yaml");
  if (!loaded.ok()) return 2;
  node::EngineConfig ec_cfg = demo_engine_config(dir, o.duration);
  auto store = audit::open_sqlite_store(ec_cfg.audit_path, clock, engine_id, ec_cfg.audit);
  if (!store.ok()) return qemu_demo_error(store.status());
  const Time start = clock.now();
  Timeline tl(std::cout, colour_wanted(), start);
  DemoView view(tl, clock, qemu_vm_name,
                [&hv](const std::string& vm, Time since) { return beating_since(hv, vm, since); });
  auto engine = node::EngineNode::create(ec_cfg, {ctx->get(), &engine_id, &trust, &clock, &view},
                                   loaded.rules, std::move(*store));
  if (!engine.ok()) return qemu_demo_error(engine.status());
  auto agent = node::AgentNode::create(demo_agent_config(host, **engine, engine_id, dir, 15s),
                                 {ctx->get(), &host_id, &trust, &agent_clock, &hv});
  if (!agent.ok()) return qemu_demo_error(agent.status());
  tl.note(start, "2 real guests up (heartbeat on a serial port, pvpanic); collector and actuator "
                 "over CurveZMQ; faults: panic, hang, QEMU killed");
  schedule_qemu_faults(o, clock, hv, view, start);
  SignalFlags& signals = install_signal_handlers();
  const Time end = start + o.duration;
  while (clock.now() < end && !signals.stop.load()) {
    (*engine)->run_once(2ms);
    (*agent)->run_once(Duration(0));
    view.check_healed();
  }
  const Time stopped = clock.now();
  agent->reset();
  Status closed = (*engine)->shutdown();
  tl.print_summary(stopped, qemu_hints(ec_cfg.audit_path, closed, dir, view.example_action()));
  return 0;
}

}  // namespace

void add_demo(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "demo", "run engine, simulated fleet and fault injector in one process");
  auto o = std::make_shared<DemoOptions>();
  auto duration = std::make_shared<std::string>("60s");
  sub->add_option("--duration", *duration, "how long to run")->capture_default_str();
  sub->add_option("--hosts", o->hosts, "simulated hosts")->capture_default_str();
  sub->add_option("--vms", o->vms, "VMs per host")->capture_default_str();
  sub->add_option("--seed", o->seed, "seed of the simulation")->capture_default_str();
  sub->add_option("--faults", o->faults, "random VM faults on top of the scripted scenario")
      ->capture_default_str();
  sub->add_flag("--qemu", o->qemu, "use real QEMU guests (needs qemu-system-x86_64)");
  sub->add_option("--dir", o->dir, "where to keep the audit log (default /tmp/medic-demo-PID)");
  sub->callback([o, duration, exit_code] {
    auto d = parse_duration(*duration);
    if (!d.ok()) {
      std::cerr << "medic demo: --duration: " << d.status().message() << "\n";
      *exit_code = 2;
      return;
    }
    o->duration = *d;
    *exit_code = run_demo(*o);
  });
}

}  // namespace medic::app
