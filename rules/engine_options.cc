#include "rules/engine.h"

#include <yaml-cpp/yaml.h>

#include "rules/loader.h"

namespace medic::rules {

void read_engine_options(ConfigReader& r, const YAML::Node& n, EngineOptions* o) {
  if (!r.expect_map(n, "options")) return;
  r.check_keys(n, {"host_silent_after", "forget_vm_after", "max_in_flight_per_host",
                   "max_in_flight_fleet", "action_ttl", "action_timeout", "dry_run", "cooldown", "budget",
                   "approval_timeout", "heal_within", "storm"});
  if (auto d = r.duration(n, "host_silent_after", false)) o->host_silent_after = *d;
  if (auto d = r.duration(n, "forget_vm_after", false)) o->forget_vm_after = *d;
  if (auto d = r.duration(n, "action_ttl", false)) o->action_ttl = *d;
  if (auto d = r.duration(n, "action_timeout", false)) o->action_timeout = *d;
  if (auto d = r.duration(n, "cooldown", false)) o->defaults.cooldown = *d;
  if (auto d = r.duration(n, "approval_timeout", false)) o->defaults.approval_timeout = *d;
  if (auto d = r.duration(n, "heal_within", false)) o->defaults.heal_within = *d;
  if (auto v = r.integer(n, "max_in_flight_per_host", false, 1, 100'000)) {
    o->max_in_flight_per_host = static_cast<uint32_t>(*v);
  }
  if (auto v = r.integer(n, "max_in_flight_fleet", false, 1, 1'000'000)) {
    o->max_in_flight_fleet = static_cast<uint32_t>(*v);
  }
  if (auto b = r.boolean(n, "dry_run", false)) o->dry_run = *b;
  if (auto b = r.string(n, "budget", false)) {
    auto parsed = parse_budget(*b);
    if (!parsed.ok()) {
      r.error(n["budget"], parsed.status().message());
    } else {
      o->defaults.budget = *parsed;
    }
  }
  YAML::Node s = n["storm"];
  if (!s.IsDefined() || !r.expect_map(s, "storm")) return;
  r.check_keys(s, {"host_fraction", "fleet_fraction", "min_vms", "window", "quiet", "host_settle",
                   "fleet_settle", "repeat_interval"});
  for (const char* k : {"host_fraction", "fleet_fraction"}) {
    auto v = r.number(s, k, false);
    if (!v) continue;
    if (*v <= 0 || *v > 1) {
      r.error(s[k], std::string(k) + " must be a fraction above 0 and at most 1, such as 0.2");
      continue;
    }
    (std::string(k) == "host_fraction" ? o->storm.host_fraction : o->storm.fleet_fraction) = *v;
  }
  if (auto v = r.integer(s, "min_vms", false, 1, 10'000'000)) {
    o->storm.min_vms = static_cast<uint32_t>(*v);
  }
  if (auto d = r.duration(s, "window", false)) o->storm.window = *d;
  if (auto d = r.duration(s, "quiet", false)) o->storm.quiet = *d;
  if (auto d = r.duration(s, "host_settle", false)) o->storm.host_settle = *d;
  if (auto d = r.duration(s, "fleet_settle", false)) o->storm.fleet_settle = *d;
  if (auto d = r.duration(s, "repeat_interval", false)) o->storm.repeat_interval = *d;
  for (const auto& [key, d] : {std::pair{"host_settle", o->storm.host_settle},
                               std::pair{"fleet_settle", o->storm.fleet_settle}}) {
    if (s[key].IsDefined() && d > o->storm.window) {
      r.error(s[key], std::string(key) + " must not be longer than the storm window");
    }
  }
}

}  // namespace medic::rules
