#include "core/config.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <yaml-cpp/yaml.h>

#include "tests/testing/testing.h"

namespace medic {
namespace {

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  testing::TempDir dir;
  std::string p = dir.write("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n");
  auto r = load_yaml_file(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(p + ":3:"), std::string::npos) << r.status();
}

TEST(Config, MissingFileIsNotFound) {
  auto r = load_yaml_file("/nonexistent/medic.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST(Config, ReaderCollectsEveryProblemWithPositions) {
  auto node = load_yaml_string("interval: soon\nport: 99999\nname: [x]\ntypo: 1\n", "agent.yaml");
  ASSERT_OK(node);
  ConfigReader r("agent.yaml");
  EXPECT_FALSE(r.duration(*node, "interval", true).has_value());
  EXPECT_FALSE(r.integer(*node, "port", true, 1, 65535).has_value());
  EXPECT_FALSE(r.string(*node, "name", true).has_value());
  EXPECT_FALSE(r.string(*node, "host", true).has_value());
  r.check_keys(*node, {"interval", "port", "name", "host"});
  ASSERT_EQ(r.diagnostics().size(), 5u);
  EXPECT_EQ(r.diagnostics()[0].to_string().rfind("agent.yaml:1:11: error: \"interval\"", 0), 0u)
      << r.diagnostics()[0].to_string();
  EXPECT_NE(r.diagnostics()[1].to_string().find("agent.yaml:2:7: error: \"port\" must be between 1 and 65535"),
            std::string::npos);
  EXPECT_NE(r.diagnostics()[2].to_string().find("must be a string, got a list"), std::string::npos);
  EXPECT_NE(r.diagnostics()[3].to_string().find("missing required key \"host\""), std::string::npos);
  EXPECT_NE(r.diagnostics()[4].to_string().find("agent.yaml:4:1: error: unknown key \"typo\""),
            std::string::npos);
  EXPECT_FALSE(r.ok());
  const std::string all = r.status().message();
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 4);
}

TEST(Config, ReaderReturnsValuesWhenWellFormed) {
  auto node = load_yaml_string("interval: 2s\nport: 80\nname: h1\non: true\nl: [a, b]\n", "x");
  ASSERT_OK(node);
  ConfigReader r("x");
  EXPECT_EQ(*r.duration(*node, "interval", true), std::chrono::seconds(2));
  EXPECT_EQ(*r.integer(*node, "port", true), 80);
  EXPECT_EQ(*r.string(*node, "name", true), "h1");
  EXPECT_TRUE(*r.boolean(*node, "on", true));
  EXPECT_EQ(r.string_list(*node, "l", true)->size(), 2u);
  EXPECT_FALSE(r.string(*node, "absent", false).has_value());
  EXPECT_OK(r);
}

}  // namespace
}  // namespace medic

namespace medic {
namespace {

TEST(Config, ReaderToleratesMissingSectionsWithoutThrowing) {
  auto node = load_yaml_string("a: 1\n", "x.yaml");
  ASSERT_OK(node);
  const YAML::Node& root = *node;
  YAML::Node missing = root["section"];
  ConfigReader r("x.yaml");
  EXPECT_FALSE(r.expect_map(missing, "section"));
  r.check_keys(missing, {"k"});
  EXPECT_FALSE(r.string(missing, "k", true).has_value());
  EXPECT_NE(r.diagnostics().at(0).message.find("got nothing"), std::string::npos);
}

}  // namespace
}  // namespace medic
