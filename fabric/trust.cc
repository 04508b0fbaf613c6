#include "fabric/trust.h"

#include <yaml-cpp/yaml.h>

namespace medic::fabric {

const char* role_name(Role r) {
  switch (r) {
    case Role::kCollector: return "collector";
    case Role::kEngine: return "engine";
    case Role::kActuator: return "actuator";
    case Role::kOperator: return "operator";
  }
  return "unknown";
}

bool TrustedNode::covers_host(const std::string& host) const {
  for (const auto& h : hosts) {
    if (h == "*" || h == host) return true;
  }
  return false;
}

Status TrustStore::add(TrustedNode node) {
  auto curve = curve_public_key(node.key);
  if (!curve.ok()) return curve.status();
  node.curve_key = *curve;
  by_curve_[node.curve_key] = node.key;
  by_key_[node.key] = std::move(node);
  return {};
}

const TrustedNode* TrustStore::find(const PublicKey& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : &it->second;
}

const TrustedNode* TrustStore::find_curve(const CurveKey& curve_key) const {
  auto it = by_curve_.find(curve_key);
  return it == by_curve_.end() ? nullptr : find(it->second);
}

const TrustedNode* TrustStore::find_name(const std::string& name) const {
  for (const auto& [k, n] : by_key_) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

Result<TrustStore> TrustStore::load(const std::string& path) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  return from_yaml(*root, path);
}

Result<TrustStore> TrustStore::parse(const std::string& yaml_text, const std::string& name) {
  auto root = load_yaml_string(yaml_text, name);
  if (!root.ok()) return root.status();
  return from_yaml(*root, name);
}

Result<TrustStore> TrustStore::from_yaml(const YAML::Node& root, const std::string& path) {
  TrustStore store;
  ConfigReader r(path);
  if (!r.expect_map(root, "the trust store")) return r.status();
  r.check_keys(root, {"nodes"});
  YAML::Node nodes = root["nodes"];
  if (!nodes.IsDefined() || !nodes.IsSequence()) {
    r.error(nodes.IsDefined() ? nodes : root, "expected \"nodes:\" to be a list of trusted keys");
    return r.status();
  }
  std::map<std::string, int> names;
  for (const auto& n : nodes) {
    if (!r.expect_map(n, "a trusted node")) continue;
    r.check_keys(n, {"name", "key", "roles", "hosts"});
    auto name = r.string(n, "name", true);
    auto key_hex = r.string(n, "key", true);
    auto roles = r.string_list(n, "roles", true);
    auto hosts = r.string_list(n, "hosts", false);
    TrustedNode node;
    if (name) {
      node.name = *name;
      if (names[*name]++) r.error(n["name"], "duplicate node name \"" + *name + "\"");
    }
    if (key_hex) {
      auto key = public_key_from_hex(*key_hex);
      if (!key.ok()) {
        r.error(n["key"], key.status().message() + " (expected the 64 hex digits printed by `medic keygen`)");
      } else if (store.find(*key)) {
        r.error(n["key"], "key already listed for node \"" + store.find(*key)->name + "\"");
      } else {
        node.key = *key;
      }
    }
    if (roles) {
      for (const auto& role : *roles) {
        if (role == "collector") node.roles |= static_cast<uint8_t>(Role::kCollector);
        else if (role == "engine") node.roles |= static_cast<uint8_t>(Role::kEngine);
        else if (role == "actuator") node.roles |= static_cast<uint8_t>(Role::kActuator);
        else if (role == "operator") node.roles |= static_cast<uint8_t>(Role::kOperator);
        else r.error(n["roles"], "unknown role \"" + role + "\" (expected collector, engine, actuator or operator)");
      }
    }
    if (hosts) {
      node.hosts = *hosts;
    } else if (node.has_role(Role::kEngine) || node.has_role(Role::kOperator)) {
      node.hosts = {"*"};
    } else if (name) {
      node.hosts = {*name};
    }
    if (r.ok() && name && key_hex && roles) {
      Status s = store.add(std::move(node));
      if (!s.ok()) r.error(n["key"], s.message());
    }
  }
  if (!r.ok()) return r.status();
  return store;
}

}  // namespace medic::fabric
