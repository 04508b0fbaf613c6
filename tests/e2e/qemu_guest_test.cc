// End-to-end: the qmp backend against a real qemu-system-x86_64 running a
// tiny Linux guest (Debian kernel + busybox initramfs built at test time by
// tests/guest/build-guest, cached by its inputs). The guest writes "hb <n>"
// every second on its second serial port; QEMU exposes it on a unix socket.
// Its virtio-serial port org.qemu.guest_agent.0 is on another unix socket;
// with medic.qga=1 on the kernel command line the guest runs the real qemu-ga
// there (when the host had qemu-ga for build-guest to pack).
//
// Accelerator: tcg unless MEDIC_E2E_ACCEL says otherwise (auto, kvm), so the
// figures are comparable on machines without /dev/kvm.
//
// Each scenario prints "E2E_TIMING <name> <seconds>" lines, which
// bench/qemu_e2e.sh collects into docs/PERFORMANCE.md figures.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/subprocess.h"
#include "tests/testing/testing.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::vmm::qmp {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kUuid = "5d2c8c5e-3a52-4c7e-9f55-0d6a1c1e0001";
// Generous bounds: TCG on two shared cores boots in ~5-7 s, slower under load.
constexpr auto kBootLimit = seconds(90);
constexpr auto kEventLimit = seconds(20);
constexpr auto kVerbTimeout = std::chrono::duration_cast<Duration>(seconds(30));

struct GuestImage {
  std::string kernel, initrd;
  bool agent = false;  // the initramfs holds qemu-ga
  std::string skip;    // why the e2e tests cannot run here
  std::string error;   // the builder failed for another reason
};

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    fs::path cand = fs::path(p.substr(start, end - start)) / name;
    if (::access(cand.c_str(), X_OK) == 0) return cand.string();
    start = end + 1;
  }
  return "";
}

// Built once per test binary; cached on disk across runs.
const GuestImage& guest_image() {
  static const GuestImage image = [] {
    GuestImage g;
    if (find_in_path("qemu-system-x86_64").empty()) {
      g.skip = "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)";
      return g;
    }
    std::string script = testing::source_dir() + "/tests/guest/build-guest";
    const char* cache = std::getenv("MEDIC_GUEST_CACHE");
    std::string out =
        fs::absolute(cache && *cache ? fs::path(cache) : fs::current_path() / "guest-cache");
    auto r = testing::run_command({"bash", script, out}, seconds(120));
    if (r.exit_code == 77) {
      g.skip = r.err;
      return g;
    }
    if (r.exit_code != 0) {
      g.error = "build-guest failed (" + std::to_string(r.exit_code) + "): " + r.err;
      return g;
    }
    size_t k = r.out.find("kernel="), i = r.out.find("initrd=");
    if (k == std::string::npos || i == std::string::npos) {
      g.error = "build-guest printed no kernel/initrd: " + r.out;
      return g;
    }
    g.kernel = r.out.substr(k + 7, r.out.find('\n', k) - k - 7);
    g.initrd = r.out.substr(i + 7, r.out.find('\n', i) - i - 7);
    g.agent = r.out.find("agent=yes") != std::string::npos;
    return g;
  }();
  return image;
}

void report_timing(const std::string& name, SteadyClock::duration d) {
  double s = std::chrono::duration<double>(d).count();
  std::printf("E2E_TIMING %s %.2f\n", name.c_str(), s);
  std::fflush(stdout);
  ::testing::Test::RecordProperty(name, std::to_string(s));
}

class QemuGuest : public ::testing::Test {
 protected:
  void SetUp() override {
    const GuestImage& g = guest_image();
    if (!g.skip.empty()) FAIL() << "QEMU end-to-end tests cannot run (scripts/bootstrap installs QEMU): " << g.skip;
    ASSERT_TRUE(g.error.empty()) << g.error;
    const char* accel = std::getenv("MEDIC_E2E_ACCEL");
    // The spec goes through the YAML reader, like an operator's file would.
    std::string yaml = std::string("vms:\n") +
                       "  - name: e2e\n"
                       "    uuid: " +
                       kUuid +
                       "\n"
                       "    memory: 256M\n"
                       "    accel: " +
                       (accel && *accel ? accel : "tcg") +
                       "\n"
                       "    kernel: " +
                       g.kernel +
                       "\n"
                       "    initrd: " +
                       g.initrd +
                       "\n"
                       "    append: console=ttyS0 panic=0 unknown_nmi_panic=1 quiet" +
                       extra_append() +
                       "\n"
                       "    qmp_socket: qmp.sock\n"
                       "    heartbeat_socket: hb.sock\n"
                       "    guest_agent_socket: qga.sock\n"
                       "    console_log: console.log\n"
                       "    qemu_log: qemu.log\n"
                       "    devices: [pvpanic]\n";
    auto specs = parse_vm_specs(yaml, "e2e.yaml", dir_.path());
    ASSERT_OK(specs);
    hv_ = std::make_unique<QmpHypervisor>("e2e-host", *specs, clock_);
    hv_->subscribe([this](const VmEvent& e) { events_.push_back(e); });
  }

  void TearDown() override {
    if (HasFailure()) {
      std::string console =
          testing::run_command({"tail", "-c", "3000", dir_.file("console.log")}).out;
      std::string qemu = testing::run_command({"tail", "-c", "2000", dir_.file("qemu.log")}).out;
      std::printf("--- guest console (tail) ---\n%s\n--- qemu log ---\n%s\n", console.c_str(),
                  qemu.c_str());
    }
    hv_.reset();  // kills QEMU
  }

  // Kernel command line words for the guest's init.
  virtual std::string extra_append() const { return ""; }

  // One guest-agent ping, answered through the backend's fds()/poll() and
  // the clock's timers.
  GuestPingResult ping_agent(Duration timeout) {
    std::optional<GuestPingResult> result;
    hv_->ping_guest_agent(kUuid, timeout, [&](const GuestPingResult& r) { result = r; });
    pump_until(
        [&] {
          clock_.run_due();
          return result.has_value();
        },
        timeout + seconds(5));
    EXPECT_TRUE(result.has_value()) << "the ping never ended";
    return result.value_or(GuestPingResult{GuestPingFailure::kNone, "never ended", {}});
  }

  // Waits on the hypervisor's descriptors and polls it until `cond` holds.
  bool pump_until(const std::function<bool()>& cond, SteadyClock::duration limit) {
    const auto deadline = SteadyClock::now() + limit;
    while (true) {
      hv_->poll();
      if (cond()) return true;
      auto now = SteadyClock::now();
      if (now >= deadline) return false;
      std::vector<pollfd> p;
      for (int fd : hv_->fds()) p.push_back({fd, POLLIN, 0});
      auto left = std::chrono::duration_cast<milliseconds>(deadline - now).count();
      // Short slices also catch what has no descriptor (a QMP socket that is
      // not connected yet).
      ::poll(p.data(), p.size(), static_cast<int>(std::min<int64_t>(left, 100)));
    }
  }

  size_t heartbeats_since(size_t from) const {
    size_t n = 0;
    for (size_t i = from; i < events_.size(); ++i) {
      if (events_[i].type == VmEvent::Type::kHeartbeat) ++n;
    }
    return n;
  }
  std::optional<uint64_t> last_counter_since(size_t from) const {
    std::optional<uint64_t> c;
    for (size_t i = from; i < events_.size(); ++i) {
      if (events_[i].type == VmEvent::Type::kHeartbeat) c = events_[i].counter;
    }
    return c;
  }
  bool lifecycle_since(size_t from, Lifecycle what) const {
    for (size_t i = from; i < events_.size(); ++i) {
      if (events_[i].type == VmEvent::Type::kLifecycle && events_[i].what == what) return true;
    }
    return false;
  }
  VmState state() {
    auto info = hv_->get(kUuid);
    EXPECT_OK(info);
    return info.ok() ? info->state : medic::v1::VM_STATE_UNSPECIFIED;
  }

  // Starts the guest and waits for its first heartbeat; returns the time.
  SteadyClock::duration boot() {
    auto t0 = SteadyClock::now();
    Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_START, kUuid, kVerbTimeout);
    EXPECT_OK(s) << s;
    if (!s.ok()) return SteadyClock::now() - t0;
    size_t mark = events_.size();
    EXPECT_TRUE(pump_until([&] { return heartbeats_since(mark) >= 1; }, kBootLimit))
        << "no heartbeat after start";
    return SteadyClock::now() - t0;
  }

  testing::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<QmpHypervisor> hv_;
  std::vector<VmEvent> events_;
};

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
}  // namespace medic::vmm::qmp
