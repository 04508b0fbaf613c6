// What a daemon loads and checks before it binds a socket or starts anything.
// `medic engine --check` and `medic agent --check` stop here and print the
// report; the daemons start from the same setup, so the check and the start
// cannot disagree about what is wrong.
//
// Contract: a load collects every problem it can find in one pass, each a
// line a person can act on (file:line:col inside a file, the path for a file
// that cannot be used). It creates no file, binds and connects nothing and
// starts no process: the config, keys, trust store, rules (engine) and the
// backend's specification (agent) are read, endpoints are checked for syntax
// only, and the directories the daemon will write in are checked with
// access(2). When the config file itself does not load, the files it names
// are not checked (their paths are not known yet).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "fabric/identity.h"
#include "fabric/trust.h"
#include "node/agent_node.h"
#include "node/engine_config.h"
#include "rules/loader.h"

namespace medic::node {

struct SetupReport {
  std::vector<std::string> problems;
  std::vector<std::string> warnings;
  std::vector<std::string> checked;  // what passed, in the order checked

  bool ok() const { return problems.empty(); }
  // Adds each line of a (multi-line) Status message as one problem.
  void add_problem(const Status& s);
  // "config OK: FILE: what, what, ..." for a report that is ok().
  std::string ok_line(const std::string& file) const;
};

struct EngineSetup {
  EngineConfig config;
  std::optional<fabric::Identity> identity;
  std::optional<fabric::TrustStore> trust;
  std::vector<std::string> rule_files;          // expand_rule_files(config)
  std::shared_ptr<const rules::RuleSet> rules;  // set when they loaded without error
  SetupReport report;
};

EngineSetup load_engine_setup(const std::string& path);

// The rules of `files` with the engine's policy defaults: the one way the
// engine loads its rules, at start and at every reload.
rules::LoadResult load_engine_rules(const EngineConfig& config,
                                    const std::vector<std::string>& files);

struct AgentSetup {
  AgentConfig config;
  std::optional<fabric::Identity> identity;
  fabric::TrustStore trust;  // empty when the config names no trust store
  Backend backend;           // built, not started
  SetupReport report;
};

// `collector` / `actuator`: which sections the subcommand runs. The backend
// holds `clock`, which must outlive it.
AgentSetup load_agent_setup(const std::string& path, bool collector, bool actuator, Clock& clock);

// Ok when the daemon can create and write `path` (a database with its -wal
// and -shm files): its directory exists and is writable, and the file, if it
// exists, is a readable and writable regular file. `what` names it in the
// message ("audit log", "actuator journal").
Status check_writable_file(const std::string& path, const std::string& what);

}  // namespace medic::node
