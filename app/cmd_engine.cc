// medic engine -c engine.yaml: the rules engine, audit log, dispatcher and
// control channel as a daemon. SIGTERM/SIGINT stop it cleanly; SIGHUP
// reloads the rules (a bad rule file keeps the old rules and logs why).
#include <spdlog/spdlog.h>

#include <iostream>

#include "app/commands.h"
#include "node/engine_node.h"
#include "app/signals.h"

namespace medic::app {
namespace {

std::shared_ptr<const rules::RuleSet> load_rules(const node::EngineConfig& c, bool* ok) {
  rules::LoadOptions lo;
  lo.defaults = c.engine.defaults;
  auto loaded = rules::load_rule_files(c.rule_files, lo);
  for (const auto& m : loaded.messages) {
    if (rules::is_warning(m.code)) spdlog::warn("rules: {}", m.to_string());
    else spdlog::error("rules: {}", m.to_string());
  }
  *ok = loaded.ok();
  return loaded.rules;
}

int run_engine(const std::string& config_path) {
  auto config = node::load_engine_config(config_path);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 2;
  }
  auto identity = fabric::Identity::load(config->key_file);
  if (!identity.ok()) {
    std::cerr << "medic engine: " << identity.status().message() << "\n";
    return 2;
  }
  auto trust = fabric::TrustStore::load(config->trust_file);
  if (!trust.ok()) {
    std::cerr << "medic engine: " << trust.status().message() << "\n";
    return 2;
  }
  bool rules_ok = false;
  auto rules = load_rules(*config, &rules_ok);
  if (!rules_ok) {
    std::cerr << "medic engine: the rule files have errors (run `medic rules check`)\n";
    return 2;
  }
  SystemClock clock;  // the engine's, and so the audit store's
  auto store = audit::open_sqlite_store(config->audit_path, clock, *identity, config->audit);
  if (!store.ok()) {
    std::cerr << "medic engine: audit log " << config->audit_path << ": "
              << store.status().message() << "\n";
    return 2;
  }
  auto ctx = fabric::Context::create(*trust);
  if (!ctx.ok()) {
    std::cerr << "medic engine: " << ctx.status().message() << "\n";
    return 2;
  }
  SignalFlags& signals = install_signal_handlers();
  int code = 0;
  {
    auto daemon = node::EngineNode::create(*config, {ctx->get(), &*identity, &*trust, &clock, nullptr},
                                   rules, std::move(*store));
    if (!daemon.ok()) {
      std::cerr << "medic engine: " << daemon.status().message() << "\n";
      return 2;
    }
    spdlog::info("engine {} up: events {} urgent {} actions {} control {} audit {}",
                 config->name, (*daemon)->events_endpoint(), (*daemon)->urgent_endpoint(),
                 (*daemon)->actions_endpoint(), (*daemon)->control_endpoint(), config->audit_path);
    while (!signals.stop.load()) {
      if (signals.reload.exchange(false)) {
        bool ok = false;
        auto fresh = load_rules(*config, &ok);
        if (ok) {
          (*daemon)->reload(fresh);
          spdlog::info("engine: rules reloaded ({} files)", config->rule_files.size());
        } else {
          spdlog::error("engine: reload refused, the old rules stay in force");
        }
      }
      (*daemon)->run_once(std::chrono::milliseconds(100));
    }
    spdlog::info("engine: stopping");
    Status s = (*daemon)->shutdown();
    if (!s.ok()) {
      spdlog::error("engine: audit log did not close cleanly: {}", s.message());
      code = 1;
    }
  }
  return code;
}

}  // namespace

void add_engine(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("engine", "run the rules engine, audit log and action dispatcher");
  auto path = std::make_shared<std::string>();
  sub->add_option("-c,--config", *path, "engine.yaml")->required();
  sub->callback([path, exit_code] { *exit_code = run_engine(*path); });
}

}  // namespace medic::app
