// Placeholder until its module lands: says plainly what is missing.
#include "app/commands.h"

namespace medic::app {

void add_agent(CLI::App& app, int* exit_code) {
  auto* agent = app.add_subcommand("agent", "run collector and actuator for one host");
  not_built_yet(*agent, "needs the collector and actuator", exit_code);
  auto* collector = app.add_subcommand("collector", "run only the collector for one host");
  not_built_yet(*collector, "needs the collector", exit_code);
  auto* actuator = app.add_subcommand("actuator", "run only the actuator for one host");
  not_built_yet(*actuator, "needs the actuator", exit_code);
}

}  // namespace medic::app
