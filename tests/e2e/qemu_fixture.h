// The fixture of the end-to-end tests of the qmp backend: a real
// qemu-system-x86_64 running a tiny Linux guest (Debian kernel + busybox
// initramfs built at test time by tests/guest/build-guest, cached by its
// inputs). The guest writes "hb <n>" every second on its second serial port;
// QEMU exposes it on a unix socket. Its virtio-serial port
// org.qemu.guest_agent.0 is on another unix socket; with medic.qga=1 on the
// kernel command line the guest runs the real qemu-ga there (when the host
// had qemu-ga for build-guest to pack). It has pvpanic and an i6300esb
// watchdog.
//
// Accelerator: tcg unless MEDIC_E2E_ACCEL says otherwise (auto, kvm), so the
// figures are comparable on machines without /dev/kvm.
//
// The tests fail, never skip, when something they need is missing:
// scripts/bootstrap installs it.
//
// Each scenario prints "E2E_TIMING <name> <seconds>" lines, which
// bench/qemu_e2e.sh collects into docs/PERFORMANCE.md figures.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/subprocess.h"
#include "tests/testing/testing.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::vmm::qmp::e2e {

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

inline std::string find_in_path(const std::string& name) {
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
inline const GuestImage& guest_image() {
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

// One VM of a spec file for the test guest, as an operator would write it.
// Its files are named after `prefix`, relative to the spec file: "" gives
// qmp.sock, hb.sock, qga.sock, console.log, qemu.log; "off" gives
// off-qmp.sock and so on. `append` is added to the kernel command line.
inline std::string guest_vm_yaml(const std::string& name, const std::string& uuid,
                                 const std::string& prefix, const std::string& append) {
  const GuestImage& g = guest_image();
  const char* accel = std::getenv("MEDIC_E2E_ACCEL");
  const std::string p = prefix.empty() ? "" : prefix + "-";
  return "  - name: " + name + "\n    uuid: " + uuid + "\n    memory: 256M\n    accel: " +
         (accel && *accel ? accel : "tcg") + "\n    kernel: " + g.kernel +
         "\n    initrd: " + g.initrd +
         "\n    append: console=ttyS0 panic=0 unknown_nmi_panic=1 quiet" + append +
         "\n    qmp_socket: " + p + "qmp.sock\n    heartbeat_socket: " + p +
         "hb.sock\n    guest_agent_socket: " + p + "qga.sock\n    console_log: " + p +
         "console.log\n    qemu_log: " + p + "qemu.log\n    devices: [pvpanic, i6300esb]\n";
}

inline void report_timing(const std::string& name, SteadyClock::duration d) {
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
    // The spec goes through the YAML reader, like an operator's file would.
    std::string yaml = "vms:\n" + vm_yaml("e2e", kUuid, "") + extra_vms();
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
  // More keys of the main VM's spec, each line "    key: value\n".
  virtual std::string extra_spec() const { return ""; }
  // More VMs in the spec file (built with vm_yaml).
  virtual std::string extra_vms() const { return ""; }

  // One VM of the spec file (see guest_vm_yaml); the main VM also gets
  // extra_spec().
  std::string vm_yaml(const std::string& name, const std::string& uuid,
                      const std::string& prefix) const {
    return guest_vm_yaml(name, uuid, prefix, extra_append()) +
           (prefix.empty() ? extra_spec() : "");
  }

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
  // The lifecycle events since `from` and the number of heartbeats, for
  // failure messages.
  std::string events_since(size_t from) const {
    std::string out;
    size_t beats = 0;
    for (size_t i = from; i < events_.size(); ++i) {
      if (events_[i].type == VmEvent::Type::kHeartbeat) {
        ++beats;
      } else {
        out += std::string(lifecycle_name(events_[i].what)) + " (" + events_[i].detail + "); ";
      }
    }
    return out + std::to_string(beats) + " heartbeats";
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

}  // namespace medic::vmm::qmp::e2e
