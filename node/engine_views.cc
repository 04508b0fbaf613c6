#include "node/engine_views.h"

#include <algorithm>
#include <ctime>
#include <map>

#include "core/action_state.h"
#include "core/json.h"
#include "node/daemon_http.h"
#include "rules/event_types.h"

namespace medic::node {
namespace {

// RFC 3339 UTC with milliseconds; null for "never".
Json iso_time(int64_t ns) {
  if (ns == 0) return nullptr;
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  int ms = static_cast<int>((ns % 1'000'000'000) / 1'000'000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return std::string(buf);
}
Json iso_time(Time t) { return iso_time(to_ns(t)); }

std::string label(const rules::VmRecord& vm, const std::string& key) {
  for (const auto& [k, v] : vm.labels) {
    if (k == key) return v;
  }
  return "";
}

std::vector<std::string> frozen_hosts(EngineNode& node) {
  std::vector<std::string> out;
  for (const auto& h : node.engine().hosts()) {
    if (node.engine().frozen(h)) out.push_back(h);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Json status_json(EngineNode& node) {
  Json j = node.status_json();  // the same document as `medic status --json`
  j["at"] = iso_time(node.clock().now());
  j["outbox"] = node.outbox_size();
  j["ready"] = readiness_json(node)["ready"];
  return j;
}

Json hosts_json(EngineNode& node) {
  const Time now = node.clock().now();
  Json out = Json::array();
  for (const auto& h : node.engine().host_views()) {
    Json j;
    j["host"] = h.name;
    j["last_report"] = iso_time(h.last_seen);
    j["seconds_since_report"] = std::chrono::duration<double>(now - h.last_seen).count();
    j["silent"] = h.silent;
    j["frozen"] = h.frozen;
    j["vms"] = h.vms;
    out.push_back(std::move(j));
  }
  return out;
}

Json vms_json(EngineNode& node) {
  const rules::EngineState state = node.engine().snapshot();
  Json out = Json::array();
  for (const auto& vm : state.vms) {
    Json j;
    j["vm"] = vm.id;
    j["name"] = label(vm, "name");
    j["host"] = vm.host;
    j["state"] = std::string(rules::vm_state_name(vm.state));
    j["last_report"] = iso_time(vm.last_seen_ns);
    j["last_heartbeat"] = iso_time(vm.last_heartbeat_ns);
    j["last_action"] = iso_time(vm.last_action_ns);
    Json labels = Json::object();
    for (const auto& [k, v] : vm.labels) labels[k] = v;
    j["labels"] = std::move(labels);
    out.push_back(std::move(j));
  }
  return out;
}

// The rules engine's own view (medic incidents shows the same), so the page
// and the CLI say the same words about what an incident waits for.
Json incidents_json(EngineNode& node) {
  Json out = Json::array();
  for (const auto& i : node.engine().incidents()) {
    Json j;
    j["incident"] = i.id;
    j["rule"] = i.rule;
    j["vm"] = i.vm;
    j["vm_name"] = i.vm_name;
    j["host"] = i.host;
    j["trigger"] = i.trigger;
    j["ladder_step"] = i.step;
    j["ladder_size"] = i.ladder_size;
    j["step_name"] = i.step_name;
    j["state"] = i.state;
    j["waits_for"] = i.waits_for;
    j["action_id"] = i.action_id;
    j["deadline"] = iso_time(i.deadline);
    out.push_back(std::move(j));
  }
  return out;
}

Json approvals_json(EngineNode& node) {
  Json out = Json::array();
  const Time now = node.clock().now();
  auto in_flight = node.store().in_flight(now);
  if (!in_flight.ok()) return out;
  for (const auto& a : *in_flight) {
    if (a.state != ActionState::kPendingApproval) continue;
    Json j;
    j["action_id"] = a.action_id;
    j["verb"] = a.verb;
    j["vm"] = a.vm;
    j["vm_name"] = node.engine().vm_name(a.vm);
    j["host"] = a.host;
    j["rule"] = a.rule;
    j["ladder_step"] = a.ladder_step;
    j["waiting_since"] = iso_time(a.state_at);
    j["expires"] = iso_time(a.expires_at);
    j["approve_command"] = "medic approve " + a.action_id;
    j["deny_command"] = "medic deny " + a.action_id + " --reason \"...\"";
    out.push_back(std::move(j));
  }
  return out;
}

Json silences_json(EngineNode& node) {
  const Time now = node.clock().now();
  Json out = Json::array();
  for (const auto& [id, s] : node.engine().silences()) {
    if (s.until <= now) continue;  // expired, not yet purged
    Json j;
    j["silence"] = id;
    j["vm"] = s.vm;
    j["host"] = s.host;
    j["rule"] = s.rule;
    j["label"] = s.label_key.empty() ? "" : s.label_key + "=" + s.label_value;
    j["until"] = iso_time(s.until);
    j["by"] = s.by;
    j["reason"] = s.reason;
    out.push_back(std::move(j));
  }
  return out;
}

Json freezes_json(EngineNode& node) {
  Json j;
  j["fleet"] = node.engine().frozen("");
  j["hosts"] = frozen_hosts(node);
  return j;
}

Json overview_json(EngineNode& node) {
  Json j;
  j["status"] = status_json(node);
  j["incidents"] = incidents_json(node);
  j["approvals"] = approvals_json(node);
  j["silences"] = silences_json(node);
  j["freezes"] = freezes_json(node);
  // The names of the VMs the page shows: those of incidents and approvals
  // are in their rows; silences name a VM by id only.
  Json names = Json::object();
  for (const auto& list : {"incidents", "approvals"}) {
    for (const auto& row : j[list]) {
      if (!row["vm_name"].get<std::string>().empty())
        names[row["vm"].get<std::string>()] = row["vm_name"];
    }
  }
  for (const auto& row : j["silences"]) {
    const std::string vm = row["vm"];
    if (vm.empty() || names.contains(vm)) continue;
    const std::string name = node.engine().vm_name(vm);
    if (!name.empty()) names[vm] = name;
  }
  j["vm_names"] = std::move(names);
  return j;
}

Json readiness_json(EngineNode& node) {
  ReadinessChecks checks;
  // Cheap (every scrape reads it): the writer's health, not a query.
  const Status& degraded = node.degraded();
  checks.check("store", degraded.ok() && node.stats().audit_errors == 0,
               !degraded.ok() ? degraded.message()
                              : std::to_string(node.stats().audit_errors) + " audit errors");
  checks.check("sockets", true,
               "events " + node.events_endpoint() + ", actions " + node.actions_endpoint() +
                   ", control " + node.control_endpoint());
  checks.check("rules", node.rules_loaded() > 0,
               std::to_string(node.rules_loaded()) + " rules loaded");
  return checks.json();
}

Result<Json> recent_actions_json(const std::string& audit_path, int64_t limit) {
  auto reader = audit::AuditReader::open(audit_path);
  if (!reader.ok()) return reader.status();
  audit::ListFilter filter;
  filter.limit = limit;
  auto rows = reader->list(filter);
  if (!rows.ok()) return rows.status();
  return parse_json(audit::list_json(*rows), {64 << 20, 32});
}

Result<Json> why_json(const std::string& audit_path, const std::string& action_id) {
  auto reader = audit::AuditReader::open(audit_path);
  if (!reader.ok()) return reader.status();
  auto h = reader->history(action_id);
  if (!h.ok()) return h.status();
  auto j = parse_json(audit::why_json(*h), {64 << 20, 32});
  if (!j.ok()) return j.status();
  Json out;
  out["why"] = std::move(*j);
  out["text"] = audit::why_text(*h);
  return out;
}

}  // namespace medic::node
