// One host agent, composed: the backend for this host, its collector and its
// actuator, on one thread, one Clock and one EventLoop. The backend's events go to both
// (the collector reports them, the actuator watches healing with them).
//
// agent.yaml has a `collector:` section (collectors/config.h; its `backend:`
// map chooses the hypervisor) and an `actuator:` section
// (actuators/config.h). Either may be left out to run the other alone
// (`medic collector`, `medic actuator`).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "actuators/actuator.h"
#include "actuators/config.h"
#include "collectors/collector.h"
#include "collectors/config.h"
#include "collectors/process_stats.h"
#include "collectors/publisher.h"
#include "core/clock.h"
#include "core/counters.h"
#include "core/event_loop.h"
#include "fabric/party.h"
#include "fabric/transport.h"
#include "node/http_server.h"
#include "node/loop_mailbox.h"
#include "vmm/hypervisor.h"
#include "vmm/sim/sim.h"

namespace medic::node {

struct AgentConfig {
  std::optional<collectors::CollectorConfig> collector;
  std::optional<actuators::ActuatorConfig> actuator;
  std::string host;  // from whichever section is present (they must agree)
  std::string key_file;
  std::string trust_file;
  HttpOptions http;  // the `http:` section (node/http_config.h); no listener without it
};

// Reads agent.yaml. `want_collector` / `want_actuator` say which sections
// the subcommand needs; a missing one it needs is an error.
Result<AgentConfig> load_agent_config(const std::string& path, bool want_collector,
                                      bool want_actuator);

// The hypervisor for this host, as the collector's `backend:` map says:
//   {kind: sim, vms_per_host: 20, seed: 1, faults_per_hour: 0, ...}  (vmm/sim/sim.h)
//   {kind: qmp, vms: vms.yaml}     QEMU on Linux, VM specs as in docs/backends-qmp.md
//   {kind: vmadm, vmadm_path: /usr/sbin/vmadm, ...}                   (vmm/vmadm/vmadm.h)
// For kind qmp with a VM that has a guest_agent_socket, `guest_pinger` pings
// its QEMU guest agent (the collector uses it when guest_ping is enabled).
struct Backend {
  std::unique_ptr<vmm::sim::SimFleet> fleet;  // for kind sim
  std::unique_ptr<vmm::Hypervisor> owned;     // for other kinds
  vmm::Hypervisor* hypervisor = nullptr;
  std::unique_ptr<collectors::GuestPinger> guest_pinger;  // over `owned`; may be null
};
// `state_dir`: where the qmp backend keeps intended stops when its map names
// none (the agent passes its actuator journal's directory).
Result<Backend> make_backend(const std::string& host, const YAML::Node& backend,
                             const std::string& file, Clock& clock,
                             const std::string& state_dir = "");

class AgentNode {
 public:
  // `guest_pinger` (optional) answers guest_ping probes.
  static Result<std::unique_ptr<AgentNode>> create(const AgentConfig& config,
                                                   const fabric::Party& party,
                                                   vmm::Hypervisor& hypervisor,
                                                   collectors::GuestPinger* guest_pinger = nullptr);

  // One iteration of the agent's loop: waits at most `max_wait` (less when a
  // timer is due) on the backend, the probes and the actuator's socket, then
  // does the work that became ready (see core/event_loop.h).
  void run_once(Duration max_wait);
  EventLoop& loop() { return *loop_; }
  // Questions from the HTTP listener's threads, answered on the loop.
  LoopMailbox& mailbox() { return mailbox_; }
  const std::string& host() const { return host_; }

  collectors::Collector* collector() { return collector_.get(); }
  actuators::Actuator* actuator() { return actuator_.get(); }
  // The process's counters (core/counters.h): the collector's, its probes'
  // and publisher's, the actuator's rejections by cause. Read it on the
  // agent's thread (they are observed plain fields).
  const CounterRegistry& counters() const { return counters_; }

 private:
  AgentNode() = default;
  void register_collector_counters();
  void register_actuator_counters();

  CounterRegistry counters_;  // parts hold pointers into it: made first, gone last
  std::string host_;
  std::unique_ptr<EventLoop> loop_;  // outlives everything registered on it
  LoopMailbox mailbox_;
  collectors::ProcessStatsPtr stats_;
  std::unique_ptr<collectors::ZmqPublisher> publisher_;
  std::unique_ptr<collectors::Collector> collector_;
  std::unique_ptr<actuators::Actuator> actuator_;
};

}  // namespace medic::node
