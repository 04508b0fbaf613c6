// An agent's HTTP listener (agent.yaml `http:`), for the host's own
// monitoring and for systemd-style probes:
//
//   GET /healthz   200 while the agent's loop turns (node/daemon_http.h)
//   GET /readyz    200 when ready: the collector's last VM listing succeeded
//                  and the actuator is connected to its engine; 503 naming
//                  the failing check otherwise
//   GET /metrics   every counter and histogram of the agent's registry and
//                  gauges of what it holds now (Prometheus text format)
//
// Contract: as the engine's listener, answers come from the agent's loop
// through its LoopMailbox; the listener must be destroyed before the
// AgentNode.
#pragma once

#include <memory>
#include <string>

#include "core/json_fwd.h"
#include "node/agent_node.h"
#include "node/http_server.h"

namespace medic::node {

// Computed on the agent's loop thread.
Json agent_readiness_json(AgentNode& node);
std::string agent_metrics_text(AgentNode& node);

class AgentHttp {
 public:
  static Result<std::unique_ptr<AgentHttp>> start(const HttpOptions& options, AgentNode& node);
  std::string url() const { return server_->url(); }

 private:
  explicit AgentHttp(std::unique_ptr<HttpServer> server) : server_(std::move(server)) {}
  std::unique_ptr<HttpServer> server_;
};

}  // namespace medic::node
