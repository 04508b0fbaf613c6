// The medic binary as a user meets it: --help, --version, keygen.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

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

}  // namespace
}  // namespace medic
