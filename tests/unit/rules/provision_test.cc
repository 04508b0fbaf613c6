// Requests that make and remove VMs: a clone enters its new VM in the fleet
// table on its host before it exists, is healed when the clone beats, and
// survives snapshot and restore with its template and name; a delete is
// healed only when the actuator saw the VM gone, ends the VM's other
// incidents, and nothing watches the VM afterwards. Neither is a rule's
// step.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "rules/loader.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::heartbeat;
using testing::lifecycle;
using testing::state;

const char* kRules = R"(rules:
  - name: guest-unresponsive
    absent: vm.heartbeat
    for: 30s
    where: vm.state == "running"
    do: [reboot, notify]
    heal_within: 1m
)";

const char* kNewId = "7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f01";

Request clone_req(const std::string& name = "web-7") {
  Request r;
  r.vm = kNewId;
  r.step = Step::kClone;
  r.host = "h1";
  r.template_name = "web";
  r.vm_name = name;
  r.by = "orchestrator";
  r.reason = "scale out";
  r.request_id = "r-9";
  r.by_operator = false;
  return r;
}

Request delete_req(const std::string& vm) {
  Request r;
  r.vm = vm;
  r.step = Step::kDelete;
  r.by = "orchestrator";
  r.request_id = "r-10";
  r.by_operator = false;
  return r;
}

class ProvisionTest : public ::testing::Test {
 protected:
  ProvisionTest() : h_(kRules, testing::no_storm()) {
    h_.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));
  }
  testing::Harness h_;
};

TEST_F(ProvisionTest, ACloneEntersItsVmOnTheHostAndIsHealedWhenTheCloneBeats) {
  auto d = h_.engine.request(clone_req());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kProposed);
  EXPECT_EQ(d->step, Step::kClone);
  EXPECT_EQ(d->rule, "request:clone");
  EXPECT_EQ(d->vm, kNewId);
  EXPECT_EQ(d->host, "h1");
  EXPECT_EQ(d->trigger,
            "request r-9 by orchestrator: clone of template web on h1 as web-7 "
            "(scale out)");
  EXPECT_EQ(step_verb(d->step), medic::v1::VERB_CLONE);
  EXPECT_EQ(h_.engine.vm_host(kNewId), "h1");
  EXPECT_EQ(h_.engine.vm_name(kNewId), "web-7");
  EXPECT_EQ(h_.engine.vm_label(kNewId, "template"), "web");

  h_.engine.on_action_result(d->id, ActionState::kSucceeded, false);
  EXPECT_EQ(h_.engine.stats().open_incidents, 1u) << "watching for the clone's first beat";
  h_.send(state("h1", kNewId, medic::v1::VM_STATE_BOOTING));
  h_.send(heartbeat("h1", kNewId));
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_TRUE(h_.sink.verdicts[0].healed);
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u);
}

TEST_F(ProvisionTest, ACloneNeedsAKnownHostANewIdAndItsArguments) {
  Request r = clone_req();
  r.host = "h9";
  auto host = h_.engine.request(r);
  EXPECT_EQ(host.status().code(), Code::kNotFound);
  EXPECT_EQ(host.status().message(), "no host \"h9\" has reported to this engine");
  r = clone_req();
  r.template_name.clear();
  auto args = h_.engine.request(r);
  EXPECT_EQ(args.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(args.status().message(), "a clone names a new VM id, a template and a name");
  r = clone_req();
  r.vm = "vm1";
  auto taken = h_.engine.request(r);
  EXPECT_EQ(taken.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(taken.status().message(), "a VM vm1 exists already");
  EXPECT_EQ(h_.engine.stats().decisions, 0u) << "a refused clone decides nothing";
}

// The last time the engine heard of `id`; epoch when it let go of it.
Time last_seen(const Engine& e, const std::string& id) {
  for (const auto& h : e.host_views(true)) {
    for (const auto& vm : h.vm_list) {
      if (vm.id == id) return vm.last_seen;
    }
  }
  return Time::max();
}

// Whether the engine holds `id` as deleted.
bool deleted(const Engine& e, const std::string& id) {
  for (const auto& h : e.host_views(true)) {
    for (const auto& vm : h.vm_list) {
      if (vm.id == id) return vm.deleted;
    }
  }
  return false;
}

TEST_F(ProvisionTest, ACloneThatFailsBeforeItsVmReportedLeavesNoVmBehind) {
  auto d = h_.engine.request(clone_req());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(h_.engine.vm_host(kNewId), "h1") << "entered when asked for";
  EXPECT_FALSE(deleted(h_.engine, kNewId));
  h_.engine.on_action_result(d->id, ActionState::kFailed, false, "no template web on h1");
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_FALSE(h_.sink.verdicts[0].healed);
  EXPECT_TRUE(deleted(h_.engine, kNewId)) << "the engine retired a VM that never was";
}

TEST_F(ProvisionTest, AClonesFirstReportArmsItsAbsenceRules) {
  auto d = h_.engine.request(clone_req());
  ASSERT_TRUE(d.ok()) << d.status();
  h_.engine.on_action_result(d->id, ActionState::kSucceeded, false);  // watching for a beat
  h_.take();
  h_.send(state("h1", kNewId, medic::v1::VM_STATE_RUNNING));  // it runs but never beats
  h_.advance(35s);
  bool rebooted = false;
  for (const auto& dd : h_.take())
    rebooted = rebooted || (dd.vm == kNewId && dd.step == Step::kReboot);
  EXPECT_TRUE(rebooted) << "a clone that never beats is caught like any new VM";
}

TEST_F(ProvisionTest, ACloneInFlightSurvivesSnapshotAndRestoreWithItsTemplateAndName) {
  auto d = h_.engine.request(clone_req());
  ASSERT_TRUE(d.ok()) << d.status();
  EngineState s = h_.engine.snapshot();
  testing::RecordingSink sink;
  VirtualClock clock(h_.clock.now());
  Engine restored(clock, testing::must_load(kRules), testing::no_storm(), sink);
  ASSERT_TRUE(restored.restore(s).ok());
  EXPECT_EQ(restored.stats().in_flight, 1u);
  EXPECT_EQ(restored.vm_label(kNewId, "template"), "web");
  EXPECT_EQ(restored.vm_name(kNewId), "web-7");
  EXPECT_EQ(restored.vm_host(kNewId), "h1");
}

// A requester's clones are counted (Request::clones): past its limit a clone
// is refused before any VM is made, the count outlives a restart, and a
// clone is allowed again once the window has passed.
TEST_F(ProvisionTest, ARequesterPastItsCloneLimitIsRefusedUntilTheWindowPassesEvenAfterARestart) {
  auto limited = [](const std::string& id, const std::string& name) {
    Request r = clone_req(name);
    r.vm = id;
    r.clones = Budget{2, 1h};
    return r;
  };
  const std::string a = "7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f0a";
  const std::string b = "7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f0b";
  const std::string c = "7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f0c";
  ASSERT_TRUE(h_.engine.request(limited(a, "web-a")).ok());
  h_.advance(10min);
  ASSERT_TRUE(h_.engine.request(limited(b, "web-b")).ok());
  h_.advance(10min);
  auto third = h_.engine.request(limited(c, "web-c"));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(third.status().message(),
            "orchestrator has made 2 clones in the last 1h (its limit: clones: 2 per 1h); the "
            "next is allowed in 40m");
  EXPECT_EQ(h_.engine.vm_host(c), "") << "no VM is made for a refused clone";
  // Another requester, and an operator (no limit), are not held by it.
  Request other = limited(c, "web-c");
  other.by = "other-app";
  EXPECT_TRUE(h_.engine.request(other).ok());
  Request op = limited("7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f0e", "web-e");
  op.by_operator = true;
  op.clones = {};
  EXPECT_TRUE(h_.engine.request(op).ok());
  // The count is state a store is handed (take_changes), not only a snapshot.
  StateChanges changed = h_.engine.take_changes(false);
  EXPECT_TRUE(changed.engine_changed);
  ASSERT_FALSE(changed.state.clones_by.empty());
  EXPECT_EQ(changed.state.clones_by.front().first, "orchestrator");
  EXPECT_EQ(changed.state.clones_by.front().second.size(), 2u);

  EngineState s = h_.engine.snapshot();
  testing::RecordingSink sink;
  VirtualClock clock(h_.clock.now());
  Engine restored(clock, testing::must_load(kRules), testing::no_storm(), sink);
  ASSERT_TRUE(restored.restore(s).ok());
  const std::string d = "7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f0d";
  auto held = restored.request(limited(d, "web-d"));
  ASSERT_FALSE(held.ok()) << "the count survives a restart";
  EXPECT_EQ(held.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(held.status().message(), ::testing::HasSubstr("orchestrator has made 2 clones"));
  clock.advance(40min);
  restored.host_seen("h1", clock.now());
  auto again = restored.request(limited(d, "web-d"));
  ASSERT_TRUE(again.ok()) << "the first clone left the window: " << again.status();
  EXPECT_EQ(again->outcome, Outcome::kProposed) << again->reason;
}

// A clone that waits for a host slot still goes on, so it counts: a looping
// tool cannot slip clones past its limit while the host is busy.
TEST(ProvisionLimit, AClonesWaitingForASlotCountTowardTheLimit) {
  EngineOptions opt = testing::no_storm();
  opt.max_in_flight_per_host = 1;
  testing::Harness h(kRules, opt);
  h.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));
  auto ask = [&](const std::string& id, const std::string& name) {
    Request r = clone_req(name);
    r.vm = id;
    r.clones = Budget{2, std::chrono::hours(1)};
    return h.engine.request(r);
  };
  auto first = ask("7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f1a", "web-a");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->outcome, Outcome::kProposed);
  auto second = ask("7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f1b", "web-b");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->outcome, Outcome::kSuppressed) << "it waits for the host's one slot";
  auto third = ask("7a3e1c52-9d4b-4f0e-8a21-5b6c7d8e9f1c", "web-c");
  ASSERT_FALSE(third.ok()) << "the waiting clone was not counted";
  EXPECT_THAT(third.status().message(), ::testing::HasSubstr("has made 2 clones"));
}

TEST_F(ProvisionTest, ADeleteIsHealedOnlyWhenTheActuatorSawTheVmGoneAndNothingWatchesItAfter) {
  h_.send(state("h1", "vm2", medic::v1::VM_STATE_RUNNING));
  h_.run(5s, 5s, {{"h1", "vm1"}, {"h1", "vm2"}}, {"h1"});
  auto d = h_.engine.request(delete_req("vm1"));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->outcome, Outcome::kProposed);
  EXPECT_EQ(step_verb(d->step), medic::v1::VERB_DELETE);
  h_.send(lifecycle("h1", "vm1", medic::v1::LIFECYCLE_STOPPED));
  EXPECT_EQ(h_.engine.stats().open_incidents, 1u) << "a stopped VM is not yet a deleted one";
  h_.engine.on_action_result(d->id, ActionState::kSucceeded, true);
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_TRUE(h_.sink.verdicts[0].healed);
  EXPECT_EQ(h_.sink.verdicts[0].detail, "the actuator saw the VM gone after the verb");
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u);
  h_.take();
  // A report the host sent before the delete, still on its way, is dropped.
  h_.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));
  h_.advance(5min);  // the host keeps reporting; neither VM beats
  size_t vm1 = 0, vm2 = 0;
  for (const auto& dd : h_.take()) {
    vm1 += dd.vm == "vm1";
    vm2 += dd.vm == "vm2" && dd.step == Step::kReboot;
  }
  EXPECT_EQ(vm1, 0u) << "no rule acts on a deleted VM";
  EXPECT_GE(vm2, 1u) << "the positive control: a live silent VM is rebooted";
  for (const auto& h : h_.engine.host_views(true)) {
    for (const auto& vm : h.vm_list) EXPECT_EQ(vm.deleted, vm.id == "vm1") << vm.id;
  }
}

TEST_F(ProvisionTest, ADeleteNotSeenDoneIsNotHealedAndTheVmIsStillWatched) {
  auto d = h_.engine.request(delete_req("vm1"));
  ASSERT_TRUE(d.ok()) << d.status();
  h_.engine.on_action_result(d->id, ActionState::kFailed, false, "vm1 is not a clone");
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_FALSE(h_.sink.verdicts[0].healed);
  EXPECT_NE(h_.sink.verdicts[0].detail.find("not a clone"), std::string::npos);
  EXPECT_NE(last_seen(h_.engine, "vm1"), Time{});
  for (const auto& h : h_.engine.host_views(true)) {
    for (const auto& vm : h.vm_list) EXPECT_FALSE(vm.deleted) << vm.id;
  }
}

TEST_F(ProvisionTest, ADeleteInFlightLeavesTheVmsOtherIncidentsAlone) {
  h_.advance(35s);  // vm1 never beat: guest-unresponsive reboots it
  ASSERT_EQ(h_.count(Step::kReboot, Outcome::kProposed), 1u);
  const std::string reboot = h_.with(Outcome::kProposed)[0].id;
  h_.engine.on_action_result(reboot, ActionState::kSucceeded, false);  // watching
  const size_t open = h_.engine.stats().open_incidents;
  Request del = delete_req("vm1");
  del.by_operator = true;  // a person's: the reboot's cooldown does not stop it
  auto d = h_.engine.request(del);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(h_.engine.stats().open_incidents, open + 1) << "a delete may yet be refused";
  h_.engine.on_action_result(d->id, ActionState::kSucceeded, true);
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u) << "gone: its other incidents end";
}

TEST_F(ProvisionTest, CloneAndDeleteNeitherMeetNorFillTheCooldownAndBudget) {
  auto made = h_.engine.request(clone_req());
  ASSERT_TRUE(made.ok()) << made.status();
  for (const auto& c : made->checks) {
    EXPECT_NE(c.policy, Policy::kCooldown);
    EXPECT_NE(c.policy, Policy::kBudget);
  }
  h_.engine.on_action_result(made->id, ActionState::kSucceeded, true);
  h_.send(state("h1", kNewId, medic::v1::VM_STATE_RUNNING));
  h_.send(heartbeat("h1", kNewId));
  // The new VM stops beating at once: the absence rule acts, no cooldown
  // from the clone stops it.
  h_.take();
  h_.advance(35s);
  auto ds = h_.with(Outcome::kProposed);
  ASSERT_FALSE(ds.empty());
  EXPECT_EQ(ds.back().vm, kNewId);
  EXPECT_EQ(ds.back().step, Step::kReboot);
  h_.engine.on_action_result(ds.back().id, ActionState::kSucceeded, true);
  // A delete a moment after the reboot: not "too soon".
  auto gone = h_.engine.request(delete_req(kNewId));
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->outcome, Outcome::kProposed) << gone->reason;
}

TEST(ProvisionRules, NoRuleMayCloneOrDelete) {
  for (const char* step : {"clone", "delete"}) {
    const std::string yaml =
        std::string("rules:\n  - {name: r, on: vm.panicked, do: ") + step + "}\n";
    LoadResult loaded = load_rule_text(yaml, "r.yaml");
    ASSERT_FALSE(loaded.ok()) << step;
    EXPECT_NE(loaded.text().find("only a requester asks for it"), std::string::npos)
        << loaded.text();
    EXPECT_NE(loaded.text().find("r.yaml:2:"), std::string::npos) << loaded.text();
  }
}

}  // namespace
}  // namespace medic::rules
