// The CLI's side of the control channel, shared by the operator commands
// (cmd_control.cc) and `medic request` (cmd_request.cc): where the engine
// is and whose key signs, from flags or the environment (--engine
// $MEDIC_ENGINE, --engine-key $MEDIC_ENGINE_KEY, --key $MEDIC_KEY, --trust
// $MEDIC_TRUST), loaded into what fabric::ControlClient needs.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <string>

#include "core/status.h"
#include "fabric/control.h"
#include "fabric/identity.h"
#include "fabric/trust.h"

namespace medic::app {

struct Target {
  std::string engine;
  std::string engine_key;
  std::string key;
  std::string trust;
  std::string timeout = "5s";
  bool json = false;  // print the answer as JSON (docs/operations.md, "--json")
};

void add_target_options(CLI::App* sub, Target* t);

// The keys, trust store and endpoint a Target names, loaded and checked.
struct Connection {
  fabric::Identity identity;
  fabric::TrustStore trust;
  fabric::ControlTarget target;
  std::chrono::milliseconds limit{0};  // --timeout
};
Result<Connection> load_connection(const Target& t);

// A fresh random request id.
std::string new_request_id();

// Sends `request` (its id set here) and returns the engine's reply; a
// set-up problem (keys, trust, the engine unreachable) comes back as an error.
Result<medic::v1::ControlReply> exchange(const Target& t, medic::v1::ControlRequest* request);

}  // namespace medic::app
