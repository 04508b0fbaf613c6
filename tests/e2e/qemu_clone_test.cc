// End-to-end: provisioning on a real qemu-img and qemu-system-x86_64 (see
// tests/e2e/qemu_fixture.h for the guest). A template of the test guest's
// kernel and initramfs plus a small raw data disk is cloned: the clone gets
// a qcow2 overlay over that disk, its QEMU runs on the overlay, its guest
// heartbeats, a new backend over the same clone_dir lists it again, and
// delete ends QEMU and removes the clone's directory.
#include <signal.h>
#include <yaml-cpp/yaml.h>

#include "core/json.h"
#include "node/agent_node.h"
#include "tests/e2e/qemu_fixture.h"

namespace medic::vmm::qmp::e2e {
namespace {

constexpr const char* kCloneId = "5d2c8c5e-3a52-4c7e-9f55-0d6a1c1ec10e";
constexpr const char* kCloneName = "e2e-clone";

class QemuClone : public QemuGuest {
 protected:
  // The guest's spec as a template: no uuid, its paths only say which
  // sockets and logs a clone has, and a data disk beside the kernel boot.
  std::string template_yaml() const {
    std::string entry = guest_vm_yaml("guest", kUuid, "", "");
    entry = testing::replace_all(entry, std::string("    uuid: ") + kUuid + "\n", "");
    return "templates:\n" + entry + "    disk: " + data_disk_ + "\n    disk_format: raw\n";
  }
  Result<QmpHypervisorOptions> options() const {
    QmpHypervisorOptions o;
    auto t = parse_vm_templates(template_yaml(), "templates.yaml", dir_.path());
    if (!t.ok()) return t.status();
    o.templates = std::move(*t);
    o.state_dir = dir_.file("state");
    o.clone_dir = dir_.file("clones");
    return o;
  }
  std::string clone_dir() const { return dir_.file("clones") + "/" + kCloneName; }
  size_t clone_heartbeats_since(size_t from) const {
    size_t n = 0;
    for (size_t i = from; i < events_.size(); ++i) {
      n += events_[i].type == VmEvent::Type::kHeartbeat && events_[i].vm == kCloneId;
    }
    return n;
  }
  Status clone() {
    std::optional<Status> out;
    Status s = hv_->begin_clone({"guest", kCloneId, kCloneName}, kVerbTimeout,
                                [&out](Status st) { out = st; });
    if (!s.ok()) return s;
    const bool ended = pump_until(
        [&] {
          clock_.run_due();
          return out.has_value();
        },
        seconds(60));
    return ended ? *out : internal_error("the clone never ended");
  }

  std::string data_disk_;
};

// The overlay's backing file, as qemu-img reads it (-U: QEMU holds the lock).
std::string backing_file_of(const std::string& image) {
  auto r = testing::run_command({"qemu-img", "info", "-U", "--output=json", image});
  if (r.exit_code != 0) return "qemu-img info failed: " + r.err;
  auto j = parse_json(r.out);
  if (!j.ok()) return "qemu-img info printed no JSON: " + r.out;
  const std::string* b = json_string_member(*j, "full-backing-filename");
  if (!b) b = json_string_member(*j, "backing-filename");
  return b ? *b : "no backing file in: " + r.out;
}

TEST_F(QemuClone, ClonesTheGuestOverAnOverlayAndDeletesItForGood) {
  ASSERT_FALSE(find_in_path("qemu-img").empty())
      << "qemu-img is not installed (Debian package qemu-utils; scripts/bootstrap installs it)";
  data_disk_ = dir_.file("data.raw");
  auto made = testing::run_command({"qemu-img", "create", "-f", "raw", data_disk_, "8M"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto opts = options();
  ASSERT_OK(opts);
  hv_ = std::make_unique<QmpHypervisor>("e2e-host", std::vector<VmSpec>{}, clock_, *opts);
  hv_->subscribe([this](const VmEvent& e) { events_.push_back(e); });
  EXPECT_EQ(hv_->templates(), std::vector<std::string>{"guest"});

  const auto t0 = SteadyClock::now();
  ASSERT_OK(clone());
  report_timing("clone_to_qemu_running", SteadyClock::now() - t0);
  auto vm = hv_->get(kCloneId);
  ASSERT_OK(vm);
  EXPECT_EQ(vm->name, kCloneName);
  EXPECT_EQ(vm->labels.at("template"), "guest");
  ASSERT_GT(vm->pid, 0);
  const std::string overlay = clone_dir() + "/disk.qcow2";
  EXPECT_EQ(backing_file_of(overlay), data_disk_);
  const std::string cmdline = testing::read_file("/proc/" + std::to_string(vm->pid) + "/cmdline");
  EXPECT_NE(cmdline.find("file=" + overlay + ",format=qcow2"), std::string::npos) << cmdline;
  ASSERT_TRUE(pump_until(
      [&] {
        clock_.run_due();
        return clone_heartbeats_since(0) >= 2;
      },
      kBootLimit))
      << "the clone never beat: " << events_since(0);
  report_timing("clone_to_first_heartbeats", SteadyClock::now() - t0);

  {
    // An agent that starts again finds the clone in its clone_dir.
    QmpHypervisor again("e2e-host", {}, clock_, *opts);
    auto listed = again.get(kCloneId);
    ASSERT_OK(listed);
    EXPECT_EQ(listed->name, kCloneName);
    EXPECT_EQ(listed->labels.at("template"), "guest");
  }

  const pid_t pid = vm->pid;
  ASSERT_OK(execute_and_wait(*hv_, clock_, medic::v1::VERB_DELETE, kCloneId, kVerbTimeout));
  EXPECT_FALSE(fs::exists(clone_dir()));
  EXPECT_EQ(hv_->get(kCloneId).status().code(), Code::kNotFound);
  auto all = hv_->list();
  ASSERT_OK(all);
  EXPECT_TRUE(all->empty());
  EXPECT_NE(::kill(pid, 0), 0) << "QEMU of the deleted clone still runs";
  EXPECT_TRUE(fs::exists(data_disk_)) << "delete removed the template's disk";
}

// The agent's backend map: templates and clone_dir (default
// state_dir/clones), read without starting a guest.
TEST(QemuCloneConfig, TheBackendMapNamesTemplatesAndCloneDir) {
  testing::TempDir dir;
  dir.write("vms.yaml", "vms: []\n");
  dir.write("templates.yaml",
            "templates:\n  - name: small\n    kernel: vmlinuz\n    guest_agent_socket: yes\n");
  // A clone that never finished, in the default clone_dir: removed at once.
  fs::create_directories(dir.file("state/clones/half"));
  auto map = load_yaml_string("kind: qmp\nvms: vms.yaml\ntemplates: templates.yaml\n", "a.yaml");
  ASSERT_OK(map);
  VirtualClock clock;
  auto b = node::make_backend("h", *map, dir.file("agent.yaml"), clock, dir.file("state"));
  ASSERT_OK(b);
  EXPECT_EQ(b->hypervisor->templates(), std::vector<std::string>{"small"});
  EXPECT_NE(b->guest_pinger, nullptr);  // the template's clones have a guest agent
  EXPECT_FALSE(fs::exists(dir.file("state/clones/half")));
  // An explicit clone_dir instead.
  fs::create_directories(dir.file("elsewhere/half"));
  map = load_yaml_string("kind: qmp\nvms: vms.yaml\nclone_dir: elsewhere\n", "a.yaml");
  ASSERT_OK(map);
  b = node::make_backend("h", *map, dir.file("agent.yaml"), clock, dir.file("state"));
  ASSERT_OK(b);
  EXPECT_TRUE(b->hypervisor->templates().empty());
  EXPECT_FALSE(fs::exists(dir.file("elsewhere/half")));
  // Typos are errors with a position.
  map = load_yaml_string("kind: qmp\nvms: vms.yaml\nclone_dri: x\n", "a.yaml");
  ASSERT_OK(map);
  auto bad = node::make_backend("h", *map, dir.file("agent.yaml"), clock, dir.file("state"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("clone_dri"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace medic::vmm::qmp::e2e
