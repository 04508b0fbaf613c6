#include "node/engine_config.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include <yaml-cpp/yaml.h>

#include "actuators/config.h"
#include "core/config.h"
#include "node/endpoint_check.h"
#include "node/http_config.h"

namespace medic::node {
namespace {

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/' || p.find("://") != std::string::npos) return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

// glob(3) sorts its matches, so an expansion is the same list every time.
std::vector<std::string> expand_glob(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  }
  globfree(&g);
  if (out.empty()) out.push_back(pattern);  // let the loader report the missing file
  return out;
}

void read_listen(ConfigReader& r, const YAML::Node& listen, EngineConfig* c) {
  if (!r.expect_map(listen, "\"listen:\"")) return;
  r.check_keys(listen, {"events", "urgent", "actions", "control"});
  if (auto v = r.string(listen, "events", true)) c->events.bulk = *v;
  if (auto v = r.string(listen, "urgent", true)) c->events.urgent = *v;
  if (auto v = r.string(listen, "actions", true)) c->actions_endpoint = *v;
  if (auto v = r.string(listen, "control", true)) c->control_endpoint = *v;
  for (const char* key : {"events", "urgent", "actions", "control"}) {
    check_endpoint(r, listen, key, EndpointUse::kBind);
  }
}

void read_audit(ConfigReader& r, const YAML::Node& a, const std::string& dir, EngineConfig* c) {
  if (!r.expect_map(a, "\"audit:\"")) return;
  r.check_keys(a, {"path", "durability", "checkpoint_every_rows", "checkpoint_every"});
  if (auto v = r.string(a, "path", true)) c->audit_path = resolve(dir, *v);
  if (auto v = r.string(a, "durability", false)) {
    if (*v == "power_loss") {
      c->audit.durability = audit::Durability::kPowerLoss;
    } else if (*v == "process_crash") {
      c->audit.durability = audit::Durability::kProcessCrash;
    } else {
      r.error(a["durability"], "durability must be power_loss or process_crash, got \"" + *v + "\"");
    }
  }
  if (auto v = r.integer(a, "checkpoint_every_rows", false, 1)) c->audit.checkpoint_every_rows = *v;
  if (auto v = r.duration(a, "checkpoint_every", false)) c->audit.checkpoint_every = *v;
}

void read_dispatch(ConfigReader& r, YAML::Node dsp, EngineConfig* c) {
  if (!dsp.IsDefined() || !r.expect_map(dsp, "\"dispatch:\"")) return;
  // Its endpoint is listen.actions unless the section names its own. (The
  // loaded document is edited in place: a clone would lose the positions
  // that error messages need.)
  if (dsp["listen"].IsDefined()) {
    check_endpoint(r, dsp, "listen", EndpointUse::kBind);
  } else {
    dsp["listen"] = c->actions_endpoint;
  }
  c->dispatch = actuators::parse_dispatcher_config(dsp, r);
  c->actions_endpoint = c->dispatch.endpoint;
}

void read_notify(ConfigReader& r, const YAML::Node& n, EngineConfig* c) {
  if (!n.IsDefined() || !r.expect_map(n, "\"notify:\"")) return;
  r.check_keys(n, {"webhook", "timeout"});
  if (auto v = r.string(n, "webhook", false)) {
    if (v->rfind("http://", 0) != 0 && v->rfind("https://", 0) != 0) {
      r.error(n["webhook"], "webhook must be an http:// or https:// URL, got \"" + *v + "\"");
    }
    c->notify.url = *v;
  }
  if (auto v = r.duration(n, "timeout", false)) c->notify.timeout = *v;
}

// The same keys and checks as a rule test's `options:`.
void read_policies(ConfigReader& r, const YAML::Node& p, EngineConfig* c) {
  if (!p.IsDefined() || !r.expect_map(p, "\"policies:\"")) return;
  rules::read_engine_options(r, p, &c->engine);
}

}  // namespace

Result<EngineConfig> load_engine_config(const std::string& path) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  const std::string dir = std::filesystem::path(path).parent_path().string();
  ConfigReader r(path);
  EngineConfig c;
  r.check_keys(*root, {"engine"});
  YAML::Node e = (*root)["engine"];
  if (!r.expect_map(e, "\"engine:\"")) return r.status();
  r.check_keys(e, {"name", "key", "trust", "listen", "rules", "audit", "policies", "action_ttl",
                   "action_timeout", "max_silence", "notify", "dispatch", "http"});
  if (auto v = r.string(e, "name", false)) c.name = *v;
  if (auto v = r.string(e, "key", true)) c.key_file = resolve(dir, *v);
  if (auto v = r.string(e, "trust", true)) c.trust_file = resolve(dir, *v);
  if (auto v = r.duration(e, "max_silence", false)) c.max_silence = *v;
  read_listen(r, e["listen"], &c);
  if (auto v = r.string_list(e, "rules", true)) {
    for (const auto& pattern : *v) c.rule_patterns.push_back(resolve(dir, pattern));
  }
  read_audit(r, e["audit"], dir, &c);
  read_dispatch(r, e["dispatch"], &c);
  read_notify(r, e["notify"], &c);
  read_policies(r, e["policies"], &c);
  // Action timing at the top of `engine:` (as in the shipped engine.yaml)
  // wins over the same keys under policies:.
  if (auto v = r.duration(e, "action_ttl", false)) c.engine.action_ttl = *v;
  if (auto v = r.duration(e, "action_timeout", false)) c.engine.action_timeout = *v;
  c.engine.result_grace = c.dispatch.result_grace;
  read_http_section(r, e["http"], dir, kDefaultEngineHttp, &c.http);
  if (!r.ok()) return r.status();
  return c;
}

std::vector<std::string> expand_rule_files(const EngineConfig& config) {
  std::vector<std::string> files;
  std::set<std::string> seen;
  for (const auto& pattern : config.rule_patterns) {
    for (auto& f : expand_glob(pattern)) {
      if (seen.insert(f).second) files.push_back(std::move(f));
    }
  }
  return files;
}

RuleFileChanges diff_rule_files(const std::vector<std::string>& before,
                                const std::vector<std::string>& after) {
  const std::set<std::string> old_set(before.begin(), before.end());
  const std::set<std::string> new_set(after.begin(), after.end());
  RuleFileChanges c;
  std::set_difference(new_set.begin(), new_set.end(), old_set.begin(), old_set.end(),
                      std::back_inserter(c.added));
  std::set_difference(old_set.begin(), old_set.end(), new_set.begin(), new_set.end(),
                      std::back_inserter(c.removed));
  return c;
}

}  // namespace medic::node
