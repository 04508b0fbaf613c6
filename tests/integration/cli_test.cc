// The medic binary as a user meets it: --help, --version, keygen.
#include <gtest/gtest.h>
#include <sys/stat.h>

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
                          "approve", "deny", "silence", "status", "keygen"}) {
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

}  // namespace
}  // namespace medic
