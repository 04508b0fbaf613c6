// Provisioning in the qmp backend against fakes: the fake QEMU of
// qmp_hypervisor_test.cc (this binary started as "medic-fake-qemu") and a
// fake qemu-img (a shell script that logs its arguments and makes the
// overlay file, or fails as qemu-img does). The real qemu-img and QEMU are
// exercised by tests/e2e/qemu_clone_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "tests/testing/testing.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::vmm::qmp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;
constexpr const char* kVmUuid = "11111111-2222-3333-4444-555555555555";
constexpr const char* kCloneId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const Duration kTimeout = std::chrono::seconds(10);

class QmpCloneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_qemu_ = dir_.file("medic-fake-qemu");
    fs::create_symlink(fs::read_symlink("/proc/self/exe"), fake_qemu_);
    img_log_ = dir_.file("qemu-img.log");
    good_img_ = dir_.write("qemu-img",
                           "#!/bin/sh\necho \"$@\" >> '" + img_log_ +
                               "'\nfor last; do :; done\necho overlay > \"$last\"\n",
                           0755);
    bad_img_ =
        dir_.write("qemu-img-bad",
                   "#!/bin/sh\necho \"qemu-img: Could not open backing file\" >&2\nexit 1\n", 0755);
    disk_ = dir_.write("base.raw", "a raw disk");
    opts_.clone_dir = dir_.file("clones");
    opts_.state_dir = dir_.file("state");
    opts_.vms_file = "/etc/medic/vms.yaml";
    opts_.qemu_img = good_img_;
    opts_.templates = {disk_template(), kernel_template()};
    make();
  }

  VmSpec disk_template() const {
    VmSpec t;
    t.name = "web";
    t.disk = disk_;
    t.disk_format = "raw";
    t.heartbeat_socket = "yes";  // only says the clone has one
    t.qemu_log = "yes";
    t.qemu = fake_qemu_;
    t.accel = Accel::kTcg;
    t.labels = {{"tier", "web"}};
    return t;
  }
  VmSpec kernel_template() const {
    VmSpec t = disk_template();
    t.name = "tiny";
    t.disk.clear();
    t.kernel = "/nonexistent/vmlinuz";
    return t;
  }
  void make() {
    VmSpec s;
    s.name = "vm1";
    s.uuid = kVmUuid;
    s.kernel = "/nonexistent/vmlinuz";
    s.qmp_socket = dir_.file("vm1.qmp");
    s.qemu = fake_qemu_;
    hv_.reset();
    hv_ = std::make_unique<QmpHypervisor>("host-a", std::vector<VmSpec>{s}, clock_, opts_);
    hv_->subscribe([this](const VmEvent& e) { events_.push_back(e); });
  }
  bool pump_until(const std::function<bool()>& cond) {
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (true) {
      hv_->poll();
      if (cond()) return true;
      if (SteadyClock::now() >= deadline) return false;
      std::vector<pollfd> p;
      for (int fd : hv_->fds()) p.push_back({fd, POLLIN, 0});
      ::poll(p.data(), p.size(), 20);
    }
  }
  // begin_clone, then its completion; a refusal is returned as it is.
  Status clone(const std::string& tmpl, const std::string& id = kCloneId,
               const std::string& name = "web-1") {
    std::optional<Status> out;
    Status s = hv_->begin_clone({tmpl, id, name}, kTimeout, [&out](Status st) { out = st; });
    if (!s.ok()) return s;
    if (out) return internal_error("done ran inside begin_clone");
    if (!pump_until([&] { return out.has_value(); })) return internal_error("no completion");
    return *out;
  }
  Status run(Verb verb, const std::string& vm) {
    return execute_and_wait(*hv_, clock_, verb, vm, kTimeout);
  }
  size_t heartbeats_of(const std::string& id) const {
    size_t n = 0;
    for (const auto& e : events_) n += e.type == VmEvent::Type::kHeartbeat && e.vm == id;
    return n;
  }
  std::string clone_dir(const std::string& name = "web-1") const {
    return (fs::absolute(opts_.clone_dir) / name).string();
  }

  testing::TempDir dir_;
  std::string fake_qemu_, img_log_, good_img_, bad_img_, disk_;
  VirtualClock clock_;
  QmpHypervisorOptions opts_;
  std::unique_ptr<QmpHypervisor> hv_;
  std::vector<VmEvent> events_;
};

TEST_F(QmpCloneTest, ListsItsTemplatesSorted) {
  EXPECT_THAT(hv_->templates(), ::testing::ElementsAre("tiny", "web"));
}

TEST_F(QmpCloneTest, ClonesADiskTemplateOverAnOverlayAndStartsIt) {
  ASSERT_OK(clone("web"));
  const std::string dir = clone_dir();
  EXPECT_EQ(
      testing::read_file(img_log_),
      "create -f qcow2 -F raw -b " + fs::absolute(disk_).string() + " " + dir + "/disk.qcow2\n");
  auto vm = hv_->get(kCloneId);
  ASSERT_OK(vm);
  EXPECT_EQ(vm->name, "web-1");
  EXPECT_EQ(vm->labels.at("template"), "web");
  EXPECT_EQ(vm->labels.at("tier"), "web");
  EXPECT_NE(vm->pid, 0);
  EXPECT_EQ(hv_->list()->size(), 2u);
  ASSERT_TRUE(pump_until([&] { return heartbeats_of(kCloneId) >= 2; }));
  // The kept spec: the template's with the clone's identity and paths.
  auto kept = load_vm_specs(dir + "/vm.yaml");
  ASSERT_OK(kept);
  ASSERT_EQ(kept->size(), 1u);
  const VmSpec& s = kept->front();
  EXPECT_EQ(s.uuid, kCloneId);
  EXPECT_EQ(s.name, "web-1");
  EXPECT_EQ(s.disk, dir + "/disk.qcow2");
  EXPECT_EQ(s.disk_format, "qcow2");
  EXPECT_EQ(s.qmp_socket, dir + "/qmp.sock");
  EXPECT_EQ(s.heartbeat_socket, dir + "/hb.sock");
  EXPECT_EQ(s.qemu_log, dir + "/qemu.log");
  EXPECT_EQ(s.guest_agent_socket, "");  // the template has none
  EXPECT_EQ(s.console_log, "");
  EXPECT_EQ(s.labels, (std::map<std::string, std::string>{{"tier", "web"}, {"template", "web"}}));
  EXPECT_FALSE(fs::exists(dir + "/vm.yaml.tmp"));
}

TEST_F(QmpCloneTest, AKernelTemplateNeedsNoOverlay) {
  ASSERT_OK(clone("tiny"));
  EXPECT_FALSE(fs::exists(img_log_));
  EXPECT_FALSE(fs::exists(clone_dir() + "/disk.qcow2"));
  EXPECT_OK(hv_->get("web-1"));
}

TEST_F(QmpCloneTest, ARestartedBackendListsItsClonesAndStartsThemAsDesired) {
  ASSERT_OK(clone("web"));
  make();  // the agent restarts; its QEMUs died with it
  auto vm = hv_->get(kCloneId);
  ASSERT_OK(vm);
  EXPECT_EQ(vm->name, "web-1");
  EXPECT_EQ(vm->labels.at("template"), "web");
  EXPECT_EQ(hv_->start_desired(kTimeout), 2u);  // vm1 and the clone
  ASSERT_TRUE(pump_until([&] { return heartbeats_of(kCloneId) >= 1; }));
}

TEST_F(QmpCloneTest, DeleteEndsQemuAndRemovesTheCloneForGood) {
  ASSERT_OK(clone("web"));
  ASSERT_TRUE(fs::exists(clone_dir()));
  ASSERT_OK(run(medic::v1::VERB_DELETE, "web-1"));
  EXPECT_FALSE(fs::exists(clone_dir()));
  EXPECT_EQ(hv_->get(kCloneId).status().code(), Code::kNotFound);
  EXPECT_EQ(hv_->list()->size(), 1u);
  bool stopped = false;
  for (const auto& e : events_)
    stopped = stopped || (e.vm == kCloneId && e.what == medic::v1::LIFECYCLE_STOPPED);
  EXPECT_TRUE(stopped);
  const size_t seen = events_.size();
  hv_->poll();
  EXPECT_EQ(events_.size(), seen);
  make();
  EXPECT_EQ(hv_->get(kCloneId).status().code(), Code::kNotFound);
  // Its id and name are free again.
  ASSERT_OK(clone("tiny"));
}

TEST_F(QmpCloneTest, DeleteOfAStoppedCloneRemovesItAtOnce) {
  ASSERT_OK(clone("tiny"));
  ASSERT_OK(run(medic::v1::VERB_STOP, kCloneId));
  EXPECT_TRUE(fs::exists(dir_.file("state/web-1.stopped")));
  ASSERT_OK(run(medic::v1::VERB_DELETE, kCloneId));
  EXPECT_FALSE(fs::exists(clone_dir()));
  EXPECT_FALSE(fs::exists(dir_.file("state/web-1.stopped")));
  EXPECT_EQ(hv_->get(kCloneId).status().code(), Code::kNotFound);
}

TEST_F(QmpCloneTest, DeleteOfAConfiguredVmIsRefusedNamingItsFile) {
  Status s = run(medic::v1::VERB_DELETE, "vm1");
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("/etc/medic/vms.yaml"));
  EXPECT_OK(hv_->get("vm1"));
}

TEST_F(QmpCloneTest, RefusesBadRequestsAtOnce) {
  Status s = clone("nope");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("templates: tiny, web"));
  EXPECT_EQ(clone("web", kCloneId, "vm1").code(), Code::kAlreadyExists);
  EXPECT_EQ(clone("web", kVmUuid, "fresh").code(), Code::kAlreadyExists);
  EXPECT_EQ(clone("web", "1234", "fresh").code(), Code::kInvalidArgument);
  EXPECT_EQ(clone("web", kCloneId, "..").code(), Code::kInvalidArgument);
  EXPECT_EQ(clone("web", kCloneId, "a/b").code(), Code::kInvalidArgument);
  EXPECT_EQ(clone("web", kCloneId, std::string(64, 'x')).code(), Code::kInvalidArgument);
  EXPECT_FALSE(fs::exists(opts_.clone_dir));  // nothing made
  fs::create_directories(clone_dir("taken"));
  EXPECT_EQ(clone("web", kCloneId, "taken").code(), Code::kAlreadyExists);
  // A clone in progress holds its id and name.
  std::optional<Status> first;
  ASSERT_OK(hv_->begin_clone({"web", kCloneId, "web-1"}, kTimeout, [&](Status s) { first = s; }));
  EXPECT_EQ(hv_->begin_clone({"web", kCloneId, "web-2"}, kTimeout, [](Status) {}).code(),
            Code::kAlreadyExists);
  ASSERT_TRUE(pump_until([&] { return first.has_value(); }));
  EXPECT_OK(*first);
}

TEST_F(QmpCloneTest, AHostWithoutCloneDirDoesNotClone) {
  opts_.clone_dir.clear();
  make();
  EXPECT_EQ(clone("web").code(), Code::kFailedPrecondition);
}

TEST_F(QmpCloneTest, AFailingQemuImgIsQuotedAndLeavesNoDirectory) {
  opts_.qemu_img = bad_img_;
  make();
  Status s = clone("web");
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_THAT(s.message(), HasSubstr("Could not open backing file"));
  EXPECT_THAT(s.message(), HasSubstr("exit 1"));
  EXPECT_FALSE(fs::exists(clone_dir()));
  EXPECT_EQ(hv_->get(kCloneId).status().code(), Code::kNotFound);
}

TEST_F(QmpCloneTest, AQemuImgThatHangsIsKilledAtTheTimeoutOnTheClock) {
  opts_.qemu_img = dir_.write("qemu-img-slow", "#!/bin/sh\nexec sleep 30\n", 0755);
  make();
  std::optional<Status> out;
  ASSERT_OK(hv_->begin_clone({"web", kCloneId, "web-1"}, std::chrono::seconds(2),
                             [&out](Status s) { out = s; }));
  hv_->poll();
  EXPECT_FALSE(out.has_value());
  EXPECT_TRUE(fs::exists(clone_dir()));
  clock_.advance(std::chrono::seconds(2));  // SIGTERM to qemu-img
  ASSERT_TRUE(pump_until([&] { return out.has_value(); }));
  EXPECT_EQ(out->code(), Code::kTimeout);
  EXPECT_THAT(out->message(), HasSubstr("qemu-img create"));
  EXPECT_FALSE(fs::exists(clone_dir()));
  EXPECT_EQ(hv_->get(kCloneId).status().code(), Code::kNotFound);
}

TEST_F(QmpCloneTest, AMissingQemuImgFailsWithoutLeavingADirectory) {
  opts_.qemu_img = dir_.file("no-such-qemu-img");
  make();
  Status s = clone("web");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("no-such-qemu-img"));
  EXPECT_FALSE(fs::exists(clone_dir()));
}

TEST_F(QmpCloneTest, AStartFailureRemovesTheClone) {
  VmSpec broken = kernel_template();
  broken.name = "broken";
  broken.qemu = dir_.file("no-such-qemu");
  opts_.templates.push_back(broken);
  make();
  Status s = clone("broken");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("clone web-1"));
  EXPECT_FALSE(fs::exists(clone_dir()));
  EXPECT_EQ(hv_->get(kCloneId).status().code(), Code::kNotFound);
  EXPECT_EQ(hv_->list()->size(), 1u);
}

TEST_F(QmpCloneTest, AHalfMadeCloneDirectoryIsRemovedAtConstruction) {
  fs::create_directories(clone_dir("half"));
  testing::write_file(clone_dir("half") + "/disk.qcow2", "x");
  make();
  EXPECT_FALSE(fs::exists(clone_dir("half")));
  EXPECT_EQ(hv_->list()->size(), 1u);
}

TEST(QmpTemplates, ReadsTemplatesWithoutUuidOrSockets) {
  auto t = parse_vm_templates(
      "templates:\n  - name: web\n    disk: base.qcow2\n    disk_format: qcow2\n"
      "    heartbeat_socket: yes\n    labels: {tier: web}\n",
      "templates.yaml", "/srv");
  ASSERT_OK(t);
  ASSERT_EQ(t->size(), 1u);
  EXPECT_EQ((*t)[0].disk, "/srv/base.qcow2");
  EXPECT_EQ((*t)[0].uuid, "");
  EXPECT_FALSE((*t)[0].heartbeat_socket.empty());
}

TEST(QmpTemplates, RefusesAUuidAndDuplicatesWithPositions) {
  auto t = parse_vm_templates(
      "templates:\n  - name: web\n    kernel: k\n  - name: web\n    kernel: k\n"
      "  - name: x\n    kernel: k\n    uuid: 11111111-2222-3333-4444-555555555555\n"
      "  - name: y\n    kernal: k\n",
      "templates.yaml", "/srv");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("templates.yaml:4:"));
  EXPECT_THAT(t.status().message(), HasSubstr("a second template named 'web'"));
  EXPECT_THAT(t.status().message(), HasSubstr("templates.yaml:8:"));
  EXPECT_THAT(t.status().message(), HasSubstr("has no uuid"));
  EXPECT_THAT(t.status().message(), HasSubstr("kernal"));
  EXPECT_FALSE(parse_vm_templates("vms: []\n", "t.yaml", "/").ok());
}

TEST(QmpTemplates, AFormattedSpecReadsBackTheSame) {
  VmSpec s;
  s.name = "web-1";
  s.uuid = kCloneId;
  s.memory_mib = 512;
  s.cpus = 2;
  s.accel = Accel::kTcg;
  s.kernel = "/k";
  s.initrd = "/i";
  s.append = "console=ttyS0 x=\"a, b\"";
  s.qmp_socket = "/run/q.sock";
  s.heartbeat_socket = "/run/h.sock";
  s.guest_agent_socket = "/run/g.sock";
  s.console_log = "/log/c";
  s.console_keep = 3;
  s.console_max_bytes = 4 << 20;
  s.qemu_log = "/log/q";
  s.devices = {"pvpanic", "virtio-rng-pci"};
  s.labels = {{"tier", "web"}, {"odd: key", "yes"}};
  s.desired = Desired::kStopped;
  s.on_guest_poweroff = OnGuestPoweroff::kRestart;
  s.watchdog_action = "pause";
  auto back = parse_vm_specs(format_vm_specs({s}), "vm.yaml", "/elsewhere");
  ASSERT_OK(back);
  ASSERT_EQ(back->size(), 1u);
  const VmSpec& b = back->front();
  EXPECT_EQ(b.name, s.name);
  EXPECT_EQ(b.uuid, s.uuid);
  EXPECT_EQ(b.memory_mib, 512);
  EXPECT_EQ(b.cpus, 2);
  EXPECT_EQ(b.accel, Accel::kTcg);
  EXPECT_EQ(b.kernel, "/k");
  EXPECT_EQ(b.initrd, "/i");
  EXPECT_EQ(b.append, s.append);
  EXPECT_EQ(b.guest_agent_socket, s.guest_agent_socket);
  EXPECT_EQ(b.console_keep, 3);
  EXPECT_EQ(b.console_max_bytes, s.console_max_bytes);
  EXPECT_EQ(b.devices, s.devices);
  EXPECT_EQ(b.labels, s.labels);
  EXPECT_EQ(b.desired, Desired::kStopped);
  EXPECT_EQ(b.on_guest_poweroff, OnGuestPoweroff::kRestart);
  EXPECT_EQ(b.watchdog_action, "pause");
  VmSpec d = s;
  d.kernel = d.initrd = d.append = "";
  d.disk = "/d.qcow2";
  d.disk_format = "qcow2";
  auto disk_back = parse_vm_specs(format_vm_specs({d}), "vm.yaml", "/");
  ASSERT_OK(disk_back);
  EXPECT_EQ(disk_back->front().disk, "/d.qcow2");
  EXPECT_EQ(disk_back->front().disk_format, "qcow2");
}

}  // namespace
}  // namespace medic::vmm::qmp
