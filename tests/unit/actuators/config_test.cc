#include "actuators/config.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "tests/testing/testing.h"

namespace medic::actuators {
namespace {

using namespace std::chrono_literals;

// The first ```yaml block of docs/actuators.md whose text starts with `head`.
std::string doc_block(const std::string& head) {
  std::ifstream in(medic::testing::source_dir() + "/docs/actuators.md");
  std::string line, text;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      if (inside && text.rfind(head, 0) == 0) return text;
      inside = line == "```yaml";
      text.clear();
      continue;
    }
    if (inside) text += line + "\n";
  }
  return "";
}

struct Parsed {
  ActuatorConfig config;
  std::string errors;
  bool ok = false;
};

Parsed parse(const std::string& yaml) {
  Parsed p;
  auto root = load_yaml_string(yaml, "agent.yaml");
  if (!root.ok()) {
    p.errors = root.status().message();
    return p;
  }
  ConfigReader r("agent.yaml");
  p.config = parse_actuator_config((*root)["actuator"], r);
  p.ok = r.ok();
  p.errors = r.status().message();
  return p;
}

const char* kMinimal = R"(actuator:
  host: host-a
  engine: tcp://127.0.0.1:7002
  engine_key: 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
  key_file: /etc/medic/host-a.key
  trust_store: /etc/medic/trust.yaml
  journal: /var/lib/medic/actuator.journal
)";

TEST(ActuatorConfig, TheDocumentedExampleParses) {
  std::string yaml = doc_block("actuator:");
  ASSERT_FALSE(yaml.empty()) << "docs/actuators.md lost its actuator example";
  Parsed p = parse(yaml);
  ASSERT_TRUE(p.ok) << p.errors;
  const ActuatorOptions& o = p.config.options;
  EXPECT_EQ(o.host, "host-a");
  EXPECT_EQ(o.engine_endpoint, "tcp://engine.example:7002");
  EXPECT_EQ(p.config.key_file, "/etc/medic/host-a.key");
  EXPECT_EQ(o.journal_path, "/var/lib/medic/actuator.journal");
  EXPECT_EQ(o.default_watch, 60s);
  EXPECT_EQ(o.max_watch, 30min);
  EXPECT_EQ(o.retention, 24h);
  EXPECT_EQ(o.restart_hook,
            (std::vector<std::string>{"/usr/local/sbin/restart-vm", "--vm", "{vm}", "--host",
                                      "{host}"}));
  EXPECT_EQ(o.max_hook_output, 16384u);
}

TEST(ActuatorConfig, TheDocumentedDispatchExampleParses) {
  std::string yaml = doc_block("dispatch:");
  ASSERT_FALSE(yaml.empty());
  auto root = load_yaml_string(yaml, "engine.yaml");
  ASSERT_OK(root);
  ConfigReader r("engine.yaml");
  DispatcherOptions o = parse_dispatcher_config((*root)["dispatch"], r);
  ASSERT_OK(r);
  EXPECT_EQ(o.endpoint, "tcp://0.0.0.0:7703");
  EXPECT_EQ(o.max_backoff, 5s);
  EXPECT_EQ(o.result_grace, 90s);
  EXPECT_EQ(o.max_per_host, 1024u);
}

TEST(ActuatorConfig, DefaultsApplyWhenOnlyRequiredKeysAreGiven) {
  Parsed p = parse(kMinimal);
  ASSERT_TRUE(p.ok) << p.errors;
  EXPECT_EQ(p.config.options.execute_timeout, 60s);
  EXPECT_TRUE(p.config.options.restart_hook.empty());
}

TEST(ActuatorConfig, ReportsEveryProblemWithItsLine) {
  Parsed p = parse(R"(actuator:
  host: host-a
  engine_key: not-hex
  watch: soon
  restart_hook: [restart-vm, "{vm}"]
  colour: blue
)");
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.errors.find("missing required key \"engine\""), std::string::npos) << p.errors;
  EXPECT_NE(p.errors.find("agent.yaml:3:"), std::string::npos) << p.errors;
  EXPECT_NE(p.errors.find("agent.yaml:4:"), std::string::npos) << p.errors;
  EXPECT_NE(p.errors.find("absolute path"), std::string::npos) << p.errors;
  EXPECT_NE(p.errors.find("unknown key \"colour\""), std::string::npos) << p.errors;
}

TEST(ActuatorConfig, RetentionMustOutliveTheLongestAction) {
  Parsed p = parse(std::string(kMinimal) + "  max_action_lifetime: 2h\n  retention: 1h\n");
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.errors.find("retention"), std::string::npos) << p.errors;
}

TEST(ActuatorConfig, AMissingSectionIsAnError) {
  Parsed p = parse("collector:\n  interval: 5s\n");
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.errors.find("actuator"), std::string::npos) << p.errors;
}


TEST(ActuatorConfig, EngineKeysListsSeveralEnginesTheFirstBeingTheConnectedOne) {
  std::string yaml = kMinimal;
  const std::string one =
      "  engine_key: 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29\n";
  yaml.replace(yaml.find(one), one.size(),
               "  engine_keys:\n"
               "    - 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29\n"
               "    - f4f06ff256f539943ac39034d8c16538e985f1e7c556ff4cf88fa53ee4a9abc5\n");
  Parsed p = parse(yaml);
  ASSERT_TRUE(p.ok) << p.errors;
  const ActuatorOptions& o = p.config.options;
  ASSERT_EQ(o.engine_keys.size(), 2u);
  EXPECT_EQ(o.engine_key, o.engine_keys[0]);
  EXPECT_EQ(fabric::short_key_id(o.engine_keys[1]), "f4f06ff256f53994");
}

TEST(ActuatorConfig, EngineKeyAndEngineKeysTogetherAreAnError) {
  Parsed p = parse(std::string(kMinimal) +
                   "  engine_keys: [3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29]\n");
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.errors.find("not both"), std::string::npos) << p.errors;
}

TEST(ActuatorConfig, AnEngineKeyListedTwiceIsAnError) {
  std::string yaml = kMinimal;
  const std::string one =
      "  engine_key: 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29\n";
  yaml.replace(yaml.find(one), one.size(),
               "  engine_keys: [3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29, "
               "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29]\n");
  Parsed p = parse(yaml);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.errors.find("twice"), std::string::npos) << p.errors;
}

}  // namespace
}  // namespace medic::actuators
