// Placeholder until its module lands: says plainly what is missing.
#include "app/commands.h"

namespace medic::app {

void add_rules(CLI::App& app, int* exit_code) {
  auto* rules = app.add_subcommand("rules", "check and unit-test rule files offline");
  rules->require_subcommand(1);
  not_built_yet(*rules->add_subcommand("check", "lint rule files"), "needs the rules engine",
                exit_code);
  not_built_yet(*rules->add_subcommand("test", "run rule unit tests"), "needs the rules engine",
                exit_code);
}

}  // namespace medic::app
