// Shared set-up for fabric tests: deterministic identities and a trust store.
#pragma once

#include <string>

#include "fabric/envelope.h"
#include "fabric/identity.h"
#include "fabric/trust.h"

namespace medic::fabric::test {

inline Identity identity_for(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  return Identity::from_seed(seed);
}

inline TrustedNode node(const std::string& name, const Identity& id, uint8_t roles,
                        std::vector<std::string> hosts) {
  TrustedNode n;
  n.name = name;
  n.key = id.public_key();
  n.roles = roles;
  n.hosts = std::move(hosts);
  return n;
}

constexpr uint8_t kCollector = static_cast<uint8_t>(Role::kCollector);
constexpr uint8_t kEngine = static_cast<uint8_t>(Role::kEngine);
constexpr uint8_t kActuator = static_cast<uint8_t>(Role::kActuator);
constexpr uint8_t kOperator = static_cast<uint8_t>(Role::kOperator);

inline medic::v1::EventBatch batch_of(const std::string& host, int n) {
  medic::v1::EventBatch b;
  for (int i = 0; i < n; ++i) {
    auto* e = b.add_events();
    e->set_host(host);
    e->set_vm("vm-" + std::to_string(i));
    e->set_observed_at_ns(1'700'000'000'000'000'000 + i);
    auto* s = e->mutable_state();
    s->set_state(medic::v1::VM_STATE_RUNNING);
    s->set_last_heartbeat_ns(1'700'000'000'000'000'000);
    auto* l = s->add_labels();
    l->set_key("tier");
    l->set_value("web");
  }
  return b;
}

}  // namespace medic::fabric::test
