// Placeholder until its module lands: says plainly what is missing.
#include "app/commands.h"

namespace medic::app {

void add_engine(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("engine", "run the rules engine, audit log and action dispatcher");
  not_built_yet(*sub, "needs the rules engine, dispatcher and audit", exit_code);
}

}  // namespace medic::app
