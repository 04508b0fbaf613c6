// medic bridge alertmanager -c bridge.yaml: Alertmanager's webhook in,
// signed alert events out (node/alert_bridge.h, docs/alertmanager.md).
// SIGTERM/SIGINT stop it. `--check` loads the config and the key and exits
// (0 OK, 1 problems) without listening or connecting.
#include <spdlog/spdlog.h>

#include <iostream>

#include "app/commands.h"
#include "app/signals.h"
#include "app/systemd_notify.h"
#include "node/alert_bridge.h"

namespace medic::app {
namespace {

int run_bridge(const std::string& path, bool check_only) {
  auto config = node::load_bridge_config(path);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 1;
  }
  auto identity = fabric::Identity::load(config->key_file);
  if (!identity.ok()) {
    std::cerr << path << ": key " << config->key_file << ": " << identity.status().message()
              << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << path << ": OK (webhook at " << config->http.listen << "/api/v1/alerts, "
              << config->engines.size() << " engine(s), key " << identity->id() << ")\n";
    return 0;
  }
  fabric::TrustStore trust;  // the bridge only connects out: no peer connects to it
  auto ctx = fabric::Context::create(trust);
  if (!ctx.ok()) {
    std::cerr << "medic bridge: " << ctx.status().message() << "\n";
    return 1;
  }
  SystemClock clock;
  SignalFlags& signals = install_signal_handlers();
  auto bridge = node::AlertBridge::create(*config, {**ctx, *identity, trust, clock});
  if (!bridge.ok()) {
    std::cerr << "medic bridge: " << bridge.status().message() << "\n";
    return 1;
  }
  SystemdNotifier systemd;
  systemd.ready("bridge " + config->name + " up");
  while (!signals.stop.load()) {
    (*bridge)->run_once(std::chrono::milliseconds(100));
    systemd.tick();
  }
  spdlog::info("bridge {}: stopping", config->name);
  systemd.stopping();
  return 0;
}

}  // namespace

void add_bridge(CLI::App& app, int* exit_code) {
  auto* bridge = app.add_subcommand("bridge", "bridges from monitoring systems into medic events");
  bridge->require_subcommand(1);
  auto* am = bridge->add_subcommand(
      "alertmanager", "take Prometheus Alertmanager webhooks and send them as alert events");
  auto path = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  am->add_option("-c,--config", *path, "bridge.yaml")->required();
  am->add_flag("--check", *check,
               "load and check the config and key, then exit (0 OK, 1 problems)");
  am->callback([=] { *exit_code = run_bridge(*path, *check); });
}

}  // namespace medic::app
