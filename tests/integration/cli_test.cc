// The medic binary as a user meets it: --help, --version, keygen.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "core/json.h"
#include "fabric/identity.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using testing::medic_binary;
using testing::run_command;

TEST(Cli, HelpListsEverySubcommandOfTheDesign) {
  auto r = run_command({medic_binary(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub : {"demo", "engine", "agent", "collector", "actuator", "rules", "audit",
                          "approve", "deny", "silence", "unsilence", "unfreeze", "status", "incidents",
                          "hosts", "inject", "keygen"}) {
    EXPECT_NE(r.out.find(std::string("  ") + sub + " "), std::string::npos) << sub;
  }
}

TEST(Cli, VersionPrintsTheProjectVersion) {
  auto r = run_command({medic_binary(), "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("medic ", 0), 0u) << r.out;
}

TEST(Cli, UnknownSubcommandIsAUsageError) {
  auto r = run_command({medic_binary(), "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  auto none = run_command({medic_binary()});
  EXPECT_EQ(none.exit_code, 2);
}

TEST(Cli, KeygenWritesAPrivateKeyFileAndPrintsItsId) {
  testing::TempDir dir;
  std::string path = dir.file("node.key");
  auto r = run_command({medic_binary(), "keygen", "-o", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto id = fabric::Identity::load(path);
  ASSERT_OK(id);
  EXPECT_EQ(r.out, id->id() + "\n");
}

TEST(Cli, KeygenJsonNamesTheKeyIdAndTheFile) {
  testing::TempDir dir;
  const std::string path = dir.file("k.key");
  auto r = run_command({medic_binary(), "keygen", "--json", "-o", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = parse_json(r.out);
  ASSERT_OK(j) << r.out;
  EXPECT_EQ((*j)["file"], path);
  auto id = fabric::Identity::load(path);
  ASSERT_OK(id);
  EXPECT_EQ((*j)["key_id"], id->id());
}

TEST(Cli, KeygenRefusesToOverwriteAndNeedsAnOutput) {
  testing::TempDir dir;
  std::string path = dir.write("node.key", "precious", 0600);
  auto r = run_command({medic_binary(), "keygen", "-o", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("refusing to overwrite"), std::string::npos) << r.err;
  auto missing = run_command({medic_binary(), "keygen"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("--output"), std::string::npos) << missing.err;
}

TEST(Cli, BadLogLevelIsAUsageError) {
  auto r = run_command({medic_binary(), "--log-level", "loud", "keygen", "-o", "/tmp/never"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("unknown log level"), std::string::npos);
}

TEST(Cli, DemoRefusesADirThatHoldsAnEarlierRunUnlessResumed) {
  testing::TempDir dir;
  dir.write("audit.db", "");
  auto r = run_command({medic_binary(), "demo", "--duration", "10s", "--dir", dir.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(dir.path() + " already holds a run (audit.db); pass --resume"),
            std::string::npos) << r.err;
  // A fresh directory runs, and its hints name the binary by its full path.
  testing::TempDir fresh;
  auto ok = run_command({medic_binary(), "demo", "--duration", "10s", "--hosts", "1", "--vms", "4",
                         "--dir", fresh.path()}, std::chrono::seconds(60));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const std::string medic = std::filesystem::canonical(medic_binary()).string();
  EXPECT_NE(ok.out.find("  " + medic + " audit verify --db " + fresh.path() + "/audit.db"),
            std::string::npos) << ok.out;
}

TEST(Cli, RulesCheckJsonGivesEachProblemWithItsPositionAndCode) {
  testing::TempDir dir;
  const std::string bad = dir.write("bad.rules.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: vm.panicked\n"
                                    "    do: reset\n"
                                    "    cooldwon: 5m\n");
  auto r = run_command({medic_binary(), "rules", "check", "--json", bad});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto j = parse_json(r.out);
  ASSERT_OK(j) << r.out;
  EXPECT_EQ((*j)["ok"], false);
  EXPECT_EQ((*j)["errors"], 1) << r.out;
  ASSERT_EQ((*j)["messages"].size(), 1u) << r.out;
  const Json& m = (*j)["messages"][0];
  EXPECT_EQ(m["file"], bad);
  EXPECT_EQ(m["line"], 5);
  EXPECT_EQ(m["col"], 5);
  EXPECT_EQ(m["severity"], "error");
  EXPECT_EQ(m["code"], "schema");
  EXPECT_NE(m["message"].get<std::string>().find("cooldwon"), std::string::npos) << r.out;
  // The shipped rules pass, with their count.
  const std::string good = testing::source_dir() + "/examples/rules/fleet.rules.yaml";
  auto ok = run_command({medic_binary(), "rules", "check", "--json", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  auto g = parse_json(ok.out);
  ASSERT_OK(g) << ok.out;
  EXPECT_EQ((*g)["ok"], true);
  EXPECT_GT((*g)["rules"].get<int>(), 0);
}

TEST(Cli, RulesTestJsonGivesEveryTestsVerdict) {
  const std::string tests = testing::source_dir() + "/examples/rules/fleet.test.yaml";
  auto r = run_command({medic_binary(), "rules", "test", "--json", tests});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = parse_json(r.out);
  ASSERT_OK(j) << r.out;
  EXPECT_EQ((*j)["ok"], true);
  ASSERT_GT((*j)["tests"].get<int>(), 0);
  ASSERT_EQ((*j)["results"].size(), (*j)["tests"].get<size_t>());
  EXPECT_EQ((*j)["results"][0]["passed"], true);
  EXPECT_EQ((*j)["results"][0]["file"], tests);
  EXPECT_FALSE((*j)["results"][0]["name"].get<std::string>().empty());
  // A test that fails says what was missing.
  testing::TempDir dir;
  dir.write("r.rules.yaml", "rules:\n  - {name: r1, on: vm.panicked, do: reset}\n");
  const std::string failing = dir.write("f.test.yaml",
                                        "rule_files: [r.rules.yaml]\n"
                                        "tests:\n"
                                        "  - name: expects a reboot that never comes\n"
                                        "    vms: {web-1: {host: h1}}\n"
                                        "    input:\n"
                                        "      - {at: 1s, vm: web-1, event: vm.panicked}\n"
                                        "    expect:\n"
                                        "      - {at: 1s, vm: web-1, step: reboot}\n");
  auto f = run_command({medic_binary(), "rules", "test", "--json", failing});
  EXPECT_EQ(f.exit_code, 1) << f.out;
  auto fj = parse_json(f.out);
  ASSERT_OK(fj) << f.out;
  EXPECT_EQ((*fj)["failed"], 1) << f.out;
  ASSERT_EQ((*fj)["results"].size(), 1u) << f.out;
  EXPECT_EQ((*fj)["results"][0]["missing"].size(), 1u) << f.out;
  EXPECT_EQ((*fj)["results"][0]["unexpected"].size(), 1u) << f.out;  // the reset
}

}  // namespace
}  // namespace medic
