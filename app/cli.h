// The medic command line: every subcommand, parsed and run. main.cc is only
// the call, so the binary's last compile step does not parse CLI11 again.
#pragma once

namespace medic::app {

// Parses argv, runs the chosen subcommand; returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace medic::app
