// Placeholder until its module lands: says plainly what is missing.
#include "app/commands.h"

namespace medic::app {

void add_control(CLI::App& app, int* exit_code) {
  for (const char* name : {"approve", "deny", "silence", "status"}) {
    not_built_yet(*app.add_subcommand(name, std::string("operator request: ") + name),
                  "needs the engine's control channel", exit_code);
  }
}

}  // namespace medic::app
