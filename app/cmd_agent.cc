// medic agent / collector / actuator -c agent.yaml: the per-host daemon.
// SIGTERM/SIGINT stop it cleanly. `--check` loads and checks everything the
// daemon would (node/setup.h: config, key, trust store, endpoints, the
// backend's specification, the journal's directory) and exits without
// connecting, creating a journal or starting a VM. Exit codes: app/commands.h.
#include <spdlog/spdlog.h>

#include <iostream>

#include "app/commands.h"
#include "app/setup_report.h"
#include "app/signals.h"
#include "app/systemd_notify.h"
#include "node/agent_http.h"
#include "node/agent_node.h"
#include "node/setup.h"

namespace medic::app {
namespace {

int check_agent(const std::string& path, bool collector, bool actuator) {
  SystemClock clock;
  node::AgentSetup setup = node::load_agent_setup(path, collector, actuator, clock);
  return print_check(setup.report, path);
}

int run_agent(const std::string& path, bool collector, bool actuator) {
  SystemClock clock;  // before the setup: its backend holds the clock
  node::AgentSetup setup = node::load_agent_setup(path, collector, actuator, clock);
  const char* who = collector && actuator ? "medic agent"
                    : collector           ? "medic collector"
                                          : "medic actuator";
  if (!setup.report.ok()) return config_error(setup.report, who, path);
  const node::AgentConfig* config = &setup.config;
  const fabric::Identity* identity = &*setup.identity;
  const fabric::TrustStore* trust = &setup.trust;
  node::Backend* backend = &setup.backend;
  auto ctx = fabric::Context::create(*trust);
  if (!ctx.ok()) {
    std::cerr << who << ": " << ctx.status().message() << "\n";
    return 1;
  }
  SignalFlags& signals = install_signal_handlers();
  auto daemon = node::AgentNode::create(*config, {**ctx, *identity, *trust, clock},
                                        *backend->hypervisor, backend->guest_pinger.get());
  if (!daemon.ok()) {
    std::cerr << who << ": " << daemon.status().message() << "\n";
    return 1;
  }
  std::unique_ptr<node::AgentHttp> web;  // destroyed before the daemon
  if (!config->http.listen.empty()) {
    auto started = node::AgentHttp::start(config->http, **daemon);
    if (!started.ok()) {
      spdlog::error("agent: http: {}", started.status().message());
      return 1;
    }
    web = std::move(*started);
  }
  spdlog::info("agent {} up ({}{}{}) http {}", config->host, collector ? "collector" : "",
               collector && actuator ? " + " : "", actuator ? "actuator" : "",
               web ? web->url() : "off");
  SystemdNotifier systemd;
  systemd.ready("agent " + config->host + " up");
  while (!signals.stop.load()) {
    (*daemon)->run_once(std::chrono::milliseconds(100));
    systemd.tick();
  }
  spdlog::info("agent {}: stopping", config->host);
  systemd.stopping();
  return 0;
}

void add_one(CLI::App& app, const char* name, const char* help, bool collector, bool actuator,
             int* exit_code) {
  auto* sub = app.add_subcommand(name, help);
  auto path = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  sub->add_option("-c,--config", *path, "agent.yaml")->required();
  sub->add_flag("--check", *check,
                "load and check the config, key, trust store, endpoints, backend and journal "
                "directory, then exit (0 OK, 1 problems) without connecting or starting anything");
  sub->callback([=] {
    *exit_code = *check ? check_agent(*path, collector, actuator)
                        : run_agent(*path, collector, actuator);
  });
}

}  // namespace

void add_agent(CLI::App& app, int* exit_code) {
  add_one(app, "agent", "run collector and actuator for one host", true, true, exit_code);
  add_one(app, "collector", "run only the collector for one host", true, false, exit_code);
  add_one(app, "actuator", "run only the actuator for one host", false, true, exit_code);
}

}  // namespace medic::app
