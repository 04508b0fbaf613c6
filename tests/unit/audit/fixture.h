// Shared by the audit tests: identities, signed envelopes as the engine would
// receive them, and a store populated with one realistic healing story.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "audit/log.h"
#include "fabric/envelope.h"
#include "fabric/identity.h"
#include "medic/v1/actions.pb.h"
#include "medic/v1/control.pb.h"
#include "medic/v1/events.pb.h"
#include "tests/testing/testing.h"

namespace medic::audit::test {

inline fabric::Identity identity(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  return fabric::Identity::from_seed(seed);
}

// 2026-01-01T03:00:00Z plus `ms`.
inline Time at_ms(int64_t ms) { return from_ns(1'767'236'400'000'000'000 + ms * 1'000'000); }

class Keys {
 public:
  Keys()
      : engine(identity(1)),
        collector(identity(2)),
        actuator(identity(3)),
        alice(identity(4)),
        collector_sealer(collector, 0, 7),
        actuator_sealer(actuator, 0, 7),
        alice_sealer(alice, 0, 7) {}

  std::string panic_batch(const std::string& vm, Time at, const std::string& name = "") {
    medic::v1::EventBatch b;
    b.set_urgent(true);
    auto* hb = b.add_events();
    hb->set_host("host-a");
    hb->set_vm(vm);
    hb->set_observed_at_ns(to_ns(at) - 1'000'000'000);
    hb->mutable_state()->set_state(medic::v1::VM_STATE_RUNNING);
    hb->mutable_state()->set_last_heartbeat_ns(to_ns(at) - 1'000'000'000);
    auto* e = b.add_events();
    e->set_host("host-a");
    e->set_vm(vm);
    e->set_observed_at_ns(to_ns(at));
    e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    e->mutable_lifecycle()->set_detail("pvpanic");
    if (!name.empty()) e->mutable_lifecycle()->set_vm_name(name);
    return collector_sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), at);
  }

  std::string result(const std::string& action_id, Time executed, Time finished, bool healed) {
    medic::v1::ActionResult r;
    r.set_action_id(action_id);
    r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
    r.set_reason("system_reset done");
    r.set_healed(healed);
    r.set_executed_at_ns(to_ns(executed));
    r.set_finished_at_ns(to_ns(finished));
    return actuator_sealer.seal(medic::v1::KIND_ACTION_RESULT, "host-a", r.SerializeAsString(),
                                finished);
  }

  std::string approve(const std::string& action_id, Time at) {
    medic::v1::ControlRequest q;
    q.set_request_id("req-" + action_id);
    q.mutable_approve()->set_action_id(action_id);
    q.mutable_approve()->set_comment("looked at the console, go");
    return alice_sealer.seal(medic::v1::KIND_CONTROL_REQUEST, "", q.SerializeAsString(), at);
  }

  fabric::Identity engine, collector, actuator, alice;
  fabric::Sealer collector_sealer, actuator_sealer, alice_sealer;
};

inline StoreOptions fast_options() {
  StoreOptions o;
  o.durability = Durability::kProcessCrash;
  o.checkpoint_every_rows = 1000;
  return o;
}

inline Decision decision(const std::string& id, const std::string& vm, Time at, Seq evidence,
                         DecisionOutcome outcome = DecisionOutcome::kProposed) {
  Decision d;
  d.id = "d-" + id;
  d.action_id = id;
  d.at = at;
  d.rule = "guest-panicked";
  d.rule_version = "3";
  d.vm = vm;
  d.host = "host-a";
  d.verb = "reset";
  d.outcome = outcome;
  d.policies_passed = {"cooldown", "budget", "storm-guard", "host-silent"};
  if (evidence) d.evidence = {{evidence, 1}};
  d.action_expires_at = at + std::chrono::minutes(5);
  if (outcome == DecisionOutcome::kSuppressed) {
    d.policies_passed = {"budget", "storm-guard"};
    d.policy = "cooldown";
    d.reason = "vm web-2 was reset 40s ago (cooldown 2m)";
  }
  return d;
}

inline Transition step(const std::string& id, ActionState s, Time at, std::string actor = "engine",
                       std::string detail = "", Seq ref = 0) {
  return Transition{id, at, s, std::move(actor), std::move(detail), ref};
}

// Expects `r` ok and waits until it is durable, so each append is its own
// commit and checkpoints land between them.
inline Seq commit(AuditStore& store, const Result<Seq>& r) {
  EXPECT_OK(r);
  if (!r.ok()) return 0;
  EXPECT_OK(store.wait_durable(*r));
  return *r;
}

// One healed panic (a-1, approved by alice), one suppressed (a-2), one still
// in flight (a-3, dispatched), one dry run. Returns the seq of the last row.
inline Seq populate(AuditStore& store, Keys& k) {
  auto ev =
      commit(store, store.append_evidence({at_ms(0), k.panic_batch("web-1", at_ms(0)), "host-a"}));
  auto d1 = decision("a-1", "web-1", at_ms(20), ev, DecisionOutcome::kPendingApproval);
  commit(store, store.append_decision(d1));
  auto req = commit(store, store.append_request({at_ms(900), "alice", "approve", "a-1", true,
                                                 "approved", k.approve("a-1", at_ms(900))}));
  commit(store, store.append_transition(step("a-1", ActionState::kApproved, at_ms(900), "alice",
                                             "looked at the console, go", req)));
  commit(store, store.append_transition(step("a-1", ActionState::kDispatched, at_ms(910))));
  commit(store, store.append_transition(step("a-1", ActionState::kAcked, at_ms(950), "host-a")));
  auto res =
      commit(store, store.append_evidence(
                        {at_ms(3100), k.result("a-1", at_ms(960), at_ms(3000), true), "host-a"}));
  commit(store, store.append_transition(step("a-1", ActionState::kSucceeded, at_ms(3100), "host-a",
                                             "system_reset done", res)));

  auto ev2 = commit(
      store, store.append_evidence({at_ms(5000), k.panic_batch("web-2", at_ms(5000)), "host-a"}));
  commit(store,
         store.append_decision(decision("a-2", "web-2", at_ms(5010), ev2, DecisionOutcome::kSuppressed)));

  auto ev3 = commit(
      store, store.append_evidence({at_ms(6000), k.panic_batch("db-1", at_ms(6000)), "host-a"}));
  auto d3 = decision("a-3", "db-1", at_ms(6010), ev3);
  d3.rule = "guest-unresponsive";
  d3.verb = "reboot";
  commit(store, store.append_decision(d3));
  commit(store, store.append_transition(step("a-3", ActionState::kDispatched, at_ms(6020))));

  auto d4 = decision("", "web-9", at_ms(7000), ev3, DecisionOutcome::kDryRun);
  d4.id = "d-dry";
  d4.rule = "probe-failing";
  return commit(store, store.append_decision(d4));
}

}  // namespace medic::audit::test
