// `medic engine|agent|collector|actuator --check` as an operator runs it, on
// the shipped examples with keys made by scripts/make-example-keys and on
// broken copies of them; the daemons' exit code for a configuration error;
// and SIGHUP picking up a rule file added to the engine's rules/ glob.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "tests/testing/daemon.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using testing::medic_binary;
using testing::read_file;
using testing::replace_all;
using testing::write_file;
using testing::run_command;
using testing::source_dir;
namespace fs = std::filesystem;

// "LINE:COL" (1-based) of the first `needle` in `text`.
std::string position(const std::string& text, const std::string& needle) {
  const size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  const size_t line_start = text.rfind('\n', at) + 1;  // npos + 1 == 0
  const long line = 1 + std::count(text.begin(), text.begin() + at, '\n');
  return std::to_string(line) + ":" + std::to_string(at - line_start + 1);
}

std::set<std::string> files_under(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(e.path().string());
  return out;
}

bool can_bind(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

// A directory made as a user would: scripts/make-example-keys, plus copies of
// the QEMU and SmartOS agent examples adjusted the way the script adjusts
// agent.yaml (the made engine key, state paths under the directory).
class ConfigCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.file("run");
    ::setenv("MEDIC", medic_binary().c_str(), 1);
    auto made = run_command({source_dir() + "/scripts/make-example-keys", dir_}, 30s);
    ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(made.out, m, std::regex("engine-1 +([0-9a-f]{64})")));
    engine_key_ = m[1];
    const std::string shipped = read_file(example("agent.yaml"));
    ASSERT_TRUE(std::regex_search(shipped, m, std::regex("engine_key: *([0-9a-f]{64})")));
    const std::string old_key = m[1];
    auto cn07 = run_command({medic_binary(), "keygen", "-o", dir_ + "/cn-07.key"});
    ASSERT_EQ(cn07.exit_code, 0) << cn07.err;
    std::string qemu = replace_all(read_file(example("agent-qemu.yaml")), old_key, engine_key_);
    write_file(dir_ + "/agent-qemu.yaml", replace_all(qemu, "/var/lib/medic/", dir_ + "/"));
    fs::copy_file(example("qemu-vms.yaml"), dir_ + "/qemu-vms.yaml");
    std::string smartos =
        replace_all(read_file(example("agent-smartos.yaml")), old_key, engine_key_);
    write_file(dir_ + "/agent-smartos.yaml", replace_all(smartos, "/var/medic/", dir_ + "/"));
  }

  static std::string example(const std::string& name) { return source_dir() + "/examples/" + name; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  testing::CommandResult check(const std::string& sub, const std::string& file) {
    return run_command({medic_binary(), sub, "--check", "-c", path(file)}, 30s);
  }

  // --check refuses `file` with exit 1 and says `expected` on stderr.
  void expect_refused(const std::string& sub, const std::string& file,
                      const std::string& expected) {
    auto r = check(sub, file);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << "wanted: " << expected << "\n" << r.err;
    EXPECT_NE(r.err.find("config check failed: "), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("config OK"), std::string::npos) << r.out;
  }

  testing::TempDir tmp_;
  std::string dir_;
  std::string engine_key_;
  std::string control_;  // the engine's control endpoint, once a test sets ports
};

TEST_F(ConfigCheck, EveryShippedExampleConfigPassesAndNothingIsCreated) {
  const auto before = files_under(dir_);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"engine", "engine.yaml"},       {"agent", "agent.yaml"},     {"agent", "agent-qemu.yaml"},
      {"agent", "agent-smartos.yaml"}, {"collector", "agent.yaml"}, {"actuator", "agent.yaml"},
      {"agent", "agent-host-b.yaml"}};
  for (const auto& [sub, file] : cases) {
    auto r = check(sub, file);
    EXPECT_EQ(r.exit_code, 0) << sub << " " << file << ":\n" << r.out << r.err;
    EXPECT_EQ(r.out.rfind("config OK: " + path(file) + ": ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line:\n" << r.out;
  }
  EXPECT_NE(check("engine", "engine.yaml").out.find("audit log directory " + dir_ + " writable"),
            std::string::npos);
  EXPECT_NE(check("agent", "agent-qemu.yaml").out.find("backend qmp"), std::string::npos);
  EXPECT_NE(check("agent", "agent-smartos.yaml").out.find("backend vmadm"), std::string::npos);
  // No audit log, journal or socket file appeared.
  EXPECT_EQ(files_under(dir_), before);
}

TEST_F(ConfigCheck, ATypoedKeyIsReportedAtItsPosition) {
  const std::string text = read_file(path("engine.yaml"));
  write_file(path("engine.yaml"), replace_all(text, "  action_ttl:", "  action_tll:"));
  expect_refused("engine", "engine.yaml",
                 path("engine.yaml") + ":" + position(text, "action_ttl") +
                     ": error: unknown key \"action_tll\"");
}

TEST_F(ConfigCheck, AMissingKeyFileIsReportedByItsPathWithTheOtherProblems) {
  fs::remove(path("engine.key"));
  write_file(path("rules/broken.rules.yaml"),
             "rules:\n  - name: broken\n    on: vm.no_such_event\n    do: reset\n");
  expect_refused("engine", "engine.yaml", path("engine.key") + ": key file does not exist");
  expect_refused("engine", "engine.yaml", path("rules/broken.rules.yaml") + ":3:");
  expect_refused("engine", "engine.yaml", "config check failed: 2 problems");
}

TEST_F(ConfigCheck, ABadRuleFileIsReportedAtItsPosition) {
  write_file(path("rules/broken.rules.yaml"),
             "rules:\n  - name: broken\n    on: vm.panicked\n    where: vm.state ==\n"
             "    do: reset\n");
  expect_refused("engine", "engine.yaml", path("rules/broken.rules.yaml") + ":4:");
}

TEST_F(ConfigCheck, ABadEndpointIsReportedAtItsPosition) {
  const std::string text = read_file(path("agent.yaml"));
  write_file(path("agent.yaml"), replace_all(text, "tcp://127.0.0.1:7701", "tcp://127.0.0.1:77O1"));
  expect_refused("agent", "agent.yaml",
                 path("agent.yaml") + ":" + position(text, "tcp://127.0.0.1:7701") +
                     ": error: \"events\": bad endpoint \"tcp://127.0.0.1:77O1\"");
  expect_refused("collector", "agent.yaml", "bad endpoint");
}

TEST_F(ConfigCheck, AMissingVmSpecFileIsReportedByItsPath) {
  fs::remove(path("qemu-vms.yaml"));
  expect_refused("agent", "agent-qemu.yaml", path("qemu-vms.yaml"));
}

TEST_F(ConfigCheck, CheckBindsNothingWhileTheDaemonBindsAndCreatesItsAuditLog) {
  std::string engine =
      replace_all(read_file(path("engine.yaml")), "tcp://0.0.0.0:", "tcp://127.0.0.1:");
  std::vector<int> ports;
  for (const char* port : {"7701", "7702", "7703", "7704"}) {
    ports.push_back(testing::free_port());
    engine = replace_all(engine, std::string(":") + port, ":" + std::to_string(ports.back()));
  }
  write_file(path("engine.yaml"), engine);
  auto r = check("engine", "engine.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(fs::exists(path("audit.db")));
  for (int p : ports) EXPECT_TRUE(can_bind(p)) << p;
  // The control: the daemon itself binds them and creates the log.
  testing::Daemon e({medic_binary(), "engine", "-c", path("engine.yaml")}, path("engine.log"));
  ASSERT_TRUE(e.start().ok());
  EXPECT_TRUE(testing::wait_until(
      [&] { return (fs::exists(path("audit.db")) && !can_bind(ports[3])) || !e.running(); }, 15s))
      << read_file(e.log());
  EXPECT_FALSE(can_bind(ports[0]));
  EXPECT_EQ(e.terminate(), 0) << read_file(e.log());
}

TEST_F(ConfigCheck, ADaemonWithAConfigErrorExits78AndAUsageErrorExits2) {
  const std::string text = read_file(path("engine.yaml"));
  write_file(path("engine.yaml"), replace_all(text, "  action_ttl:", "  action_tll:"));
  auto e = run_command({medic_binary(), "engine", "-c", path("engine.yaml")}, 30s);
  EXPECT_EQ(e.exit_code, 78) << e.err;
  EXPECT_NE(e.err.find("medic engine: " + path("engine.yaml") + ":"), std::string::npos) << e.err;
  EXPECT_NE(e.err.find("configuration error"), std::string::npos) << e.err;
  EXPECT_FALSE(fs::exists(path("audit.db")));
  fs::remove(path("host-a.key"));
  auto a = run_command({medic_binary(), "agent", "-c", path("agent.yaml")}, 30s);
  EXPECT_EQ(a.exit_code, 78) << a.err;
  EXPECT_NE(a.err.find(path("host-a.key") + ": key file does not exist"), std::string::npos)
      << a.err;
  EXPECT_EQ(run_command({medic_binary(), "engine", "--check"}).exit_code, 2);
  EXPECT_EQ(run_command({medic_binary(), "agent"}).exit_code, 2);
}

// systemd's RestartPreventExitStatus= sees only the main process, so the
// units rely on the daemons' own exit 78, and reload checks before SIGHUP.
TEST(ShippedUnits, StopRestartingOnTheConfigErrorExitCode) {
  for (const std::string unit : {"medic-engine.service", "medic-agent.service"}) {
    const std::string text = read_file(source_dir() + "/examples/systemd/" + unit);
    EXPECT_NE(text.find("\nRestartPreventExitStatus=78\n"), std::string::npos) << unit;
    EXPECT_NE(text.find("\nRestart=on-failure\n"), std::string::npos) << unit;
  }
  const std::string engine = read_file(source_dir() + "/examples/systemd/medic-engine.service");
  const std::string check =
      "\nExecReload=/usr/local/bin/medic engine --check -c /etc/medic/engine.yaml\n";
  ASSERT_NE(engine.find(check), std::string::npos);
  EXPECT_LT(engine.find(check), engine.find("\nExecReload=/bin/kill -HUP $MAINPID\n"));
  const std::string smf = read_file(source_dir() + "/examples/smf/medic-agent.xml");
  EXPECT_NE(smf.find("medic agent --check -c %{config/file} || exit 96; "), std::string::npos);
}

const char* kRuleInForce =
    "rules:\n"
    "  - name: in-force-at-start\n"
    "    on: vm.crashed\n"
    "    where: vm.labels.tier == \"no-such-tier\"\n"
    "    do: restart\n";
const char* kRuleAdded =
    "rules:\n"
    "  - name: added-later\n"
    "    on: vm.crashed\n"
    "    do: restart\n";

// The shipped engine.yaml globs rules/*.rules.yaml. A file added there is
// used after SIGHUP, not before; a removed one is reported as removed.
TEST_F(ConfigCheck, SighupPicksUpARuleFileAddedToTheGlob) {
  std::string engine =
      replace_all(read_file(path("engine.yaml")), "tcp://0.0.0.0:", "tcp://127.0.0.1:");
  std::string agent = read_file(path("agent.yaml"));
  for (const char* port : {"7701", "7702", "7703", "7704"}) {
    const std::string to = ":" + std::to_string(testing::free_port());
    if (std::string(port) == "7704") control_ = "tcp://127.0.0.1" + to;
    engine = replace_all(engine, std::string(":") + port, to);
    if (std::string(port) != "7704") agent = replace_all(agent, std::string(":") + port, to);
  }
  agent = replace_all(agent, "faults_per_hour: 12", "faults_per_hour: 36000");
  agent = replace_all(agent, "{hang: 3, panic: 2, crash: 2, soft_hang: 1}", "{crash: 1}");
  write_file(path("engine.yaml"), engine);
  write_file(path("agent.yaml"), agent);
  for (const auto& f : fs::directory_iterator(path("rules"))) fs::remove(f.path());
  write_file(path("rules/a.rules.yaml"), kRuleInForce);

  testing::Daemon e({medic_binary(), "engine", "-c", path("engine.yaml")}, path("engine.log"));
  testing::Daemon a({medic_binary(), "agent", "-c", path("agent.yaml")}, path("agent.log"));
  ASSERT_TRUE(e.start().ok());
  ASSERT_TRUE(a.start().ok());
  const std::string db = path("audit.db");
  auto added_decisions = [&] {
    return testing::query_number(db, "select count(*) from decisions where rule = 'added-later'");
  };
  // Batches the engine has taken in, from `medic status` with the operator key.
  auto batches = [&]() -> long {
    auto st =
        run_command({medic_binary(), "status", "--engine", control_, "--engine-key", engine_key_,
                     "--key", path("operator.key"), "--trust", path("trust.yaml")},
                    15s);
    std::smatch m;
    if (!std::regex_search(st.out, m, std::regex("counters: ([0-9]+) batches"))) return -1;
    return std::stol(m[1]);
  };
  ASSERT_TRUE(testing::wait_until(
      [&] { return read_file(e.log()).find("engine engine-1 up") != std::string::npos; }, 15s))
      << read_file(e.log());
  // The file lands in the glob; without SIGHUP the engine does not use it,
  // though crash reports keep arriving (a batch a second, crashes every 0.1 s).
  write_file(path("rules/b.rules.yaml"), kRuleAdded);
  ASSERT_TRUE(testing::wait_until([&] { return batches() >= 5 || !e.running(); }, 20s))
      << read_file(e.log()) << read_file(a.log());
  ASSERT_TRUE(e.running()) << read_file(e.log());
  EXPECT_LE(added_decisions(), 0);

  e.signal(SIGHUP);
  const std::string added_line =
      "engine: rules reloaded (2 files; added " + path("rules/b.rules.yaml") + ")";
  EXPECT_TRUE(testing::wait_until(
      [&] { return read_file(e.log()).find(added_line) != std::string::npos; }, 10s))
      << read_file(e.log());
  EXPECT_TRUE(testing::wait_until([&] { return added_decisions() >= 1 || !e.running(); }, 30s))
      << read_file(e.log()) << read_file(a.log());
  EXPECT_GE(added_decisions(), 1);

  // A broken file is refused and changes nothing; once it is gone, the
  // removal of b is reported against the rules in force.
  fs::remove(path("rules/b.rules.yaml"));
  write_file(path("rules/c.rules.yaml"), "rules:\n  - name: c\n    on: vm.no_such_event\n");
  e.signal(SIGHUP);
  EXPECT_TRUE(testing::wait_until(
      [&] { return read_file(e.log()).find("engine: reload refused") != std::string::npos; }, 10s))
      << read_file(e.log());
  fs::remove(path("rules/c.rules.yaml"));
  e.signal(SIGHUP);
  const std::string removed_line =
      "engine: rules reloaded (1 file; removed " + path("rules/b.rules.yaml") + ")";
  EXPECT_TRUE(testing::wait_until(
      [&] { return read_file(e.log()).find(removed_line) != std::string::npos; }, 10s))
      << read_file(e.log());
  EXPECT_EQ(a.terminate(), 0) << read_file(a.log());
  EXPECT_EQ(e.terminate(), 0) << read_file(e.log());
}

}  // namespace
}  // namespace medic
