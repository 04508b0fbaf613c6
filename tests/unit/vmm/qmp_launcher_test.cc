#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tests/testing/testing.h"
#include "core/event_loop.h"
#include "vmm/qmp/launcher.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::vmm::qmp {
namespace {

using std::chrono::milliseconds;

// The first ```yaml block of docs/backends-qmp.md: the documented example.
std::string doc_example() {
  std::ifstream in(testing::source_dir() + "/docs/backends-qmp.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  size_t start = doc.find("```yaml\n");
  if (start == std::string::npos) return "";
  start += 8;
  return doc.substr(start, doc.find("```", start) - start);
}

bool has_pair(const std::vector<std::string>& argv, const std::string& a, const std::string& b) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == a && argv[i + 1] == b) return true;
  }
  return false;
}

const char* kMinimal =
    "vms:\n"
    "  - name: t1\n"
    "    uuid: 11111111-2222-3333-4444-555555555555\n"
    "    kernel: /boot/vmlinuz\n"
    "    qmp_socket: /tmp/t1.qmp\n";

TEST(VmSpec, LoadsTheDocumentedExample) {
  std::string yaml = doc_example();
  ASSERT_FALSE(yaml.empty()) << "no yaml block in docs/backends-qmp.md";
  auto specs = parse_vm_specs(yaml, "backends-qmp.md", "/srv/medic");
  ASSERT_OK(specs);
  ASSERT_EQ(specs->size(), 2u);
  const VmSpec& web = (*specs)[0];
  EXPECT_EQ(web.name, "web-1");
  EXPECT_EQ(web.uuid, "6f1c0d2e-8a4b-4c1e-9d3f-2b7a5e0c9a11");
  EXPECT_EQ(web.memory_mib, 256);
  EXPECT_EQ(web.accel, Accel::kAuto);
  EXPECT_EQ(web.kernel, "/boot/vmlinuz-6.1.0-56-amd64");
  EXPECT_EQ(web.initrd, "/srv/medic/images/web-1.initrd.gz");  // relative to the file
  EXPECT_EQ(web.qmp_socket, "/srv/medic/run/web-1.qmp");
  EXPECT_EQ(web.heartbeat_socket, "/srv/medic/run/web-1.hb");
  EXPECT_EQ(web.guest_agent_socket, "/srv/medic/run/web-1.qga");
  EXPECT_EQ(web.devices, (std::vector<std::string>{"pvpanic", "i6300esb"}));
  EXPECT_EQ(web.labels.at("tier"), "web");
  const VmSpec& db = (*specs)[1];
  EXPECT_EQ(db.memory_mib, 1024);
  EXPECT_EQ(db.cpus, 2);
  EXPECT_EQ(db.disk, "/srv/medic/images/db-1.qcow2");
  EXPECT_EQ(db.disk_format, "qcow2");
  EXPECT_TRUE(db.heartbeat_socket.empty());
  EXPECT_TRUE(db.guest_agent_socket.empty());
}

TEST(VmSpec, LoadsAFileWithPathsRelativeToIt) {
  testing::TempDir dir;
  std::string path = dir.write("conf/vms.yaml",
                               "vms:\n"
                               "  - name: a\n"
                               "    uuid: 11111111-2222-3333-4444-555555555555\n"
                               "    disk: ../disks/a.img\n"
                               "    qmp_socket: a.qmp\n"
                               "    memory: 512\n");
  auto specs = load_vm_specs(path);
  ASSERT_OK(specs);
  EXPECT_EQ((*specs)[0].disk, dir.path() + "/disks/a.img");
  EXPECT_EQ((*specs)[0].qmp_socket, dir.path() + "/conf/a.qmp");
  EXPECT_EQ((*specs)[0].memory_mib, 512);
  EXPECT_EQ(load_vm_specs(dir.file("missing.yaml")).status().code(), Code::kNotFound);
}

TEST(VmSpec, ReportsEveryProblemWithFileLineAndColumn) {
  const char* yaml =
      "vms:\n"
      "  - name: bad name\n"    // 2
      "    uuid: not-a-uuid\n"  // 3
      "    memory: 12X\n"       // 4
      "    accel: hvf\n"        // 5
      "    kernel: /k\n"
      "    disk: /d\n"
      "    qmp_socket: /q\n"
      "    colour: blue\n"  // 9
      "  - name: ok\n"      // 10
      "    uuid: 11111111-2222-3333-4444-555555555555\n"
      "    initrd: /i\n";  // no kernel, no disk, no qmp_socket
  auto specs = parse_vm_specs(yaml, "vms.yaml", "/");
  ASSERT_FALSE(specs.ok());
  EXPECT_EQ(specs.status().code(), Code::kInvalidArgument);
  const std::string m = specs.status().message();
  for (const char* want :
       {"vms.yaml:2:", "must be 1-64 letters", "vms.yaml:3:11: error: uuid 'not-a-uuid'",
        "vms.yaml:4:", "memory '12X'", "vms.yaml:5:", "accel 'hvf'", "vms.yaml:9:", "colour",
        "needs a kernel or a disk", "vms.yaml:10:", "initrd and append need a kernel",
        "qmp_socket"}) {
    EXPECT_NE(m.find(want), std::string::npos) << "missing '" << want << "' in:\n" << m;
  }
}

TEST(VmSpec, RejectsDuplicatesAndMissingList) {
  std::string two = std::string(kMinimal) + std::string(kMinimal).substr(5);
  auto specs = parse_vm_specs(two, "dup.yaml", "/");
  ASSERT_FALSE(specs.ok());
  EXPECT_NE(specs.status().message().find("a second VM named 't1'"), std::string::npos);
  EXPECT_NE(specs.status().message().find("a second VM with uuid"), std::string::npos);
  EXPECT_NE(specs.status().message().find("a second VM on QMP socket"), std::string::npos);
  EXPECT_FALSE(parse_vm_specs("vm: []\n", "x.yaml", "/").ok());
  EXPECT_FALSE(parse_vm_specs("vms: {a: 1}\n", "x.yaml", "/").ok());
  auto syntax = parse_vm_specs("vms: [\n", "x.yaml", "/");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("x.yaml:"), std::string::npos);
}

TEST(VmSpec, RejectsASocketPathTooLongForUnixSockets) {
  std::string yaml =
      std::string(kMinimal) + "    heartbeat_socket: /" + std::string(120, 'h') + "\n";
  auto specs = parse_vm_specs(yaml, "long.yaml", "/");
  ASSERT_FALSE(specs.ok());
  EXPECT_NE(specs.status().message().find("heartbeat_socket is longer"), std::string::npos);
}

TEST(VmSpec, RejectsAGuestAgentSocketThatIsAlsoTheHeartbeatSocket) {
  auto specs = parse_vm_specs(std::string(kMinimal) +
                                  "    heartbeat_socket: /tmp/t1.hb\n"
                                  "    guest_agent_socket: /tmp/t1.hb\n",
                              "hb.yaml", "/");
  ASSERT_FALSE(specs.ok());
  EXPECT_NE(specs.status().message().find("hb.yaml:7:25: error: guest_agent_socket /tmp/t1.hb is "
                                          "already the QMP, heartbeat or guest-agent socket"),
            std::string::npos)
      << specs.status();
}

TEST(VmSpec, RejectsAGuestAgentSocketTooLongOrSharedWithAnotherVm) {
  std::string yaml =
      std::string(kMinimal) + "    guest_agent_socket: /" + std::string(120, 'g') + "\n";
  auto specs = parse_vm_specs(yaml, "long.yaml", "/");
  ASSERT_FALSE(specs.ok());
  EXPECT_NE(specs.status().message().find("guest_agent_socket is longer"), std::string::npos);
  auto shared = parse_vm_specs(std::string(kMinimal) +
                                   "    guest_agent_socket: /tmp/t2.qmp\n"
                                   "  - name: t2\n"
                                   "    uuid: 11111111-2222-3333-4444-666666666666\n"
                                   "    kernel: /boot/vmlinuz\n"
                                   "    qmp_socket: /tmp/t2.qmp\n",
                               "shared.yaml", "/");
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.status().message().find("a second VM on QMP socket /tmp/t2.qmp"),
            std::string::npos)
      << shared.status();
  auto twice = parse_vm_specs(std::string(kMinimal) +
                                  "    guest_agent_socket: /tmp/ga\n"
                                  "  - name: t2\n"
                                  "    uuid: 11111111-2222-3333-4444-666666666666\n"
                                  "    kernel: /boot/vmlinuz\n"
                                  "    qmp_socket: /tmp/t2.qmp\n"
                                  "    guest_agent_socket: /tmp/ga\n",
                              "twice.yaml", "/");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("twice.yaml:11:"), std::string::npos) << twice.status();
  EXPECT_NE(twice.status().message().find("guest_agent_socket /tmp/ga is already"),
            std::string::npos);
}

TEST(QemuArgv, AddsTheGuestAgentPortOnlyWhenASocketIsGiven) {
  auto specs = parse_vm_specs(doc_example(), "doc", "/srv");
  ASSERT_OK(specs);
  auto with = qemu_argv((*specs)[0], Accel::kTcg);
  EXPECT_TRUE(has_pair(with, "-device", "virtio-serial"));
  EXPECT_TRUE(has_pair(with, "-chardev",
                       "socket,id=guest_agent,path=/srv/run/web-1.qga,server=on,wait=off"));
  EXPECT_TRUE(
      has_pair(with, "-device", "virtserialport,chardev=guest_agent,name=org.qemu.guest_agent.0"));
  auto without = qemu_argv((*specs)[1], Accel::kTcg);
  EXPECT_FALSE(has_pair(without, "-device", "virtio-serial"));
  EXPECT_EQ(std::count(without.begin(), without.end(), "-chardev"), 0);
}

TEST(QemuArgv, BuildsKernelBootWithConsoleHeartbeatAndPanicPause) {
  auto specs = parse_vm_specs(doc_example(), "doc", "/srv");
  ASSERT_OK(specs);
  auto argv = qemu_argv((*specs)[0], Accel::kTcg);
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_TRUE(has_pair(argv, "-accel", "tcg"));
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-cpu"), 0);
  EXPECT_TRUE(has_pair(argv, "-m", "256M"));
  EXPECT_TRUE(has_pair(argv, "-uuid", "6f1c0d2e-8a4b-4c1e-9d3f-2b7a5e0c9a11"));
  EXPECT_TRUE(has_pair(argv, "-qmp", "unix:/srv/run/web-1.qmp,server=on,wait=off"));
  EXPECT_TRUE(has_pair(argv, "-kernel", "/boot/vmlinuz-6.1.0-56-amd64"));
  EXPECT_TRUE(has_pair(argv, "-append", "console=ttyS0 panic=0 unknown_nmi_panic=1"));
  EXPECT_TRUE(has_pair(argv, "-action", "panic=pause"));
  EXPECT_TRUE(has_pair(argv, "-device", "pvpanic"));
  EXPECT_TRUE(has_pair(argv, "-device", "i6300esb"));
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-no-reboot"), 0);
  // The console is the first serial port, the heartbeat the second.
  auto first = std::find(argv.begin(), argv.end(), "chardev:console");
  auto second = std::find(argv.begin(), argv.end(), "chardev:heartbeat");
  ASSERT_NE(first, argv.end());
  ASSERT_NE(second, argv.end());
  EXPECT_LT(first, second);
}

TEST(VmSpec, ReadsDesiredStateGuestPowerOffWatchdogActionAndConsoleBounds) {
  auto defaults = parse_vm_specs(kMinimal, "m.yaml", "/");
  ASSERT_OK(defaults);
  EXPECT_EQ((*defaults)[0].desired, Desired::kRunning);
  EXPECT_EQ((*defaults)[0].on_guest_poweroff, OnGuestPoweroff::kStop);
  EXPECT_EQ((*defaults)[0].watchdog_action, "reset");
  EXPECT_EQ((*defaults)[0].console_keep, 5);
  EXPECT_EQ((*defaults)[0].console_max_bytes, 1u << 20);
  auto set = parse_vm_specs(std::string(kMinimal) +
                                "    desired: stopped\n"
                                "    on_guest_poweroff: restart\n"
                                "    watchdog_action: pause\n"
                                "    console_keep: 2\n"
                                "    console_max_size: 4M\n",
                            "s.yaml", "/");
  ASSERT_OK(set);
  EXPECT_EQ((*set)[0].desired, Desired::kStopped);
  EXPECT_EQ((*set)[0].on_guest_poweroff, OnGuestPoweroff::kRestart);
  EXPECT_EQ((*set)[0].watchdog_action, "pause");
  EXPECT_EQ((*set)[0].console_keep, 2);
  EXPECT_EQ((*set)[0].console_max_bytes, 4u << 20);
  auto bad = parse_vm_specs(std::string(kMinimal) +
                                "    desired: maybe\n"
                                "    on_guest_poweroff: reboot\n"
                                "    watchdog_action: explode\n",
                            "b.yaml", "/");
  ASSERT_FALSE(bad.ok());
  const std::string m = bad.status().message();
  EXPECT_NE(m.find("b.yaml:6:14: error: desired 'maybe' must be running or stopped"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("on_guest_poweroff 'reboot' must be stop or restart"), std::string::npos) << m;
  EXPECT_NE(m.find("watchdog_action 'explode' must be reset,"), std::string::npos) << m;
}

TEST(QemuArgv, PassesTheWatchdogActionAndAppendsToTheConsoleLog) {
  auto specs = parse_vm_specs(doc_example(), "doc", "/srv");
  ASSERT_OK(specs);
  auto argv = qemu_argv((*specs)[0], Accel::kTcg);
  EXPECT_TRUE(has_pair(argv, "-action", "watchdog=reset"));
  EXPECT_TRUE(has_pair(argv, "-chardev", "file,id=console,path=/srv/log/web-1.console,append=on"));
  VmSpec paused = (*specs)[0];
  paused.watchdog_action = "pause";
  EXPECT_TRUE(has_pair(qemu_argv(paused, Accel::kTcg), "-action", "watchdog=pause"));
  EXPECT_TRUE(qemu_acts_on_watchdog("reset"));
  EXPECT_TRUE(qemu_acts_on_watchdog("poweroff"));
  EXPECT_FALSE(qemu_acts_on_watchdog("pause"));
  EXPECT_FALSE(qemu_acts_on_watchdog("none"));
}

TEST(QemuArgv, BuildsDiskBootWithKvmAndEscapesCommas) {
  auto specs = parse_vm_specs(std::string("vms:\n"
                                          "  - name: d\n"
                                          "    uuid: 11111111-2222-3333-4444-555555555555\n"
                                          "    disk: /images/a,b.img\n"
                                          "    qmp_socket: /run/d,1.qmp\n"),
                              "d.yaml", "/");
  ASSERT_OK(specs);
  auto argv = qemu_argv((*specs)[0], Accel::kKvm);
  EXPECT_TRUE(has_pair(argv, "-accel", "kvm"));
  EXPECT_TRUE(has_pair(argv, "-cpu", "host"));
  EXPECT_TRUE(has_pair(argv, "-drive", "file=/images/a,,b.img,format=raw,if=virtio"));
  EXPECT_TRUE(has_pair(argv, "-qmp", "unix:/run/d,,1.qmp,server=on,wait=off"));
  EXPECT_TRUE(has_pair(argv, "-serial", "null"));  // keeps ttyS1 numbering stable
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-kernel"), 0);
}

TEST(QemuArgv, AutoAccelResolvesToWhatTheHostCanDo) {
  EXPECT_EQ(resolve_accel(Accel::kTcg), Accel::kTcg);
  EXPECT_EQ(resolve_accel(Accel::kKvm), Accel::kKvm);
  EXPECT_EQ(resolve_accel(Accel::kAuto), kvm_usable() ? Accel::kKvm : Accel::kTcg);
}

VmSpec fake_spec(const testing::TempDir& dir, const std::string& qemu) {
  VmSpec s;
  s.name = "fake";
  s.uuid = "11111111-2222-3333-4444-555555555555";
  s.kernel = "/nonexistent";
  s.qmp_socket = dir.file("run/fake.qmp");
  s.heartbeat_socket = dir.file("run/fake.hb");
  s.qemu_log = dir.file("log/qemu.log");
  s.qemu = qemu;
  s.accel = Accel::kTcg;
  return s;
}

// start on the qmp backend with a fake `qemu` script: the verb returns at
// once and moves on from the loop; the Clock bounds it.
class QmpStart : public ::testing::Test {
 protected:
  void make(const std::string& qemu_script) {
    std::string fake = dir_.write("fake-qemu", qemu_script, 0755);
    hv_ = std::make_unique<QmpHypervisor>("host-a", std::vector<VmSpec>{fake_spec(dir_, fake)},
                                          clock_);
    hv_->subscribe([this](const VmEvent& e) { events_.push_back(e.what); });
    loop_.add_source(&source_.emplace(*hv_));
  }
  // Starts the VM; runs the loop (waiting on the backend's descriptors) until
  // the verb is done, calling `between(turn)` after each turn.
  Status start(Duration timeout, const std::function<void(int)>& between = nullptr) {
    std::optional<Status> result;
    hv_->execute(medic::v1::VERB_START, kUuid, timeout, [&](Status s) { result = s; });
    EXPECT_FALSE(result.has_value()) << "done ran inside execute()";
    int turn = 0;
    EXPECT_TRUE(testing::wait_until([&] {
      loop_.run_once(milliseconds(20));
      if (between && !result) between(++turn);
      return result.has_value();
    }));
    return result.value_or(internal_error("start did not finish"));
  }
  VmState state() {
    auto vm = hv_->get(kUuid);
    return vm.ok() ? vm->state : medic::v1::VM_STATE_UNSPECIFIED;
  }

  static constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";
  testing::TempDir dir_;
  VirtualClock clock_;
  EventLoop loop_{clock_};
  std::unique_ptr<QmpHypervisor> hv_;
  std::optional<HypervisorSource> source_;
  std::vector<Lifecycle> events_;
};

TEST_F(QmpStart, AQemuThatExitsBeforeItsSocketFailsTheStartQuotingItsLog) {
  make("#!/bin/sh\necho \"qemu: could not load kernel\" >&2\nexit 1\n");
  Status s = start(std::chrono::seconds(10));
  ASSERT_EQ(s.code(), Code::kUnavailable) << s;
  EXPECT_NE(s.message().find("start fake: QEMU exited with status 1 before its QMP socket " +
                             dir_.file("run/fake.qmp") + " was ready"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("could not load kernel"), std::string::npos) << s;
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(hv_->stats().crashes, 0u) << "a QEMU that never came up did not crash";
  EXPECT_TRUE(events_.empty());
}

TEST_F(QmpStart, AMissingQemuBinaryIsAnIoError) {
  make("");
  std::filesystem::remove(dir_.file("fake-qemu"));
  Status s = start(std::chrono::seconds(10));
  EXPECT_EQ(s.code(), Code::kIo) << s;
  EXPECT_NE(s.message().find("fake-qemu"), std::string::npos) << s;
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
}

TEST_F(QmpStart, TimesOutOnTheClockAndKillsAQemuThatNeverCreatesItsSocket) {
  make("#!/bin/sh\nexec sleep 600\n");
  pid_t pid = 0;
  Status s = start(std::chrono::seconds(10), [&](int turn) {
    if (turn == 1) {
      pid = hv_->get(kUuid)->pid;
      EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
    }
    // Positive control: the QEMU runs and the verb waits until the Clock
    // reaches the deadline.
    if (turn == 10) clock_.advance(std::chrono::milliseconds(9999));
    if (turn == 20) clock_.advance(std::chrono::milliseconds(1));
  });
  ASSERT_EQ(s.code(), Code::kTimeout) << s;
  EXPECT_EQ(s.message(), "start fake: QMP socket " + dir_.file("run/fake.qmp") +
                             " was not ready within 10s; QEMU (pid " + std::to_string(pid) +
                             ") killed");
  ASSERT_GT(pid, 0);
  // Its exit is seen on the loop: stopped, no crash.
  EXPECT_TRUE(testing::wait_until([&] {
    loop_.run_once(milliseconds(20));
    return hv_->get(kUuid)->pid == 0;
  }));
  EXPECT_EQ(::kill(pid, 0), -1) << "the QEMU outlived its failed start";
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(hv_->stats().crashes, 0u);
  EXPECT_TRUE(events_.empty());
}

TEST(Launcher, KillsRunningQemuReportsItsExitOnceAndRefusesADoubleSpawn) {
  testing::TempDir dir;
  std::string fake = dir.write("fake-qemu", "#!/bin/sh\nexec sleep 60\n", 0755);
  Launcher l(fake_spec(dir, fake));
  ASSERT_OK(l.spawn());
  EXPECT_TRUE(l.running());
  EXPECT_GT(l.pid(), 0);
  EXPECT_FALSE(l.take_exit().has_value());
  EXPECT_EQ(l.spawn().code(), Code::kFailedPrecondition);
  ASSERT_OK(l.kill());
  EXPECT_FALSE(l.running());
  auto exit = l.take_exit();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(*exit, -9);
  EXPECT_FALSE(l.take_exit().has_value());
  EXPECT_OK(l.kill());  // nothing left to kill
}

TEST(Launcher, RefusesToStartWhenAnotherProcessServesTheQmpSocket) {
  testing::TempDir dir;
  std::string fake = dir.write("fake-qemu", "#!/bin/sh\nexec sleep 60\n", 0755);
  VmSpec spec = fake_spec(dir, fake);
  ::mkdir(dir.file("run").c_str(), 0755);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, spec.qmp_socket.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  EXPECT_TRUE(unix_socket_listening(spec.qmp_socket));
  Launcher l(spec);
  Status s = l.spawn();
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("already serves"), std::string::npos);
  EXPECT_FALSE(l.running());
  ::close(fd);
  // Now the file is a stale socket nobody serves: it is removed, start goes on.
  EXPECT_FALSE(unix_socket_listening(spec.qmp_socket));
  ASSERT_OK(l.spawn());
  EXPECT_OK(l.kill());
}

}  // namespace
}  // namespace medic::vmm::qmp
