#include "vmm/qmp/console_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/testing/testing.h"

namespace medic::vmm::qmp {
namespace {

namespace fs = std::filesystem;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

TEST(ConsoleLog, RotatesEachBootsLogAndKeepsOnlyTheNewestOnes) {
  testing::TempDir dir;
  const std::string path = dir.file("vm.console");
  ConsoleLog log(path, 2, 1 << 20);
  ASSERT_OK(log.rotate());  // nothing yet: nothing to keep
  EXPECT_FALSE(fs::exists(path + ".1"));
  for (const char* boot : {"boot 1: panic", "boot 2", "boot 3"}) {
    write(path, boot);
    ASSERT_OK(log.rotate());
    EXPECT_FALSE(fs::exists(path)) << "the new boot starts a fresh file";
  }
  EXPECT_EQ(read(path + ".1"), "boot 3");
  EXPECT_EQ(read(path + ".2"), "boot 2");
  EXPECT_FALSE(fs::exists(path + ".3")) << "more than console_keep earlier boots kept";
  // An empty log (a QEMU that wrote nothing) does not push the others out.
  write(path, "");
  ASSERT_OK(log.rotate());
  EXPECT_EQ(read(path + ".1"), "boot 3");
}

TEST(ConsoleLog, TrimsAnOversizedLogOfARunningGuestIntoTheRotationAndCutsItToZero) {
  testing::TempDir dir;
  const std::string path = dir.file("vm.console");
  ConsoleLog log(path, 3, 16);
  write(path, "0123456789abcdef");  // exactly the bound: kept as it is
  auto t = log.trim();
  ASSERT_OK(t);
  EXPECT_FALSE(*t);
  EXPECT_EQ(fs::file_size(path), 16u);
  // A writer that appends, as QEMU does (append=on).
  std::ofstream qemu(path, std::ios::app);
  qemu << "X" << std::flush;
  t = log.trim();
  ASSERT_OK(t);
  EXPECT_TRUE(*t);
  EXPECT_EQ(read(path + ".1"), "0123456789abcdefX");
  EXPECT_EQ(fs::file_size(path), 0u);
  qemu << "after" << std::flush;  // the writer carries on at the start
  EXPECT_EQ(read(path), "after");
}

TEST(ConsoleLog, KeepsNothingWhenAskedToKeepNone) {
  testing::TempDir dir;
  const std::string path = dir.file("vm.console");
  ConsoleLog log(path, 0, 4);
  write(path, "old boot");
  ASSERT_OK(log.rotate());
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".1"));
  write(path, "too long");
  auto t = log.trim();
  ASSERT_OK(t);
  EXPECT_TRUE(*t);
  EXPECT_EQ(fs::file_size(path), 0u);
  EXPECT_FALSE(fs::exists(path + ".1"));
}

}  // namespace
}  // namespace medic::vmm::qmp
