#include "node/agent_http.h"

#include "core/json.h"
#include "node/daemon_http.h"
#include "node/metrics_text.h"

namespace medic::node {

Json agent_readiness_json(AgentNode& node) {
  ReadinessChecks checks;
  if (const collectors::Collector* c = node.collector()) {
    const auto& k = c->counters();
    checks.check("collector", k.listing_ok,
                 k.listing_ok     ? "the last VM listing succeeded"
                 : k.flushes == 0 ? "no VM listing yet"
                                  : "the last VM listing failed: " + k.last_list_error);
  }
  if (const actuators::Actuator* a = node.actuator()) {
    checks.check("actuator", a->connected(),
                 a->connected() ? "connected to the engine" : "not connected to the engine");
  }
  return checks.json();
}

std::string agent_metrics_text(AgentNode& node) {
  MetricsText m;
  m.registry(node.counters());
  if (const collectors::Collector* c = node.collector()) {
    m.gauge("medic_collector_listing_ok", "1 when the collector's last VM listing succeeded.", {},
            c->counters().listing_ok ? 1 : 0);
  }
  if (const actuators::Actuator* a = node.actuator()) {
    m.gauge("medic_actuator_connected", "1 while the actuator is connected to its engine.", {},
            a->connected() ? 1 : 0);
    m.gauge("medic_actuator_watching", "VMs watched for healing after a verb.", {},
            static_cast<double>(a->watching()));
    m.gauge("medic_actuator_results_unacked", "Results the engine has not acknowledged yet.", {},
            static_cast<double>(a->results_unacked()));
  }
  m.gauge("medic_ready", "1 when /readyz says ready.", {},
          agent_readiness_json(node).value("ready", false) ? 1 : 0);
  return m.text();
}

Result<std::unique_ptr<AgentHttp>> AgentHttp::start(const HttpOptions& options, AgentNode& node) {
  std::vector<HttpRoute> routes = {
      healthz_route(node.mailbox()),
      readyz_route(node.mailbox(), [&node] { return agent_readiness_json(node); }),
      metrics_route(node.mailbox(), [&node] { return agent_metrics_text(node); }),
  };
  auto server = HttpServer::start(options, std::move(routes));
  if (!server.ok()) return server.status();
  return std::unique_ptr<AgentHttp>(new AgentHttp(std::move(*server)));
}

}  // namespace medic::node
