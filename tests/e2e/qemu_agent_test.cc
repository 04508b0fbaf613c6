// End-to-end as a new operator runs it: `scripts/make-example-keys --backend
// qmp` writes the configs, the VM spec lists two test guests (see
// tests/e2e/qemu_fixture.h), and `medic engine` + `medic agent` run as real
// processes with the shipped rules. The agent starts both guests; a QEMU
// frozen with SIGSTOP is reported unresponsive and healed by the shipped
// qemu-unresponsive rule (reset refused at once, then restart through the
// launcher), and the actuator sees the guest beating again.
#include <dirent.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "tests/e2e/qemu_fixture.h"
#include "tests/testing/daemon.h"

namespace medic::vmm::qmp::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kWeb = "6f1c0d2e-8a4b-4c1e-9d3f-2b7a5e0c9a11";
constexpr const char* kDb = "0b8e3f5a-1c2d-4e6f-8a9b-7c5d3e1f2a40";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// The pid of the QEMU whose command line names guest `name` and `dir` (this
// test's; other tests may run guests of the same name), 0 if none.
pid_t qemu_pid_of(const std::string& name, const std::string& dir) {
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  pid_t found = 0;
  const std::string want = std::string("guest=") + name;
  while (dirent* e = ::readdir(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), {});
    for (char& c : cmd) c = c == '\0' ? ' ' : c;
    if (cmd.find("qemu-system") != std::string::npos && cmd.find(want + " ") != std::string::npos &&
        cmd.find(dir) != std::string::npos) {
      found = pid;
      break;
    }
  }
  ::closedir(d);
  return found;
}

class QemuAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    const GuestImage& g = guest_image();
    if (!g.skip.empty()) {
      FAIL() << "QEMU end-to-end tests cannot run (scripts/bootstrap installs QEMU): " << g.skip;
    }
    ASSERT_TRUE(g.error.empty()) << g.error;
    ::setenv("MEDIC", testing::medic_binary().c_str(), 1);
    auto made = testing::run_command(
        {testing::source_dir() + "/scripts/make-example-keys", "--backend", "qmp", dir_.path()},
        30s);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    engine_key_ = made.out.substr(10, 64);  // "engine-1  <hex>"
    // Free ports instead of the examples' 7701-7704 (tests run side by side).
    for (const char* file : {"engine.yaml", "agent.yaml"}) {
      std::string text = testing::read_file(dir_.file(file));
      for (int p = 7701; p <= 7704; ++p) {
        text = replace_all(text, ":" + std::to_string(p), ":" + std::to_string(port(p)));
      }
      text = replace_all(text, "durability: power_loss", "durability: process_crash");
      dir_.write(file, text);
    }
    // The two guests of the example, as the test guest (kernel + initramfs).
    dir_.write("qemu-vms.yaml", "vms:\n" + guest_vm_yaml("web-1", kWeb, "web", "") +
                                    "    labels: {tier: web}\n" +
                                    guest_vm_yaml("db-1", kDb, "db", "") +
                                    "    labels: {tier: db}\n");
  }
  void TearDown() override {
    if (frozen_ > 0) ::kill(frozen_, SIGCONT);
    if (HasFailure()) {
      for (const char* f : {"engine.log", "agent.log", "web-console.log", "web-qemu.log"}) {
        std::printf("--- %s ---\n%s\n", f, testing::read_file(dir_.file(f)).c_str());
      }
    }
  }
  int port(int example) {
    auto it = ports_.find(example);
    if (it == ports_.end()) it = ports_.emplace(example, testing::free_port()).first;
    return it->second;
  }
  long long count(const std::string& sql) {
    return testing::query_number(dir_.file("audit.db"), sql);
  }
  // The medic CLI as the operator, against this test's engine.
  testing::CommandResult operator_cli(std::vector<std::string> args,
                                      std::chrono::milliseconds limit = 10s) {
    ::setenv("MEDIC_KEY", dir_.file("operator.key").c_str(), 1);
    ::setenv("MEDIC_TRUST", dir_.file("trust.yaml").c_str(), 1);
    ::setenv("MEDIC_ENGINE_KEY", engine_key_.c_str(), 1);
    ::setenv("MEDIC_ENGINE", ("tcp://127.0.0.1:" + std::to_string(port(7704))).c_str(), 1);
    args.insert(args.begin(), testing::medic_binary());
    return testing::run_command(args, limit);
  }
  // `medic engine` or `medic agent` of this test's configs, started; null
  // (and a failure) when it cannot start.
  std::unique_ptr<testing::Daemon> daemon(const std::string& what, const std::string& log) {
    auto d = std::make_unique<testing::Daemon>(
        std::vector<std::string>{testing::medic_binary(), what, "-c", dir_.file(what + ".yaml")},
        dir_.file(log));
    Status s = d->start();
    if (s.ok()) return d;
    ADD_FAILURE() << what << " did not start: " << s;
    return nullptr;
  }
  // `medic hosts --vms`: the engine's view of the VMs.
  std::string hosts() { return operator_cli({"hosts", "--vms"}).out; }
  bool both_running(const std::string& h) {
    return h.find(std::string(kWeb) + "  running") != std::string::npos &&
           h.find(std::string(kDb) + "  running") != std::string::npos;
  }

  testing::TempDir dir_;
  std::map<int, int> ports_;
  std::string engine_key_;
  pid_t frozen_ = 0;
};

TEST_F(QemuAgent, StartsItsGuestsAndTheShippedRulesHealAFrozenQemu) {
  auto engine = daemon("engine", "engine.log");
  auto agent = daemon("agent", "agent.log");
  ASSERT_TRUE(engine && agent);
  const auto t0 = SteadyClock::now();
  // Both guests start (desired: running, the default) and beat: the engine
  // reports them running (booting until the first heartbeat).
  std::string h;
  ASSERT_TRUE(testing::wait_until([&] { return both_running(h = hosts()); }, 180s))
      << "the agent did not start both guests:\n" << h;
  report_timing("agent_start_to_both_guests_running", SteadyClock::now() - t0);

  frozen_ = qemu_pid_of("web-1", dir_.path());
  ASSERT_GT(frozen_, 0);
  const auto t1 = SteadyClock::now();
  ASSERT_EQ(::kill(frozen_, SIGSTOP), 0);
  const std::string by_rule =
      "select count(*) from decisions d join transitions t on t.action_id = d.action_id "
      "where d.rule = 'qemu-unresponsive' and d.vm = '" + std::string(kWeb) + "' ";
  ASSERT_TRUE(testing::wait_until(
      [&] { return count(by_rule + "and d.verb = 'restart' and t.state = 'dispatched'") >= 1; },
      60s))
      << "no restart by qemu-unresponsive";
  report_timing("daemons_sigstop_to_restart_dispatched", SteadyClock::now() - t1);
  // The ladder's first step, reset, was refused by the frozen QEMU at once.
  EXPECT_GE(count(by_rule + "and d.verb = 'reset' and t.state = 'failed'"), 1);
  ASSERT_TRUE(testing::wait_until(
      [&] {
        return count(by_rule + "and d.verb = 'restart' and t.state = 'succeeded' and "
                               "t.detail = 'executed; the actuator saw the VM healthy'") >= 1;
      },
      180s))
      << "the restart did not heal web-1";
  report_timing("daemons_sigstop_to_healed", SteadyClock::now() - t1);
  const pid_t frozen = frozen_;
  frozen_ = 0;  // killed by the restart
  const pid_t after = qemu_pid_of("web-1", dir_.path());
  EXPECT_GT(after, 0);
  EXPECT_NE(after, frozen);
  // The other guest was left alone.
  EXPECT_EQ(count("select count(*) from decisions where vm = '" + std::string(kDb) +
                  "' and outcome != 'suppressed'"),
            0);
  EXPECT_EQ(engine->terminate(), 0);
  EXPECT_EQ(agent->terminate(), 0);
  EXPECT_EQ(qemu_pid_of("web-1", dir_.path()), 0) << "QEMU outlived the agent";
}

// A guest that lacks something (docs/guests.md): web-1 alone, broken by its
// own /init at a wall-clock moment (medic.fault=KIND@EPOCH, once), under the
// shipped rules. Neither fault is seen by QEMU, so only the heartbeats'
// absence tells: guest-unresponsive sends a reboot, which the test guest
// ignores (no ACPI power-button handler), then a reset after heal_within.
// The figures (fault -> first action dispatched, -> reset dispatched, ->
// the actuator saw it beating) go to bench/qemu_e2e.sh as E2E_TIMING lines.
class QemuFault : public QemuAgent {
 protected:
  void run_fault(const std::string& kind, bool pvpanic) {
    const int64_t at = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count() +
                       kLead;
    std::string vm =
        guest_vm_yaml("web-1", kWeb, "web", " medic.fault=" + kind + "@" + std::to_string(at)) +
        "    labels: {tier: web}\n";
    if (!pvpanic) vm = replace_all(vm, "devices: [pvpanic, i6300esb]", "devices: [i6300esb]");
    dir_.write("qemu-vms.yaml", "vms:\n" + vm);
    auto engine = daemon("engine", "engine.log");
    auto agent = daemon("agent", "agent.log");
    ASSERT_TRUE(engine && agent);
    std::string h;
    ASSERT_TRUE(testing::wait_until(
        [&] { return (h = hosts()).find(std::string(kWeb) + "  running") != std::string::npos; },
        std::chrono::seconds(kLead)))
        << "web-1 was not running before its fault:\n"
        << h;
    const std::string rows =
        "select min(t.at_ns) from decisions d join transitions t on "
        "t.action_id = d.action_id where d.rule = 'guest-unresponsive' and "
        "d.vm = '" +
        std::string(kWeb) + "' ";
    long long healed = 0;
    ASSERT_TRUE(testing::wait_until(
        [&] {
          healed = count(rows +
                         "and d.verb = 'reset' and t.state = 'succeeded' and t.detail = "
                         "'executed; the actuator saw the VM healthy'");
          return healed > 0;
        },
        std::chrono::seconds(kLead + 300)))
        << "the reset did not heal web-1";
    const long long first = count(rows + "and d.verb = 'reboot' and t.state = 'dispatched'");
    const long long reset = count(rows + "and d.verb = 'reset' and t.state = 'dispatched'");
    ASSERT_GT(first, 0) << "no reboot first";
    const long long fault_ns = at * 1'000'000'000LL;
    EXPECT_GT(first, fault_ns + 25'000'000'000LL) << "acted before the 30 s absence";
    EXPECT_GT(reset, first);
    const std::string tag = kind + (pvpanic ? "" : "_without_pvpanic");
    report_timing("fault_" + tag + "_to_reboot_dispatched",
                  std::chrono::nanoseconds(first - fault_ns));
    report_timing("fault_" + tag + "_to_reset_dispatched",
                  std::chrono::nanoseconds(reset - fault_ns));
    report_timing("fault_" + tag + "_to_beating", std::chrono::nanoseconds(healed - fault_ns));
    // The guest said when it broke (a reset keeps QEMU, and its console log).
    const std::string console = testing::read_file(dir_.file("web-console.log")) +
                                testing::read_file(dir_.file("web-console.log.1"));
    EXPECT_NE(console.find("init: fault " + kind + " now"), std::string::npos) << console;
    EXPECT_EQ(engine->terminate(), 0);
    EXPECT_EQ(agent->terminate(), 0);
  }
  static constexpr int64_t kLead = 75;  // s from writing the spec to the fault
};

TEST_F(QemuFault, APanicWithoutPvpanicIsHealedByTheHangLadderAfterAnIgnoredReboot) {
  run_fault("panic", false);
}

TEST_F(QemuFault, AHungGuestWithoutAnAcpiHandlerIgnoresTheRebootAndIsReset) {
  run_fault("hang", true);
}

// `medic vm stop` of a real guest: QEMU ends, the guest stays stopped while
// the agent restarts (its stop is kept in the agent's state directory, beside
// the journal) and the other guest is started again; `medic vm start` brings
// it back, beating.
TEST_F(QemuAgent, AGuestAnOperatorStoppedStaysStoppedAcrossAnAgentRestartUntilStarted) {
  auto engine = daemon("engine", "engine.log");
  auto agent = daemon("agent", "agent.log");
  ASSERT_TRUE(engine && agent);
  std::string h;
  ASSERT_TRUE(testing::wait_until([&] { return both_running(h = hosts()); }, 180s)) << h;

  auto stop = operator_cli(
      {"vm", "stop", "db-1", "--reason", "disk swap", "--wait", "--wait-for", "60s"}, 90s);
  ASSERT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  EXPECT_NE(stop.out.find("VM db-1 is stopped"), std::string::npos) << stop.out;
  EXPECT_EQ(qemu_pid_of("db-1", dir_.path()), 0) << "QEMU still runs after the stop";

  EXPECT_EQ(agent->terminate(), 0);
  agent = daemon("agent", "agent2.log");
  ASSERT_TRUE(agent);
  // web-1 comes back (desired running); db-1 is reported stopped, meant to be.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        h = hosts();
        return h.find(std::string(kWeb) + "  running") != std::string::npos &&
               h.find(std::string(kDb) + "  stopped") != std::string::npos;
      },
      180s))
      << h;
  EXPECT_NE(h.find("desired=stopped"), std::string::npos) << h;
  EXPECT_EQ(qemu_pid_of("db-1", dir_.path()), 0) << "the restarted agent started db-1";
  EXPECT_NE(testing::read_file(dir_.file("agent2.log")).find("qmp: db-1: stopped on purpose"),
            std::string::npos);

  auto start = operator_cli(
      {"vm", "start", "db-1", "--reason", "disk swapped", "--wait", "--wait-for", "150s"}, 180s);
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;
  EXPECT_NE(start.out.find("VM db-1 is running"), std::string::npos) << start.out;
  EXPECT_GT(qemu_pid_of("db-1", dir_.path()), 0);
  // Two requests, each a decision of its own rule, with nothing else on db-1.
  EXPECT_EQ(count("select count(*) from decisions where vm = '" + std::string(kDb) +
                  "' and outcome = 'proposed' and rule in ('request:stop', 'request:start')"),
            2);
  EXPECT_EQ(count("select count(*) from decisions where vm = '" + std::string(kDb) +
                  "' and rule not like 'request:%' and outcome != 'suppressed'"),
            0);
  EXPECT_EQ(engine->terminate(), 0);
  EXPECT_EQ(agent->terminate(), 0);
}

// An orchestrator's clone through the whole path, on real QEMU: `medic
// request clone` (the example's orch key: host-a, template web) -> the
// engine's policies -> the agent's qmp backend, which makes the clone's
// directory and starts a QEMU of the template -> the guest beats -> healed;
// the engine lists the new VM running under its name; `medic request delete`
// ends that QEMU and removes the clone's directory.
TEST_F(QemuAgent, AnOrchestratorClonesATemplateThroughTheEngineAndDeletesIt) {
  std::string tmpl = guest_vm_yaml("web", "x", "tmpl", "");
  tmpl = tmpl.substr(0, tmpl.find("    uuid: x\n")) + tmpl.substr(tmpl.find("    memory"));
  dir_.write("templates.yaml", "templates:\n" + tmpl + "    labels: {tier: web}\n");
  std::string agent_yaml = testing::read_file(dir_.file("agent.yaml"));
  const std::string vms_line = "    vms: qemu-vms.yaml";
  ASSERT_NE(agent_yaml.find(vms_line), std::string::npos) << agent_yaml;
  agent_yaml = replace_all(
      agent_yaml, vms_line,
      vms_line + "\n    templates: templates.yaml\n    clone_dir: " + dir_.file("clones"));
  dir_.write("agent.yaml", agent_yaml);
  auto engine = daemon("engine", "engine.log");
  auto agent = daemon("agent", "agent.log");
  ASSERT_TRUE(engine && agent);
  std::string h;
  ASSERT_TRUE(testing::wait_until([&] { return both_running(h = hosts()); }, 180s)) << h;

  const std::string orch = dir_.file("orch.key");
  auto made =
      operator_cli({"request", "clone", "--template", "web", "--host", "host-a", "--name", "web-2",
                    "--reason", "scale out", "--key", orch, "--wait", "--timeout", "150s"},
                   180s);
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  EXPECT_NE(made.out.find(": healed: "), std::string::npos) << made.out;
  const size_t at = made.out.find("VM ");
  ASSERT_NE(at, std::string::npos) << made.out;
  const std::string id = made.out.substr(at + 3, 36);
  EXPECT_GT(qemu_pid_of("web-2", dir_.path()), 0) << "no QEMU for the clone";
  EXPECT_TRUE(std::filesystem::exists(dir_.file("clones/web-2/vm.yaml")));
  ASSERT_TRUE(testing::wait_until(
      [&] { return (h = hosts()).find(id + "  running") != std::string::npos; }, 60s))
      << h;
  EXPECT_EQ(count("select count(*) from decisions where vm = '" + id +
                  "' and rule = 'request:clone' and verb = 'clone' and outcome = 'proposed'"),
            1);

  auto gone = operator_cli({"request", "delete", "--vm", "web-2", "--reason", "scale in", "--key",
                            orch, "--wait", "--timeout", "60s"},
                           90s);
  ASSERT_EQ(gone.exit_code, 0) << gone.out << gone.err;
  EXPECT_NE(gone.out.find("the actuator saw the VM gone"), std::string::npos) << gone.out;
  EXPECT_EQ(qemu_pid_of("web-2", dir_.path()), 0) << "the clone's QEMU still runs";
  EXPECT_FALSE(std::filesystem::exists(dir_.file("clones/web-2")));
  EXPECT_EQ(engine->terminate(), 0);
  EXPECT_EQ(agent->terminate(), 0);
}

}  // namespace
}  // namespace medic::vmm::qmp::e2e
