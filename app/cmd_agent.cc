// medic agent / collector / actuator -c agent.yaml: the per-host daemon.
// SIGTERM/SIGINT stop it cleanly.
#include <spdlog/spdlog.h>

#include <iostream>

#include "node/agent_node.h"
#include "app/commands.h"
#include "app/signals.h"

namespace medic::app {
namespace {

int run_agent(const std::string& path, bool collector, bool actuator) {
  auto config = node::load_agent_config(path, collector, actuator);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 2;
  }
  auto identity = fabric::Identity::load(config->key_file);
  if (!identity.ok()) {
    std::cerr << "medic agent: " << identity.status().message() << "\n";
    return 2;
  }
  fabric::TrustStore empty;
  Result<fabric::TrustStore> trust = empty;
  if (!config->trust_file.empty()) trust = fabric::TrustStore::load(config->trust_file);
  if (!trust.ok()) {
    std::cerr << "medic agent: " << trust.status().message() << "\n";
    return 2;
  }
  auto ctx = fabric::Context::create(*trust);
  if (!ctx.ok()) {
    std::cerr << "medic agent: " << ctx.status().message() << "\n";
    return 2;
  }
  SystemClock clock;
  YAML::Node backend_node;
  if (config->collector) {
    backend_node = config->collector->backend;
  } else {
    // The actuator alone still needs the backend: it is in the collector section.
    auto root = load_yaml_file(path);
    if (root.ok() && (*root)["collector"].IsDefined())
      backend_node = (*root)["collector"]["backend"];
  }
  if (!backend_node.IsDefined()) {
    std::cerr << path << ": no backend: add collector.backend (e.g. {kind: sim})\n";
    return 2;
  }
  auto backend = node::make_backend(config->host, backend_node, path, clock);
  if (!backend.ok()) {
    std::cerr << backend.status().message() << "\n";
    return 2;
  }
  SignalFlags& signals = install_signal_handlers();
  auto daemon = node::AgentNode::create(*config, {ctx->get(), &*identity, &*trust, &clock,
                                          backend->hypervisor, backend->guest_pinger.get()});
  if (!daemon.ok()) {
    std::cerr << "medic agent: " << daemon.status().message() << "\n";
    return 2;
  }
  spdlog::info("agent {} up ({}{}{})", config->host, collector ? "collector" : "",
               collector && actuator ? " + " : "", actuator ? "actuator" : "");
  while (!signals.stop.load()) (*daemon)->run_once(std::chrono::milliseconds(100));
  spdlog::info("agent {}: stopping", config->host);
  return 0;
}

void add_one(CLI::App& app, const char* name, const char* help, bool collector, bool actuator,
             int* exit_code) {
  auto* sub = app.add_subcommand(name, help);
  auto path = std::make_shared<std::string>();
  sub->add_option("-c,--config", *path, "agent.yaml")->required();
  sub->callback([=] { *exit_code = run_agent(*path, collector, actuator); });
}

}  // namespace

void add_agent(CLI::App& app, int* exit_code) {
  add_one(app, "agent", "run collector and actuator for one host", true, true, exit_code);
  add_one(app, "collector", "run only the collector for one host", true, false, exit_code);
  add_one(app, "actuator", "run only the actuator for one host", false, true, exit_code);
}

}  // namespace medic::app
