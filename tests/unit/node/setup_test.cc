// What `medic engine|agent --check` and the daemons' start share: one pass
// that reports every problem and creates nothing.
#include "node/setup.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/testing/testing.h"

namespace medic::node {
namespace {

namespace fs = std::filesystem;

const char* kRule =
    "rules:\n"
    "  - name: guest-crashed\n"
    "    on: vm.crashed\n"
    "    do: restart\n";

class SetupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(engine_.save(dir_.file("engine.key")).ok());
    ASSERT_TRUE(host_.save(dir_.file("host-a.key")).ok());
    dir_.write("trust.yaml", "nodes:\n  - name: engine-1\n    key: " + engine_.id() +
                                 "\n    roles: [engine]\n  - name: host-a\n    key: " + host_.id() +
                                 "\n    roles: [collector, actuator]\n");
    fs::create_directory(dir_.file("rules"));
    dir_.write("rules/a.rules.yaml", kRule);
  }

  std::string engine_yaml(const std::string& audit_path = "audit.db") {
    return dir_.write("engine.yaml",
                      "engine:\n"
                      "  name: engine-1\n"
                      "  key: engine.key\n"
                      "  trust: trust.yaml\n"
                      "  listen: {events: tcp://127.0.0.1:7701, urgent: tcp://127.0.0.1:7702,"
                      " actions: tcp://127.0.0.1:7703, control: tcp://127.0.0.1:7704}\n"
                      "  rules: [rules/*.rules.yaml]\n"
                      "  audit: {path: " +
                          audit_path + "}\n");
  }

  // The arguments replace the working defaults.
  std::string agent_yaml(const std::string& backend = "{kind: sim, vms_per_host: 2}",
                         std::string engine_key = "",
                         const std::string& engine = "tcp://127.0.0.1:7703") {
    if (engine_key.empty()) engine_key = engine_.id();
    return dir_.write("agent.yaml",
                      "collector:\n"
                      "  host: host-a\n"
                      "  key: host-a.key\n"
                      "  trust: trust.yaml\n"
                      "  backend: " +
                          backend +
                          "\n"
                          "  engines:\n"
                          "    - {name: engine-1, key: " +
                          engine_.id() +
                          ", events: 'tcp://127.0.0.1:7701', urgent: 'tcp://127.0.0.1:7702'}\n"
                          "actuator:\n"
                          "  host: host-a\n"
                          "  engine: " +
                          engine +
                          "\n"
                          "  engine_key: " +
                          engine_key +
                          "\n"
                          "  key_file: host-a.key\n"
                          "  trust_store: trust.yaml\n"
                          "  journal: host-a.journal.db\n");
  }

  testing::TempDir dir_;
  fabric::Identity engine_ = fabric::Identity::generate();
  fabric::Identity host_ = fabric::Identity::generate();
  VirtualClock clock_;
};

std::string all(const SetupReport& r) {
  std::string out;
  for (const auto& p : r.problems) out += p + "\n";
  return out;
}

TEST_F(SetupTest, AGoodEngineConfigLoadsEverythingAndCreatesNoAuditLog) {
  EngineSetup s = load_engine_setup(engine_yaml());
  ASSERT_TRUE(s.report.ok()) << all(s.report);
  EXPECT_TRUE(s.identity.has_value());
  ASSERT_TRUE(s.trust.has_value());
  EXPECT_EQ(s.trust->size(), 2u);
  EXPECT_NE(s.rules, nullptr);
  EXPECT_EQ(s.rule_files, (std::vector<std::string>{dir_.file("rules/a.rules.yaml")}));
  EXPECT_EQ(s.report.ok_line("engine.yaml"),
            "config OK: engine.yaml: engine engine-1 (4 endpoints), key " +
                dir_.file("engine.key") + ", trust store " + dir_.file("trust.yaml") +
                " (2 nodes), 1 rule file, audit log directory " + dir_.path() + " writable");
  EXPECT_FALSE(fs::exists(dir_.file("audit.db")));
  EXPECT_FALSE(fs::exists(dir_.file("audit.db-wal")));
}

TEST_F(SetupTest, AnEngineSetupReportsEveryProblemInOnePass) {
  fs::remove(dir_.file("engine.key"));
  dir_.write("trust.yaml", "nodes: [\n");
  dir_.write("rules/b.rules.yaml", "rules:\n  - name: x\n    on: vm.nosuchevent\n    do: reset\n");
  EngineSetup s = load_engine_setup(engine_yaml("missing-dir/audit.db"));
  ASSERT_EQ(s.report.problems.size(), 4u) << all(s.report);
  EXPECT_EQ(s.report.problems[0], dir_.file("engine.key") + ": key file does not exist");
  EXPECT_EQ(s.report.problems[1].rfind(dir_.file("trust.yaml") + ":", 0), 0u) << all(s.report);
  EXPECT_EQ(s.report.problems[2].rfind(dir_.file("rules/b.rules.yaml") + ":3:9: error:", 0), 0u)
      << all(s.report);
  EXPECT_EQ(s.report.problems[3], "audit log " + dir_.file("missing-dir/audit.db") +
                                      ": directory " + dir_.file("missing-dir") +
                                      " does not exist");
  EXPECT_EQ(s.rules, nullptr);
}

TEST_F(SetupTest, AnEngineConfigThatDoesNotLoadIsReportedLineByLine) {
  std::string p = dir_.write("engine.yaml", "engine:\n  colour: blue\n  shape: round\n");
  EngineSetup s = load_engine_setup(p);
  ASSERT_FALSE(s.report.ok());
  EXPECT_EQ(s.report.problems[0].rfind(p + ":2:3: error: unknown key \"colour\"", 0), 0u)
      << all(s.report);
  EXPECT_EQ(s.report.problems[1].rfind(p + ":3:3: error: unknown key \"shape\"", 0), 0u)
      << all(s.report);
}

TEST_F(SetupTest, AGoodSimAgentBuildsItsBackendWithoutAJournal) {
  AgentSetup s = load_agent_setup(agent_yaml(), true, true, clock_);
  ASSERT_TRUE(s.report.ok()) << all(s.report);
  ASSERT_NE(s.backend.hypervisor, nullptr);
  EXPECT_EQ(s.backend.hypervisor->host(), "host-a");
  EXPECT_EQ(s.report.ok_line("agent.yaml"),
            "config OK: agent.yaml: agent host-a (collector + actuator), key " +
                dir_.file("host-a.key") + ", trust store " + dir_.file("trust.yaml") +
                " (2 nodes), 3 endpoints, backend sim, actuator journal directory " + dir_.path() +
                " writable");
  EXPECT_FALSE(fs::exists(dir_.file("host-a.journal.db")));
}

TEST_F(SetupTest, AnAgentWhoseEngineKeyIsNotTrustedIsRefusedAtThatKey) {
  const std::string stranger = fabric::Identity::generate().id();
  std::string p = agent_yaml("{kind: sim, vms_per_host: 2}", stranger);
  AgentSetup s = load_agent_setup(p, true, true, clock_);
  ASSERT_EQ(s.report.problems.size(), 1u) << all(s.report);
  EXPECT_EQ(s.report.problems[0].rfind(p + ":11:15: error: the engine key " +
                                           stranger.substr(0, 16) + " is not in the trust store",
                                       0),
            0u)
      << all(s.report);
  // The collector alone does not take actions, so it does not need that key.
  EXPECT_TRUE(load_agent_setup(p, true, false, clock_).report.ok());
}

TEST_F(SetupTest, AQmpAgentWithAMissingVmSpecFileNamesThatFile) {
  std::string p = agent_yaml("{kind: qmp, vms: vms.yaml}");
  AgentSetup s = load_agent_setup(p, true, true, clock_);
  ASSERT_EQ(s.report.problems.size(), 1u) << all(s.report);
  EXPECT_NE(s.report.problems[0].find(dir_.file("vms.yaml")), std::string::npos) << all(s.report);
  EXPECT_EQ(s.backend.hypervisor, nullptr);
}

TEST_F(SetupTest, AnAgentWithABadEndpointAndAMissingKeyReportsBoth) {
  fs::remove(dir_.file("host-a.key"));
  std::string p = agent_yaml("{kind: sim, vms_per_host: 2}", "", "tcp://127.0.0.1");
  AgentSetup s = load_agent_setup(p, true, true, clock_);
  ASSERT_EQ(s.report.problems.size(), 2u) << all(s.report);
  EXPECT_EQ(s.report.problems[0], dir_.file("host-a.key") + ": key file does not exist");
  EXPECT_EQ(s.report.problems[1],
            p + ":10:11: error: \"engine\": bad endpoint \"tcp://127.0.0.1\": no :PORT");
}

TEST(CheckWritableFile, NeedsAnExistingDirectoryAndARegularFile) {
  testing::TempDir dir;
  EXPECT_TRUE(check_writable_file(dir.file("new.db"), "audit log").ok());
  dir.write("existing.db", "");
  EXPECT_TRUE(check_writable_file(dir.file("existing.db"), "audit log").ok());
  Status missing = check_writable_file(dir.file("no/such/dir/x.db"), "audit log");
  EXPECT_EQ(missing.code(), Code::kNotFound);
  EXPECT_NE(missing.message().find("directory " + dir.file("no/such/dir") + " does not exist"),
            std::string::npos)
      << missing;
  dir.write("file", "");
  Status not_dir = check_writable_file(dir.file("file/x.db"), "audit log");
  EXPECT_NE(not_dir.message().find(dir.file("file") + " is not a directory"), std::string::npos)
      << not_dir;
  fs::create_directory(dir.file("sub.db"));
  Status is_dir = check_writable_file(dir.file("sub.db"), "actuator journal");
  EXPECT_EQ(is_dir.message(), "actuator journal " + dir.file("sub.db") + ": not a regular file");
}

}  // namespace
}  // namespace medic::node
