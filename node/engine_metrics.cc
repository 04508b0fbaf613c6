#include "node/engine_metrics.h"

#include "node/engine_views.h"
#include "node/metrics_text.h"

namespace medic::node {
namespace {

void rejected(MetricsText& m, const std::string& socket, const fabric::OpenCounters& c) {
  for (size_t i = 1; i < static_cast<size_t>(fabric::OpenError::kCount); ++i) {
    auto e = static_cast<fabric::OpenError>(i);
    m.counter("medic_frames_rejected_total", "Frames refused before use, by socket and cause.",
              {{"socket", socket}, {"cause", fabric::open_error_name(e)}}, c.get(e));
  }
}

void host_gauges(MetricsText& m, EngineNode& node) {
  const rules::EngineState state = node.engine().snapshot();
  const int64_t now = to_ns(node.clock().now());
  const int64_t silent_after = node.config().engine.host_silent_after.count();
  size_t silent = 0, frozen = 0;
  for (const auto& h : state.hosts) {
    if (now - h.last_seen_ns > silent_after) ++silent;
    if (h.frozen) ++frozen;
  }
  m.gauge("medic_hosts", "Hosts the engine knows.", {}, state.hosts.size());
  m.gauge("medic_hosts_silent", "Hosts whose collector has not spoken within host_silent_after.",
          {}, silent);
  m.gauge("medic_hosts_frozen", "Hosts frozen by the storm guard.", {}, frozen);
  m.gauge("medic_fleet_frozen", "1 when the storm guard froze the whole fleet.", {},
          state.fleet_frozen ? 1 : 0);
}

}  // namespace

std::string engine_metrics_text(EngineNode& node) {
  MetricsText m;
  const auto& s = node.stats();
  const auto es = node.engine().stats();
  m.counter("medic_event_batches_total", "Signed event batches accepted.", {}, s.batches);
  m.counter("medic_events_total", "Events accepted from collectors.", {}, s.events);
  m.counter("medic_decisions_total", "Decisions the rules engine made.", {}, s.decisions);
  m.counter("medic_actions_dispatched_total",
            "Actions handed to the dispatcher once their record was durable.", {}, s.dispatched);
  m.counter("medic_audit_errors_total", "Writes the audit log refused.", {}, s.audit_errors);
  m.counter("medic_evidence_lost_total", "Envelopes evicted before a decision needed them.", {},
            s.evidence_lost);
  m.counter("medic_notifications_total", "Notify steps sent.", {}, s.notifications);
  rejected(m, "events", node.receiver().rejections());
  m.gauge("medic_vms", "VMs the engine knows.", {}, es.vms);
  m.gauge("medic_incidents_open", "Open incidents.", {}, es.open_incidents);
  m.gauge("medic_actions_in_flight", "Actions dispatched and not finished.", {}, es.in_flight);
  m.gauge("medic_outbox_depth", "Actions waiting for their record to become durable.", {},
          node.outbox_size());
  host_gauges(m, node);
  m.gauge("medic_approvals_pending", "Actions waiting for an operator's approval.", {},
          approvals_json(node).size());
  m.gauge("medic_ready", "1 when /readyz says ready.", {},
          readiness_json(node)["ready"].get<bool>() ? 1 : 0);
  return m.text();
}

}  // namespace medic::node
