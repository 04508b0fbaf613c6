#include "node/alert_bridge.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "core/config.h"
#include "core/json.h"
#include "node/daemon_http.h"
#include "node/http_config.h"
#include "node/metrics_text.h"

namespace medic::node {
namespace {

// RFC 3339 ("2026-12-03T11:00:00.5Z", "...+01:00") in ns since the epoch;
// 0 for what does not parse and for Go's zero time (year 1).
int64_t rfc3339_ns(const std::string& t) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      tm.tm_year < 1970) {
    return 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t ns = static_cast<int64_t>(timegm(&tm)) * 1'000'000'000;
  size_t at = static_cast<size_t>(consumed);
  if (at < t.size() && t[at] == '.') {
    int64_t scale = 100'000'000;
    for (++at; at < t.size() && std::isdigit(static_cast<unsigned char>(t[at])); ++at) {
      ns += (t[at] - '0') * scale;
      scale /= 10;
    }
  }
  int oh = 0, om = 0;
  if (at < t.size() && (t[at] == '+' || t[at] == '-') &&
      std::sscanf(t.c_str() + at + 1, "%2d:%2d", &oh, &om) == 2) {
    const int64_t off = (oh * 3600LL + om * 60LL) * 1'000'000'000;
    ns += t[at] == '+' ? -off : off;
  }
  return ns;
}

// An object of strings into sorted labels; false when it is something else.
bool read_pairs(const Json& j, google::protobuf::RepeatedPtrField<medic::v1::Label>* out) {
  if (j.is_null()) return true;
  if (!j.is_object()) return false;
  for (const auto& [k, v] : j.items()) {  // nlohmann's objects are sorted by key
    if (!v.is_string()) return false;
    auto* l = out->Add();
    l->set_key(k);
    l->set_value(v.get<std::string>());
  }
  return true;
}

std::string first_label(const medic::v1::Alert& a, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    for (const auto& l : a.labels()) {
      if (l.key() == n && !l.value().empty()) return l.value();
    }
  }
  return "";
}

std::string field_of(const Json& a, const char* key) {
  auto it = a.find(key);
  return it != a.end() && it->is_string() ? it->get<std::string>() : "";
}

// One alert of the body into an event; "" or why it is not one.
std::string read_alert(const Json& a, size_t i, const std::string& receiver, medic::v1::Event* e) {
  const std::string at = "alerts[" + std::to_string(i) + "]";
  if (!a.is_object()) return at + " is not an object";
  const std::string status = field_of(a, "status");
  if (status != "firing" && status != "resolved")
    return at + ".status must be \"firing\" or \"resolved\"";
  medic::v1::Alert* al = e->mutable_alert();
  al->set_firing(status == "firing");
  if (!read_pairs(a.value("labels", Json()), al->mutable_labels()))
    return at + ".labels must be an object of strings";
  if (!read_pairs(a.value("annotations", Json()), al->mutable_annotations()))
    return at + ".annotations must be an object of strings";
  for (const auto& l : al->labels()) {
    if (l.key() == "alertname") al->set_name(l.value());
  }
  al->set_fingerprint(field_of(a, "fingerprint"));
  al->set_starts_at_ns(rfc3339_ns(field_of(a, "startsAt")));
  al->set_generator_url(field_of(a, "generatorURL"));
  al->set_receiver(receiver);
  return "";
}

}  // namespace

Result<MappedAlerts> map_webhook(std::string_view body, const AlertMapping& map) {
  auto j = parse_json(body);
  if (!j.ok()) return invalid_argument("the body is not JSON: " + j.status().message());
  if (!j->is_object()) return invalid_argument("the body is not a JSON object");
  auto list = j->find("alerts");
  if (list == j->end() || !list->is_array())
    return invalid_argument("the body has no \"alerts\" list (is it an Alertmanager webhook?)");
  const std::string receiver = field_of(*j, "receiver");
  MappedAlerts out;
  out.alerts = list->size();
  for (size_t i = 0; i < list->size(); ++i) {
    medic::v1::Event e;
    if (std::string why = read_alert((*list)[i], i, receiver, &e); !why.empty())
      return invalid_argument(why);
    const medic::v1::Alert& a = e.alert();
    e.set_vm(first_label(a, map.vm));
    e.set_host(first_label(a, map.host));
    if (e.vm().empty() || e.host().empty()) {
      const auto& names = e.vm().empty() ? map.vm : map.host;
      std::string list_text;
      for (const auto& n : names) list_text += (list_text.empty() ? "" : " or ") + n;
      out.unmapped.push_back(
          (a.name().empty() ? "(no alertname)" : a.name()) +
          (a.fingerprint().empty() ? "" : " (fingerprint " + a.fingerprint() + ")") +
          ": no label " + list_text + " names its " + (e.vm().empty() ? "VM" : "host"));
      continue;
    }
    medic::v1::EventBatch& b = out.by_host[e.host()];
    b.set_urgent(true);
    *b.add_events() = std::move(e);
  }
  return out;
}

Result<BridgeConfig> load_bridge_config(const std::string& path) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  ConfigReader r(path);
  const std::string dir = std::filesystem::path(path).parent_path().string();
  BridgeConfig c;
  if (!r.expect_map(*root, "the bridge config")) return r.status();
  r.check_keys(*root, {"bridge", "logging"});
  const YAML::Node m = (*root)["bridge"];
  if (!m.IsDefined() || !r.expect_map(m, "\"bridge:\"")) {
    if (!m.IsDefined()) r.error(*root, "missing required key \"bridge\"");
    return r.status();
  }
  r.check_keys(m, {"name", "key", "engines", "http", "map", "max_body"});
  if (auto v = r.string(m, "name", false)) c.name = *v;
  if (auto v = r.string(m, "key", true)) {
    c.key_file = (v->empty() || (*v)[0] == '/') ? *v : (std::filesystem::path(dir) / *v).string();
  }
  const YAML::Node engines = m["engines"];
  if (!engines.IsDefined() || !engines.IsSequence() || engines.size() == 0) {
    r.error(engines.IsDefined() ? engines : m, "\"engines\" must list at least one engine");
  } else {
    for (const auto& e : engines) {
      if (auto ep = collectors::read_engine(r, e)) c.engines.push_back(std::move(*ep));
    }
  }
  c.http.listen = kDefaultBridgeHttp;
  read_http_section(r, m["http"], dir, kDefaultBridgeHttp, &c.http);
  if (r.ok() && c.http.token.empty()) {
    r.error(m["http"].IsDefined() ? m["http"] : m,
            "the bridge needs a bearer token (http: token_file:), which Alertmanager sends "
            "(http_config: authorization: credentials_file:)");
  }
  if (const YAML::Node map = m["map"]; map.IsDefined() && r.expect_map(map, "\"map:\"")) {
    r.check_keys(map, {"vm", "host"});
    if (auto v = r.string_list(map, "vm", false)) c.map.vm = *v;
    if (auto v = r.string_list(map, "host", false)) c.map.host = *v;
  }
  if (auto v = r.integer(m, "max_body", false, 1024, 64 << 20))
    c.max_body = static_cast<size_t>(*v);
  if (!r.ok()) return r.status();
  return c;
}

AlertBridge::AlertBridge(const BridgeConfig& config, const fabric::Party& party)
    : config_(config), party_(party), sealer_(party.identity) {}

AlertBridge::~AlertBridge() { http_.reset(); }

Result<std::unique_ptr<AlertBridge>> AlertBridge::create(const BridgeConfig& config,
                                                         const fabric::Party& party) {
  std::unique_ptr<AlertBridge> b(new AlertBridge(config, party));
  b->loop_ = std::make_unique<EventLoop>(party.clock);
  LoopMailbox* mailbox = &b->mailbox_;
  b->loop_->watch_fd(mailbox->fd(), [mailbox] { mailbox->run(); });
  auto pub = collectors::ZmqPublisher::create(config.engines, {}, party);
  if (!pub.ok()) return pub.status();
  b->publisher_ = std::move(*pub);
  AlertBridge* self = b.get();
  HttpRoute hook{"/api/v1/alerts", true, [self](const HttpRequest& q) { return self->webhook(q); },
                 true, config.max_body};
  hook.observe = [self](int status) {
    self->counters_
        .counter("bridge_webhooks_total", {{"code", std::to_string(status)}},
                 "webhook requests, by the HTTP status answered")
        .add();
  };
  std::vector<HttpRoute> routes = {
      healthz_route(b->mailbox_),
      readyz_route(b->mailbox_,
                   [self] {
                     ReadinessChecks checks;
                     const bool up = self->connected();
                     checks.check("engines", up,
                                  up ? "connected to an engine" : "not connected to any engine");
                     return checks.json();
                   }),
      metrics_route(b->mailbox_, [self] { return self->metrics_text(); }),
      std::move(hook),
  };
  auto http = HttpServer::start(config.http, std::move(routes));
  if (!http.ok()) return http.status();
  b->http_ = std::move(*http);
  spdlog::info("bridge {}: taking Alertmanager webhooks at {}/api/v1/alerts for {} engine(s)",
               config.name, b->http_->url(), config.engines.size());
  return b;
}

std::string AlertBridge::url() const { return http_->url(); }

void AlertBridge::run_once(Duration max_wait) {
  loop_->run_once(max_wait);
  publisher_->pump();
  mailbox_.beat();
}

HttpResponse AlertBridge::webhook(const HttpRequest& request) {
  auto mapped = map_webhook(request.body, config_.map);
  if (!mapped.ok()) {
    spdlog::warn("bridge {}: refused a webhook: {}", config_.name, mapped.status().message());
    return json_response(400, dump_json(Json{{"error", mapped.status().message()}}));
  }
  auto shared = std::make_shared<MappedAlerts>(std::move(*mapped));
  auto answer =
      mailbox_.ask([this, shared] { return connected() ? publish(*shared) : ""; }, kAnswerDeadline);
  if (!answer) return busy_response();
  if (answer->empty()) {
    return json_response(503, R"({"error":"not connected to any engine yet: send again"})");
  }
  return json_response(200, *answer);
}

std::string AlertBridge::publish(const MappedAlerts& mapped) {
  const Time now = party_.clock.now();
  std::vector<std::string> frames;
  size_t sent = 0;
  for (auto [host, batch] : mapped.by_host) {
    for (auto& e : *batch.mutable_events()) {
      e.set_observed_at_ns(to_ns(now));
      counters_
          .counter("bridge_alerts_total", {{"status", e.alert().firing() ? "firing" : "resolved"}},
                   "alerts sent to the engines as events")
          .add();
      ++sent;
    }
    frames.push_back(
        sealer_.seal(medic::v1::KIND_EVENT_BATCH, host, batch.SerializeAsString(), now));
  }
  if (!frames.empty()) publisher_->publish(collectors::Lane::kUrgent, frames);
  counters_.counter("bridge_alerts_unmapped_total", {}, "alerts that named no VM or host")
      .add(mapped.unmapped.size());
  for (const auto& u : mapped.unmapped) spdlog::warn("bridge {}: not sent: {}", config_.name, u);
  spdlog::info("bridge {}: {} alert(s) in, {} sent to {} host(s), {} unmapped", config_.name,
               mapped.alerts, sent, mapped.by_host.size(), mapped.unmapped.size());
  return dump_json(Json{{"alerts", mapped.alerts}, {"sent", sent}, {"unmapped", mapped.unmapped}});
}

std::string AlertBridge::metrics_text() {
  MetricsText m;
  m.registry(counters_);
  const auto k = publisher_->counters();
  m.counter("medic_bridge_batches_sent_total", "event batches handed to the engines' sockets", {},
            static_cast<double>(k.sent[1]));
  m.counter("medic_bridge_batches_dropped_total", "event batches an engine could not take", {},
            static_cast<double>(k.dropped[1]));
  return m.text();
}

}  // namespace medic::node
