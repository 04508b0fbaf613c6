// How the daemon subcommands tell a person what their setup found:
// `--check` prints the report and exits 0 or 1; a daemon whose setup has
// problems prints them and exits kExitConfig before it binds anything.
#pragma once

#include <string>

#include "node/setup.h"

namespace medic::app {

// --check: warnings and problems to stderr, one a line; then "config OK: ..."
// on stdout and 0, or a count of the problems on stderr and 1.
int print_check(const node::SetupReport& report, const std::string& config_path);

// A daemon's start: prints every problem to stderr after `who: ` and returns
// kExitConfig. REQUIRES: !report.ok().
int config_error(const node::SetupReport& report, const std::string& who,
                 const std::string& config_path);

}  // namespace medic::app
