// medic demo, shared by its two runs (simulated fleet: app/demo_sim.cc; real
// QEMU guests: app/demo_qemu.cc): the options, the embedded rules and
// configs, the run directory, trust and the closing hints. The subcommand
// itself is app/cmd_demo.cc.
#pragma once

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "fabric/trust.h"
#include "node/agent_node.h"
#include "node/engine_node.h"

namespace medic::app {

struct DemoOptions {
  Duration duration = std::chrono::seconds(60);
  int hosts = 3;
  int vms = 20;
  uint64_t seed = 1;
  int faults = 0;  // extra random VM faults on top of the scripted scenario
  bool qemu = false;
  std::string dir;
  bool resume = false;  // --dir may hold an earlier run: append to its audit log
};

// The demo rules with the unresponsive ladder's heal window set: real guests
// need time to boot after a reset before they can beat again.
std::string demo_rules(const std::string& heal_within);
node::EngineConfig demo_engine_config(const std::string& dir, Duration duration);
node::AgentConfig demo_agent_config(const std::string& host, node::EngineNode& engine,
                                    const fabric::Identity& engine_id, const std::string& dir,
                                    Duration watch = std::chrono::seconds(8));
bool colour_wanted();
// Trusts `id` as `name` in `role` for `hosts`; a collector also acts.
void add_trusted(fabric::TrustStore& trust, const std::string& name, const fabric::Identity& id,
                 fabric::Role role, std::vector<std::string> hosts);

// The closing lines: where the audit log (and `files`) are, and commands
// that paste and work as they are (the medic binary by its full path),
// `example` (an action id of this run) first when there is one.
std::vector<std::string> demo_hints(const std::string& audit_path, const Status& closed,
                                    const std::vector<std::string>& files,
                                    const std::string& example);

int run_sim_demo(const DemoOptions& o, const std::string& dir);
int run_qemu_demo(const DemoOptions& o, const std::string& dir);

}  // namespace medic::app
