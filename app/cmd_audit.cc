// Placeholder until its module lands: says plainly what is missing.
#include "app/commands.h"

namespace medic::app {

void add_audit(CLI::App& app, int* exit_code) {
  auto* audit = app.add_subcommand("audit", "query and verify the audit log");
  audit->require_subcommand(1);
  for (const char* name : {"list", "show", "why", "verify", "export"}) {
    not_built_yet(*audit->add_subcommand(name, std::string("audit ") + name), "needs the audit log",
                  exit_code);
  }
}

}  // namespace medic::app
