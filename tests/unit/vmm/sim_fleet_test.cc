// The simulated fleet itself: naming, heartbeats, determinism by seed, the
// verbs on healthy VMs, and the scheduled fault injector.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "vmm/sim/sim.h"
#include "vmm/vmadm/vmadm.h"
#include "tests/testing/testing.h"

namespace medic::vmm::sim {
namespace {

using namespace std::chrono_literals;
using medic::v1::VERB_REBOOT;
using medic::v1::VERB_RESET;
using medic::v1::VERB_RESTART;
using medic::v1::VERB_START;
using medic::v1::VERB_STOP;

// Everything a fleet delivered, in order, as comparable tuples.
using Seen = std::tuple<std::string, std::string, int, int, uint64_t, int64_t>;

std::vector<Seen>* record_all(SimFleet& fleet, std::vector<Seen>& out) {
  for (size_t i = 0; i < fleet.host_count(); ++i) {
    std::string host = fleet.host(i).host();
    fleet.host(i).subscribe([&out, host](const VmEvent& e) {
      out.emplace_back(host, e.vm, static_cast<int>(e.type), static_cast<int>(e.what), e.counter,
                       to_ns(e.at));
    });
  }
  return &out;
}

SimOptions small(uint64_t seed = 7) {
  SimOptions o;
  o.hosts = 2;
  o.vms_per_host = 3;
  o.seed = seed;
  return o;
}

TEST(SimFleet, NamesHostsAndVmsPredictably) {
  VirtualClock clock;
  SimFleet fleet(clock, small());
  ASSERT_EQ(fleet.host_count(), 2u);
  EXPECT_EQ(fleet.host(0).host(), "host-01");
  EXPECT_EQ(fleet.host(1).host(), "host-02");
  auto vms = fleet.host(1).list();
  ASSERT_OK(vms);
  ASSERT_EQ(vms->size(), 3u);
  EXPECT_EQ((*vms)[2].name, "host-02-vm-003");
  std::set<std::string> ids;
  for (const auto& v : *vms) {
    // A version-4 UUID, lower case (std::regex trips GCC 12 warnings under ASan).
    EXPECT_TRUE(vmadm::is_vm_uuid(v.id)) << v.id;
    EXPECT_EQ(v.id[14], '4') << v.id;
    EXPECT_THAT(std::string(1, v.id[19]), ::testing::AnyOf("8", "9", "a", "b")) << v.id;
    EXPECT_EQ(v.id.find_first_of("ABCDEF"), std::string::npos) << v.id;
    EXPECT_THAT(v.labels.at("tier"), ::testing::AnyOf("web", "db", "batch"));
    EXPECT_EQ(v.state, medic::v1::VM_STATE_RUNNING);
    EXPECT_GT(v.pid, 0);
    ids.insert(v.id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(fleet.host_of("host-02-vm-003"), "host-02");
  EXPECT_EQ(fleet.host_of((*vms)[0].id), "host-02");
}

TEST(SimFleet, NameWidthGrowsWithTheFleet) {
  VirtualClock clock;
  SimOptions o;
  o.hosts = 120;
  o.vms_per_host = 1;
  SimFleet fleet(clock, o);
  EXPECT_EQ(fleet.host(0).host(), "host-001");
  EXPECT_EQ(fleet.host(119).host(), "host-120");
}

TEST(SimFleet, RunningVmsHeartbeatOncePerInterval) {
  VirtualClock clock;
  SimFleet fleet(clock, small());
  std::vector<Seen> seen;
  record_all(fleet, seen);
  Time start = clock.now();
  clock.advance(10s);
  ASSERT_EQ(seen.size(), 2u * 3u * 10u);
  std::map<std::string, uint64_t> last_counter;
  for (const auto& [host, vm, type, what, counter, at] : seen) {
    EXPECT_EQ(type, static_cast<int>(VmEvent::Type::kHeartbeat));
    EXPECT_EQ(counter, last_counter[vm] + 1) << vm;
    last_counter[vm] = counter;
    EXPECT_GT(at, to_ns(start));
    EXPECT_LE(at, to_ns(clock.now()));
  }
  EXPECT_EQ(fleet.heartbeats_delivered(), 60u);
  auto info = fleet.host(0).get(fleet.vm_ids()[0]);
  ASSERT_OK(info);
  EXPECT_GT(info->last_heartbeat, start);
}

TEST(SimFleet, SameSeedGivesTheSameEventSequence) {
  auto run = [](uint64_t seed) {
    VirtualClock clock;
    SimOptions o = small(seed);
    o.faults_per_hour = 360;  // one every ten seconds on average
    SimFleet fleet(clock, o);
    std::vector<Seen> seen;
    record_all(fleet, seen);
    clock.advance(10min);
    std::vector<std::string> faults;
    for (const auto& f : fleet.injections())
      faults.push_back(std::string(fault_name(f.kind)) + f.vm);
    return std::make_pair(seen, faults);
  };
  auto a = run(42);
  auto b = run(42);
  auto c = run(43);
  ASSERT_FALSE(a.first.empty());
  ASSERT_FALSE(a.second.empty());
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
  EXPECT_NE(a.first, c.first);
  EXPECT_NE(a.second, c.second);
}

TEST(SimFleet, DifferentSeedsGiveDifferentIds) {
  VirtualClock clock;
  SimFleet a(clock, small(1));
  SimFleet b(clock, small(1));
  SimFleet c(clock, small(2));
  EXPECT_EQ(a.vm_ids(), b.vm_ids());
  EXPECT_NE(a.vm_ids(), c.vm_ids());
}

TEST(SimFleet, UnknownVmIsNotFound) {
  VirtualClock clock;
  SimFleet fleet(clock, small());
  EXPECT_EQ(fleet.host(0).get("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(execute_and_wait(fleet.host(0), clock, VERB_RESET, "nope", 1s).code(), Code::kNotFound);
  // A VM of another host is not this host's.
  EXPECT_EQ(fleet.host(0).get(fleet.vm_ids().back()).status().code(), Code::kNotFound);
  EXPECT_EQ(fleet.inject(FaultKind::kHang, "host-09", "x").code(), Code::kNotFound);
  EXPECT_EQ(fleet.inject(FaultKind::kHang, "host-01", fleet.vm_ids().back()).code(),
            Code::kNotFound);
}

TEST(SimFleet, StartOnARunningVmIsRefusedAndNeverDoubleStarts) {
  VirtualClock clock;
  SimFleet fleet(clock, small());
  std::string vm = fleet.vm_ids()[0];
  int pid = fleet.true_info(vm)->pid;
  Status s = execute_and_wait(fleet.host(0), clock, VERB_START, vm, 1s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_EQ(fleet.true_info(vm)->pid, pid);
  EXPECT_EQ(fleet.verbs_executed(vm, VERB_START), 0u);
  EXPECT_EQ(fleet.verbs_refused(vm, VERB_START), 1u);
}

TEST(SimFleet, StopThenStartBootsTheVmAgain) {
  VirtualClock clock;
  SimFleet fleet(clock, small());
  std::vector<Seen> seen;
  record_all(fleet, seen);
  std::string vm = fleet.vm_ids()[0];
  ASSERT_TRUE(execute_and_wait(fleet.host(0), clock, VERB_STOP, vm, 1s).ok());
  EXPECT_EQ(fleet.true_info(vm)->state, medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(fleet.true_info(vm)->pid, 0);
  EXPECT_EQ(execute_and_wait(fleet.host(0), clock, VERB_STOP, vm, 1s).code(), Code::kFailedPrecondition);
  EXPECT_EQ(execute_and_wait(fleet.host(0), clock, VERB_RESTART, vm, 1s).code(), Code::kFailedPrecondition);
  EXPECT_EQ(execute_and_wait(fleet.host(0), clock, VERB_RESET, vm, 1s).code(), Code::kFailedPrecondition);
  EXPECT_EQ(execute_and_wait(fleet.host(0), clock, VERB_REBOOT, vm, 1s).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(execute_and_wait(fleet.host(0), clock, VERB_START, vm, 1s).ok());
  EXPECT_EQ(fleet.true_info(vm)->state, medic::v1::VM_STATE_BOOTING);
  EXPECT_FALSE(fleet.is_healthy(vm));
  clock.advance(fleet.options().boot_time);
  EXPECT_TRUE(fleet.is_healthy(vm));
  std::vector<int> lifecycle;
  for (const auto& e : seen) {
    if (std::get<1>(e) == vm && std::get<2>(e) == static_cast<int>(VmEvent::Type::kLifecycle)) {
      lifecycle.push_back(std::get<3>(e));
    }
  }
  EXPECT_THAT(lifecycle,
              ::testing::ElementsAre(medic::v1::LIFECYCLE_STOPPED, medic::v1::LIFECYCLE_STARTED));
  EXPECT_EQ(fleet.verbs_executed(vm, VERB_STOP), 1u);
  EXPECT_EQ(fleet.verbs_executed(vm, VERB_START), 1u);
  EXPECT_EQ(fleet.verbs_refused(vm, VERB_STOP), 1u);
  EXPECT_EQ(fleet.total_executed(VERB_START), 1u);
}

TEST(SimFleet, ARebootOfAHealthyGuestShutsDownAndBootsAgain) {
  VirtualClock clock;
  SimFleet fleet(clock, small());
  std::string vm = fleet.vm_ids()[0];
  int pid = fleet.true_info(vm)->pid;
  ASSERT_TRUE(execute_and_wait(fleet.host(0), clock, VERB_REBOOT, vm, 1s).ok());
  EXPECT_EQ(fleet.true_info(vm)->state, medic::v1::VM_STATE_SHUTTING_DOWN);
  clock.advance(fleet.options().shutdown_time);
  EXPECT_EQ(fleet.true_info(vm)->state, medic::v1::VM_STATE_BOOTING);
  EXPECT_NE(fleet.true_info(vm)->pid, pid);
  clock.advance(fleet.options().boot_time);
  EXPECT_TRUE(fleet.is_healthy(vm));
}

TEST(SimFleet, DegenerateOptionsAreHarmless) {
  VirtualClock clock;
  SimOptions o;
  o.hosts = 0;
  o.faults_per_hour = 3600;
  SimFleet empty(clock, o);
  EXPECT_EQ(empty.host_count(), 0u);
  o.hosts = 1;
  o.vms_per_host = 1;
  o.heartbeat_interval = Duration::zero();  // taken as 1s rather than ticking forever
  o.faults_per_hour = 0;
  SimFleet one(clock, o);
  size_t beats = 0;
  one.host(0).subscribe([&](const VmEvent&) { ++beats; });
  clock.advance(10s);
  EXPECT_EQ(beats, 10u);
  EXPECT_TRUE(empty.injections().empty());
}

// ----------------------------------------------------------- the injector

TEST(SimInjector, IsOffByDefault) {
  VirtualClock clock;
  SimFleet fleet(clock, small());
  clock.advance(1h);
  EXPECT_TRUE(fleet.injections().empty());
  EXPECT_EQ(fleet.injector_stats().attempted, 0u);
}

TEST(SimInjector, FiresAtRoughlyTheConfiguredRate) {
  VirtualClock clock;
  SimOptions o;
  o.hosts = 10;
  o.vms_per_host = 10;
  o.seed = 3;
  o.faults_per_hour = 600;
  o.fault_weights = {{FaultKind::kHang, 1}, {FaultKind::kSoftHang, 1}};
  SimFleet fleet(clock, o);
  clock.advance(2h);
  // Expect 1200; a Poisson count has a standard deviation of ~35.
  uint64_t n = fleet.injector_stats().attempted;
  EXPECT_GT(n, 1000u);
  EXPECT_LT(n, 1400u);
  EXPECT_EQ(fleet.injector_stats().injected + fleet.injector_stats().skipped, n);
  EXPECT_EQ(fleet.injections().size(), fleet.injector_stats().injected);
  for (const auto& f : fleet.injections()) {
    EXPECT_TRUE(f.scheduled);
    EXPECT_THAT(f.kind, ::testing::AnyOf(FaultKind::kHang, FaultKind::kSoftHang));
  }
}

TEST(SimInjector, PicksOnlyKindsWithWeight) {
  VirtualClock clock;
  SimOptions o = small();
  o.faults_per_hour = 120;
  o.fault_weights = {{FaultKind::kPanic, 1}};
  SimFleet fleet(clock, o);
  std::vector<InjectedFault> seen;
  fleet.on_fault([&](const InjectedFault& f) { seen.push_back(f); });
  clock.advance(30min);
  ASSERT_FALSE(seen.empty());
  for (const auto& f : seen) {
    EXPECT_EQ(f.kind, FaultKind::kPanic);
    EXPECT_FALSE(f.vm.empty());
    EXPECT_EQ(fleet.host_of(f.vm), f.host);
  }
}

TEST(SimInjector, RefusedPicksAreCountedAsSkipped) {
  VirtualClock clock;
  SimOptions o = small();
  o.vms_per_host = 1;
  o.hosts = 1;
  o.faults_per_hour = 3600;
  o.fault_weights = {{FaultKind::kCrash, 1}};
  SimFleet fleet(clock, o);
  clock.advance(1h);
  // The one VM crashes once and stays down: later crash picks cannot apply.
  EXPECT_EQ(fleet.injector_stats().injected, 1u);
  EXPECT_GT(fleet.injector_stats().skipped, 100u);
}

TEST(SimInjector, ScheduledHostFaultsEndByThemselves) {
  VirtualClock clock;
  SimOptions o = small();
  o.hosts = 1;
  o.faults_per_hour = 6;
  o.fault_weights = {{FaultKind::kPartition, 1}};
  o.partition_duration = 1min;
  SimFleet fleet(clock, o);
  for (int i = 0; i < 100000 && fleet.injections().empty(); ++i) clock.advance(1s);
  ASSERT_FALSE(fleet.injections().empty());
  EXPECT_TRUE(fleet.host(0).partitioned());
  clock.advance(1min);
  // A new partition may have started in that minute only if one was drawn.
  if (fleet.injections().size() == 1) {
    EXPECT_FALSE(fleet.host(0).partitioned());
  }
}

TEST(SimInjector, DestroyingTheFleetCancelsItsTimers) {
  VirtualClock clock;
  size_t before = clock.pending_timers();
  {
    SimOptions o = small();
    o.faults_per_hour = 100;
    SimFleet fleet(clock, o);
    EXPECT_GT(clock.pending_timers(), before);
  }
  EXPECT_EQ(clock.pending_timers(), before);
  clock.advance(1h);  // nothing left to call into a dead fleet
}

}  // namespace
}  // namespace medic::vmm::sim

namespace medic::vmm::sim {
namespace {

TEST(SimFleetNames, HostNamesReplaceTheNumberedDefault) {
  VirtualClock clock;
  SimOptions o;
  o.host_names = {"host-a", "host-b"};
  o.vms_per_host = 2;
  SimFleet fleet(clock, o);
  ASSERT_EQ(fleet.host_count(), 2u);
  EXPECT_EQ(fleet.host(0).host(), "host-a");
  EXPECT_EQ(fleet.host(1).host(), "host-b");
  auto vms = fleet.host(1).list();
  ASSERT_OK(vms);
  EXPECT_EQ(vms->at(0).name, "host-b-vm-001");
  EXPECT_EQ(fleet.find_host("host-a"), &fleet.host(0));
}

}  // namespace
}  // namespace medic::vmm::sim
