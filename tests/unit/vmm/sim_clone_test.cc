// Provisioning in the simulator: clones from templates appear, boot and
// heartbeat like configured VMs, and only they can be deleted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <optional>

#include "tests/testing/testing.h"
#include "vmm/sim/sim.h"

namespace medic::vmm::sim {
namespace {

using namespace std::chrono_literals;
using medic::v1::VERB_DELETE;
using medic::v1::VERB_RESET;
using ::testing::HasSubstr;

constexpr const char* kId = "0b5e7a1c-1111-4222-8333-444455556666";

SimOptions with_templates() {
  SimOptions o;
  o.hosts = 1;
  o.vms_per_host = 2;
  o.boot_time = 10s;
  o.verb_time = 2s;
  o.templates["web"] = {{"tier", "web"}, {"owner", "team-c"}};
  o.templates["db"] = {};
  return o;
}

// Begins a clone and records its outcome in *out.
Status clone(SimHost& h, const std::string& id, const std::string& name, std::optional<Status>* out,
             const std::string& tmpl = "web", Duration timeout = 30s) {
  return h.begin_clone({tmpl, id, name}, timeout, [out](Status s) { *out = s; });
}

TEST(SimClone, ListsTheTemplatesSorted) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  EXPECT_THAT(fleet.host(0).templates(), ::testing::ElementsAre("db", "web"));
  SimFleet bare(clock, SimOptions{});
  EXPECT_TRUE(bare.host(0).templates().empty());
}

TEST(SimClone, CloneAppearsAfterVerbTimeBootsAndHeartbeats) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  SimHost& h = fleet.host(0);
  uint64_t beats = 0;
  h.subscribe([&](const VmEvent& e) {
    if (e.type == VmEvent::Type::kHeartbeat && e.vm == kId) ++beats;
  });
  std::optional<Status> done;
  ASSERT_OK(clone(h, kId, "web-7", &done));
  EXPECT_FALSE(done.has_value());  // never from inside begin_clone
  clock.advance(1s);
  EXPECT_FALSE(done.has_value());
  EXPECT_EQ(h.get(kId).status().code(), Code::kNotFound);
  clock.advance(1s);
  ASSERT_TRUE(done.has_value());
  ASSERT_OK(*done);
  auto vm = h.get(kId);
  ASSERT_OK(vm);
  EXPECT_EQ(vm->name, "web-7");
  EXPECT_EQ(vm->state, medic::v1::VM_STATE_BOOTING);
  EXPECT_NE(vm->pid, 0);
  EXPECT_EQ(vm->labels, (std::map<std::string, std::string>{
                            {"tier", "web"}, {"owner", "team-c"}, {"template", "web"}}));
  EXPECT_EQ(h.vm_count(), 3u);
  EXPECT_EQ(fleet.host_of("web-7"), h.host());
  clock.advance(10s);
  EXPECT_EQ(h.get(kId)->state, medic::v1::VM_STATE_RUNNING);
  clock.advance(3s);
  EXPECT_GE(beats, 2u);
  EXPECT_TRUE(fleet.is_healthy(kId));
}

TEST(SimClone, RefusesAtOnceAndNamesTheTemplatesThereAre) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  SimHost& h = fleet.host(0);
  std::optional<Status> done;
  Status s = clone(h, kId, "x", &done, "nope");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("templates: db, web"));
  const std::string taken_name = h.list()->front().name;
  const std::string taken_id = h.list()->front().id;
  EXPECT_EQ(clone(h, kId, taken_name, &done).code(), Code::kAlreadyExists);
  EXPECT_EQ(clone(h, taken_id, "fresh", &done).code(), Code::kAlreadyExists);
  EXPECT_EQ(clone(h, "not-a-uuid", "fresh", &done).code(), Code::kInvalidArgument);
  EXPECT_EQ(clone(h, kId, "a/b", &done).code(), Code::kInvalidArgument);
  EXPECT_EQ(clone(h, kId, "..", &done).code(), Code::kInvalidArgument);
  EXPECT_EQ(clone(h, kId, std::string(64, 'a'), &done).code(), Code::kInvalidArgument);
  ASSERT_OK(clone(h, kId, std::string(63, 'a'), &done));  // positive control
  // A clone in progress takes its id and name already.
  std::optional<Status> second;
  EXPECT_EQ(clone(h, kId, "other", &second).code(), Code::kAlreadyExists);
  EXPECT_EQ(clone(h, "0b5e7a1c-1111-4222-8333-444455556667", std::string(63, 'a'), &second).code(),
            Code::kAlreadyExists);
  clock.advance(5s);
  EXPECT_FALSE(second.has_value());
  ASSERT_TRUE(done.has_value());
  EXPECT_OK(*done);
}

TEST(SimClone, HostWithoutTemplatesSaysItHasNone) {
  VirtualClock clock;
  SimFleet fleet(clock, SimOptions{});
  std::optional<Status> done;
  Status s = clone(fleet.host(0), kId, "x", &done);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("it has none"));
}

TEST(SimClone, TimeoutShorterThanVerbTimeLeavesNoVm) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  SimHost& h = fleet.host(0);
  std::optional<Status> done;
  ASSERT_OK(clone(h, kId, "late", &done, "web", 1s));
  clock.advance(1s);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->code(), Code::kTimeout);
  clock.advance(5s);
  EXPECT_EQ(h.get(kId).status().code(), Code::kNotFound);
  EXPECT_EQ(h.vm_count(), 2u);
  // Its name is free again.
  std::optional<Status> again;
  EXPECT_OK(clone(h, kId, "late", &again));
}

TEST(SimClone, UnreachableHostRefusesClones) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  ASSERT_OK(fleet.inject(FaultKind::kPartition, fleet.host(0).host()));
  std::optional<Status> done;
  EXPECT_EQ(clone(fleet.host(0), kId, "x", &done).code(), Code::kUnavailable);
}

Status run(SimFleet& fleet, VirtualClock& clock, Verb verb, const std::string& vm) {
  std::optional<Status> out;
  fleet.host(0).execute(verb, vm, 30s, [&out](Status s) { out = s; });
  clock.advance(fleet.options().verb_time);
  EXPECT_TRUE(out.has_value());
  return out.value_or(internal_error("verb did not complete"));
}

TEST(SimClone, DeleteRemovesACloneForGood) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  SimHost& h = fleet.host(0);
  std::vector<VmEvent> events;
  h.subscribe([&](const VmEvent& e) {
    if (e.vm == kId) events.push_back(e);
  });
  std::optional<Status> done;
  ASSERT_OK(clone(h, kId, "web-7", &done));
  clock.advance(20s);
  ASSERT_TRUE(fleet.is_healthy(kId));
  ASSERT_OK(run(fleet, clock, VERB_DELETE, kId));
  EXPECT_EQ(h.get(kId).status().code(), Code::kNotFound);
  EXPECT_EQ(h.vm_count(), 2u);
  auto all = h.list();
  ASSERT_OK(all);
  for (const auto& v : *all) EXPECT_NE(v.id, kId);
  EXPECT_EQ(fleet.host_of("web-7"), "");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().what, medic::v1::LIFECYCLE_STOPPED);
  const size_t seen = events.size();
  clock.advance(10s);
  EXPECT_EQ(events.size(), seen);  // no more heartbeats
  EXPECT_EQ(run(fleet, clock, VERB_DELETE, kId).code(), Code::kNotFound);
}

TEST(SimClone, ConfiguredVmsCannotBeDeleted) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  const std::string id = fleet.host(0).list()->front().id;
  Status s = run(fleet, clock, VERB_DELETE, id);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("not cloned"));
  EXPECT_OK(fleet.host(0).get(id));
  EXPECT_EQ(fleet.verbs_refused(id, VERB_DELETE), 1u);
}

TEST(SimClone, ANewCloneReusesADeletedSlotWithoutOldTimers) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  SimHost& h = fleet.host(0);
  std::optional<Status> done;
  ASSERT_OK(clone(h, kId, "first", &done));
  clock.advance(2s);  // booting, its boot completion pending
  ASSERT_OK(run(fleet, clock, VERB_DELETE, kId));
  const std::string id2 = "0b5e7a1c-1111-4222-8333-444455556667";
  ASSERT_OK(clone(h, id2, "second", &done, "db"));
  clock.advance(2s);
  ASSERT_OK(*done);
  // The first clone's boot would have ended now; the second's has not.
  clock.advance(5s);
  EXPECT_EQ(h.get(id2)->state, medic::v1::VM_STATE_BOOTING);
  EXPECT_EQ(h.get(id2)->labels, (std::map<std::string, std::string>{{"template", "db"}}));
  EXPECT_EQ(h.vm_count(), 3u);
  clock.advance(5s);
  EXPECT_EQ(h.get(id2)->state, medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(fleet.verbs_executed(id2, VERB_DELETE), 0u);
}

TEST(SimClone, ACloneTakesFaultsAndVerbsLikeAnyVm) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  std::optional<Status> done;
  ASSERT_OK(clone(fleet.host(0), kId, "web-7", &done));
  clock.advance(20s);
  ASSERT_OK(fleet.host(0).inject_fault("panic", "web-7"));
  EXPECT_FALSE(fleet.is_healthy(kId));
  ASSERT_OK(run(fleet, clock, VERB_RESET, kId));
  clock.advance(11s);
  EXPECT_TRUE(fleet.is_healthy(kId));
}

TEST(SimClone, HostLossAndReturnSkipDeletedClones) {
  VirtualClock clock;
  SimFleet fleet(clock, with_templates());
  SimHost& h = fleet.host(0);
  std::optional<Status> done;
  ASSERT_OK(clone(h, kId, "gone", &done));
  clock.advance(2s);
  ASSERT_OK(run(fleet, clock, VERB_DELETE, kId));
  ASSERT_OK(fleet.inject(FaultKind::kHostLoss, h.host()));
  ASSERT_OK(fleet.heal_host(h.host()));
  EXPECT_EQ(h.list()->size(), 2u);
  EXPECT_EQ(h.get(kId).status().code(), Code::kNotFound);
}

SimOptions read(const std::string& yaml, ConfigReader& r) {
  auto node = load_yaml_string(yaml, "sim.yaml");
  EXPECT_OK(node);
  return read_sim_options(r, *node);
}

TEST(SimClone, ConfigReadsTemplates) {
  ConfigReader r("sim.yaml");
  SimOptions o =
      read("templates:\n  web: {labels: {tier: web, owner: team-c}}\n  db: {}\n  bare:\n", r);
  ASSERT_OK(r.status());
  ASSERT_EQ(o.templates.size(), 3u);
  EXPECT_EQ(o.templates["web"],
            (std::map<std::string, std::string>{{"tier", "web"}, {"owner", "team-c"}}));
  EXPECT_TRUE(o.templates["db"].empty());
  EXPECT_TRUE(o.templates["bare"].empty());
}

TEST(SimClone, ConfigRefusesBadTemplatesWithPositions) {
  ConfigReader r("sim.yaml");
  (void)read("templates:\n  web: {lables: {tier: web}}\n  \"a/b\": {}\n  db: {labels: [x]}\n", r);
  EXPECT_FALSE(r.ok());
  const std::string all = r.status().message();
  EXPECT_THAT(all, HasSubstr("sim.yaml:2:"));
  EXPECT_THAT(all, HasSubstr("lables"));
  EXPECT_THAT(all, HasSubstr("sim.yaml:3:"));
  EXPECT_THAT(all, HasSubstr("a/b"));
  EXPECT_THAT(all, HasSubstr("sim.yaml:4:"));
}

}  // namespace
}  // namespace medic::vmm::sim
