// Shared helpers of the subcommand files.
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

}  // namespace medic::app
