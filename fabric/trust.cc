#include "fabric/trust.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "core/text.h"

namespace medic::fabric {

const char* role_name(Role r) {
  switch (r) {
    case Role::kCollector: return "collector";
    case Role::kEngine: return "engine";
    case Role::kActuator: return "actuator";
    case Role::kOperator: return "operator";
    case Role::kRequester:
      return "requester";
  }
  return "unknown";
}

bool TrustedNode::covers_host(const std::string& host) const {
  for (const auto& h : hosts) {
    if (h == "*" || h == host) return true;
  }
  return false;
}

namespace {

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

constexpr const char* kRequestVerbs[] = {"reboot", "reset", "restart", "start",
                                         "stop",   "clone", "delete"};

bool known_verb(const std::string& v) {
  for (const char* k : kRequestVerbs) {
    if (v == k) return true;
  }
  return false;
}

}  // namespace

bool RequesterScope::allows_verb(const std::string& verb) const { return contains(verbs, verb); }

bool RequesterScope::needs_approval(const std::string& verb) const {
  return contains(approval, "*") || contains(approval, verb);
}

bool RequesterScope::covers_vm(const std::string& id,
                               const std::map<std::string, std::string>& vm_labels) const {
  if (!vms.empty() && !contains(vms, id)) return false;
  for (const auto& [k, v] : labels) {
    auto it = vm_labels.find(k);
    if (it == vm_labels.end() || it->second != v) return false;
  }
  return true;
}

std::string RequesterScope::describe() const {
  std::string out = vms.empty() ? "any VM" : "VMs " + join_names(vms, ", ");
  std::string with;
  for (const auto& [k, v] : labels) with += (with.empty() ? "" : ", ") + k + "=" + v;
  if (!with.empty()) out += " with " + with;
  return out;
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

// vms, labels, verbs, approval: a requester's scope, and only a requester's.
void TrustStore::read_scope(ConfigReader& r, const YAML::Node& n, TrustedNode* node) {
  const bool requester = node->has_role(Role::kRequester);
  for (const char* key : {"vms", "labels", "verbs", "approval", "clones"}) {
    if (n[key].IsDefined() && !requester) {
      r.error(n[key], std::string("\"") + key +
                          "\" is a requester's scope; this node has no requester role");
    }
  }
  if (!requester) return;
  RequesterScope& sc = node->scope;
  if (auto vms = r.string_list(n, "vms", false)) sc.vms = *vms;
  YAML::Node labels = n["labels"];
  if (labels.IsDefined() && !labels.IsMap()) {
    r.error(labels, "expected \"labels:\" to be a map of label: value");
  } else if (labels.IsDefined()) {
    for (const auto& kv : labels) {
      if (!kv.second.IsScalar()) {
        r.error(kv.second, "a label's value must be a string");
        continue;
      }
      sc.labels[kv.first.as<std::string>()] = kv.second.as<std::string>();
    }
  }
  auto verbs = r.string_list(n, "verbs", true);
  if (verbs) {
    for (const auto& v : *verbs) {
      if (!known_verb(v)) {
        r.error(n["verbs"],
                "unknown verb \"" + v +
                    "\" (a requester may be given reboot, reset, restart, start, stop, clone "
                    "or delete)");
      }
    }
    sc.verbs = *verbs;
  }
  if (auto approval = r.string_list(n, "approval", false)) {
    for (const auto& v : *approval) {
      if (v != "*" && !contains(sc.verbs, v)) {
        r.error(n["approval"], "\"" + v + "\" is not one of this requester's verbs (" +
                                   join_names(sc.verbs, ", ") + ")");
      }
    }
    sc.approval = *approval;
  }
  read_clone_limit(r, n, &sc);
}

// `clones: N per DURATION`, only with the verb clone; without it a key that
// may clone makes at most kDefaultClones.
void TrustStore::read_clone_limit(ConfigReader& r, const YAML::Node& n, RequesterScope* sc) {
  const bool clones = contains(sc->verbs, "clone");
  if (clones) sc->clones = kDefaultClones;
  auto text = r.string(n, "clones", false);
  if (!text) return;
  if (!clones) {
    r.error(n["clones"], "\"clones\" limits the verb clone, which this requester does not hold");
    return;
  }
  auto parsed = parse_count_per(*text);
  if (!parsed.ok()) {
    r.error(n["clones"], parsed.status().message());
    return;
  }
  sc->clones = *parsed;
}

namespace {

// The roles a node's `roles:` list names, into node->roles.
void read_roles(ConfigReader& r, const YAML::Node& at, const std::vector<std::string>& roles,
                TrustedNode* node) {
  static const std::pair<const char*, Role> kRoles[] = {{"collector", Role::kCollector},
                                                        {"engine", Role::kEngine},
                                                        {"actuator", Role::kActuator},
                                                        {"operator", Role::kOperator},
                                                        {"requester", Role::kRequester}};
  for (const auto& role : roles) {
    bool known = false;
    for (const auto& [word, bit] : kRoles) {
      if (role != word) continue;
      node->roles |= static_cast<uint8_t>(bit);
      known = true;
    }
    if (!known)
      r.error(at, "unknown role \"" + role +
                      "\" (expected collector, engine, actuator, operator or requester)");
  }
}

}  // namespace

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
    r.check_keys(n,
                 {"name", "key", "roles", "hosts", "vms", "labels", "verbs", "approval", "clones"});
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
    if (roles) read_roles(r, n["roles"], *roles, &node);
    if (hosts) {
      node.hosts = *hosts;
    } else if (node.has_role(Role::kEngine) || node.has_role(Role::kOperator) ||
               node.has_role(Role::kRequester)) {
      node.hosts = {"*"};
    } else if (name) {
      node.hosts = {*name};
    }
    read_scope(r, n, &node);
    if (r.ok() && name && key_hex && roles) {
      Status s = store.add(std::move(node));
      if (!s.ok()) r.error(n["key"], s.message());
    }
  }
  if (!r.ok()) return r.status();
  return store;
}

}  // namespace medic::fabric
