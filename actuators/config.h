// Configuration of the actuator (`actuator:` section of agent.yaml) and of
// the engine's dispatcher (`dispatch:` section of engine.yaml), read with
// every problem reported as file:line:col in one pass. docs/actuators.md
// documents each key with an example.
#pragma once

#include <string>

#include "actuators/actuator.h"
#include "actuators/dispatcher.h"
#include "core/config.h"

namespace medic::actuators {

struct ActuatorConfig {
  ActuatorOptions options;  // host, engine endpoint and key, journal, timings, hook
  std::string key_file;     // this node's identity (medic keygen)
  std::string trust_store;  // the trust store YAML
};

// Reads the `actuator:` map. Problems are added to `reader`; the result is
// meaningful only when reader.ok().
ActuatorConfig parse_actuator_config(const YAML::Node& section, ConfigReader& reader);

// Reads the `dispatch:` map (may be undefined: all defaults but `listen`).
DispatcherOptions parse_dispatcher_config(const YAML::Node& section, ConfigReader& reader);

}  // namespace medic::actuators
