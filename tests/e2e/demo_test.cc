// `medic demo` as a new user runs it: the simulated fleet, and with --qemu
// real guests. The summary must report healed faults, and the audit log it
// names must verify.
#include <gtest/gtest.h>

#include <regex>

#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

int summary_count(const std::string& out, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("  " + label + " +([0-9]+)"))) return -1;
  return std::stoi(m[1]);
}

void expect_audit_verifies(const std::string& dir) {
  auto v = testing::run_command({testing::medic_binary(), "audit", "verify", "--db", dir + "/audit.db"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST(Demo, SimulatedFleetHealsFaultsAndLeavesAVerifiableAuditLog) {
  testing::TempDir dir;
  auto r = testing::run_command({testing::medic_binary(), "demo", "--duration", "30s", "--dir",
                                 dir.path()},
                                90s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Summary after"), std::string::npos) << r.out;
  EXPECT_GE(summary_count(r.out, "healed"), 3) << r.out;
  EXPECT_GE(summary_count(r.out, "actions dispatched"), 3) << r.out;
  EXPECT_NE(r.out.find("by host-silent"), std::string::npos) << "the partition is held back";
  EXPECT_NE(r.out.find("medic audit why --db " + dir.path() + "/audit.db"), std::string::npos);
  expect_audit_verifies(dir.path());
}

TEST(Demo, RealQemuGuestsAreHealedAfterPanicHangAndCrash) {
  testing::TempDir dir;
  auto r = testing::run_command({testing::medic_binary(), "demo", "--qemu", "--duration", "60s",
                                 "--dir", dir.path()},
                                300s);
  if (r.exit_code == 2 && r.err.find("cannot build the test guest") != std::string::npos) {
    FAIL() << "no QEMU guest here (scripts/bootstrap installs QEMU): " << r.err;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(summary_count(r.out, "faults injected"), 3) << r.out;
  EXPECT_GE(summary_count(r.out, "healed"), 2) << r.out;
  EXPECT_NE(r.out.find("HEALED      qemu-vm-1"), std::string::npos) << r.out;
  expect_audit_verifies(dir.path());
}

}  // namespace
}  // namespace medic
