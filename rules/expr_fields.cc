#include <algorithm>

#include "core/text.h"
#include "rules/expr_ast.h"

namespace medic::rules {

const char* type_name(Type t) {
  switch (t) {
    case Type::kBool:
      return "bool";
    case Type::kNumber:
      return "number";
    case Type::kString:
      return "string";
    case Type::kDuration:
      return "duration";
  }
  return "?";
}

namespace {

constexpr FieldDef kFields[] = {
    {"vm.id", FieldId::kVmId, Type::kString, Avail::kAlways},
    {"vm.host", FieldId::kVmHost, Type::kString, Avail::kAlways},
    {"vm.state", FieldId::kVmState, Type::kString, Avail::kAlways},
    {"vm.cpu_percent", FieldId::kVmCpu, Type::kNumber, Avail::kAlways},
    {"vm.rss_bytes", FieldId::kVmRss, Type::kNumber, Avail::kAlways},
    {"vm.uptime", FieldId::kVmUptime, Type::kDuration, Avail::kAlways},
    {"vm.heartbeat_age", FieldId::kVmHeartbeatAge, Type::kDuration, Avail::kAlways},
    {"event.type", FieldId::kEventType, Type::kString, Avail::kEvent},
    {"event.detail", FieldId::kEventDetail, Type::kString, Avail::kLifecycle},
    {"probe.name", FieldId::kProbeName, Type::kString, Avail::kProbe},
    {"probe.ok", FieldId::kProbeOk, Type::kBool, Avail::kProbe},
    {"probe.status", FieldId::kProbeStatus, Type::kNumber, Avail::kProbe},
    {"probe.latency", FieldId::kProbeLatency, Type::kDuration, Avail::kProbe},
    {"probe.reason", FieldId::kProbeReason, Type::kString, Avail::kProbe},
    {"heartbeat.source", FieldId::kHeartbeatSource, Type::kString, Avail::kHeartbeat},
    {"heartbeat.counter", FieldId::kHeartbeatCounter, Type::kNumber, Avail::kHeartbeat},
};

}  // namespace

const FieldDef* find_field(std::string_view name) {
  for (const auto& f : kFields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string suggest_field(std::string_view name) {
  std::string best;
  size_t best_d = 4;
  for (const auto& f : kFields) {
    size_t d = edit_distance(name, f.name);
    if (d < best_d) {
      best_d = d;
      best = std::string(f.name);
    }
  }
  if (name.substr(0, 7) != "vm.labe" &&
      edit_distance(name.substr(0, std::min<size_t>(name.size(), 10)), "vm.labels.") <= 2) {
    best = "vm.labels.KEY";
  }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

}  // namespace medic::rules
