#include "node/engine_metrics.h"

#include "core/json.h"
#include "node/engine_views.h"
#include "node/metrics_text.h"

namespace medic::node {
namespace {

void host_gauges(MetricsText& m, EngineNode& node) {
  size_t hosts = 0, silent = 0, frozen = 0;
  for (const auto& h : node.engine().host_views()) {
    ++hosts;
    silent += h.silent;
    frozen += h.frozen;
  }
  m.gauge("medic_hosts", "Hosts the engine knows.", {}, hosts);
  m.gauge("medic_hosts_silent", "Hosts whose collector has not spoken within host_silent_after.",
          {}, silent);
  m.gauge("medic_hosts_frozen", "Hosts frozen by the storm guard.", {}, frozen);
  m.gauge("medic_fleet_frozen", "1 when the storm guard froze the whole fleet.", {},
          node.engine().frozen("") ? 1 : 0);
}

}  // namespace

std::string engine_metrics_text(EngineNode& node) {
  MetricsText m;
  const auto es = node.engine().stats();
  m.registry(node.counters());
  m.gauge("medic_vms", "VMs the engine knows.", {}, es.vms);
  m.gauge("medic_incidents_open", "Open incidents.", {}, es.open_incidents);
  m.gauge("medic_actions_in_flight", "Actions dispatched and not finished.", {}, es.in_flight);
  m.gauge("medic_outbox_depth", "Actions waiting for their record to become durable.", {},
          node.outbox_size());
  host_gauges(m, node);
  m.gauge("medic_approvals_pending", "Actions waiting for an operator's approval.", {},
          es.pending_approvals);
  m.gauge("medic_store_writable", "1 while the audit log (and state store) takes writes.", {},
          node.degraded().ok() ? 1 : 0);
  m.gauge("medic_ready", "1 when /readyz says ready.", {},
          readiness_json(node)["ready"].get<bool>() ? 1 : 0);
  return m.text();
}

}  // namespace medic::node
