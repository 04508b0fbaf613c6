// The syntax of the ZeroMQ endpoints in engine.yaml and agent.yaml, checked
// before anything binds or connects, so a typo is reported as file:line:col
// instead of as "Invalid argument" from zmq_bind at start.
//
// Accepted forms (what the daemons use; zmq's rarer forms such as
// tcp://src;dst are refused):
//   tcp://HOST:PORT   HOST a name, an IPv4 address, [IPv6] or (to bind) `*`;
//                     PORT 1-65535, or (to bind) `*` for one the OS picks
//   ipc://PATH        a Unix socket path of at most 107 bytes; `*` to bind
//   inproc://NAME     within one process (tests)
#pragma once

#include <string>
#include <string_view>

#include "core/config.h"
#include "core/status.h"

namespace medic::node {

enum class EndpointUse { kBind, kConnect };

// Ok, or kInvalidArgument saying what is wrong and what form is expected.
Status check_endpoint_syntax(std::string_view endpoint, EndpointUse use);

// The same for the string at map[key], reported to `r` at that node. A key
// that is absent or not a string is left to the section's reader.
void check_endpoint(ConfigReader& r, const YAML::Node& map, const std::string& key,
                    EndpointUse use);

}  // namespace medic::node
