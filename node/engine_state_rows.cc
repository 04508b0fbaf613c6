#include "node/engine_state_rows.h"

#include <string_view>
#include <unordered_map>

#include "core/json.h"

namespace medic::node {
namespace {

using audit::StateKind;
using audit::StateRow;

Json times(const std::vector<int64_t>& v) { return Json(v); }

// A VM's row key: its host, a separator no name holds, its id (a VM is
// (host, id): two hosts claiming one id are two rows).
constexpr char kVmKeySeparator = '\x1e';

std::string vm_key(std::string_view host, std::string_view id) {
  std::string k(host);
  k += kVmKeySeparator;
  k += id;
  return k;
}

Json incident_json(const rules::IncidentRecord& r) {
  Json refs = Json::array();
  for (auto e : r.evidence) refs.push_back(e);
  return {{"id", r.id},
          {"key", r.key},
          {"rule", r.rule},
          {"ver", r.rule_version},
          {"step", r.step},
          {"state", r.state},
          {"wait", static_cast<int>(r.waiting_on)},
          {"held", static_cast<int>(r.held_by)},
          {"action", r.action_id},
          {"deadline", r.deadline_ns},
          {"sd", r.step_decision},
          {"ev", refs},
          {"trigger", r.trigger},
          {"probe", r.probe},
          {"healed", r.healed_seen},
          {"prog", r.progress},
          {"wfrom", r.watch_from_ns},
          {"reported", r.waiting_reported},
          {"astep", r.approved_step},
          {"aby", r.approved_by},
          {"napp", r.needs_approval}};
}

rules::IncidentRecord incident_from(const Json& j, const std::string& host,
                                    const std::string& vm) {
  rules::IncidentRecord r;
  r.id = j.at("id").get<uint64_t>();
  r.key = j.at("key").get<std::string>();
  r.rule = j.at("rule").get<std::string>();
  r.rule_version = j.at("ver").get<std::string>();
  r.vm = vm;
  r.host = host;
  r.step = j.at("step").get<uint32_t>();
  r.state = j.at("state").get<uint8_t>();
  r.waiting_on = static_cast<rules::Policy>(j.at("wait").get<int>());
  r.held_by = static_cast<rules::Policy>(j.at("held").get<int>());
  r.action_id = j.at("action").get<std::string>();
  r.deadline_ns = j.at("deadline").get<int64_t>();
  r.step_decision = j.value("sd", std::string());  // absent in rows from before it was kept
  for (const auto& e : j.at("ev")) r.evidence.push_back(e.get<rules::EvidenceRef>());
  r.trigger = j.at("trigger").get<std::string>();
  r.probe = j.at("probe").get<std::string>();
  r.healed_seen = j.at("healed").get<bool>();
  r.progress = j.value("prog", false);  // absent in rows from before boot_timeout
  r.watch_from_ns = j.value("wfrom", int64_t{0});
  r.waiting_reported = j.at("reported").get<bool>();
  r.approved_step = j.at("astep").get<uint32_t>();
  r.approved_by = j.at("aby").get<std::string>();
  r.needs_approval = j.value("napp", false);  // absent in rows from before requesters
  return r;
}

// A VM's incidents and in-flight actions, by the VM's position in c.state.vms.
struct VmParts {
  std::vector<std::vector<const rules::IncidentRecord*>> incidents;
  std::vector<std::vector<const rules::InFlightRecord*>> in_flight;
};

VmParts parts_by_vm(const rules::StateChanges& c) {
  std::unordered_map<std::string, size_t> at;
  at.reserve(c.state.vms.size());
  for (size_t i = 0; i < c.state.vms.size(); ++i) {
    at.emplace(vm_key(c.state.vms[i].host, c.state.vms[i].id), i);
  }
  VmParts p;
  p.incidents.resize(c.state.vms.size());
  p.in_flight.resize(c.state.vms.size());
  for (const auto& i : c.state.incidents) {
    if (auto it = at.find(vm_key(i.host, i.vm)); it != at.end()) {
      p.incidents[it->second].push_back(&i);
    }
  }
  for (const auto& f : c.state.in_flight) {
    if (auto it = at.find(vm_key(f.host, f.vm)); it != at.end()) {
      p.in_flight[it->second].push_back(&f);
    }
  }
  return p;
}

Json vm_json(const rules::VmRecord& r, const std::vector<const rules::IncidentRecord*>& incs,
             const std::vector<const rules::InFlightRecord*>& flying) {
  Json labels = Json::array();
  for (const auto& [k, v] : r.labels) labels.push_back({k, v});
  Json incidents = Json::array();
  for (const auto* i : incs) incidents.push_back(incident_json(*i));
  Json actions = Json::array();
  for (const auto* f : flying) {
    actions.push_back({{"id", f->action_id}, {"host", f->host}, {"expires", f->expires_ns},
                       {"heal", f->heal_within.count()}});
  }
  return {{"host", r.host},
          {"owner", r.owner},
          {"claim_noticed", r.claim_noticed},
          {"retired", r.retired},
          {"seen", r.last_seen_ns},
          {"labels", labels},
          {"hb", r.last_heartbeat_ns},
          {"up", r.uptime_ns},
          {"rss", r.rss_bytes},
          {"cpu", r.cpu_percent},
          {"st", static_cast<int>(r.state)},
          {"last_action", r.last_action_ns},
          {"actions", times(r.action_times)},
          {"notice", r.budget_notice_ns},
          {"bad_since", r.bad_since_ns},
          {"counted", r.storm_counted_ns},
          {"incidents", incidents},
          {"in_flight", actions}};
}

Status vm_from(const std::string& key, const Json& j, rules::EngineState* s) {
  const size_t sep = key.find(kVmKeySeparator);
  if (sep == std::string::npos) return invalid_argument("a VM row key without its host");
  rules::VmRecord r;
  r.id = key.substr(sep + 1);
  r.host = j.at("host").get<std::string>();
  if (r.host != key.substr(0, sep)) return invalid_argument("a VM row whose host is not its key's");
  r.owner = j.at("owner").get<bool>();
  r.claim_noticed = j.at("claim_noticed").get<bool>();
  r.retired = j.value("retired", false);  // rows written before deletes existed
  r.last_seen_ns = j.at("seen").get<int64_t>();
  for (const auto& kv : j.at("labels")) {
    r.labels.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
  }
  r.last_heartbeat_ns = j.at("hb").get<int64_t>();
  r.uptime_ns = j.at("up").get<int64_t>();
  r.rss_bytes = j.at("rss").get<uint64_t>();
  r.cpu_percent = j.at("cpu").get<float>();
  r.state = static_cast<medic::v1::VmState>(j.at("st").get<int>());
  r.last_action_ns = j.at("last_action").get<int64_t>();
  r.action_times = j.at("actions").get<std::vector<int64_t>>();
  r.budget_notice_ns = j.at("notice").get<int64_t>();
  r.bad_since_ns = j.at("bad_since").get<int64_t>();
  r.storm_counted_ns = j.at("counted").get<int64_t>();
  for (const auto& i : j.at("incidents")) s->incidents.push_back(incident_from(i, r.host, r.id));
  for (const auto& f : j.at("in_flight")) {
    s->in_flight.push_back({f.at("id").get<std::string>(), r.id, f.at("host").get<std::string>(),
                            f.at("expires").get<int64_t>(),
                            Duration(f.at("heal").get<int64_t>())});
  }
  s->vms.push_back(std::move(r));
  return {};
}

Json host_json(const rules::HostRecord& r) {
  return {{"seen", r.last_seen_ns}, {"noticed", r.silence_noticed}, {"bad", times(r.bad_times)},
          {"last_bad", r.last_bad_ns}, {"frozen", r.frozen}, {"settle", r.settle_until_ns},
          {"paged", r.paged_ns}, {"paged_n", r.paged_count}};
}

void host_from(const std::string& name, const Json& j, rules::EngineState* s) {
  s->hosts.push_back({name, j.at("seen").get<int64_t>(), j.at("noticed").get<bool>(),
                      j.at("bad").get<std::vector<int64_t>>(), j.at("last_bad").get<int64_t>(),
                      j.at("frozen").get<bool>()});
  // Absent in rows written before settles and page repeats were kept.
  s->hosts.back().settle_until_ns = j.value("settle", int64_t{0});
  s->hosts.back().paged_ns = j.value("paged", int64_t{0});
  s->hosts.back().paged_count = j.value("paged_n", uint32_t{0});
}

Json silence_json(const rules::Silence& x) {
  return {{"vm", x.vm}, {"host", x.host}, {"rule", x.rule}, {"lk", x.label_key},
          {"lv", x.label_value}, {"until", to_ns(x.until)}, {"reason", x.reason}, {"by", x.by}};
}

void silence_from(const std::string& id, const Json& j, rules::EngineState* s) {
  rules::Silence x;
  x.vm = j.at("vm").get<std::string>();
  x.host = j.at("host").get<std::string>();
  x.rule = j.at("rule").get<std::string>();
  x.label_key = j.at("lk").get<std::string>();
  x.label_value = j.at("lv").get<std::string>();
  x.until = from_ns(j.at("until").get<int64_t>());
  x.reason = j.at("reason").get<std::string>();
  x.by = j.at("by").get<std::string>();
  s->silences.emplace_back(id, std::move(x));
}

Json engine_json(const rules::EngineState& s) {
  return {{"decisions", s.decision_counter},
          {"incident", s.last_incident_id},
          {"silence", s.silence_counter},
          {"fleet_bad", times(s.fleet_bad_times)},
          {"fleet_last_bad", s.fleet_last_bad_ns},
          {"fleet_frozen", s.fleet_frozen},
          {"fleet_settle", s.fleet_settle_until_ns},
          {"fleet_paged", s.fleet_paged_ns},
          {"fleet_paged_n", s.fleet_paged_count},
          {"waiting", s.waiting},
          {"clones", s.clones_by}};
}

void engine_from(const Json& j, rules::EngineState* s) {
  s->decision_counter = j.at("decisions").get<uint64_t>();
  s->last_incident_id = j.at("incident").get<uint64_t>();
  s->silence_counter = j.at("silence").get<uint64_t>();
  s->fleet_bad_times = j.at("fleet_bad").get<std::vector<int64_t>>();
  s->fleet_last_bad_ns = j.at("fleet_last_bad").get<int64_t>();
  s->fleet_frozen = j.at("fleet_frozen").get<bool>();
  s->fleet_settle_until_ns = j.value("fleet_settle", int64_t{0});
  s->fleet_paged_ns = j.value("fleet_paged", int64_t{0});
  s->fleet_paged_count = j.value("fleet_paged_n", uint32_t{0});
  s->waiting = j.at("waiting").get<std::vector<uint64_t>>();
  if (const Json* c = json_member(j, "clones"))
    s->clones_by = c->get<std::vector<std::pair<std::string, std::vector<int64_t>>>>();
}

std::string u64_bytes(uint64_t a, uint64_t b) {
  std::string out(16, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(a >> (8 * i));
    out[8 + i] = static_cast<char>(b >> (8 * i));
  }
  return out;
}

uint64_t u64_at(const std::string& s, size_t at, int bytes = 8) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

Status replay_from(const StateRow& row, StoredState* out) {
  // lane (1) | sender key (32) | stream (4, little-endian); value epoch | seq.
  if (row.key.size() != 37 || row.value.size() != 16) {
    return invalid_argument("malformed replay mark row");
  }
  fabric::Opener::ReplayMark m{row.key.substr(1, 32), static_cast<uint32_t>(u64_at(row.key, 33, 4)),
                               u64_at(row.value, 0), u64_at(row.value, 8)};
  if (row.key[0] == static_cast<char>(ReplayLane::kEvents)) {
    out->event_marks.push_back(std::move(m));
  } else if (row.key[0] == static_cast<char>(ReplayLane::kControl)) {
    out->control_marks.push_back(std::move(m));
  } else {
    return invalid_argument("replay mark of an unknown lane");
  }
  return {};
}

Status decode_row(const StateRow& row, StoredState* out) {
  if (row.kind == StateKind::kReplay) return replay_from(row, out);
  auto j = parse_json(row.value);
  if (!j.ok()) return j.status();
  try {
    switch (row.kind) {
      case StateKind::kVm: return vm_from(row.key, *j, &out->engine);
      case StateKind::kHost: host_from(row.key, *j, &out->engine); break;
      case StateKind::kSilence: silence_from(row.key, *j, &out->engine); break;
      case StateKind::kEngine: engine_from(*j, &out->engine); break;
      case StateKind::kReplay: break;
    }
  } catch (const Json::exception& e) {
    return invalid_argument(e.what());
  }
  return {};
}

}  // namespace

void append_state_rows(const rules::StateChanges& c, std::vector<StateRow>* out) {
  const VmParts parts = parts_by_vm(c);
  for (size_t i = 0; i < c.state.vms.size(); ++i) {
    const auto& vm = c.state.vms[i];
    out->push_back(
        {StateKind::kVm, vm_key(vm.host, vm.id),
         dump_json(vm_json(vm, parts.incidents[i], parts.in_flight[i]))});
  }
  for (const auto& h : c.state.hosts) {
    out->push_back({StateKind::kHost, h.name, dump_json(host_json(h))});
  }
  for (const auto& [id, sil] : c.state.silences) {
    out->push_back({StateKind::kSilence, id, dump_json(silence_json(sil))});
  }
  for (const auto& id : c.silences_removed) out->push_back({StateKind::kSilence, id, ""});
  if (c.engine_changed) {
    out->push_back({StateKind::kEngine, "engine", dump_json(engine_json(c.state))});
  }
}

void append_replay_rows(ReplayLane lane, const std::vector<fabric::Opener::ReplayMark>& marks,
                        std::vector<StateRow>* out) {
  for (const auto& m : marks) {
    std::string key(1, static_cast<char>(lane));
    key += m.sender;
    key += u64_bytes(m.stream, 0).substr(0, 4);
    out->push_back({StateKind::kReplay, std::move(key), u64_bytes(m.epoch, m.seq)});
  }
}

Result<StoredState> decode_state_rows(const std::vector<StateRow>& rows) {
  StoredState out;
  for (const StateRow& row : rows) {
    Status s = decode_row(row, &out);
    if (!s.ok()) {
      return failed_precondition("engine state: row (kind " +
                                 std::to_string(static_cast<int>(row.kind)) + ", key \"" +
                                 (row.kind == StateKind::kReplay ? "(binary)" : row.key) +
                                 "\") does not decode: " + s.message());
    }
    ++out.rows;
  }
  return out;
}

}  // namespace medic::node
