#include <algorithm>
#include <vector>

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
    {"alert.name", FieldId::kAlertName, Type::kString, Avail::kAlert},
    // The maps: read as NAME.KEY or NAME["KEY"] (expr_parser.cc).
    {"vm.labels", FieldId::kVmLabel, Type::kString, Avail::kAlways},
    {"alert.labels", FieldId::kAlertLabel, Type::kString, Avail::kAlert},
    {"alert.annotations", FieldId::kAlertAnnotation, Type::kString, Avail::kAlert},
};

}  // namespace

bool is_map_field(FieldId id) {
  return id == FieldId::kVmLabel || id == FieldId::kAlertLabel || id == FieldId::kAlertAnnotation;
}

const FieldDef* find_field(std::string_view name) {
  for (const auto& f : kFields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string suggest_field(std::string_view name) {
  // vm.label.KEY, alert.lables.KEY: a map's name misspelt, the key as meant.
  const size_t first = name.find('.');
  const size_t second = first == std::string_view::npos ? first : name.find('.', first + 1);
  if (second != std::string_view::npos) {
    std::string_view head = name.substr(0, second);
    for (const auto& f : kFields) {
      if (is_map_field(f.id) && head != f.name && edit_distance(head, f.name) <= 2)
        return "; did you mean " + std::string(f.name) + std::string(name.substr(second)) + "?";
    }
  }
  std::vector<std::string_view> names;
  for (const auto& f : kFields) names.push_back(f.name);
  return did_you_mean(name, names);
}

}  // namespace medic::rules
