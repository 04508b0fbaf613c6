// End-to-end: the lifecycle a host agent owns on a real qemu-system-x86_64
// (see tests/e2e/qemu_fixture.h for the guest): the agent starts the guests
// whose desired state is running, a frozen QEMU (SIGSTOP) is reported
// unresponsive and healed by restart, a guest's own power-off is left alone
// (or restarted when its spec says so), QEMU's own watchdog reset is
// reported as such, and a stopped heartbeat writer is not hidden by a guest
// agent that still answers.
#include <signal.h>

#include "collectors/collector.h"
#include "collectors/qmp_guest_pinger.h"
#include "fabric/envelope.h"
#include "fabric/identity.h"
#include "fabric/transport.h"
#include "node/agent_node.h"
#include "tests/e2e/qemu_fixture.h"

namespace medic::vmm::qmp::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kOffUuid = "5d2c8c5e-3a52-4c7e-9f55-0d6a1c1e0002";

// Two guests: the main one (desired running, the default) and "e2e-off"
// (desired: stopped).
class QemuDesiredState : public QemuGuest {
 protected:
  std::string extra_vms() const override {
    return vm_yaml("e2e-off", kOffUuid, "off") + "    desired: stopped\n";
  }
};

TEST_F(QemuDesiredState, TheAgentStartsTheGuestsWhoseDesiredStateIsRunningAndOnlyThose) {
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  // The agent's own wiring: AgentNode::create starts the desired guests
  // (no collector or actuator section needed for that).
  fabric::Identity id = fabric::Identity::generate();
  fabric::TrustStore trust;
  auto ctx = fabric::Context::create(trust);
  ASSERT_OK(ctx);
  const auto t0 = SteadyClock::now();
  auto agent = node::AgentNode::create(node::AgentConfig{}, {**ctx, id, trust, clock_}, *hv_);
  ASSERT_OK(agent);
  hv_->subscribe([this](const VmEvent& e) { events_.push_back(e); });  // replaces the node's
  ASSERT_TRUE(pump_until(
      [&] {
        clock_.run_due();
        return heartbeats_since(0) >= 1;
      },
      kBootLimit))
      << "the desired guest never beat";
  report_timing("agent_start_to_first_heartbeat", SteadyClock::now() - t0);
  auto off = hv_->get(kOffUuid);
  ASSERT_OK(off);
  EXPECT_EQ(off->state, medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(off->pid, 0) << "a guest whose desired state is stopped was started";
  EXPECT_GT(hv_->get(kUuid)->pid, 0);
  EXPECT_EQ(hv_->stats().launches, 1u);
  // Nothing more to start: the running one is never started twice.
  EXPECT_EQ(hv_->start_desired(kVerbTimeout), 0u);
  // The stopped one still starts when asked.
  ASSERT_OK(execute_and_wait(*hv_, clock_, medic::v1::VERB_START, kOffUuid, kVerbTimeout));
  EXPECT_GT(hv_->get(kOffUuid)->pid, 0);
}

TEST_F(QemuGuest, AFrozenQemuIsReportedUnresponsiveAndRestartHealsIt) {
  boot();
  ASSERT_FALSE(HasFailure());
  const pid_t pid = hv_->get(kUuid)->pid;
  ASSERT_GT(pid, 0);
  size_t mark = events_.size();
  const auto t0 = SteadyClock::now();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  // The bound: 3 unanswered status intervals (1 s each), plus one interval.
  ASSERT_TRUE(pump_until(
      [&] {
        clock_.run_due();
        return lifecycle_since(mark, medic::v1::LIFECYCLE_UNRESPONSIVE);
      },
      seconds(10)))
      << "the frozen QEMU was not reported unresponsive";
  const auto detected = SteadyClock::now() - t0;
  report_timing("sigstop_to_unresponsive_event", detected);
  EXPECT_LE(detected, seconds(5)) << "beyond the documented bound (3 intervals + 1)";
  EXPECT_EQ(state(), medic::v1::VM_STATE_UNRESPONSIVE);
  // What the agent's /metrics exports of it (docs/operations.md).
  CounterRegistry registry;
  hv_->register_counters(registry);
  EXPECT_EQ(registry.value("qmp_unresponsive_total"), 1u);
  EXPECT_GT(registry.value("qmp_status_queries_total"), registry.value("qmp_status_replies_total"));

  // The shipped rule's ladder: reset fails at once, restart heals.
  const auto t1 = SteadyClock::now();
  Status reset = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kVerbTimeout);
  EXPECT_EQ(reset.code(), Code::kUnavailable) << reset;
  EXPECT_LT(SteadyClock::now() - t1, seconds(1)) << "the reset waited for the frozen QMP";
  mark = events_.size();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESTART, kUuid, kVerbTimeout);
  ASSERT_OK(s) << s;
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1; }, kBootLimit))
      << "no heartbeat after the restart";
  report_timing("unresponsive_restart_to_first_heartbeat", SteadyClock::now() - t1);
  report_timing("sigstop_to_first_heartbeat", SteadyClock::now() - t0);
  EXPECT_NE(hv_->get(kUuid)->pid, pid);
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
  EXPECT_FALSE(lifecycle_since(mark, medic::v1::LIFECYCLE_CRASHED));
  // The frozen boot's console log was kept (console.log.1), not truncated
  // by the relaunch; the new boot writes a fresh console.log.
  const std::string kept = testing::read_file(dir_.file("console.log.1"));
  EXPECT_NE(kept.find("init: up"), std::string::npos) << "console.log.1: " << kept;
  EXPECT_TRUE(pump_until(
      [&] { return testing::read_file(dir_.file("console.log")).find("init: up") != std::string::npos; },
      kEventLimit))
      << "the new boot's console log";
}

TEST_F(QemuGuest, AGuestThatPowersItselfOffIsAnIntendedStopAndLeftAlone) {
  boot();
  ASSERT_FALSE(HasFailure());
  size_t mark = events_.size();
  ASSERT_OK(hv_->send_to_guest(kUuid, "poweroff"));
  ASSERT_TRUE(pump_until([&] { return hv_->get(kUuid)->pid == 0; }, kEventLimit))
      << "QEMU did not exit after the guest's power-off";
  hv_->poll();
  EXPECT_TRUE(lifecycle_since(mark, medic::v1::LIFECYCLE_SHUTDOWN));
  EXPECT_TRUE(lifecycle_since(mark, medic::v1::LIFECYCLE_STOPPED));
  EXPECT_FALSE(lifecycle_since(mark, medic::v1::LIFECYCLE_CRASHED));
  EXPECT_FALSE(lifecycle_since(mark, medic::v1::LIFECYCLE_STARTED));
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(hv_->stats().crashes, 0u);
  // Neither a rule's restart nor the desired state undoes it.
  Status restart = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESTART, kUuid, kVerbTimeout);
  EXPECT_EQ(restart.code(), Code::kFailedPrecondition) << restart;
  EXPECT_NE(restart.message().find("stopped on purpose"), std::string::npos) << restart;
  EXPECT_EQ(hv_->get(kUuid)->pid, 0);
}

class QemuRestartOnPoweroff : public QemuGuest {
 protected:
  std::string extra_spec() const override { return "    on_guest_poweroff: restart\n"; }
};

TEST_F(QemuRestartOnPoweroff, AGuestPowerOffStartsQemuAgainWhenTheSpecSaysRestart) {
  boot();
  ASSERT_FALSE(HasFailure());
  const pid_t pid = hv_->get(kUuid)->pid;
  size_t mark = events_.size();
  const auto t0 = SteadyClock::now();
  ASSERT_OK(hv_->send_to_guest(kUuid, "poweroff"));
  ASSERT_TRUE(pump_until([&] { return lifecycle_since(mark, medic::v1::LIFECYCLE_STARTED); },
                         kEventLimit));
  ASSERT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1 && *last_counter_since(mark) <= 3; },
                         kBootLimit))
      << "no heartbeat of a new boot";
  report_timing("guest_poweroff_to_first_heartbeat_on_restart", SteadyClock::now() - t0);
  EXPECT_NE(hv_->get(kUuid)->pid, pid);
  EXPECT_FALSE(lifecycle_since(mark, medic::v1::LIFECYCLE_CRASHED));
}

TEST_F(QemuGuest, AWatchdogThatFiresIsResetByQemuItselfAndTheGuestBeatsAgain) {
  boot();
  ASSERT_FALSE(HasFailure());
  const pid_t pid = hv_->get(kUuid)->pid;
  size_t mark = events_.size();
  const auto t0 = SteadyClock::now();
  ASSERT_OK(hv_->send_to_guest(kUuid, "watchdog"));
  ASSERT_TRUE(pump_until([&] { return lifecycle_since(mark, medic::v1::LIFECYCLE_WATCHDOG); },
                         seconds(60)))
      << "the abandoned watchdog did not fire";
  report_timing("watchdog_armed_to_watchdog_event", SteadyClock::now() - t0);
  std::string detail;
  for (size_t i = mark; i < events_.size(); ++i) {
    if (events_[i].what == medic::v1::LIFECYCLE_WATCHDOG) detail = events_[i].detail;
  }
  // What the shipped guest-watchdog rule reads to leave it to QEMU.
  EXPECT_EQ(detail.rfind("action=reset:", 0), 0u) << detail;
  const size_t fired = events_.size();
  // No verb: QEMU's own reset brings the guest back, in the same process.
  // On a loaded 2-core machine this boot took from 10 s to over 90 s (TCG).
  ASSERT_TRUE(pump_until(
      [&] { return heartbeats_since(fired) >= 1 && *last_counter_since(fired) <= 3; },
      2 * kBootLimit))
      << "the guest did not come back after QEMU's watchdog reset; events since: "
      << events_since(mark);
  report_timing("watchdog_armed_to_first_heartbeat", SteadyClock::now() - t0);
  EXPECT_TRUE(lifecycle_since(mark, medic::v1::LIFECYCLE_RESET));
  EXPECT_EQ(hv_->get(kUuid)->pid, pid);
  EXPECT_EQ(hv_->stats().launches, 1u);
}

// The guest agent keeps answering while the heartbeat writer is stopped: the
// collector reports agent answers as GuestPing events and no heartbeats, so
// `absent: vm.heartbeat` still fires.
class QemuWriterStopped : public QemuGuest {
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

// Counts GuestPing and Heartbeat events of the VM in bulk frames.
struct Published {
  int pings = 0;
  int beats = 0;
};

class RecordingPublisher : public collectors::Publisher {
 public:
  void publish(collectors::Lane lane, const std::vector<std::string>& frames) override {
    if (lane == collectors::Lane::kBulk) bulk.insert(bulk.end(), frames.begin(), frames.end());
  }
  collectors::PublisherCounters counters() const override { return {}; }
  std::vector<std::string> bulk;
};

TEST_F(QemuWriterStopped, AStoppedHeartbeatWriterIsNotHiddenByAnAnsweringGuestAgent) {
  boot();
  ASSERT_FALSE(HasFailure());
  fabric::Identity id = fabric::Identity::generate();
  fabric::TrustStore trust;
  fabric::TrustedNode me;
  me.name = "e2e-host";
  me.key = id.public_key();
  me.curve_key = id.curve_public();
  me.roles = static_cast<uint8_t>(fabric::Role::kCollector);
  me.hosts = {"e2e-host"};
  ASSERT_OK(trust.add(me));
  RecordingPublisher pub;
  collectors::QmpGuestPinger pinger(*hv_);
  collectors::CollectorDeps deps{hv_.get(), &clock_, &id, &pub, nullptr, &pinger};
  collectors::CollectorOptions opts;
  opts.host = "e2e-host";
  opts.guest_ping.enabled = true;
  opts.guest_ping.interval = seconds(1);
  opts.guest_ping.timeout = seconds(1);
  auto c = collectors::Collector::create(opts, deps);
  ASSERT_OK(c);
  collectors::Collector& collector = **c;
  collector.start();
  // Each frame is opened once (the opener's replay guard refuses a second
  // look); what it held is kept per frame.
  fabric::Opener opener(trust, clock_);
  opener.expect_kinds({medic::v1::KIND_EVENT_BATCH});
  std::vector<Published> per_frame;
  auto count = [&](size_t from) {
    for (size_t i = per_frame.size(); i < pub.bulk.size(); ++i) {
      Published& p = per_frame.emplace_back();
      fabric::Opened opened;
      std::string why;
      fabric::OpenError e = opener.open(pub.bulk[i], &opened, &why);
      EXPECT_EQ(e, fabric::OpenError::kOk) << why;
      medic::v1::EventBatch b;
      if (e != fabric::OpenError::kOk) continue;
      EXPECT_OK(fabric::decode_event_batch(opened, &b));
      for (const auto& ev : b.events()) {
        p.pings += ev.has_guest_ping();
        p.beats += ev.has_heartbeat();
      }
    }
    Published sum;
    for (size_t i = from; i < per_frame.size(); ++i) {
      sum.pings += per_frame[i].pings;
      sum.beats += per_frame[i].beats;
    }
    return sum;
  };
  auto run_for = [&](SteadyClock::duration d, const std::function<bool()>& until) {
    const auto deadline = SteadyClock::now() + d;
    while (SteadyClock::now() < deadline) {
      collector.run_once(milliseconds(50));
      if (until && until()) return true;
    }
    return false;
  };
  // Positive control: both beat while the guest is well.
  ASSERT_TRUE(run_for(seconds(60), [&] {
    Published p = count(0);
    return p.pings >= 1 && p.beats >= 1;
  })) << "no agent answer and heartbeat while the guest was well";

  ASSERT_OK(hv_->send_to_guest(kUuid, "hang"));  // stops the writer, not qemu-ga
  run_for(seconds(2), nullptr);                  // the command takes effect
  const size_t from = pub.bulk.size();
  const Time last_beat = hv_->get(kUuid)->last_heartbeat;
  run_for(seconds(6), nullptr);
  Published after = count(from);
  EXPECT_GE(after.pings, 3) << "the guest agent stopped answering";
  EXPECT_EQ(after.beats, 0) << "agent answers were reported as heartbeats";
  EXPECT_EQ(hv_->get(kUuid)->last_heartbeat, last_beat);
}

}  // namespace
}  // namespace medic::vmm::qmp::e2e
