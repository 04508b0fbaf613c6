#include "rules/fleet.h"

#include <gtest/gtest.h>

#include "rules/triggers.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kSec = 1'000'000'000;

TEST(Fleet, GivesDenseIndicesInTheOrderFirstHeardOf) {
  Fleet f(20s, 1h);
  bool created = false;
  uint32_t h = f.host("h1");
  EXPECT_EQ(f.host("h1"), h);
  uint32_t a = f.vm("a", h, &created);
  EXPECT_TRUE(created);
  created = false;
  uint32_t b = f.vm("b", h, &created);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 1u);
  created = false;
  EXPECT_EQ(f.vm("a", h, &created), a);
  EXPECT_FALSE(created);
  EXPECT_EQ(f.find_vm(h, "b"), b);
  EXPECT_FALSE(f.find_vm(h, "c"));
  EXPECT_EQ(f.vm_at(a).facts.host, "h1");
  EXPECT_EQ(f.host_at(h).vms, (std::vector<uint32_t>{a, b}));
}

// The last host looked up is answered without the map; a lookup of another
// host, new or known, must not be answered with it.
TEST(Fleet, HostLookupsAlternatingBetweenHostsEachGetTheirOwnIndex) {
  Fleet f(20s, 1h);
  bool created = false;
  uint32_t h1 = f.host("h1", &created);
  EXPECT_TRUE(created);
  created = false;
  EXPECT_EQ(f.host("h1", &created), h1);
  EXPECT_FALSE(created);
  uint32_t h2 = f.host("h2", &created);
  EXPECT_TRUE(created);
  EXPECT_NE(h2, h1);
  for (int i = 0; i < 100; ++i) f.host("h" + std::to_string(i + 3));  // grows the deque
  created = false;
  EXPECT_EQ(f.host("h1", &created), h1);
  EXPECT_EQ(f.host("h2", &created), h2);
  EXPECT_EQ(f.host("h1", &created), h1);
  EXPECT_FALSE(created);
  EXPECT_EQ(f.host_at(f.host("h50")).name, "h50");
  EXPECT_EQ(f.host_count(), 102u);
}

// A host's lookups try the VM found last and the one after it first: any
// order of reports, a VM of the same id on another host, and a new VM
// between known ones must each get their own entry.
TEST(Fleet, VmLookupsInAnyOrderGetTheirOwnEntryWhateverCameBefore) {
  Fleet f(20s, 1h);
  bool created = false;
  const uint32_t h1 = f.host("h1");
  const uint32_t h2 = f.host("h2");
  std::vector<uint32_t> on1, on2;
  for (int i = 0; i < 5; ++i) on1.push_back(f.vm("vm" + std::to_string(i), h1, &created));
  for (int i = 0; i < 5; ++i) on2.push_back(f.vm("vm" + std::to_string(i), h2, &created));
  for (int i = 0; i < 5; ++i) EXPECT_NE(on1[i], on2[i]) << i;
  // In order, each twice; backwards; skipping; another host between.
  const std::vector<int> order = {0, 0, 1, 1, 2, 4, 3, 3, 0, 4, 2, 1, 1, 0};
  for (int i : order) {
    created = false;
    EXPECT_EQ(f.vm("vm" + std::to_string(i), h1, &created), on1[i]) << i;
    EXPECT_FALSE(created);
    EXPECT_EQ(f.vm("vm" + std::to_string(4 - i), h2, &created), on2[4 - i]) << i;
  }
  created = false;
  const uint32_t fresh = f.vm("vm-new", h1, &created);
  EXPECT_TRUE(created);
  EXPECT_EQ(f.vm("vm-new", h1, &created), fresh);
  EXPECT_EQ(f.vm("vm0", h1, &created), on1[0]);
  EXPECT_EQ(f.vm("vm-new", h1, &created), fresh);
  EXPECT_EQ(f.vm_at(fresh).facts.id, "vm-new");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f.vm_at(on2[i]).host, h2);
}

TEST(Fleet, FindsEveryVmAfterTheIndexGrows) {
  Fleet f(20s, 1h);
  uint32_t h = f.host("h");
  bool created = false;
  for (int i = 0; i < 1000; ++i) f.vm("vm" + std::to_string(i), h, &created);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(f.find_vm(h, "vm" + std::to_string(i)), uint32_t(i));
  EXPECT_FALSE(f.find_vm(h, "vm1000"));
}

TEST(Fleet, AVmIdReportedByTwoHostsIsTwoVmsAndTheFirstHostOwnsIt) {
  Fleet f(20s, 1h);
  bool created = false;
  uint32_t h1 = f.host("h1"), h2 = f.host("h2");
  uint32_t a1 = f.vm("a", h1, &created);
  created = false;
  uint32_t a2 = f.vm("a", h2, &created);
  EXPECT_TRUE(created) << "the second host's claim is an entry of its own";
  EXPECT_NE(a1, a2);
  EXPECT_EQ(f.vm_at(a1).host, h1);
  EXPECT_EQ(f.vm_at(a1).facts.host, "h1");
  EXPECT_EQ(f.vm_at(a2).facts.host, "h2");
  EXPECT_EQ(f.host_at(h1).vms, std::vector<uint32_t>{a1});
  EXPECT_EQ(f.host_at(h2).vms, std::vector<uint32_t>{a2});
  EXPECT_EQ(f.find_vm(h1, "a"), a1);
  EXPECT_EQ(f.find_vm(h2, "a"), a2);
  EXPECT_EQ(f.owner_of("a"), a1);
  f.vm_at(a1).last_seen_ns = 10 * kSec;
  EXPECT_EQ(f.claim(a1, 10 * kSec), Claim::kOwner);
  EXPECT_EQ(f.claim(a2, 11 * kSec), Claim::kFirstConflict);
  EXPECT_EQ(f.claim(a2, 12 * kSec), Claim::kConflict) << "noticed once";
  EXPECT_EQ(f.owner_of("a"), a1);
}

TEST(Fleet, OwnershipMovesOnlyWhenTheOwnerWasForgottenOrReportedItStopped) {
  Fleet f(20s, 1h);
  bool created = false;
  uint32_t h1 = f.host("h1"), h2 = f.host("h2"), h3 = f.host("h3");
  uint32_t a1 = f.vm("a", h1, &created);
  uint32_t a2 = f.vm("a", h2, &created);
  f.vm_at(a1).last_seen_ns = 10 * kSec;
  f.vm_at(a1).facts.state = medic::v1::VM_STATE_RUNNING;
  EXPECT_EQ(f.claim(a2, 10 * kSec + 3600 * kSec), Claim::kFirstConflict)
      << "the owner was heard of exactly forget_vm_after ago";
  EXPECT_EQ(f.claim(a2, 11 * kSec + 3600 * kSec), Claim::kTakenOver);
  EXPECT_EQ(f.owner_of("a"), a2);
  EXPECT_TRUE(f.vm_at(a2).owner);
  EXPECT_FALSE(f.vm_at(a1).owner);
  EXPECT_EQ(f.claim(a2, 12 * kSec + 3600 * kSec), Claim::kOwner);

  // The new owner reports the VM stopped (it migrated away): the next host takes it.
  f.vm_at(a2).last_seen_ns = 12 * kSec + 3600 * kSec;
  uint32_t a3 = f.vm("a", h3, &created);
  EXPECT_EQ(f.claim(a3, 13 * kSec + 3600 * kSec), Claim::kFirstConflict);
  f.vm_at(a2).facts.state = medic::v1::VM_STATE_STOPPED;
  EXPECT_EQ(f.claim(a3, 14 * kSec + 3600 * kSec), Claim::kTakenOver);
  EXPECT_EQ(f.owner_of("a"), a3);
  EXPECT_FALSE(f.vm_at(a3).claim_noticed) << "an owner has no claim to notice";
}

TEST(Fleet, FindsEveryVmOfManyHostsSharingIds) {
  Fleet f(20s, 1h);
  bool created = false;
  for (int h = 0; h < 4; ++h) {
    uint32_t hi = f.host("h" + std::to_string(h));
    for (int i = 0; i < 300; ++i) f.vm("vm" + std::to_string(i), hi, &created);
  }
  for (uint32_t h = 0; h < 4; ++h) {
    for (int i = 0; i < 300; ++i) {
      auto v = f.find_vm(h, "vm" + std::to_string(i));
      ASSERT_TRUE(v);
      EXPECT_EQ(f.vm_at(*v).host, h);
      EXPECT_EQ(f.vm_at(*v).facts.id, "vm" + std::to_string(i));
      EXPECT_EQ(f.vm_at(*v).owner, h == 0) << "the first host to report an id owns it";
    }
  }
  EXPECT_EQ(f.vm_count(), 1200u);
}

TEST(Fleet, AHostIsSilentOnlyAfterTheLimitAndSaysWhenItComesBack) {
  Fleet f(20s, 1h);
  uint32_t h = f.host("h1");
  EXPECT_FALSE(f.mark_seen(h, 100 * kSec)) << "first contact is not a return";
  EXPECT_FALSE(f.host_silent(h, 120 * kSec));
  EXPECT_TRUE(f.host_silent(h, 121 * kSec));
  f.host_at(h).silence_noticed = true;
  EXPECT_TRUE(f.mark_seen(h, 121 * kSec));
  EXPECT_FALSE(f.host_at(h).silence_noticed) << "a new spell gets a new notice";
  EXPECT_FALSE(f.mark_seen(h, 130 * kSec));
}

TEST(Fleet, ForgetsAVmNotHeardOfForForgetAfter) {
  Fleet f(20s, 1h);
  VmEntry vm;
  EXPECT_TRUE(f.forgotten(vm, 0)) << "never heard of";
  vm.last_seen_ns = 10 * kSec;
  EXPECT_FALSE(f.forgotten(vm, 10 * kSec + 3600 * kSec));
  EXPECT_TRUE(f.forgotten(vm, 11 * kSec + 3600 * kSec));
}

TEST(Fleet, KeepsTheFactsRulesRead) {
  VmEntry vm;
  medic::v1::Event e;
  auto* s = e.mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  s->set_cpu_percent(42);
  auto* l = s->add_labels();
  l->set_key("tier");
  l->set_value("web");
  Fleet::update_facts(vm, EventType::kVmState, e, 5);
  EXPECT_EQ(vm.facts.state, medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(vm.facts.cpu_percent, 42.0f);
  EXPECT_EQ(vm.facts.label("tier"), "web");
  Fleet::update_facts(vm, EventType::kVmHeartbeat, medic::v1::Event{}, 9);
  EXPECT_EQ(vm.facts.last_heartbeat_ns, 9);
  EXPECT_EQ(vm.facts.label("tier"), "web") << "a heartbeat keeps the labels";
}

}  // namespace
}  // namespace medic::rules
