// Reading the simulator's options from a config file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "vmm/sim/sim.h"
#include "tests/testing/testing.h"

namespace medic::vmm::sim {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

SimOptions read(const std::string& yaml, ConfigReader& r) {
  auto node = load_yaml_string(yaml, "demo.yaml");
  EXPECT_OK(node);
  return read_sim_options(r, *node);
}

TEST(SimConfig, ReadsEveryOption) {
  ConfigReader r("demo.yaml");
  SimOptions o = read(
      "hosts: 4\nvms_per_host: 25\nseed: 99\nheartbeat_interval: 2s\nboot_time: 30s\n"
      "slow_boot_time: 10m\nshutdown_time: 3s\nflap_up: 90s\nflap_down: 15s\n"
      "faults_per_hour: 12.5\nfault_weights: {hang: 2, panic: 1}\n"
      "partition_duration: 1m\nhost_loss_duration: 20m\n",
      r);
  ASSERT_OK(r);
  EXPECT_EQ(o.hosts, 4);
  EXPECT_EQ(o.vms_per_host, 25);
  EXPECT_EQ(o.seed, 99u);
  EXPECT_EQ(o.heartbeat_interval, Duration(2s));
  EXPECT_EQ(o.boot_time, Duration(30s));
  EXPECT_EQ(o.slow_boot_time, Duration(10min));
  EXPECT_EQ(o.shutdown_time, Duration(3s));
  EXPECT_EQ(o.flap_up, Duration(90s));
  EXPECT_EQ(o.flap_down, Duration(15s));
  EXPECT_DOUBLE_EQ(o.faults_per_hour, 12.5);
  EXPECT_EQ(o.fault_weights.size(), 2u);
  EXPECT_DOUBLE_EQ(o.fault_weights.at(FaultKind::kHang), 2);
  EXPECT_DOUBLE_EQ(o.fault_weights.at(FaultKind::kPanic), 1);
  EXPECT_EQ(o.partition_duration, Duration(1min));
  EXPECT_EQ(o.host_loss_duration, Duration(20min));
}

TEST(SimConfig, AnEmptyMapKeepsTheDefaults) {
  ConfigReader r("demo.yaml");
  SimOptions o = read("{}", r);
  ASSERT_OK(r);
  SimOptions d;
  EXPECT_EQ(o.hosts, d.hosts);
  EXPECT_EQ(o.boot_time, d.boot_time);
  EXPECT_TRUE(o.fault_weights.empty());
}

TEST(SimConfig, ReportsEveryProblemWithItsPosition) {
  ConfigReader r("demo.yaml");
  read(
      "hosts: 0\nboot_time: 0s\nfaults_per_hour: -1\nfault_weights: {hang: 1, gremlins: 3, "
      "panic: -2}\nflap_up: soon\nhostz: 3\n",
      r);
  ASSERT_FALSE(r.ok());
  std::string all = r.status().message();
  EXPECT_THAT(all, HasSubstr("demo.yaml:1:8: error: \"hosts\" must be between 1 and 100000"));
  EXPECT_THAT(all, HasSubstr("demo.yaml:2:12: error: \"boot_time\" must be longer than 0"));
  EXPECT_THAT(all, HasSubstr("demo.yaml:3:18: error: \"faults_per_hour\" must not be negative"));
  EXPECT_THAT(all, HasSubstr("unknown fault \"gremlins\" (expected one of: hang, soft_hang"));
  EXPECT_THAT(all, HasSubstr("weight of \"panic\" must not be negative"));
  EXPECT_THAT(all, HasSubstr("demo.yaml:5:10: error: \"flap_up\""));
  EXPECT_THAT(all, HasSubstr("demo.yaml:6:1: error: unknown key \"hostz\""));
  EXPECT_EQ(r.diagnostics().size(), 7u) << all;
}

TEST(SimConfig, RejectsANonMap) {
  ConfigReader r("demo.yaml");
  read("[1, 2]", r);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("expected sim to be a map"));
}

}  // namespace
}  // namespace medic::vmm::sim
