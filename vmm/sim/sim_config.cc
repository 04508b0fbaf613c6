#include <yaml-cpp/yaml.h>

#include "core/text.h"
#include "vmm/provisioning.h"
#include "vmm/sim/sim.h"

namespace medic::vmm::sim {
namespace {

void read_positive(ConfigReader& r, const YAML::Node& map, const std::string& key, Duration* out) {
  auto d = r.duration(map, key, false);
  if (!d) return;
  if (*d <= Duration::zero()) {
    r.error(map[key], "\"" + key + "\" must be longer than 0");
    return;
  }
  *out = *d;
}

void read_weights(ConfigReader& r, const YAML::Node& map, SimOptions* o) {
  if (!map.IsMap() || !map["fault_weights"].IsDefined()) return;
  YAML::Node w = map["fault_weights"];
  if (!r.expect_map(w, "fault_weights")) return;
  std::map<FaultKind, double> weights;
  for (const auto& kv : w) {
    const std::string name = kv.first.Scalar();
    auto kind = fault_from_name(name);
    if (!kind) {
      std::string all;
      for (int i = 0; i < kFaultKindCount; ++i) {
        all += (i ? ", " : "") + std::string(fault_name(static_cast<FaultKind>(i)));
      }
      r.error(kv.first, "unknown fault \"" + name + "\" (expected one of: " + all + ")");
      continue;
    }
    auto v = r.number(w, name, true);
    if (!v) continue;
    if (*v < 0) {
      r.error(kv.second, "weight of \"" + name + "\" must not be negative");
      continue;
    }
    weights[*kind] = *v;
  }
  o->fault_weights = std::move(weights);
}

// labels: {k: v}, every value a scalar.
std::map<std::string, std::string> read_labels(ConfigReader& r, const YAML::Node& labels) {
  std::map<std::string, std::string> out;
  if (!r.expect_map(labels, "labels")) return out;
  for (const auto& kv : labels) {
    if (!kv.second.IsScalar()) {
      r.error(kv.second, "the value of label \"" + kv.first.Scalar() + "\" must be a string");
      continue;
    }
    out[kv.first.Scalar()] = kv.second.Scalar();
  }
  return out;
}

// templates: {NAME: {labels: {k: v}}, ...}; a template may be empty ({}).
void read_templates(ConfigReader& r, const YAML::Node& map, SimOptions* o) {
  if (!map.IsMap() || !map["templates"].IsDefined()) return;
  YAML::Node t = map["templates"];
  if (!r.expect_map(t, "templates")) return;
  for (const auto& kv : t) {
    const std::string name = kv.first.Scalar();
    if (!is_vm_name(name)) {
      r.error(kv.first, "template name \"" + name +
                            "\" must be 1-63 letters, digits, '.', '_' or '-' (not . or ..)");
      continue;
    }
    auto& labels = o->templates[name];
    if (kv.second.IsNull()) continue;
    if (!r.expect_map(kv.second, "template " + name)) continue;
    r.check_keys(kv.second, {"labels"});
    if (kv.second["labels"].IsDefined()) labels = read_labels(r, kv.second["labels"]);
    if (labels.count("template")) {
      r.error(kv.second["labels"],
              "label \"template\" is set by the simulator (the template's name)");
    }
  }
  if (o->templates.size() > 1000) r.error(t, "more than 1000 templates");
}

}  // namespace

SimOptions read_sim_options(ConfigReader& r, const YAML::Node& map) {
  SimOptions o;
  if (!r.expect_map(map, "sim")) return o;
  r.check_keys(map, {"hosts", "vms_per_host", "seed", "heartbeat_interval", "boot_time",
                     "slow_boot_time", "shutdown_time", "flap_up", "flap_down", "faults_per_hour",
                     "fault_weights", "partition_duration", "host_loss_duration", "templates"});
  if (auto v = r.integer(map, "hosts", false, 1, 100'000)) o.hosts = static_cast<int>(*v);
  if (auto v = r.integer(map, "vms_per_host", false, 0, 100'000)) {
    o.vms_per_host = static_cast<int>(*v);
  }
  if (auto v = r.integer(map, "seed", false, 0)) o.seed = static_cast<uint64_t>(*v);
  read_positive(r, map, "heartbeat_interval", &o.heartbeat_interval);
  read_positive(r, map, "boot_time", &o.boot_time);
  read_positive(r, map, "slow_boot_time", &o.slow_boot_time);
  read_positive(r, map, "shutdown_time", &o.shutdown_time);
  read_positive(r, map, "flap_up", &o.flap_up);
  read_positive(r, map, "flap_down", &o.flap_down);
  read_positive(r, map, "partition_duration", &o.partition_duration);
  read_positive(r, map, "host_loss_duration", &o.host_loss_duration);
  if (auto v = r.number(map, "faults_per_hour", false)) {
    if (*v < 0) {
      r.error(map["faults_per_hour"], "\"faults_per_hour\" must not be negative");
    } else {
      o.faults_per_hour = *v;
    }
  }
  read_weights(r, map, &o);
  read_templates(r, map, &o);
  return o;
}

}  // namespace medic::vmm::sim
