// The medic command line: each file app/cmd_<name>.cc adds one subcommand
// (or a group) to the CLI11 app. A subcommand's callback stores the process
// exit code in *exit_code: 0 success, 1 the command found a problem (a failed
// check, a rejected request), 2 usage or set-up error. The daemons (engine,
// agent, collector, actuator, record) differ in one way: a configuration that does
// not load is kExitConfig, so a supervisor can stop restarting them
// (systemd's RestartPreventExitStatus=); any other failure to start (a port
// in use, an audit log that does not open) is 1, worth a retry.
#pragma once

#include <CLI/CLI.hpp>

namespace medic::app {

inline constexpr int kExitConfig = 78;  // EX_CONFIG from sysexits.h

void add_keygen(CLI::App& app, int* exit_code);
void add_demo(CLI::App& app, int* exit_code);
void add_engine(CLI::App& app, int* exit_code);
void add_agent(CLI::App& app, int* exit_code);  // agent, collector, actuator
void add_rules(CLI::App& app, int* exit_code);
// `rules replay` (app/cmd_replay.cc), added to the `rules` group by add_rules.
void add_rules_replay(CLI::App& rules, int* exit_code);
void add_record(CLI::App& app, int* exit_code);
void add_audit(CLI::App& app, int* exit_code);
// approve, deny, silence [list], unsilence, unfreeze, inject, status, incidents, hosts
void add_control(CLI::App& app, int* exit_code);
// `medic request VERB --vm|--label`: an action request (app/cmd_request.cc).
void add_request(CLI::App& app, int* exit_code);
void add_bridge(CLI::App& app, int* exit_code);  // bridge alertmanager

}  // namespace medic::app
