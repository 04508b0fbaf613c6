// Subcommands whose modules have not landed yet. Each moves to its own
// cmd_<name>.cc when it is built.
#include <iostream>

#include "app/commands.h"

namespace medic::app {

void not_built_yet(CLI::App& sub, const char* what, int* exit_code) {
  sub.allow_extras();
  sub.callback([&sub, what, exit_code] {
    std::cerr << "medic " << sub.get_name() << ": not built yet (" << what << ")\n";
    *exit_code = 2;
  });
}

void add_demo(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("demo", "run engine, simulated fleet and fault injector in one process");
  not_built_yet(*sub, "needs the simulator, rules engine, actuator and audit", exit_code);
}

void add_engine(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("engine", "run the rules engine, audit log and action dispatcher");
  not_built_yet(*sub, "needs the rules engine, dispatcher and audit", exit_code);
}

void add_agent(CLI::App& app, int* exit_code) {
  auto* agent = app.add_subcommand("agent", "run collector and actuator for one host");
  not_built_yet(*agent, "needs the collector and actuator", exit_code);
  auto* collector = app.add_subcommand("collector", "run only the collector for one host");
  not_built_yet(*collector, "needs the collector", exit_code);
  auto* actuator = app.add_subcommand("actuator", "run only the actuator for one host");
  not_built_yet(*actuator, "needs the actuator", exit_code);
}

void add_rules(CLI::App& app, int* exit_code) {
  auto* rules = app.add_subcommand("rules", "check and unit-test rule files offline");
  rules->require_subcommand(1);
  not_built_yet(*rules->add_subcommand("check", "lint rule files"), "needs the rules engine",
                exit_code);
  not_built_yet(*rules->add_subcommand("test", "run rule unit tests"), "needs the rules engine",
                exit_code);
}

void add_audit(CLI::App& app, int* exit_code) {
  auto* audit = app.add_subcommand("audit", "query and verify the audit log");
  audit->require_subcommand(1);
  for (const char* name : {"list", "show", "why", "verify", "export"}) {
    not_built_yet(*audit->add_subcommand(name, std::string("audit ") + name), "needs the audit log",
                  exit_code);
  }
}

void add_control(CLI::App& app, int* exit_code) {
  for (const char* name : {"approve", "deny", "silence", "status"}) {
    not_built_yet(*app.add_subcommand(name, std::string("operator request: ") + name),
                  "needs the engine's control channel", exit_code);
  }
}

}  // namespace medic::app
