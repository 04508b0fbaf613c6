// End-to-end: the qmp backend against a real qemu-system-x86_64 (see
// tests/e2e/qemu_fixture.h for the guest): boot and heartbeats, panic, pause,
// hang, a killed QEMU, and the guest agent.
#include <signal.h>

#include "tests/e2e/qemu_fixture.h"

namespace medic::vmm::qmp::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_F(QemuGuest, BootsAndSendsHeartbeatsAndRefusesASecondStart) {
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  auto boot_time = boot();
  ASSERT_FALSE(HasFailure());
  report_timing("boot_to_first_heartbeat", boot_time);
  EXPECT_TRUE(lifecycle_since(0, medic::v1::LIFECYCLE_STARTED));
  size_t mark = events_.size();
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 2; }, kEventLimit));
  auto info = hv_->get(kUuid);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, medic::v1::VM_STATE_RUNNING);
  EXPECT_GT(info->pid, 0);
  EXPECT_GT(to_ns(info->last_heartbeat), 0);
  // Counters increase within one boot.
  uint64_t prev = 0;
  bool first = true;
  for (const auto& e : events_) {
    if (e.type != VmEvent::Type::kHeartbeat) continue;
    if (!first) {
      EXPECT_GT(e.counter, prev);
    }
    prev = e.counter;
    first = false;
  }
  Status again = execute_and_wait(*hv_, clock_, medic::v1::VERB_START, kUuid, kVerbTimeout);
  EXPECT_EQ(again.code(), Code::kFailedPrecondition) << again;
  EXPECT_EQ(hv_->get(kUuid)->pid, info->pid);
  EXPECT_EQ(hv_->stats().bad_heartbeat_lines, 0u);
}

TEST_F(QemuGuest, PanicIsReportedAndHealedByReset) {
  boot();
  ASSERT_FALSE(HasFailure());
  size_t mark = events_.size();
  auto t0 = SteadyClock::now();
  auto r = hv_->qmp_command(kUuid, "inject-nmi", seconds(10));
  ASSERT_OK(r);
  ASSERT_TRUE(
      pump_until([&] { return lifecycle_since(mark, medic::v1::LIFECYCLE_PANICKED); }, kEventLimit))
      << "no GUEST_PANICKED after inject-nmi";
  report_timing("panic_nmi_to_guest_panicked_event", SteadyClock::now() - t0);
  EXPECT_EQ(state(), medic::v1::VM_STATE_PANICKED);

  mark = events_.size();
  auto t1 = SteadyClock::now();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kVerbTimeout);
  ASSERT_OK(s) << s;
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1; }, kBootLimit))
      << "no heartbeat after reset of the panicked guest";
  report_timing("panic_reset_to_first_heartbeat", SteadyClock::now() - t1);
  EXPECT_TRUE(lifecycle_since(mark, medic::v1::LIFECYCLE_RESET));
  EXPECT_LE(*last_counter_since(mark), 3u) << "the guest did not reboot";
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

TEST_F(QemuGuest, PausedGuestIsSilentUntilContOrReset) {
  boot();
  ASSERT_FALSE(HasFailure());
  size_t mark = events_.size();
  ASSERT_OK(hv_->qmp_command(kUuid, "stop", seconds(10)));
  ASSERT_TRUE(
      pump_until([&] { return lifecycle_since(mark, medic::v1::LIFECYCLE_STOPPED); }, kEventLimit));
  EXPECT_EQ(state(), medic::v1::VM_STATE_PAUSED);
  // The guest writes a heartbeat every second: over 3 s a running one shows
  // at least two. Bytes already in flight when it paused may still arrive
  // at the start of the window, so count from a moment after the pause.
  pump_until([] { return false; }, milliseconds(500));
  size_t quiet_from = events_.size();
  pump_until([] { return false; }, seconds(3));
  EXPECT_EQ(heartbeats_since(quiet_from), 0u) << "a paused guest sent heartbeats";
  auto last = last_counter_since(0);
  ASSERT_TRUE(last.has_value());

  // cont resumes the same boot: the counter carries on.
  mark = events_.size();
  auto t0 = SteadyClock::now();
  ASSERT_OK(hv_->qmp_command(kUuid, "cont", seconds(10)));
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1; }, kEventLimit));
  report_timing("pause_cont_to_first_heartbeat", SteadyClock::now() - t0);
  EXPECT_GT(*last_counter_since(mark), *last);
  EXPECT_TRUE(lifecycle_since(mark, medic::v1::LIFECYCLE_RESUMED));

  // Paused again, the reset verb reboots the guest and resumes it.
  mark = events_.size();
  ASSERT_OK(hv_->qmp_command(kUuid, "stop", seconds(10)));
  ASSERT_TRUE(
      pump_until([&] { return lifecycle_since(mark, medic::v1::LIFECYCLE_STOPPED); }, kEventLimit));
  mark = events_.size();
  auto t1 = SteadyClock::now();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kVerbTimeout);
  ASSERT_OK(s) << s;
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1; }, kBootLimit));
  report_timing("pause_reset_to_first_heartbeat", SteadyClock::now() - t1);
  EXPECT_LE(*last_counter_since(mark), 3u) << "the guest did not reboot";
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

TEST_F(QemuGuest, HungGuestIsSilentWhileQemuRunsAndResetHealsIt) {
  boot();
  ASSERT_FALSE(HasFailure());
  ASSERT_OK(hv_->send_to_guest(kUuid, "hang"));
  pump_until([] { return false; }, milliseconds(1500));  // the command takes effect
  size_t quiet_from = events_.size();
  pump_until([] { return false; }, seconds(3));
  EXPECT_EQ(heartbeats_since(quiet_from), 0u) << "the hung guest kept sending heartbeats";
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING) << "QEMU itself should look fine";

  size_t mark = events_.size();
  auto t0 = SteadyClock::now();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kVerbTimeout);
  ASSERT_OK(s) << s;
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1; }, kBootLimit));
  report_timing("hang_reset_to_first_heartbeat", SteadyClock::now() - t0);
}

TEST_F(QemuGuest, KilledQemuIsReportedCrashedAndRestartedByTheLauncher) {
  boot();
  ASSERT_FALSE(HasFailure());
  auto before = hv_->get(kUuid);
  ASSERT_TRUE(before.ok() && before->pid > 0);
  size_t mark = events_.size();
  auto t0 = SteadyClock::now();
  ASSERT_EQ(::kill(before->pid, SIGKILL), 0);
  ASSERT_TRUE(
      pump_until([&] { return lifecycle_since(mark, medic::v1::LIFECYCLE_CRASHED); }, kEventLimit))
      << "the killed QEMU was not reported as crashed";
  report_timing("kill_to_crashed_event", SteadyClock::now() - t0);
  EXPECT_EQ(state(), medic::v1::VM_STATE_CRASHED);
  EXPECT_EQ(hv_->stats().crashes, 1u);
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kVerbTimeout).code(),
            Code::kFailedPrecondition);

  mark = events_.size();
  auto t1 = SteadyClock::now();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESTART, kUuid, kVerbTimeout);
  ASSERT_OK(s) << s;
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1; }, kBootLimit));
  report_timing("restart_to_first_heartbeat", SteadyClock::now() - t1);
  auto after = hv_->get(kUuid);
  ASSERT_OK(after);
  EXPECT_EQ(after->state, medic::v1::VM_STATE_RUNNING);
  EXPECT_NE(after->pid, before->pid);

  // stop ends QEMU on purpose: no crash, and restart will not undo it.
  mark = events_.size();
  s = execute_and_wait(*hv_, clock_, medic::v1::VERB_STOP, kUuid, kVerbTimeout);
  ASSERT_OK(s) << s;
  pump_until([] { return false; }, milliseconds(300));
  EXPECT_FALSE(lifecycle_since(mark, medic::v1::LIFECYCLE_CRASHED));
  EXPECT_TRUE(lifecycle_since(mark, medic::v1::LIFECYCLE_STOPPED));
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(hv_->get(kUuid)->pid, 0);
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESTART, kUuid, kVerbTimeout).code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_STOP, kUuid, kVerbTimeout).code(),
            Code::kFailedPrecondition);
}

TEST_F(QemuGuest, GuestAgentPingTimesOutWithoutAnAgentInTheGuestWhileQmpSaysRunning) {
  boot();
  ASSERT_FALSE(HasFailure());
  // QEMU serves the port's socket and takes the request; nobody in the
  // guest reads it. The chardev is not an agent.
  GuestPingResult r = ping_agent(std::chrono::duration_cast<Duration>(seconds(3)));
  EXPECT_EQ(r.failure, GuestPingFailure::kTimeout)
      << guest_ping_failure_name(r.failure) << ": " << r.detail;
  EXPECT_EQ(hv_->guest_agent_stats().timeouts, 1u);
  auto status = hv_->qmp_command(kUuid, "query-status", seconds(10));
  ASSERT_OK(status);
  EXPECT_EQ(*json_string_member(*status, "status"), "running");
}

// The same guest, running the real qemu-ga inside.
class QemuGuestWithAgent : public QemuGuest {
 protected:
  void SetUp() override {
    const GuestImage& g = guest_image();
    if (g.skip.empty() && g.error.empty() && !g.agent) {
      FAIL() << "the test guest has no qemu-ga: install qemu-guest-agent on the host "
                      "(scripts/bootstrap) so build-guest can pack it";
    }
    QemuGuest::SetUp();
  }
  std::string extra_append() const override { return " medic.qga=1"; }
};

TEST_F(QemuGuestWithAgent, AnswersGuestPingsWhileRunningAndNotWhilePaused) {
  auto t0 = SteadyClock::now();
  boot();
  ASSERT_FALSE(HasFailure());
  const auto one = std::chrono::duration_cast<Duration>(seconds(2));
  // The agent starts right after the first heartbeat; give it a moment.
  GuestPingResult r;
  for (int i = 0; i < 10; ++i) {
    r = ping_agent(one);
    if (r.ok()) break;
  }
  ASSERT_OK(r) << guest_ping_failure_name(r.failure) << ": " << r.detail;
  report_timing("boot_to_first_guest_agent_answer", SteadyClock::now() - t0);

  // A paused guest cannot answer, though QEMU runs.
  ASSERT_OK(hv_->qmp_command(kUuid, "stop", seconds(10)));
  r = ping_agent(one);
  EXPECT_EQ(r.failure, GuestPingFailure::kTimeout) << r.detail;

  // Resumed, it answers again; the request of the timed-out ping may still
  // reach the agent and be answered first: guest-sync skips that reply.
  ASSERT_OK(hv_->qmp_command(kUuid, "cont", seconds(10)));
  for (int i = 0; i < 5; ++i) {
    r = ping_agent(one);
    if (r.ok()) break;
  }
  EXPECT_OK(r) << guest_ping_failure_name(r.failure) << ": " << r.detail;
  EXPECT_GE(hv_->guest_agent_stats().answered, 2u);
}

}  // namespace
}  // namespace medic::vmm::qmp::e2e
