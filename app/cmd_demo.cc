// medic demo: the whole system in one process on embedded defaults. An
// engine, a simulated fleet (3 hosts x 20 VMs) with one collector and one
// actuator per host, and a fault injector on a schedule, all talking over
// real ZeroMQ sockets (tcp loopback with CurveZMQ) with real signatures and a
// real SQLite audit file. A live timeline shows each incident from fault to
// healed; a summary closes the run. This file: the subcommand, its options
// and what both runs share (app/demo.h); the runs are app/demo_sim.cc and
// app/demo_qemu.cc.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "app/commands.h"
#include "app/demo.h"
#include "core/duration.h"
#include "core/log.h"

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

}  // namespace

std::string demo_rules(const std::string& heal_within) {
  std::string r = kDemoRules;
  r.replace(r.find("HEAL"), 4, heal_within);
  return r;
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
  // The demo packs a day's faults into a minute: unrelated faults are seconds
  // apart, so a settle of 10s would see them as one storm. Its burst comes at
  // one instant, and a 1s settle still catches it.
  c.engine.storm.host_settle = 1s;
  c.engine.storm.fleet_settle = 1s;
  c.engine.storm.quiet = duration;
  c.engine.action_ttl = 30s;
  return c;
}

node::AgentConfig demo_agent_config(const std::string& host, node::EngineNode& engine,
                                    const fabric::Identity& engine_id, const std::string& dir,
                                    Duration watch) {
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

// The medic binary by its full path, so a hint pastes and works from any
// directory ("medic" alone is not on PATH after `make demo`).
namespace {

std::string medic_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "medic" : p.string();
}

}  // namespace

std::vector<std::string> demo_hints(const std::string& audit_path, const Status& closed,
                                    const std::vector<std::string>& files,
                                    const std::string& example) {
  std::vector<std::string> hints = {
      "", "  audit log            " + audit_path +
              (closed.ok() ? "" : " (not closed cleanly: " + closed.message() + ")")};
  hints.insert(hints.end(), files.begin(), files.end());
  const std::string medic = medic_path();
  hints.push_back("");
  hints.push_back("Try:");
  if (!example.empty()) hints.push_back("  " + medic + " audit why --db " + audit_path + " " + example);
  hints.push_back("  " + medic + " audit list --db " + audit_path);
  hints.push_back("  " + medic + " audit verify --db " + audit_path);
  return hints;
}

namespace {

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
  if (!o.resume && std::filesystem::exists(*dir + "/audit.db", ec)) {
    // A second run would append to the first one's log and journals.
    std::cerr << "medic demo: " << *dir << " already holds a run (audit.db); pass --resume to "
              << "add this run to it, or give a new --dir\n";
    return 2;
  }
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

int run_demo(const DemoOptions& o) {
  std::string dir;
  LogOptions log;
  if (int rc = prepare_demo(o, &dir, &log); rc != 0) return rc;
  return o.qemu ? run_qemu_demo(o, dir) : run_sim_demo(o, dir);
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
  sub->add_option("--dir", o->dir,
                  "where to keep the audit log (default /tmp/medic-demo-PID); must not hold a "
                  "run already, unless --resume");
  sub->add_flag("--resume", o->resume, "add this run to the audit log already in --dir");
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
