// Placeholder until its module lands: says plainly what is missing.
#include "app/commands.h"

namespace medic::app {

void add_demo(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("demo", "run engine, simulated fleet and fault injector in one process");
  not_built_yet(*sub, "needs the simulator, rules engine, actuator and audit", exit_code);
}

}  // namespace medic::app
