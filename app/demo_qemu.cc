// medic demo --qemu: one host with two real QEMU guests (TCG), the tiny test
// guest built from Debian packages by tests/guest/build-guest. Faults are
// real: a kernel panic (NMI), a guest that stops its heartbeat, a QEMU
// killed with SIGKILL.
#include <poll.h>
#include <signal.h>

#include <iostream>
#include <sstream>

#include "app/demo.h"
#include "app/demo_view.h"
#include "app/signals.h"
#include "app/timeline.h"
#include "core/subprocess.h"
#include "vmm/qmp/launcher.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::app {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kQemuUuids = {"6f1c2a3b-0000-4000-8000-000000000001",
                                             "6f1c2a3b-0000-4000-8000-000000000002"};

// Builds the test guest under `dir`; its kernel and initrd paths go to *kernel
// and *initrd. Prints why and returns false if it cannot.
bool build_test_guest(const std::string& dir, std::string* kernel, std::string* initrd) {
  const char* src_env = std::getenv("MEDIC_SOURCE_DIR");
  const std::string src = src_env && *src_env ? src_env : MEDIC_DEFAULT_SOURCE_DIR;
  RunOptions ro;
  ro.timeout = std::chrono::minutes(3);
  auto built = run_process({src + "/tests/guest/build-guest", dir + "/guest"}, ro);
  if (!built.ok() || built->exit_code != 0) {
    std::cerr << "medic demo --qemu: cannot build the test guest"
              << (built.ok() ? ": " + built->err : ": " + built.status().message())
              << "(needs qemu-system-x86, linux-image-amd64, busybox-static, cpio: "
                 "scripts/bootstrap installs them)\n";
    return false;
  }
  std::istringstream lines(built->out);
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("kernel=", 0) == 0) *kernel = l.substr(7);
    if (l.rfind("initrd=", 0) == 0) *initrd = l.substr(7);
  }
  return true;
}

// The VM specs of the demo's guests, in the vms.yaml format.
std::string qemu_vms_yaml(const std::string& accel, const std::string& kernel,
                          const std::string& initrd) {
  std::string yaml = "vms:\n";
  for (size_t i = 0; i < kQemuUuids.size(); ++i) {
    const std::string n = std::to_string(i + 1);
    yaml += "  - name: qemu-vm-" + n + "\n    uuid: " + kQemuUuids[i] +
            "\n    memory: 256M\n    accel: " + accel +
            "\n    kernel: " + kernel + "\n    initrd: " + initrd +
            "\n    append: console=ttyS0 panic=0 unknown_nmi_panic=1 quiet\n"
            "    qmp_socket: vm" + n + ".qmp\n    heartbeat_socket: vm" + n +
            ".hb\n    console_log: vm" + n + ".console.log\n    qemu_log: vm" + n +
            ".qemu.log\n    devices: [pvpanic]\n    labels: {tier: web}\n";
  }
  return yaml;
}

bool beating_since(vmm::qmp::QmpHypervisor& hv, const std::string& vm, Time since) {
  auto info = hv.get(vm);
  return info.ok() && info->state == medic::v1::VM_STATE_RUNNING && info->last_heartbeat > since;
}

// Starts the guests and waits (at most 120s) until each beats. Prints why
// and returns false if one cannot start.
bool boot_guests(vmm::qmp::QmpHypervisor& hv, Clock& clock) {
  for (const auto& u : kQemuUuids) {
    Status s = vmm::execute_and_wait(hv, clock, medic::v1::VERB_START, u, 60s);
    if (!s.ok()) {
      std::cerr << "medic demo --qemu: cannot start " << u << ": " << s.message() << "\n";
      return false;
    }
  }
  const Time boot_started = clock.now();
  while (clock.now() - boot_started < 120s) {
    hv.poll();
    bool all = true;
    for (const auto& u : kQemuUuids) all = all && beating_since(hv, u, boot_started);
    if (all) break;
    ::poll(nullptr, 0, 50);  // waiting on real guests booting, bounded above
  }
  return true;
}

std::string qemu_vm_name(const std::string& vm) {
  for (size_t i = 0; i < kQemuUuids.size(); ++i) {
    if (kQemuUuids[i] == vm) return "qemu-vm-" + std::to_string(i + 1);
  }
  return vm;
}

// A panic (NMI), a hang and a SIGKILLed QEMU, on `clock`.
void schedule_qemu_faults(const DemoOptions& o, SystemClock& clock, vmm::qmp::QmpHypervisor& hv,
                          DemoView& view, Time start) {
  struct Fault {
    double at;
    size_t vm;
    const char* what;
  };
  const std::vector<Fault> faults = {{0.08, 0, "panic"}, {0.20, 1, "hang"}, {0.60, 0, "crash"}};
  for (const auto& f : faults) {
    Time at = start + std::chrono::duration_cast<Duration>(o.duration * f.at);
    clock.schedule_at(at, [&, f] {
      const std::string& vm = kQemuUuids[f.vm];
      view.fault(clock.now(), vm, f.what);
      if (std::string(f.what) == "panic") {
        (void)hv.qmp_command(vm, "inject-nmi", 5s);
      } else if (std::string(f.what) == "hang") {
        (void)hv.send_to_guest(vm, "hang");
      } else if (auto info = hv.get(vm); info.ok() && info->pid > 0) {
        ::kill(info->pid, SIGKILL);
      }
    });
  }
}

int qemu_demo_error(const Status& s) {
  std::cerr << "medic demo --qemu: " << s.message() << "\n";
  return 2;
}

}  // namespace

int run_qemu_demo(const DemoOptions& o, const std::string& dir) {
  std::string kernel, initrd;
  if (!build_test_guest(dir, &kernel, &initrd)) return 2;
  const char* accel_env = std::getenv("MEDIC_E2E_ACCEL");
  const std::string accel = accel_env && *accel_env ? accel_env : "tcg";
  auto specs = vmm::qmp::parse_vm_specs(qemu_vms_yaml(accel, kernel, initrd), "demo-vms.yaml", dir);
  if (!specs.ok()) return qemu_demo_error(specs.status());
  SystemClock clock, agent_clock;
  const std::string host = "qemu-host";
  vmm::qmp::QmpHypervisor hv(host, *specs, agent_clock);
  fabric::Identity engine_id = fabric::Identity::generate();
  fabric::Identity host_id = fabric::Identity::generate();
  fabric::TrustStore trust;
  add_trusted(trust, "engine-1", engine_id, fabric::Role::kEngine, {"*"});
  add_trusted(trust, host, host_id, fabric::Role::kCollector, {host});
  auto ctx = fabric::Context::create(trust);
  if (!ctx.ok()) return qemu_demo_error(ctx.status());
  std::cout << "medic demo --qemu: booting " << kQemuUuids.size()
            << " QEMU guests under " << accel << " ..." << std::endl;
  if (!boot_guests(hv, clock)) return 2;
  auto loaded = rules::load_rule_text(demo_rules("15s"), "demo.rules.yaml");
  if (!loaded.ok()) return 2;
  node::EngineConfig ec_cfg = demo_engine_config(dir, o.duration);
  auto store = audit::open_sqlite_store(ec_cfg.audit_path, clock, engine_id, ec_cfg.audit);
  if (!store.ok()) return qemu_demo_error(store.status());
  const Time start = clock.now();
  Timeline tl(std::cout, colour_wanted(), start);
  DemoView view(tl, clock, qemu_vm_name,
                [&hv](const std::string& vm, Time since) { return beating_since(hv, vm, since); });
  auto engine = node::EngineNode::create(ec_cfg, {**ctx, engine_id, trust, clock}, loaded.rules,
                                         std::move(*store), &view);
  if (!engine.ok()) return qemu_demo_error(engine.status());
  auto agent = node::AgentNode::create(demo_agent_config(host, **engine, engine_id, dir, 15s),
                                       {**ctx, host_id, trust, agent_clock}, hv);
  if (!agent.ok()) return qemu_demo_error(agent.status());
  tl.note(start, "2 real guests up (heartbeat on a serial port, pvpanic); collector and actuator "
                 "over CurveZMQ; faults: panic, hang, QEMU killed");
  schedule_qemu_faults(o, clock, hv, view, start);
  SignalFlags& signals = install_signal_handlers();
  const Time end = start + o.duration;
  while (clock.now() < end && !signals.stop.load()) {
    (*engine)->run_once(2ms);
    (*agent)->run_once(Duration(0));
    view.check_healed();
  }
  const Time stopped = clock.now();
  agent->reset();
  Status closed = (*engine)->shutdown();
  tl.print_summary(stopped, demo_hints(ec_cfg.audit_path, closed,
                                       {"  guest consoles       " + dir + "/vm*.console.log"},
                                       view.example_action()));
  return 0;
}


}  // namespace medic::app
