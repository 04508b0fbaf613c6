#include "actuators/config.h"

#include <algorithm>
#include <optional>

#include <yaml-cpp/yaml.h>

namespace medic::actuators {
namespace {

void read_duration(ConfigReader& r, const YAML::Node& map, const char* key, Duration* out) {
  if (auto d = r.duration(map, key, false)) {
    if (*d <= Duration::zero()) {
      r.error(map[key], std::string("\"") + key + "\" must be positive");
    } else {
      *out = *d;
    }
  }
}

// `engine_key: HEX` (one engine) or `engine_keys: [HEX, ...]` (several; the
// first is the engine at `engine:`), exactly one of the two.
void read_engine_keys(ConfigReader& r, const YAML::Node& map, ActuatorOptions* o) {
  const bool one = map["engine_key"].IsDefined();
  const bool many = map["engine_keys"].IsDefined();
  if (one == many) {
    r.error(map, one ? "give either \"engine_key\" or \"engine_keys\", not both"
                     : "missing \"engine_key\" (or \"engine_keys\", a list)");
    return;
  }
  auto parse = [&](const std::string& hex, const char* key) -> std::optional<fabric::PublicKey> {
    auto k = fabric::public_key_from_hex(hex);
    if (k.ok()) return *k;
    r.error(map[key], std::string("\"") + key + "\": " + k.status().message());
    return std::nullopt;
  };
  if (one) {
    auto v = r.string(map, "engine_key", true);
    if (auto k = v ? parse(*v, "engine_key") : std::nullopt) o->engine_key = *k;
    return;
  }
  auto v = r.string_list(map, "engine_keys", true);
  if (!v) return;
  if (v->empty()) r.error(map["engine_keys"], "\"engine_keys\" must list at least one key");
  for (const std::string& hex : *v) {
    auto k = parse(hex, "engine_keys");
    if (!k) continue;
    if (std::find(o->engine_keys.begin(), o->engine_keys.end(), *k) != o->engine_keys.end()) {
      r.error(map["engine_keys"], "\"engine_keys\" lists key " + fabric::short_key_id(*k) +
                                      " twice");
      continue;
    }
    o->engine_keys.push_back(*k);
  }
  if (!o->engine_keys.empty()) o->engine_key = o->engine_keys.front();
}

}  // namespace

ActuatorConfig parse_actuator_config(const YAML::Node& section, ConfigReader& r) {
  ActuatorConfig c;
  if (!section.IsDefined() || !r.expect_map(section, "actuator")) {
    if (!section.IsDefined()) r.error(section, "missing the \"actuator\" section");
    return c;
  }
  r.check_keys(section, {"host", "engine", "engine_key", "engine_keys", "key_file", "trust_store", "journal",
                         "watch", "max_watch", "watch_poll", "execute_timeout",
                         "max_action_lifetime", "retention", "restart_hook",
                         "restart_hook_output_bytes"});
  ActuatorOptions& o = c.options;
  if (auto v = r.string(section, "host", true)) o.host = *v;
  if (auto v = r.string(section, "engine", true)) o.engine_endpoint = *v;
  read_engine_keys(r, section, &o);
  if (auto v = r.string(section, "key_file", true)) c.key_file = *v;
  if (auto v = r.string(section, "trust_store", true)) c.trust_store = *v;
  if (auto v = r.string(section, "journal", true)) o.journal_path = *v;
  read_duration(r, section, "watch", &o.default_watch);
  read_duration(r, section, "max_watch", &o.max_watch);
  read_duration(r, section, "watch_poll", &o.watch_poll);
  read_duration(r, section, "execute_timeout", &o.execute_timeout);
  read_duration(r, section, "max_action_lifetime", &o.max_action_lifetime);
  read_duration(r, section, "retention", &o.retention);
  if (auto v = r.string_list(section, "restart_hook", false)) {
    if (v->empty() || v->front().empty() || v->front()[0] != '/') {
      r.error(section["restart_hook"],
              "\"restart_hook\" must be an argument list starting with an absolute path "
              "(it runs with execve, never a shell)");
    } else {
      o.restart_hook = *v;
    }
  }
  if (auto v = r.integer(section, "restart_hook_output_bytes", false, 0, 1 << 20)) {
    o.max_hook_output = static_cast<size_t>(*v);
  }
  if (r.ok() && o.max_action_lifetime >= o.retention) {
    r.error(section, "\"retention\" must be longer than \"max_action_lifetime\"");
  }
  return c;
}

DispatcherOptions parse_dispatcher_config(const YAML::Node& section, ConfigReader& r) {
  DispatcherOptions o;
  if (!section.IsDefined() || !r.expect_map(section, "dispatch")) {
    if (!section.IsDefined()) r.error(section, "missing the \"dispatch\" section");
    return o;
  }
  r.check_keys(section, {"listen", "initial_backoff", "max_backoff", "default_watch",
                         "result_grace", "max_per_host", "max_in_flight"});
  if (auto v = r.string(section, "listen", true)) o.endpoint = *v;
  read_duration(r, section, "initial_backoff", &o.initial_backoff);
  read_duration(r, section, "max_backoff", &o.max_backoff);
  read_duration(r, section, "default_watch", &o.default_watch);
  read_duration(r, section, "result_grace", &o.result_grace);
  if (auto v = r.integer(section, "max_per_host", false, 1, 1'000'000)) {
    o.max_per_host = static_cast<size_t>(*v);
  }
  if (auto v = r.integer(section, "max_in_flight", false, 1, 10'000'000)) {
    o.max_in_flight = static_cast<size_t>(*v);
  }
  if (r.ok() && o.max_backoff < o.initial_backoff) {
    r.error(section, "\"max_backoff\" must not be shorter than \"initial_backoff\"");
  }
  return o;
}

}  // namespace medic::actuators
