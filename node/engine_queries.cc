// The operator queries `medic silence list`, `medic incidents` and
// `medic hosts`: each reply carries a text for people and the same facts as
// JSON (schema in docs/user-guide.md#operator-commands), both read from the
// rules engine at the moment of the request.
#include "core/duration.h"
#include "core/json.h"
#include "core/text.h"
#include "node/engine_node.h"
#include "vmm/hypervisor.h"

namespace medic::node {
namespace {

// Whole seconds, as the rest of the operator text writes them ("2m5s").
std::string secs(Duration d) {
  auto s = std::chrono::round<std::chrono::seconds>(d);
  return s.count() <= 0 ? "0s" : format_duration(s);
}

std::pair<std::string, std::string> silence_scope(const rules::Silence& s) {
  if (!s.vm.empty()) return {"vm", s.vm};
  if (!s.host.empty()) return {"host", s.host};
  if (!s.rule.empty()) return {"rule", s.rule};
  return {"label", s.label_key + "=" + s.label_value};
}

std::string labels_text(const std::vector<std::pair<std::string, std::string>>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += "  " + k + "=" + v;
  return out;
}

// The VMs of one host: a line each for people, an array for JSON.
Json vm_list(const rules::HostView& h, Time now, std::string* text) {
  Json list = Json::array();
  for (const auto& vm : h.vm_list) {
    *text += "    " + vm.id + "  " + vmm::state_name(vm.state) + labels_text(vm.labels) +
             "  last heard " + secs(now - vm.last_seen) + " ago\n";
    Json labels = Json::object();
    for (const auto& [k, v] : vm.labels) labels[k] = v;
    list.push_back({{"id", vm.id}, {"state", vmm::state_name(vm.state)}, {"labels", labels},
                    {"last_seen_ns", to_ns(vm.last_seen)}});
  }
  return list;
}

}  // namespace

void EngineNode::silences_reply(medic::v1::ControlReply* reply) {
  const Time now = party_.clock.now();
  std::string text;
  Json list = Json::array();
  for (const auto& [id, s] : engine_->silences()) {
    if (s.until <= now) continue;  // expired, not yet purged
    auto [scope, value] = silence_scope(s);
    text += id + "  " + scope + "=" + value + "  " + secs(s.until - now) + " left  by " + s.by +
            ": " + s.reason + "\n";
    list.push_back({{"id", id}, {"scope", scope}, {"value", value},
                    {"until_ns", to_ns(s.until)}, {"remaining_s", (s.until - now).count() / 1'000'000'000},
                    {"by", s.by}, {"reason", s.reason}});
  }
  reply->set_text(text.empty() ? "no silences\n" : text);
  reply->set_json(dump_json(Json{{"silences", list}}));
}

void EngineNode::incidents_reply(medic::v1::ControlReply* reply) {
  const Time now = party_.clock.now();
  std::string text;
  Json list = Json::array();
  for (const auto& i : engine_->incidents()) {
    text += "incident " + std::to_string(i.id) + "  " + vm_words(i.vm, i.vm_name) + " on " +
            (i.host.empty() ? "-" : i.host) + "  rule " + i.rule + "  step " +
            std::to_string(i.step) + "/" + std::to_string(i.ladder_size) + " (" + i.step_name +
            ")  " + i.state + "\n    waits for " + i.waits_for +
            (to_ns(i.deadline) ? ", " + secs(i.deadline - now) + " left" : "") + "\n";
    list.push_back({{"id", i.id}, {"rule", i.rule}, {"vm", i.vm}, {"vm_name", i.vm_name},
                    {"host", i.host},
                    {"step", i.step}, {"ladder_size", i.ladder_size}, {"step_name", i.step_name},
                    {"state", i.state}, {"waits_for", i.waits_for}, {"action_id", i.action_id},
                    {"deadline_ns", to_ns(i.deadline)}});
  }
  reply->set_text(text.empty() ? "no open incidents\n" : text);
  reply->set_json(dump_json(Json{{"incidents", list}}));
}

void EngineNode::hosts_reply(const medic::v1::HostsQuery& q, medic::v1::ControlReply* reply) {
  const Time now = party_.clock.now();
  std::string text;
  Json list = Json::array();
  for (const auto& h : engine_->host_views(q.vms())) {
    std::string flags = std::string(h.silent ? "  SILENT" : "") + (h.frozen ? "  FROZEN" : "");
    text += h.name + "  " + std::to_string(h.vms) + " VMs  last report " +
            (to_ns(h.last_seen) ? secs(now - h.last_seen) + " ago" : "never") + flags + "\n";
    Json host = {{"name", h.name}, {"vms", h.vms}, {"last_seen_ns", to_ns(h.last_seen)},
                 {"silent", h.silent}, {"frozen", h.frozen}};
    if (q.vms()) host["vm_list"] = vm_list(h, now, &text);
    list.push_back(std::move(host));
  }
  const bool fleet_frozen = engine_->frozen("");
  if (fleet_frozen) text += "the whole fleet is FROZEN by the storm guard\n";
  reply->set_text(text.empty() ? "no hosts have reported\n" : text);
  reply->set_json(dump_json(Json{{"hosts", list}, {"fleet_frozen", fleet_frozen}}));
}

// `medic vm show VM`: its last report, what it is meant to be (the backend's
// `desired` label: the qmp spec, or vmadm's autoboot), and its incidents.
Status EngineNode::vm_reply(const medic::v1::VmQuery& q, medic::v1::ControlReply* reply) {
  const Time now = party_.clock.now();
  for (const auto& h : engine_->host_views(true)) {
    for (const auto& vm : h.vm_list) {
      std::string name, desired;
      for (const auto& [k, v] : vm.labels) {
        if (k == "name") name = v;
        if (k == "desired") desired = v;
      }
      if (vm.id != q.vm() && (name.empty() || name != q.vm())) continue;
      std::string text =
          "VM " + vm_words(vm.id, name) + " on " + h.name + ": " + vmm::state_name(vm.state) +
          (desired.empty() ? "" : ", desired " + desired) + "\n  last report " +
          secs(now - vm.last_seen) + " ago" + (h.silent ? " (host SILENT)" : "") + "\n  labels" +
          (vm.labels.empty() ? " none" : labels_text(vm.labels)) + "\n";
      Json incidents = Json::array();
      for (const auto& i : engine_->incidents()) {
        if (i.vm != vm.id) continue;
        text += "  incident " + std::to_string(i.id) + ": rule " + i.rule + " step " +
                std::to_string(i.step) + "/" + std::to_string(i.ladder_size) + " (" + i.step_name +
                ") " + i.state + ", waits for " + i.waits_for + "\n";
        incidents.push_back({{"id", i.id},
                             {"rule", i.rule},
                             {"step", i.step},
                             {"step_name", i.step_name},
                             {"state", i.state},
                             {"waits_for", i.waits_for},
                             {"action_id", i.action_id}});
      }
      if (incidents.empty()) text += "  no open incident\n";
      Json labels = Json::object();
      for (const auto& [k, v] : vm.labels) labels[k] = v;
      reply->set_text(text);
      reply->set_json(dump_json(Json{{"vm", vm.id},
                                     {"name", name},
                                     {"host", h.name},
                                     {"state", vmm::state_name(vm.state)},
                                     {"desired", desired},
                                     {"last_seen_ns", to_ns(vm.last_seen)},
                                     {"host_silent", h.silent},
                                     {"labels", labels},
                                     {"incidents", incidents}}));
      return {};
    }
  }
  return not_found("no VM \"" + q.vm() + "\" (id or name) has reported to this engine");
}

}  // namespace medic::node
