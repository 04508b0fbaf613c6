// medic engine -c engine.yaml: the rules engine, audit log, dispatcher and
// control channel as a daemon. SIGTERM/SIGINT stop it cleanly; SIGHUP
// expands the rule patterns again and reloads the rules (a bad rule file
// keeps the old rules and logs why). `--check` loads and checks everything
// the daemon would (node/setup.h) and exits without binding or creating
// anything. Exit codes: app/commands.h.
#include <spdlog/spdlog.h>

#include <iostream>

#include "app/commands.h"
#include "app/setup_report.h"
#include "app/signals.h"
#include "app/systemd_notify.h"
#include "node/engine_http.h"
#include "node/engine_metrics.h"
#include "node/engine_node.h"
#include "node/setup.h"

namespace medic::app {
namespace {

void log_rule_messages(const rules::LoadResult& loaded) {
  for (const auto& m : loaded.messages) {
    if (rules::is_warning(m.code))
      spdlog::warn("rules: {}", m.to_string());
    else
      spdlog::error("rules: {}", m.to_string());
  }
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

// "; added A; removed B", or "; no file added or removed".
std::string changes_text(const node::RuleFileChanges& c) {
  if (c.added.empty() && c.removed.empty()) return "; no file added or removed";
  std::string out;
  if (!c.added.empty()) out += "; added " + join(c.added);
  if (!c.removed.empty()) out += "; removed " + join(c.removed);
  return out;
}

// SIGHUP: the patterns are expanded again, so a file added to (or removed
// from) a globbed directory counts. `in_force` is the file list of the rules
// the engine runs; it changes only when the new set loads without error.
void reload_rules(const node::EngineConfig& config, std::vector<std::string>* in_force,
                  node::EngineNode& daemon) {
  std::vector<std::string> files = node::expand_rule_files(config);
  rules::LoadResult loaded = node::load_engine_rules(config, files);
  log_rule_messages(loaded);
  if (!loaded.ok()) {
    spdlog::error("engine: reload refused, the old rules stay in force");
    return;
  }
  const node::RuleFileChanges changes = node::diff_rule_files(*in_force, files);
  daemon.reload(loaded.rules);
  *in_force = std::move(files);
  const size_t n = in_force->size();
  spdlog::info("engine: rules reloaded ({} file{}{})", n, n == 1 ? "" : "s", changes_text(changes));
}

int check_engine(const std::string& config_path) {
  node::EngineSetup setup = node::load_engine_setup(config_path);
  return print_check(setup.report, config_path);
}

// Runs `daemon` until SIGTERM/SIGINT, reloading the rules on SIGHUP; then
// closes the audit log. Returns the exit code.
int serve(node::EngineNode& daemon, const node::EngineConfig& config,
          std::vector<std::string> rule_files, SignalFlags& signals) {
  std::unique_ptr<node::EngineHttp> web;
  if (!config.http.listen.empty()) {
    auto started = node::EngineHttp::start(config.http, daemon,
                                           [&daemon] { return node::engine_metrics_text(daemon); });
    if (!started.ok()) {
      spdlog::error("engine: http: {}", started.status().message());
      return 1;
    }
    web = std::move(*started);
  }
  spdlog::info("engine {} up: events {} urgent {} actions {} control {} audit {} http {}",
               config.name, daemon.events_endpoint(), daemon.urgent_endpoint(),
               daemon.actions_endpoint(), daemon.control_endpoint(), config.audit_path,
               web ? web->url() : "off");
  SystemdNotifier systemd;
  systemd.ready("engine " + config.name + " up");
  while (!signals.stop.load()) {
    if (signals.reload.exchange(false)) reload_rules(config, &rule_files, daemon);
    daemon.run_once(std::chrono::milliseconds(100));
    systemd.tick();
  }
  spdlog::info("engine: stopping");
  systemd.stopping();
  web.reset();  // before the node it asks
  Status s = daemon.shutdown();
  if (!s.ok()) {
    spdlog::error("engine: audit log did not close cleanly: {}", s.message());
    return 1;
  }
  return 0;
}

int run_engine(const std::string& config_path) {
  node::EngineSetup setup = node::load_engine_setup(config_path);
  for (const auto& w : setup.report.warnings) spdlog::warn("rules: {}", w);
  if (!setup.report.ok()) return config_error(setup.report, "medic engine", config_path);
  const node::EngineConfig& config = setup.config;
  // Before anything binds: a SIGTERM that arrives while the sockets open is
  // a clean stop, not death by the default action.
  SignalFlags& signals = install_signal_handlers();
  SystemClock clock;  // the engine's, and so the audit store's
  auto store = audit::open_sqlite_store(config.audit_path, clock, *setup.identity, config.audit);
  if (!store.ok()) {
    std::cerr << "medic engine: audit log " << config.audit_path << ": " << store.status().message()
              << "\n";
    return 1;
  }
  auto ctx = fabric::Context::create(*setup.trust);
  if (!ctx.ok()) {
    std::cerr << "medic engine: " << ctx.status().message() << "\n";
    return 1;
  }
  auto daemon = node::EngineNode::create(config, {**ctx, *setup.identity, *setup.trust, clock},
                                         setup.rules, std::move(*store));
  if (!daemon.ok()) {
    std::cerr << "medic engine: " << daemon.status().message() << "\n";
    return 1;
  }
  return serve(**daemon, config, setup.rule_files, signals);
}

}  // namespace

void add_engine(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("engine", "run the rules engine, audit log and action dispatcher");
  auto path = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  sub->add_option("-c,--config", *path, "engine.yaml")->required();
  sub->add_flag("--check", *check,
                "load and check the config, key, trust store, rules, endpoints and audit "
                "directory, then exit (0 OK, 1 problems) without binding or creating anything");
  sub->callback(
      [path, check, exit_code] { *exit_code = *check ? check_engine(*path) : run_engine(*path); });
}

}  // namespace medic::app
