#include "node/setup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/config.h"
#include "node/endpoint_check.h"

namespace medic::node {
namespace {

// "1 node", "4 nodes".
std::string count(size_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

void load_identity(const std::string& key_file, std::optional<fabric::Identity>* out,
                   SetupReport* report) {
  auto id = fabric::Identity::load(key_file);
  if (!id.ok()) return report->add_problem(id.status());
  *out = std::move(*id);
  report->checked.push_back("key " + key_file);
}

bool load_trust(const std::string& trust_file, fabric::TrustStore* out, SetupReport* report) {
  auto trust = fabric::TrustStore::load(trust_file);
  if (!trust.ok()) {
    report->add_problem(trust.status());
    return false;
  }
  *out = std::move(*trust);
  report->checked.push_back("trust store " + trust_file + " (" + count(out->size(), "node") + ")");
  return true;
}

void load_rules(EngineSetup* s) {
  s->rule_files = expand_rule_files(s->config);
  rules::LoadResult loaded = load_engine_rules(s->config, s->rule_files);
  for (const auto& m : loaded.messages) {
    if (rules::is_warning(m.code))
      s->report.warnings.push_back(m.to_string());
    else
      s->report.problems.push_back(m.to_string());
  }
  if (!loaded.ok()) return;
  s->rules = loaded.rules;
  s->report.checked.push_back(count(s->rule_files.size(), "rule file"));
}

void check_writable(const std::string& path, const std::string& what, SetupReport* report) {
  Status st = check_writable_file(path, what);
  if (!st.ok()) return report->add_problem(st);
  std::string dir = std::filesystem::path(path).parent_path().string();
  report->checked.push_back(what + " directory " + (dir.empty() ? "." : dir) + " writable");
}

// The endpoints the agent connects to, with their positions in the file (the
// section readers keep only the strings), and (when the trust store loaded)
// the actuator's engine key against it, as Actuator::create will check it.
void check_agent_peers(const std::string& path, bool trust_loaded, AgentSetup* s) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return s->report.add_problem(root.status());
  ConfigReader r(path);
  size_t endpoints = 0;
  if (s->config.collector) {
    for (const YAML::Node& e : (*root)["collector"]["engines"]) {
      check_endpoint(r, e, "events", EndpointUse::kConnect);
      check_endpoint(r, e, "urgent", EndpointUse::kConnect);
      endpoints += 2;
    }
  }
  if (s->config.actuator) {
    const YAML::Node act = (*root)["actuator"];
    check_endpoint(r, act, "engine", EndpointUse::kConnect);
    ++endpoints;
    const fabric::TrustedNode* engine = s->trust.find(s->config.actuator->options.engine_key);
    if (trust_loaded && (!engine || !engine->has_role(fabric::Role::kEngine))) {
      r.error(act["engine_key"],
              "the engine key " + fabric::short_key_id(s->config.actuator->options.engine_key) +
                  " is not in the trust store " + s->config.trust_file +
                  " with the engine role (the actuator would refuse every action)");
    }
  }
  if (!r.ok()) return s->report.add_problem(r.status());
  s->report.checked.push_back(count(endpoints, "endpoint"));
}

// The backend map: the collector's, which an actuator alone also needs.
YAML::Node backend_node(const std::string& path, const AgentConfig& c) {
  if (c.collector) return c.collector->backend;
  auto root = load_yaml_file(path);
  if (root.ok() && (*root)["collector"].IsDefined()) return (*root)["collector"]["backend"];
  return YAML::Node(YAML::NodeType::Undefined);
}

void build_backend(const std::string& path, Clock& clock, AgentSetup* s) {
  YAML::Node node = backend_node(path, s->config);
  if (!node.IsDefined()) {
    s->report.problems.push_back(path + ": no backend: add collector.backend (e.g. {kind: sim})");
    return;
  }
  const std::string kind = node["kind"].IsScalar() ? node["kind"].Scalar() : "";
  // Intended stops of qmp guests live beside the actuator's journal unless
  // the backend names a state_dir.
  std::string state_dir;
  if (s->config.actuator) {
    state_dir =
        std::filesystem::path(s->config.actuator->options.journal_path).parent_path().string();
  }
  auto backend = make_backend(s->config.host, node, path, clock, state_dir);
  if (!backend.ok()) return s->report.add_problem(backend.status());
  s->backend = std::move(*backend);
  s->report.checked.push_back("backend " + kind);
}

}  // namespace

void SetupReport::add_problem(const Status& s) {
  std::istringstream lines(s.message());
  std::string line;
  bool any = false;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    problems.push_back(line);
    any = true;
  }
  if (!any) problems.push_back(s.to_string());
}

std::string SetupReport::ok_line(const std::string& file) const {
  std::string out = "config OK: " + file + ":";
  for (size_t i = 0; i < checked.size(); ++i) out += (i ? ", " : " ") + checked[i];
  return out;
}

rules::LoadResult load_engine_rules(const EngineConfig& config,
                                    const std::vector<std::string>& files) {
  rules::LoadOptions lo;
  lo.defaults = config.engine.defaults;
  return rules::load_rule_files(files, lo);
}

EngineSetup load_engine_setup(const std::string& path) {
  EngineSetup s;
  auto config = load_engine_config(path);
  if (!config.ok()) {
    s.report.add_problem(config.status());
    return s;
  }
  s.config = std::move(*config);
  s.report.checked.push_back("engine " + s.config.name + " (4 endpoints)");
  load_identity(s.config.key_file, &s.identity, &s.report);
  fabric::TrustStore trust;
  if (load_trust(s.config.trust_file, &trust, &s.report)) s.trust = std::move(trust);
  load_rules(&s);
  check_writable(s.config.audit_path, "audit log", &s.report);
  return s;
}

AgentSetup load_agent_setup(const std::string& path, bool collector, bool actuator, Clock& clock) {
  AgentSetup s;
  auto config = load_agent_config(path, collector, actuator);
  if (!config.ok()) {
    s.report.add_problem(config.status());
    return s;
  }
  s.config = std::move(*config);
  s.report.checked.push_back("agent " + s.config.host + " (" + (collector ? "collector" : "") +
                             (collector && actuator ? " + " : "") + (actuator ? "actuator" : "") +
                             ")");
  load_identity(s.config.key_file, &s.identity, &s.report);
  bool trust_ok = true;
  if (!s.config.trust_file.empty()) trust_ok = load_trust(s.config.trust_file, &s.trust, &s.report);
  check_agent_peers(path, trust_ok, &s);
  build_backend(path, clock, &s);
  if (s.config.actuator) {
    check_writable(s.config.actuator->options.journal_path, "actuator journal", &s.report);
  }
  return s;
}

Status check_writable_file(const std::string& path, const std::string& what) {
  if (path.empty()) return invalid_argument(what + ": no path configured");
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const std::string at = what + " " + path + ": ";
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return not_found(at + "directory " + dir + " does not exist");
  }
  if (!S_ISDIR(st.st_mode)) return invalid_argument(at + dir + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return permission_denied(at + "cannot create files in " + dir + ": " + std::strerror(errno));
  }
  if (::stat(path.c_str(), &st) != 0) return {};  // created at start
  if (!S_ISREG(st.st_mode)) return invalid_argument(at + "not a regular file");
  if (::access(path.c_str(), R_OK | W_OK) != 0) {
    return permission_denied(at + "cannot read and write it: " + std::strerror(errno));
  }
  return {};
}

}  // namespace medic::node
