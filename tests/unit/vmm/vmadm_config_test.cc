// Reading the vmadm backend's options from a config file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "vmm/vmadm/vmadm.h"
#include "tests/testing/testing.h"

namespace medic::vmm::vmadm {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

VmadmOptions read(const std::string& yaml, ConfigReader& r) {
  auto node = load_yaml_string(yaml, "agent.yaml");
  EXPECT_OK(node);
  return read_vmadm_options(r, *node);
}

TEST(VmadmConfig, ReadsEveryOption) {
  ConfigReader r("agent.yaml");
  VmadmOptions o = read(
      "host: cn-07\nvmadm_path: /usr/vm/sbin/vmadm\nzones_root: /zones2\nlist_timeout: 10s\n"
      "list_interval: 5s\nmax_output_bytes: 2048\nforce_stop: false\n",
      r);
  ASSERT_OK(r);
  EXPECT_EQ(o.host, "cn-07");
  EXPECT_EQ(o.vmadm_path, "/usr/vm/sbin/vmadm");
  EXPECT_EQ(o.zones_root, "/zones2");
  EXPECT_EQ(o.list_timeout, Duration(10s));
  EXPECT_EQ(o.list_interval, Duration(5s));
  EXPECT_EQ(o.max_output_bytes, 2048u);
  EXPECT_FALSE(o.force_stop);
}

TEST(VmadmConfig, DefaultsMatchASmartOsHost) {
  ConfigReader r("agent.yaml");
  VmadmOptions o = read("{}", r);
  ASSERT_OK(r);
  EXPECT_EQ(o.vmadm_path, "/usr/sbin/vmadm");
  EXPECT_EQ(o.zones_root, "/zones");
  EXPECT_TRUE(o.force_stop);
  EXPECT_EQ(o.list_interval, Duration(1s));
}

TEST(VmadmConfig, ReportsEveryProblem) {
  ConfigReader r("agent.yaml");
  read("vmadm_path: vmadm\nlist_timeout: 0s\nmax_output_bytes: 10\nforce_stop: maybe\nx: 1\n"
       "list_interval: 0s\n",
       r);
  ASSERT_FALSE(r.ok());
  std::string all = r.status().message();
  EXPECT_THAT(all, HasSubstr("agent.yaml:1:13: error: \"vmadm_path\" must be an absolute path"));
  EXPECT_THAT(all, HasSubstr("\"list_timeout\" must be longer than 0"));
  EXPECT_THAT(all, HasSubstr("\"max_output_bytes\" must be between 1024"));
  EXPECT_THAT(all, HasSubstr("\"force_stop\" must be true or false"));
  EXPECT_THAT(all, HasSubstr("unknown key \"x\""));
  EXPECT_THAT(all, HasSubstr("agent.yaml:6:16: error: \"list_interval\" must be longer than 0"));
  EXPECT_EQ(r.diagnostics().size(), 6u) << all;
}

}  // namespace
}  // namespace medic::vmm::vmadm
