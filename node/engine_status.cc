// The `medic status` text: health, counters, pending approvals, silences and
// storm-guard freezes, read from the rules engine and the audit log (the node
// keeps no copy of its own).
#include <algorithm>
#include <sstream>

#include "core/duration.h"
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

}  // namespace

std::string EngineNode::status_text() {
  std::ostringstream out;
  const Time now = deps_.clock->now();
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
      << " audit errors\n";
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
