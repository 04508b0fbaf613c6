// The trust store: which public keys medic accepts, as whom, for what.
// A YAML file maps each key to a name, its roles and the hosts it may speak
// for. Engine and actuator reject every message from a key not listed here,
// in a role it does not have, or about a host outside its scope.
//
//   nodes:
//     - name: engine-1
//       key: 3b6a27bc...        # 64 hex digits, printed by `medic keygen`
//       roles: [engine]
//       hosts: ["*"]            # default for engine and operator
//     - name: host-a
//       key: 9f1c...
//       roles: [collector, actuator]
//       hosts: [host-a]         # default: [name]
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "fabric/identity.h"

namespace medic::fabric {

enum class Role : uint8_t { kCollector = 1, kEngine = 2, kActuator = 4, kOperator = 8 };
const char* role_name(Role r);

struct TrustedNode {
  std::string name;
  PublicKey key{};
  CurveKey curve_key{};
  uint8_t roles = 0;               // bit set of Role
  std::vector<std::string> hosts;  // "*" covers every host

  bool has_role(Role r) const { return roles & static_cast<uint8_t>(r); }
  bool covers_host(const std::string& host) const;
};

class TrustStore {
 public:
  static Result<TrustStore> load(const std::string& path);
  static Result<TrustStore> parse(const std::string& yaml_text, const std::string& name);

  // Adds a node (tests, demo). Replaces an existing node with the same key.
  Status add(TrustedNode node);

  const TrustedNode* find(const PublicKey& key) const;
  const TrustedNode* find_curve(const CurveKey& curve_key) const;
  const TrustedNode* find_name(const std::string& name) const;
  size_t size() const { return by_key_.size(); }

 private:
  static Result<TrustStore> from_yaml(const YAML::Node& root, const std::string& path);

  std::map<PublicKey, TrustedNode> by_key_;
  std::map<CurveKey, PublicKey> by_curve_;
};

}  // namespace medic::fabric
