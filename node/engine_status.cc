// The `medic status` text and JSON: health, counters, pending approvals,
// silences and storm-guard freezes, read from the rules engine and the audit
// log (the node keeps no copy of its own); and the registry of every part's
// counters that `medic status --json` shows.
#include <algorithm>
#include <sstream>

#include "core/duration.h"
#include "core/json.h"
#include "node/engine_node.h"

namespace medic::node {
namespace {

std::string silence_line(const std::string& id, const rules::Silence& s, Time now) {
  return "silence " + id + ": " + (s.vm.empty() ? "" : "vm=" + s.vm + " ") +
         (s.host.empty() ? "" : "host=" + s.host + " ") +
         (s.rule.empty() ? "" : "rule=" + s.rule + " ") +
         (s.label_key.empty() ? "" : "label " + s.label_key + "=" + s.label_value + " ") + "for " +
         format_duration(std::chrono::round<std::chrono::seconds>(s.until - now)) + " more, by " +
         s.by + ": " + s.reason + "\n";
}

// "events_bulk: bad_signature 3, replayed 1; control: role_not_allowed 1", or "none".
std::string rejections_line(const CounterRegistry& counters) {
  std::string out;
  std::string socket;
  for (const CounterSample& s : counters.samples()) {
    if (s.name != "frames_rejected_total" || s.value == 0) continue;
    const std::string& sock = s.labels[0].second;
    if (sock != socket) {
      out += (out.empty() ? "" : "; ") + sock + ":";
      socket = sock;
    } else {
      out += ",";
    }
    out += " " + s.labels[1].second + " " + std::to_string(s.value);
  }
  return out.empty() ? "none" : out;
}

void observe_open_counters(CounterRegistry& r, const std::string& socket,
                           const fabric::OpenCounters& c) {
  for (size_t i = 1; i < static_cast<size_t>(fabric::OpenError::kCount); ++i) {
    auto e = static_cast<fabric::OpenError>(i);
    r.observe(
        "frames_rejected_total", {{"socket", socket}, {"cause", fabric::open_error_name(e)}},
        [&c, e] { return c.get(e); }, "frames refused before any part acted on them");
  }
}

}  // namespace

void EngineNode::register_counters() {
  CounterRegistry& r = counters_;
  observe_open_counters(r, "events_bulk", receiver_->rejections(false));
  observe_open_counters(r, "events_urgent", receiver_->rejections(true));
  observe_open_counters(r, "actions", dispatcher_->open_counters());
  observe_open_counters(r, "control", control_->rejections());
  r.observe(
      "batches_dropped_total", {{"socket", "events"}, {"reason", "undecodable"}},
      [this] { return receiver_->undecodable(); },
      "authentic event batches that did not decode, or spoke for another host");
  register_dispatcher_counters(r);
  for (const char* verb : {"approve", "deny", "silence", "unsilence", "unknown"})
    r.counter("control_requests_refused_total", {{"request", verb}},
              "operator requests the engine refused (unknown action id, bad scope, ...)");
  const EngineNodeStats& n = stats_;
  r.observe("batches_total", {}, [&n] { return n.batches; });
  r.observe("events_total", {}, [&n] { return n.events; });
  r.observe("decisions_total", {}, [&n] { return n.decisions; });
  r.observe("dispatched_total", {}, [&n] { return n.dispatched; });
  r.observe("audit_errors_total", {}, [&n] { return n.audit_errors; });
  r.observe("evidence_lost_total", {}, [&n] { return n.evidence_lost; });
  r.observe("notifications_total", {}, [&n] { return n.notifications; });
  r.observe("events_ignored_total", {{"reason", "unclassified"}},
            [this] { return engine_->stats().unknown_events; });
  r.observe(
      "vm_claims_refused_total", {}, [this] { return engine_->stats().vm_claims_refused; },
      "events of a VM id from a host that does not own it (docs/security.md)");
  r.observe("triggers_total", {}, [this] { return engine_->stats().triggers; });
  register_latency_histograms(r);
  // By Event's body: 0 none, then its oneof fields 10..15 in order.
  const char* types[] = {"none", "state", "lifecycle", "heartbeat", "probe", "guest_ping", "alert"};
  for (size_t t = 0; t < std::size(types); ++t) {
    // An observed field, not a registry counter: one plain add per event on
    // the loop's thread, where an atomic add would cost the ingest path.
    r.observe(
        "events_received_total", {{"type", types[t]}}, [this, t] { return events_by_type_[t]; },
        "events in accepted batches, by type");
  }
}

// What the dispatcher counts: refusals by cause, deliveries, ignored results.
void EngineNode::register_dispatcher_counters(CounterRegistry& r) {
  const actuators::DispatcherStats& d = dispatcher_->stats();
  for (size_t i = 0; i < static_cast<size_t>(actuators::Refusal::kCount); ++i) {
    r.observe(
        "dispatcher_refused_total",
        {{"cause", actuators::refusal_name(static_cast<actuators::Refusal>(i))}},
        [&d, i] { return d.refused_by[i]; }, "frames from actuators the dispatcher refused");
  }
  r.observe(
      "dispatcher_unreachable_total", {}, [&d] { return d.unreachable; },
      "sends refused because the host was not connected");
  r.observe("dispatcher_results_ignored_total", {{"cause", "duplicate"}},
            [&d] { return d.duplicate_results; });
  r.observe("dispatcher_results_ignored_total", {{"cause", "unknown_action"}},
            [&d] { return d.unknown_results; });
  r.observe("dispatcher_timed_out_total", {}, [&d] { return d.timed_out; });
  r.observe("dispatcher_sends_total", {}, [&d] { return d.sends; });
}

// The pipeline's latencies: decision and urgent event -> dispatch, each event
// lane's lag, and the audit writer's commits.
void EngineNode::register_latency_histograms(CounterRegistry& r) {
  decided_to_dispatched_ =
      &r.histogram("decided_to_dispatched_seconds", {},
                   "decision -> action sent to the actuator (its audit row made durable first)");
  urgent_to_dispatched_ =
      &r.histogram("urgent_event_to_dispatched_seconds", {},
                   "an urgent (lifecycle) event received -> the action it led to sent");
  const char* lanes[] = {"bulk", "urgent"};
  for (size_t lane = 0; lane < 2; ++lane) {
    lane_lag_[lane] = &r.histogram(
        "event_lane_lag_seconds", {{"lane", lanes[lane]}},
        "a batch sealed by its collector -> read by the engine: the lane's queueing");
  }
  store_->set_commit_histogram(&r.histogram(
      "audit_commit_seconds", {},
      "one audit-log transaction written and committed (the writer thread, real time)"));
}

Json EngineNode::status_json() {
  auto es = engine_->stats();
  Json out;
  out["engine"] = config_.name;
  out["hosts"] = es.hosts;
  out["vms"] = es.vms;
  out["open_incidents"] = es.open_incidents;
  out["in_flight"] = es.in_flight;
  out["counters"] = counters_.to_json();
  return out;
}

std::string EngineNode::status_text() {
  std::ostringstream out;
  const Time now = party_.clock.now();
  auto es = engine_->stats();
  std::vector<std::string> hosts = engine_->hosts();
  std::sort(hosts.begin(), hosts.end());
  if (!degraded_.ok()) {
    out << "engine " << config_.name << ": degraded (the audit log cannot be written: "
        << degraded_.message() << "; not deciding or dispatching until it can)\n";
  }
  out << "engine " << config_.name << ": " << (degraded_.ok() ? "up" : "degraded") << ", "
      << hosts.size() << " hosts, " << es.vms
      << " VMs, " << es.open_incidents << " open incidents, " << es.in_flight
      << " actions in flight\n";
  out << "counters: " << stats_.batches << " batches, " << stats_.events << " events, "
      << stats_.decisions << " decisions, " << stats_.dispatched << " dispatched, "
      << receiver_->rejections().rejected() << " frames rejected, " << stats_.audit_errors
      << " audit errors, " << es.vm_claims_refused << " VM claims refused\n";
  out << "rejected frames: " << rejections_line(counters_) << "\n";
  auto in_flight = store_->in_flight(now);
  size_t pending = 0;
  if (in_flight.ok()) {
    for (const auto& a : *in_flight) {
      if (a.state != ActionState::kPendingApproval) continue;
      if (pending++ == 0) out << "pending approvals:\n";
      out << "  " << a.action_id << "  " << a.verb << " " << a.vm << " on " << a.host
          << " (rule " << a.rule << ")\n";
    }
  }
  if (pending == 0) out << "pending approvals: none\n";
  size_t silences = 0;
  for (const auto& [id, s] : engine_->silences()) {
    if (s.until <= now) continue;  // expired, not yet purged
    out << silence_line(id, s, now);
    ++silences;
  }
  if (silences == 0) out << "silences: none\n";
  std::vector<std::string> frozen;
  if (engine_->frozen("")) frozen.push_back("the whole fleet");
  for (const auto& h : hosts) {
    if (engine_->frozen(h)) frozen.push_back(h);
  }
  out << "frozen by storm guard: ";
  if (frozen.empty()) out << "none";
  for (size_t i = 0; i < frozen.size(); ++i) out << (i ? ", " : "") << frozen[i];
  out << "\n";
  return out.str();
}

}  // namespace medic::node
