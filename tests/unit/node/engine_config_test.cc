#include <gtest/gtest.h>

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

}  // namespace
}  // namespace medic::node
