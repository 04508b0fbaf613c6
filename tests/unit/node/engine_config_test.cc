#include <gtest/gtest.h>

#include <filesystem>

#include "node/engine_node.h"
#include "tests/testing/testing.h"

namespace medic::node {
namespace {

using namespace std::chrono_literals;

const char* kBase =
    "engine:\n"
    "  key: engine.key\n"
    "  trust: trust.yaml\n"
    "  listen: {events: tcp://127.0.0.1:7701, urgent: tcp://127.0.0.1:7702,"
    " actions: tcp://127.0.0.1:7703, control: tcp://127.0.0.1:7704}\n"
    "  rules: [rules.yaml]\n"
    "  audit: {path: audit.db}\n";

TEST(EngineConfig, DispatchSectionTunesTheDispatcherAndDefaultsItsEndpoint) {
  testing::TempDir dir;
  std::string p = dir.write("engine.yaml", std::string(kBase) +
                                               "  dispatch: {max_backoff: 2s, result_grace: 30s}\n"
                                               "  notify: {webhook: http://127.0.0.1:9/hook}\n");
  auto c = load_engine_config(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dispatch.max_backoff, 2s);
  EXPECT_EQ(c->dispatch.result_grace, 30s);
  EXPECT_EQ(c->actions_endpoint, "tcp://127.0.0.1:7703");
  EXPECT_EQ(c->notify.url, "http://127.0.0.1:9/hook");
  EXPECT_EQ(c->key_file, dir.file("engine.key")) << "relative to the config file";
}

TEST(EngineConfig, ErrorsNameFileLineAndColumn) {
  testing::TempDir dir;
  std::string p = dir.write("engine.yaml", std::string(kBase) +
                                               "  dispatch: {max_backoff: soon}\n"
                                               "  colour: blue\n");
  auto c = load_engine_config(p);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(p + ":7:27:"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find(p + ":8:3: error: unknown key \"colour\""), std::string::npos)
      << c.status();
}

// engine.yaml's `policies:` takes exactly what a rule test's `options:` takes.
TEST(EngineConfig, PoliciesTakeEveryKeyOfARuleTestsOptions) {
  testing::TempDir dir;
  std::string p = dir.write("engine.yaml", std::string(kBase) +
                                               "  policies:\n"
                                               "    host_silent_after: 45s\n"
                                               "    forget_vm_after: 2h\n"
                                               "    action_timeout: 7m\n"
                                               "    max_in_flight_per_host: 3\n"
                                               "    max_in_flight_fleet: 30\n"
                                               "    dry_run: true\n"
                                               "    cooldown: 4m\n"
                                               "    budget: 7 per 2h\n"
                                               "    approval_timeout: 15m\n"
                                               "    heal_within: 90s\n"
                                               "    storm: {host_fraction: 0.75, fleet_fraction: 0.1,"
                                               " min_vms: 4, window: 2m, quiet: 9m}\n");
  auto c = load_engine_config(p);
  ASSERT_TRUE(c.ok()) << c.status();
  const rules::EngineOptions& o = c->engine;
  EXPECT_EQ(o.host_silent_after, 45s);
  EXPECT_EQ(o.forget_vm_after, 2h);
  EXPECT_EQ(o.action_timeout, 7min);
  EXPECT_EQ(o.max_in_flight_per_host, 3u);
  EXPECT_EQ(o.max_in_flight_fleet, 30u);
  EXPECT_TRUE(o.dry_run);
  EXPECT_EQ(o.defaults.cooldown, 4min);
  EXPECT_EQ(o.defaults.budget.count, 7u);
  EXPECT_EQ(o.defaults.budget.window, 2h);
  EXPECT_EQ(o.defaults.approval_timeout, 15min);
  EXPECT_EQ(o.defaults.heal_within, 90s);
  EXPECT_DOUBLE_EQ(o.storm.host_fraction, 0.75);
  EXPECT_DOUBLE_EQ(o.storm.fleet_fraction, 0.1);
  EXPECT_EQ(o.storm.min_vms, 4u);
  EXPECT_EQ(o.storm.window, 2min);
  EXPECT_EQ(o.storm.quiet, 9min);
}

// 50 is not a fraction: read as one, it would never trip the host storm guard.
TEST(EngineConfig, AHostFractionAboveOneIsRefusedWithItsPosition) {
  testing::TempDir dir;
  std::string p = dir.write("engine.yaml", std::string(kBase) +
                                               "  policies:\n"
                                               "    storm:\n"
                                               "      host_fraction: 50\n");
  auto c = load_engine_config(p);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(p + ":9:22: error: host_fraction must be a fraction above 0 "
                                          "and at most 1"),
            std::string::npos)
      << c.status();
}

TEST(EngineConfig, TheExampleEngineConfigLoads) {
  auto c = load_engine_config(testing::source_dir() + "/examples/engine.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "engine-1");
  EXPECT_DOUBLE_EQ(c->engine.storm.host_fraction, 0.5);
  EXPECT_EQ(c->engine.defaults.approval_timeout, 10min);
}

TEST(EngineConfig, ABadListenEndpointIsRefusedWithItsPosition) {
  testing::TempDir dir;
  std::string p = dir.write("engine.yaml",
                            "engine:\n"
                            "  key: engine.key\n"
                            "  trust: trust.yaml\n"
                            "  listen: {events: tcp://127.0.0.1:7701, urgent: tcp://127.0.0.1:7702,"
                            " actions: tcp://127.0.0.1:7703, control: tcp//127.0.0.1:7704}\n"
                            "  rules: [rules.yaml]\n"
                            "  audit: {path: audit.db}\n"
                            "  dispatch: {listen: 'tcp://127.0.0.1:99999'}\n");
  auto c = load_engine_config(p);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(p + ":4:112: error: \"control\": bad endpoint \"tcp//"),
            std::string::npos)
      << c.status();
  EXPECT_NE(c.status().message().find(p + ":7:22: error: \"listen\": bad endpoint"),
            std::string::npos)
      << c.status();
}

TEST(EngineConfig, AWebhookMustBeAnHttpUrl) {
  testing::TempDir dir;
  std::string p = dir.write("engine.yaml", std::string(kBase) +
                                               "  notify: {webhook: alerts.example/medic}\n");
  auto c = load_engine_config(p);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(p + ":7:21: error: webhook must be an http:// or https:// "
                                          "URL"),
            std::string::npos)
      << c.status();
}

// The patterns stay in the config; each expansion sees the directory as it
// is then, which is what lets SIGHUP pick up a new file.
TEST(EngineConfig, RulePatternsAreExpandedAgainAtEachCall) {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.file("rules"));
  dir.write("rules/b.yaml", "rules: []\n");
  std::string p = dir.write("engine.yaml",
                            "engine:\n"
                            "  key: engine.key\n"
                            "  trust: trust.yaml\n"
                            "  listen: {events: tcp://127.0.0.1:7701, urgent: tcp://127.0.0.1:7702,"
                            " actions: tcp://127.0.0.1:7703, control: tcp://127.0.0.1:7704}\n"
                            "  rules: [rules/*.yaml, rules/b.yaml, extra.yaml]\n"
                            "  audit: {path: audit.db}\n");
  auto c = load_engine_config(p);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->rule_patterns.size(), 3u);
  EXPECT_EQ(c->rule_patterns[0], dir.file("rules/*.yaml")) << "relative to the config file";
  // b.yaml named twice counts once; extra.yaml matches nothing and stays for
  // the rule loader to report as unreadable.
  EXPECT_EQ(expand_rule_files(*c),
            (std::vector<std::string>{dir.file("rules/b.yaml"), dir.file("extra.yaml")}));
  dir.write("rules/a.yaml", "rules: []\n");
  EXPECT_EQ(expand_rule_files(*c),
            (std::vector<std::string>{dir.file("rules/a.yaml"), dir.file("rules/b.yaml"),
                                      dir.file("extra.yaml")}));
}

TEST(EngineConfig, DiffOfRuleFilesNamesWhatWasAddedAndRemoved) {
  RuleFileChanges c = diff_rule_files({"r/a.yaml", "r/b.yaml"}, {"r/b.yaml", "r/c.yaml", "r/d.yaml"});
  EXPECT_EQ(c.added, (std::vector<std::string>{"r/c.yaml", "r/d.yaml"}));
  EXPECT_EQ(c.removed, (std::vector<std::string>{"r/a.yaml"}));
  RuleFileChanges none = diff_rule_files({"r/a.yaml"}, {"r/a.yaml"});
  EXPECT_TRUE(none.added.empty());
  EXPECT_TRUE(none.removed.empty());
}

}  // namespace
}  // namespace medic::node
