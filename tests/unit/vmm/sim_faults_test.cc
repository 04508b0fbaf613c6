// Each simulated fault, what a collector sees of it, and exactly which verbs
// heal it and which do not.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "vmm/sim/sim.h"
#include "tests/testing/testing.h"

namespace medic::vmm::sim {
namespace {

using namespace std::chrono_literals;
using medic::v1::VERB_REBOOT;
using medic::v1::VERB_RESET;
using medic::v1::VERB_RESTART;
using medic::v1::VERB_START;
using medic::v1::VERB_STOP;

class SimFaults : public ::testing::Test {
 protected:
  SimFaults() : fleet_(clock_, options()) {
    host_ = &fleet_.host(0);
    vm_ = fleet_.vm_ids()[0];
    other_ = fleet_.vm_ids()[1];
    host_->subscribe([this](const VmEvent& e) { events_.push_back(e); });
  }

  static SimOptions options() {
    SimOptions o;
    o.hosts = 2;
    o.vms_per_host = 2;
    o.boot_time = 20s;
    o.slow_boot_time = 5min;
    o.shutdown_time = 5s;
    o.flap_up = 60s;
    o.flap_down = 20s;
    return o;
  }

  // Heartbeats of `vm` delivered while the clock moves on by `d`.
  size_t heartbeats_over(const std::string& vm, Duration d) {
    size_t from = events_.size();
    clock_.advance(d);
    size_t n = 0;
    for (size_t i = from; i < events_.size(); ++i) {
      if (events_[i].vm == vm && events_[i].type == VmEvent::Type::kHeartbeat) ++n;
    }
    return n;
  }

  std::vector<Lifecycle> lifecycle_of(const std::string& vm) const {
    std::vector<Lifecycle> out;
    for (const auto& e : events_) {
      if (e.vm == vm && e.type == VmEvent::Type::kLifecycle) out.push_back(e.what);
    }
    return out;
  }

  Status run(medic::v1::Verb verb) { return execute_and_wait(*host_, clock_, verb, vm_, 10s); }
  VmState state() { return fleet_.true_info(vm_)->state; }
  int pid() { return fleet_.true_info(vm_)->pid; }
  // Lets a verb's boot finish, then reports whether the VM heartbeats again.
  bool heals_after_boot() {
    clock_.advance(options().shutdown_time + options().boot_time);
    return heartbeats_over(vm_, 10s) >= 9 && fleet_.is_healthy(vm_);
  }

  VirtualClock clock_;
  SimFleet fleet_;
  SimHost* host_ = nullptr;
  std::string vm_, other_;
  std::vector<VmEvent> events_;
};

// -------------------------------------------------------------------- hang

TEST_F(SimFaults, AHangStopsHeartbeatsButKeepsTheProcessAndStateRunning) {
  ASSERT_GT(heartbeats_over(vm_, 5s), 0u);
  int before = pid();
  ASSERT_OK(fleet_.inject(FaultKind::kHang, "host-01", vm_));
  EXPECT_EQ(heartbeats_over(vm_, 60s), 0u);
  EXPECT_GT(heartbeats_over(other_, 10s), 0u);  // only that VM
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(pid(), before);
  EXPECT_TRUE(lifecycle_of(vm_).empty());
  EXPECT_FALSE(fleet_.is_healthy(vm_));
  EXPECT_THAT(fleet_.active_faults(vm_), ::testing::ElementsAre(FaultKind::kHang));
}

TEST_F(SimFaults, AHangIsNotHealedByAcpiReboot) {
  ASSERT_OK(fleet_.inject(FaultKind::kHang, "host-01", vm_));
  EXPECT_OK(run(VERB_REBOOT));  // the button is pressed; nobody answers
  EXPECT_FALSE(heals_after_boot());
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(fleet_.verbs_executed(vm_, VERB_REBOOT), 1u);
}

TEST_F(SimFaults, AHangIsHealedByResetKeepingTheProcess) {
  ASSERT_OK(fleet_.inject(FaultKind::kHang, "host-01", vm_));
  int before = pid();
  ASSERT_OK(run(VERB_RESET));
  EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
  EXPECT_EQ(heartbeats_over(vm_, options().boot_time - 1s), 0u);
  EXPECT_TRUE(heals_after_boot());
  EXPECT_EQ(pid(), before);
  EXPECT_THAT(lifecycle_of(vm_), ::testing::ElementsAre(medic::v1::LIFECYCLE_RESET));
  EXPECT_EQ(fleet_.verbs_executed(vm_, VERB_RESET), 1u);
}

TEST_F(SimFaults, AHangIsHealedByRestartWithANewProcess) {
  ASSERT_OK(fleet_.inject(FaultKind::kHang, "host-01", vm_));
  int before = pid();
  ASSERT_OK(run(VERB_RESTART));
  EXPECT_TRUE(heals_after_boot());
  EXPECT_NE(pid(), before);
  EXPECT_THAT(lifecycle_of(vm_), ::testing::ElementsAre(medic::v1::LIFECYCLE_STARTED));
}

TEST_F(SimFaults, AHangIsNotHealedByStartBecauseTheProcessIsAlive) {
  ASSERT_OK(fleet_.inject(FaultKind::kHang, "host-01", vm_));
  EXPECT_EQ(run(VERB_START).code(), Code::kFailedPrecondition);
  EXPECT_FALSE(heals_after_boot());
}

TEST_F(SimFaults, AHangIsHealedByStopThenStart) {
  ASSERT_OK(fleet_.inject(FaultKind::kHang, "host-01", vm_));
  ASSERT_OK(run(VERB_STOP));
  ASSERT_OK(run(VERB_START));
  EXPECT_TRUE(heals_after_boot());
}

// --------------------------------------------------------------- soft hang

TEST_F(SimFaults, ASoftHangIsHealedByAcpiReboot) {
  ASSERT_OK(fleet_.inject(FaultKind::kSoftHang, "host-01", vm_));
  EXPECT_EQ(heartbeats_over(vm_, 30s), 0u);
  ASSERT_OK(run(VERB_REBOOT));
  EXPECT_TRUE(heals_after_boot());
  EXPECT_THAT(lifecycle_of(vm_),
              ::testing::ElementsAre(medic::v1::LIFECYCLE_SHUTDOWN, medic::v1::LIFECYCLE_STARTED));
}

// ------------------------------------------------------------------- panic

TEST_F(SimFaults, APanicEmitsPanickedAndStopsHeartbeats) {
  ASSERT_OK(fleet_.inject(FaultKind::kPanic, "host-01", vm_));
  EXPECT_THAT(lifecycle_of(vm_), ::testing::ElementsAre(medic::v1::LIFECYCLE_PANICKED));
  EXPECT_EQ(state(), medic::v1::VM_STATE_PANICKED);
  EXPECT_GT(pid(), 0);
  EXPECT_EQ(heartbeats_over(vm_, 30s), 0u);
  auto listed = host_->get(vm_);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->state, medic::v1::VM_STATE_PANICKED);
}

TEST_F(SimFaults, APanicIsNotHealedByReboot) {
  ASSERT_OK(fleet_.inject(FaultKind::kPanic, "host-01", vm_));
  EXPECT_OK(run(VERB_REBOOT));
  EXPECT_FALSE(heals_after_boot());
  EXPECT_EQ(state(), medic::v1::VM_STATE_PANICKED);
}

TEST_F(SimFaults, APanicIsNotHealedByStart) {
  ASSERT_OK(fleet_.inject(FaultKind::kPanic, "host-01", vm_));
  EXPECT_EQ(run(VERB_START).code(), Code::kFailedPrecondition);
  EXPECT_FALSE(heals_after_boot());
}

TEST_F(SimFaults, APanicIsHealedByReset) {
  ASSERT_OK(fleet_.inject(FaultKind::kPanic, "host-01", vm_));
  ASSERT_OK(run(VERB_RESET));
  EXPECT_TRUE(heals_after_boot());
}

TEST_F(SimFaults, APanicIsHealedByRestart) {
  ASSERT_OK(fleet_.inject(FaultKind::kPanic, "host-01", vm_));
  ASSERT_OK(run(VERB_RESTART));
  EXPECT_TRUE(heals_after_boot());
}

// ------------------------------------------------------------------- crash

TEST_F(SimFaults, ACrashEmitsCrashedAndTheProcessIsGone) {
  ASSERT_OK(fleet_.inject(FaultKind::kCrash, "host-01", vm_));
  EXPECT_THAT(lifecycle_of(vm_), ::testing::ElementsAre(medic::v1::LIFECYCLE_CRASHED));
  EXPECT_EQ(state(), medic::v1::VM_STATE_CRASHED);
  EXPECT_EQ(pid(), 0);
  EXPECT_EQ(heartbeats_over(vm_, 30s), 0u);
}

TEST_F(SimFaults, ACrashIsNotHealedByResetOrReboot) {
  ASSERT_OK(fleet_.inject(FaultKind::kCrash, "host-01", vm_));
  EXPECT_EQ(run(VERB_RESET).code(), Code::kFailedPrecondition);
  EXPECT_EQ(run(VERB_REBOOT).code(), Code::kFailedPrecondition);
  EXPECT_FALSE(heals_after_boot());
  EXPECT_EQ(fleet_.verbs_refused(vm_, VERB_RESET), 1u);
  EXPECT_EQ(fleet_.verbs_refused(vm_, VERB_REBOOT), 1u);
  EXPECT_EQ(fleet_.verbs_executed(vm_, VERB_RESET), 0u);
}

TEST_F(SimFaults, ACrashIsHealedByRestart) {
  ASSERT_OK(fleet_.inject(FaultKind::kCrash, "host-01", vm_));
  ASSERT_OK(run(VERB_RESTART));
  EXPECT_GT(pid(), 0);
  EXPECT_TRUE(heals_after_boot());
}

TEST_F(SimFaults, ACrashIsHealedByStart) {
  ASSERT_OK(fleet_.inject(FaultKind::kCrash, "host-01", vm_));
  ASSERT_OK(run(VERB_START));
  EXPECT_TRUE(heals_after_boot());
}

TEST_F(SimFaults, AVmWithoutAProcessCannotBeFaultedFurther) {
  ASSERT_OK(fleet_.inject(FaultKind::kCrash, "host-01", vm_));
  EXPECT_EQ(fleet_.inject(FaultKind::kCrash, "host-01", vm_).code(), Code::kFailedPrecondition);
  EXPECT_EQ(fleet_.inject(FaultKind::kPanic, "host-01", vm_).code(), Code::kFailedPrecondition);
  EXPECT_EQ(fleet_.inject(FaultKind::kHang, "host-01", vm_).code(), Code::kFailedPrecondition);
  EXPECT_EQ(fleet_.injections().size(), 1u);
}

// --------------------------------------------------------------- slow boot

TEST_F(SimFaults, ASlowBootTakesSlowBootTimeWhateverIsDone) {
  ASSERT_OK(fleet_.inject(FaultKind::kSlowBoot, "host-01", vm_));
  EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
  clock_.advance(options().boot_time + 10s);
  EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
  // An impatient reset starts the slow boot over.
  ASSERT_OK(run(VERB_RESET));
  clock_.advance(options().slow_boot_time - 1s);
  EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
  clock_.advance(1s);
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
  EXPECT_GT(heartbeats_over(vm_, 5s), 0u);
  EXPECT_TRUE(fleet_.active_faults(vm_).empty());
  // The next boot is normal again.
  ASSERT_OK(run(VERB_RESET));
  clock_.advance(options().boot_time);
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

TEST_F(SimFaults, ASlowBootOnAStoppedVmSlowsItsNextStart) {
  ASSERT_OK(run(VERB_STOP));
  ASSERT_OK(fleet_.inject(FaultKind::kSlowBoot, "host-01", vm_));
  ASSERT_OK(run(VERB_START));
  clock_.advance(options().boot_time);
  EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
  clock_.advance(options().slow_boot_time);
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

// ---------------------------------------------------------------- flapping

TEST_F(SimFaults, AFlappingVmFailsAndRecoversRepeatedly) {
  ASSERT_OK(fleet_.inject(FaultKind::kFlapping, "host-01", vm_));
  for (int cycle = 0; cycle < 3; ++cycle) {
    EXPECT_EQ(heartbeats_over(vm_, options().flap_down), 0u) << cycle;
    EXPECT_EQ(heartbeats_over(vm_, options().flap_up), 60u) << cycle;
  }
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

TEST_F(SimFaults, InjectingFlappingTwiceKeepsOneCycle) {
  ASSERT_OK(fleet_.inject(FaultKind::kFlapping, "host-01", vm_));
  clock_.advance(options().flap_down + 30s);
  ASSERT_OK(fleet_.inject(FaultKind::kFlapping, "host-01", vm_));
  // Still up until the first cycle's next failure, 60s after it came back.
  EXPECT_EQ(heartbeats_over(vm_, 30s), 30u);
  EXPECT_EQ(heartbeats_over(vm_, options().flap_down), 0u);
  EXPECT_EQ(heartbeats_over(vm_, options().flap_up), 60u);
}

TEST_F(SimFaults, ResetEndsAFlapButItFailsAgainLater) {
  ASSERT_OK(fleet_.inject(FaultKind::kFlapping, "host-01", vm_));
  clock_.advance(5s);
  ASSERT_OK(run(VERB_RESET));
  clock_.advance(options().boot_time);
  EXPECT_TRUE(fleet_.is_healthy(vm_));
  EXPECT_GT(heartbeats_over(vm_, options().flap_up - 1s), 50u);
  clock_.advance(1s);
  EXPECT_FALSE(fleet_.is_healthy(vm_));
  EXPECT_THAT(fleet_.active_faults(vm_), ::testing::Contains(FaultKind::kFlapping));
}

TEST_F(SimFaults, ClearingFaultsStopsFlapping) {
  ASSERT_OK(fleet_.inject(FaultKind::kFlapping, "host-01", vm_));
  ASSERT_OK(fleet_.clear_faults(vm_));
  EXPECT_EQ(heartbeats_over(vm_, 10min), 600u);
  EXPECT_EQ(fleet_.clear_faults("nope").code(), Code::kNotFound);
}

// --------------------------------------------------------------- partition

TEST_F(SimFaults, APartitionedHostIsSilentAndRefusesCommands) {
  ASSERT_OK(fleet_.inject(FaultKind::kPartition, "host-01"));
  EXPECT_TRUE(host_->partitioned());
  EXPECT_EQ(heartbeats_over(vm_, 30s), 0u);
  EXPECT_EQ(host_->list().status().code(), Code::kUnavailable);
  EXPECT_EQ(host_->get(vm_).status().code(), Code::kUnavailable);
  for (auto verb : {VERB_REBOOT, VERB_RESET, VERB_RESTART, VERB_STOP, VERB_START}) {
    EXPECT_EQ(run(verb).code(), Code::kUnavailable) << verb_name(verb);
    EXPECT_EQ(fleet_.verbs_refused(vm_, verb), 1u);
  }
  // Lifecycle events are lost too, but the guests keep running.
  ASSERT_OK(fleet_.inject(FaultKind::kPanic, "host-01", other_));
  EXPECT_TRUE(lifecycle_of(other_).empty());
  EXPECT_TRUE(fleet_.is_healthy(vm_));
  EXPECT_EQ(fleet_.true_info(vm_)->state, medic::v1::VM_STATE_RUNNING);
  EXPECT_GT(fleet_.host(1).list()->size(), 0u);  // other hosts unaffected
}

TEST_F(SimFaults, AHealedPartitionReportsAgainWithCountersThatKeptGoing) {
  ASSERT_OK(fleet_.inject(FaultKind::kPartition, "host-01"));
  clock_.advance(30s);
  ASSERT_OK(fleet_.heal_host("host-01"));
  EXPECT_FALSE(host_->partitioned());
  size_t from = events_.size();
  clock_.advance(1s);
  ASSERT_GT(events_.size(), from);
  EXPECT_GE(events_.back().counter, 30u);
  EXPECT_OK(host_->list());
}

// --------------------------------------------------------------- host loss

TEST_F(SimFaults, ALostHostLosesEveryVmAndRefusesCommands) {
  ASSERT_OK(fleet_.inject(FaultKind::kHostLoss, "host-01"));
  EXPECT_TRUE(host_->lost());
  EXPECT_EQ(heartbeats_over(vm_, 30s), 0u);
  EXPECT_FALSE(fleet_.is_healthy(vm_));
  EXPECT_FALSE(fleet_.is_healthy(other_));
  EXPECT_THAT(fleet_.active_faults(vm_), ::testing::ElementsAre(FaultKind::kHostLoss));
  EXPECT_EQ(host_->list().status().code(), Code::kUnavailable);
  EXPECT_EQ(run(VERB_RESTART).code(), Code::kUnavailable);
  EXPECT_EQ(run(VERB_START).code(), Code::kUnavailable);
  EXPECT_EQ(execute_and_wait(*host_, clock_, VERB_START, "unknown", 1s).code(), Code::kUnavailable);
  EXPECT_EQ(fleet_.inject(FaultKind::kHang, "host-01", vm_).code(), Code::kUnavailable);
  EXPECT_EQ(fleet_.inject(FaultKind::kPartition, "host-01").code(), Code::kFailedPrecondition);
}

TEST_F(SimFaults, ALostHostThatComesBackBootsItsVms) {
  ASSERT_OK(fleet_.inject(FaultKind::kHang, "host-01", vm_));
  ASSERT_OK(fleet_.inject(FaultKind::kHostLoss, "host-01"));
  clock_.advance(5min);
  ASSERT_OK(fleet_.heal_host("host-01"));
  EXPECT_THAT(lifecycle_of(vm_), ::testing::ElementsAre(medic::v1::LIFECYCLE_STARTED));
  EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
  clock_.advance(options().boot_time);
  EXPECT_TRUE(fleet_.is_healthy(vm_));  // the hang went with the old process
  EXPECT_TRUE(fleet_.is_healthy(other_));
  EXPECT_EQ(fleet_.heal_host("host-77").code(), Code::kNotFound);
}

TEST_F(SimFaults, InjectFaultByNameBreaksTheVmAndRefusesHostFaultsAndUnknownNames) {
  ASSERT_OK(host_->inject_fault("panic", vm_));
  EXPECT_FALSE(fleet_.is_healthy(vm_));
  EXPECT_TRUE(fleet_.is_healthy(other_));
  Status host_fault = host_->inject_fault("partition", other_);
  EXPECT_EQ(host_fault.code(), Code::kInvalidArgument);
  EXPECT_NE(host_fault.message().find("no VM fault \"partition\" (one of: hang, soft_hang, panic"),
            std::string::npos) << host_fault;
  EXPECT_FALSE(host_->partitioned());
  EXPECT_EQ(host_->inject_fault("meltdown", other_).code(), Code::kInvalidArgument);
  EXPECT_TRUE(fleet_.is_healthy(other_));
  EXPECT_EQ(host_->inject_fault("hang", "no-such-vm").code(), Code::kNotFound);
}

}  // namespace
}  // namespace medic::vmm::sim
