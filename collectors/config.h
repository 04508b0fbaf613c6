// The `collector:` section of agent.yaml: who this host is, which backend
// observes its VMs, how often to report, which engines to report to and
// which service probes to run. docs/collectors.md is the reference; its
// example is parsed by a test.
//
//   collector:
//     host: host-a
//     key: /etc/medic/host-a.key
//     interval: 1s
//     backend: {kind: qmp, ...}     # opaque here: the agent maps it to a backend
//     engines:
//       - name: engine-1
//         key: 3b6a27bc...           # the engine's public key (hex)
//         events: tcp://10.0.0.1:7701
//         urgent: tcp://10.0.0.1:7702
//     probes:
//       - {name: web, vm: <uuid>, http: {url: "http://10.0.0.5/health"}}
//       - {name: ssh, tcp: "10.0.0.5:22", interval: 30s}
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "collectors/probes.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "fabric/identity.h"

namespace medic::collectors {

// One engine to publish to: a PUB socket per lane connects to each endpoint.
struct EngineEndpoint {
  std::string name;
  fabric::PublicKey key{};
  std::string events;  // bulk lane: periodic state, probe results
  std::string urgent;  // urgent lane: lifecycle events
};

struct GuestPingConfig {
  bool enabled = false;
  Duration interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(2);
};

// Fabric tuning. The defaults suit a host with a few hundred VMs.
struct LaneConfig {
  int urgent_hwm = 1000;  // urgent batches queued per engine before drops are counted
  Duration reconnect_ivl = std::chrono::milliseconds(100);
  Duration reconnect_ivl_max = std::chrono::seconds(10);
  int max_events_per_batch = 2000;  // a bigger state report is split into several batches
};

struct CollectorConfig {
  std::string host;
  std::string key_file;
  std::string trust_file;  // optional; an empty trust store admits no inbound peers
  Duration interval = std::chrono::seconds(1);
  Duration resource_interval{};  // 0: sample QEMU CPU/RSS every interval
  Duration timer_slack = Duration(-1);  // negative: interval/10, at most 100 ms
  std::string backend_kind;      // backend.kind
  YAML::Node backend;            // the whole backend map, including kind
  std::vector<EngineEndpoint> engines;
  std::vector<ProbeSpec> probes;
  GuestPingConfig guest_ping;
  LaneConfig lanes;
  uint64_t seed = 0;  // probe jitter; 0 derives it from the host name
  std::string proc_root = "/proc";
};

// One entry of an `engines:` list ({name, key, events, urgent}); nullopt
// (with the problems in `r`) when it is wrong.
std::optional<EngineEndpoint> read_engine(ConfigReader& r, const YAML::Node& m);

// Reads the `collector:` map into a config, adding every problem to `r`
// (file:line:col). Returns nullopt when there was an error.
std::optional<CollectorConfig> read_collector_config(ConfigReader& r, const YAML::Node& section);

// Parses a whole agent.yaml text / file and returns its `collector:` section.
// Other top-level sections (actuator:, logging:) are left to their readers.
Result<CollectorConfig> parse_collector_config(const std::string& yaml_text,
                                               const std::string& name);
Result<CollectorConfig> load_collector_config(const std::string& path);

// Parses "host:port" or "[v6addr]:port".
Status parse_host_port(const std::string& text, std::string* host, uint16_t* port);

}  // namespace medic::collectors
