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
//     - name: billing-app       # an application that may ask for actions
//       key: 5d0e...
//       roles: [requester]
//       hosts: [host-a]         # default: ["*"]; the VMs must be on these
//       vms: [web-1, web-2]     # optional: only these VM ids
//       labels: {team: billing} # optional: only VMs with all these labels
//       verbs: [reboot, restart]          # required: what it may ask for
//       approval: [restart]     # optional: verbs an operator must approve ("*": all)
//       clones: 10 per 1h       # optional, with clone: how many it may make (default)
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/duration.h"
#include "core/status.h"
#include "fabric/identity.h"

namespace medic::fabric {

enum class Role : uint8_t {
  kCollector = 1,
  kEngine = 2,
  kActuator = 4,
  kOperator = 8,
  kRequester = 16,
};
const char* role_name(Role r);

// A requester that holds the verb clone and sets no `clones:`.
inline constexpr CountPer kDefaultClones{10, std::chrono::hours(1)};

// What a requester may ask for: which VMs (besides the node's hosts), which
// verbs (medic::v1::Verb names: "reboot", "reset", "restart", "start",
// "stop", "clone", "delete"), which of them wait for an operator's approval,
// and how many clones it may make.
struct RequesterScope {
  std::vector<std::string> vms;               // empty: any VM on its hosts
  std::map<std::string, std::string> labels;  // all must match; empty: no condition
  std::vector<std::string> verbs;
  std::vector<std::string> approval;  // "*" stands for every verb
  // How many clones it may make (`clones: N per DURATION`); the engine
  // counts every clone it accepts. Zero count: the verb clone is not held.
  CountPer clones;

  bool allows_verb(const std::string& verb) const;
  bool needs_approval(const std::string& verb) const;
  // Whether VM `id` with these labels is in scope (its host is checked apart).
  bool covers_vm(const std::string& id, const std::map<std::string, std::string>& vm_labels) const;
  // The scope in words, for refusals: "VMs web-1, web-2 with team=billing".
  std::string describe() const;
};

struct TrustedNode {
  std::string name;
  PublicKey key{};
  CurveKey curve_key{};
  uint8_t roles = 0;               // bit set of Role
  std::vector<std::string> hosts;  // "*" covers every host
  RequesterScope scope;            // requester only

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
  static void read_scope(ConfigReader& r, const YAML::Node& n, TrustedNode* node);
  static void read_clone_limit(ConfigReader& r, const YAML::Node& n, RequesterScope* sc);

  std::map<PublicKey, TrustedNode> by_key_;
  std::map<CurveKey, PublicKey> by_curve_;
};

}  // namespace medic::fabric
