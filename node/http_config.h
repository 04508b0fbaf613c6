// The `http:` section of engine.yaml (under `engine:`) and of agent.yaml (at
// its top level): where the daemon's HTTP listener (node/http_server.h)
// binds and how it is protected. The engine listens on 127.0.0.1:9464 and an
// agent on 127.0.0.1:9465 when the section has no `listen`.
//
//   http:
//     listen: 127.0.0.1:9464     # host:port; loopback unless TLS and a token are set
//     tls_cert: /etc/medic/http.crt
//     tls_key: /etc/medic/http.key
//     token_file: /etc/medic/http.token   # one line: the bearer token
//
// Contract: read_http_section reads the token file at load time (an
// unreadable or empty file is an error at the key) and reports a
// non-loopback address without TLS and a token as an error at `listen`, so
// `--check` refuses what the daemon would refuse. Without the section there
// is no listener. Relative paths are relative to `dir`.
#pragma once

#include <string>

#include <yaml-cpp/yaml.h>

#include "core/config.h"
#include "node/http_server.h"

namespace medic::node {

inline constexpr const char* kDefaultEngineHttp = "127.0.0.1:9464";
inline constexpr const char* kDefaultAgentHttp = "127.0.0.1:9465";

void read_http_section(ConfigReader& r, const YAML::Node& n, const std::string& dir,
                       const std::string& default_listen, HttpOptions* out);

}  // namespace medic::node
