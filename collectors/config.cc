#include "collectors/config.h"

#include <cstdlib>
#include <functional>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/duration.h"

namespace medic::collectors {
namespace {

bool valid_endpoint(const std::string& e) {
  return e.rfind("tcp://", 0) == 0 || e.rfind("ipc://", 0) == 0 || e.rfind("inproc://", 0) == 0;
}

void read_endpoint(ConfigReader& r, const YAML::Node& m, const std::string& key, std::string* out) {
  auto v = r.string(m, key, true);
  if (!v) return;
  if (!valid_endpoint(*v)) {
    r.error(m[key],
            "\"" + key + "\" must be a tcp://, ipc:// or inproc:// endpoint, got \"" + *v + "\"");
    return;
  }
  *out = *v;
}

}  // namespace

std::optional<EngineEndpoint> read_engine(ConfigReader& r, const YAML::Node& m) {
  if (!r.expect_map(m, "an engine")) return std::nullopt;
  r.check_keys(m, {"name", "key", "events", "urgent"});
  EngineEndpoint e;
  e.name = r.string(m, "name", false).value_or("");
  if (auto key = r.string(m, "key", true)) {
    auto pk = fabric::public_key_from_hex(*key);
    if (pk.ok()) {
      e.key = *pk;
    } else {
      r.error(m["key"], "\"key\": " + pk.status().message());
    }
  }
  read_endpoint(r, m, "events", &e.events);
  read_endpoint(r, m, "urgent", &e.urgent);
  if (e.name.empty()) e.name = e.events;
  return e;
}

namespace {

// Accepts 0.1 or "10%".
std::optional<double> read_jitter(ConfigReader& r, const YAML::Node& m) {
  YAML::Node n = m["jitter"];
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  std::string s = n.IsScalar() ? n.Scalar() : "";
  double v = -1;
  char* end = nullptr;
  if (!s.empty()) {
    v = std::strtod(s.c_str(), &end);
    if (end == s.c_str()) {
      v = -1;
    } else if (*end == '%' && end[1] == '\0') {
      v /= 100.0;
    } else if (*end != '\0') {
      v = -1;
    }
  }
  if (v < 0 || v > 0.5) {
    r.error(n, "\"jitter\" must be a fraction between 0 and 0.5 or a percentage such as 10%, got " +
                   (s.empty() ? std::string("a non-scalar") : "\"" + s + "\""));
    return std::nullopt;
  }
  return v;
}

void read_http(ConfigReader& r, const YAML::Node& h, ProbeSpec* p) {
  if (h.IsScalar()) {  // shorthand: http: URL
    p->url = h.Scalar();
  } else {
    if (!r.expect_map(h, "\"http\"")) return;
    r.check_keys(
        h, {"url", "method", "expect_status", "body_contains", "verify_tls", "reuse_connection"});
    p->url = r.string(h, "url", true).value_or("");
    p->method = r.string(h, "method", false).value_or("GET");
    p->expect_status = static_cast<int>(r.integer(h, "expect_status", false, 0, 599).value_or(200));
    p->body_contains = r.string(h, "body_contains", false).value_or("");
    p->verify_tls = r.boolean(h, "verify_tls", false).value_or(true);
    p->reuse_connection = r.boolean(h, "reuse_connection", false).value_or(false);
  }
  if (!p->url.empty() && p->url.rfind("http://", 0) != 0 && p->url.rfind("https://", 0) != 0) {
    r.error(h.IsMap() ? h["url"] : h,
            "\"url\" must start with http:// or https://, got \"" + p->url + "\"");
  }
  static const std::set<std::string> kMethods = {"GET", "HEAD", "POST", "PUT", "OPTIONS"};
  if (!kMethods.count(p->method)) {
    r.error(h["method"],
            "\"method\" must be one of GET, HEAD, POST, PUT, OPTIONS, got \"" + p->method + "\"");
  }
}

std::optional<ProbeSpec> read_probe(ConfigReader& r, const YAML::Node& m) {
  if (!r.expect_map(m, "a probe")) return std::nullopt;
  r.check_keys(m, {"name", "vm", "http", "tcp", "process", "interval", "timeout", "jitter",
                   "learn_timeout", "min_timeout", "confirm"});
  ProbeSpec p;
  p.name = r.string(m, "name", true).value_or("");
  p.vm = r.string(m, "vm", false).value_or("");
  const bool has_http = m["http"].IsDefined(), has_tcp = m["tcp"].IsDefined();
  const bool has_process = m["process"].IsDefined();
  if (int(has_http) + int(has_tcp) + int(has_process) != 1) {
    r.error(m, "a probe needs exactly one of \"http\", \"tcp\" or \"process\"");
  } else if (has_http) {
    p.kind = ProbeKind::kHttp;
    read_http(r, m["http"], &p);
  } else if (has_process) {
    p.kind = ProbeKind::kProcess;
    if (r.expect_map(m["process"], "\"process\"")) {
      r.check_keys(m["process"], {"pid_file"});
      p.pid_file = r.string(m["process"], "pid_file", true).value_or("");
    }
  } else {
    p.kind = ProbeKind::kTcp;
    if (auto t = r.string(m, "tcp", true)) {
      Status s = parse_host_port(*t, &p.tcp_host, &p.tcp_port);
      if (!s.ok()) r.error(m["tcp"], "\"tcp\": " + s.message());
    }
  }
  p.interval = r.duration(m, "interval", false).value_or(p.interval);
  // Without a timeout a probe gets 2 s, or its interval if shorter.
  p.timeout = r.duration(m, "timeout", false).value_or(std::min(p.timeout, p.interval));
  p.jitter = read_jitter(r, m).value_or(p.jitter);
  p.learn_timeout = r.boolean(m, "learn_timeout", false).value_or(false);
  p.min_timeout = r.duration(m, "min_timeout", false).value_or(std::min(p.min_timeout, p.timeout));
  p.confirm = r.boolean(m, "confirm", false).value_or(false);
  if (m["min_timeout"].IsDefined() && p.timeout > Duration::zero() &&
      (p.min_timeout < std::chrono::milliseconds(1) || p.min_timeout > p.timeout)) {
    r.error(m["min_timeout"], "\"min_timeout\" must be at least 1ms and at most the timeout (" +
                                  format_duration(p.timeout) + ")");
  }
  if (p.interval < std::chrono::milliseconds(100)) {
    r.error(m["interval"], "\"interval\" must be at least 100ms");
  }
  if (p.timeout <= Duration::zero() || p.timeout > p.interval) {
    r.error(m["timeout"].IsDefined() ? m["timeout"] : m,
            "\"timeout\" must be above 0 and at most the interval");
  }
  return p;
}

void read_lanes(ConfigReader& r, const YAML::Node& m, LaneConfig* l) {
  if (!r.expect_map(m, "\"lanes\"")) return;
  r.check_keys(m, {"urgent_hwm", "reconnect_ivl", "reconnect_ivl_max", "max_events_per_batch"});
  l->urgent_hwm =
      static_cast<int>(r.integer(m, "urgent_hwm", false, 1, 1'000'000).value_or(l->urgent_hwm));
  l->reconnect_ivl = r.duration(m, "reconnect_ivl", false).value_or(l->reconnect_ivl);
  l->reconnect_ivl_max = r.duration(m, "reconnect_ivl_max", false).value_or(l->reconnect_ivl_max);
  l->max_events_per_batch = static_cast<int>(
      r.integer(m, "max_events_per_batch", false, 1, 100'000).value_or(l->max_events_per_batch));
  if (l->reconnect_ivl_max < l->reconnect_ivl) {
    r.error(m, "\"reconnect_ivl_max\" must not be below \"reconnect_ivl\"");
  }
}

void read_guest_ping(ConfigReader& r, const YAML::Node& m, GuestPingConfig* g) {
  if (!r.expect_map(m, "\"guest_ping\"")) return;
  r.check_keys(m, {"enabled", "interval", "timeout"});
  g->enabled = r.boolean(m, "enabled", false).value_or(true);
  g->interval = r.duration(m, "interval", false).value_or(g->interval);
  g->timeout = r.duration(m, "timeout", false).value_or(g->timeout);
  const YAML::Node& where = m["interval"] ? m["interval"] : m;
  if (g->interval <= Duration::zero()) {
    r.error(where, "guest_ping \"interval\" must be above 0");
  } else if (g->timeout <= Duration::zero() || g->timeout > g->interval) {
    r.error(m["timeout"] ? m["timeout"] : m,
            "guest_ping \"timeout\" must be above 0 and at most the interval (" +
                format_duration(g->interval) + ")");
  }
}

}  // namespace

Status parse_host_port(const std::string& text, std::string* host, uint16_t* port) {
  std::string h, p;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid_argument("expected [address]:port, got \"" + text + "\"");
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      return invalid_argument("expected host:port, got \"" + text + "\"");
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  char* end = nullptr;
  long v = p.empty() ? 0 : std::strtol(p.c_str(), &end, 10);
  if (h.empty() || p.empty() || *end != '\0' || v < 1 || v > 65535) {
    return invalid_argument("expected host:port with a port from 1 to 65535, got \"" + text + "\"");
  }
  *host = h;
  *port = static_cast<uint16_t>(v);
  return {};
}

std::optional<CollectorConfig> read_collector_config(ConfigReader& r, const YAML::Node& m) {
  if (!r.expect_map(m, "\"collector\"")) return std::nullopt;
  r.check_keys(m, {"host", "key", "trust", "interval", "resource_interval", "timer_slack",
                   "backend", "engines", "probes", "guest_ping", "lanes", "seed", "proc_root"});
  CollectorConfig c;
  c.host = r.string(m, "host", true).value_or("");
  c.key_file = r.string(m, "key", true).value_or("");
  c.trust_file = r.string(m, "trust", false).value_or("");
  c.interval = r.duration(m, "interval", false).value_or(c.interval);
  if (m["interval"].IsDefined() && c.interval < std::chrono::milliseconds(10)) {
    r.error(m["interval"], "\"interval\" must be at least 10ms");
  }
  c.resource_interval = r.duration(m, "resource_interval", false).value_or(c.resource_interval);
  c.timer_slack = r.duration(m, "timer_slack", false).value_or(c.timer_slack);
  c.seed = static_cast<uint64_t>(r.integer(m, "seed", false, 0).value_or(0));
  c.proc_root = r.string(m, "proc_root", false).value_or(c.proc_root);

  const YAML::Node backend = m["backend"];
  if (!backend.IsDefined() || backend.IsNull()) {
    r.error(m, "missing required key \"backend\"");
  } else if (r.expect_map(backend, "\"backend\"")) {
    c.backend_kind = r.string(backend, "kind", true).value_or("");
    c.backend = backend;
  }

  const YAML::Node engines = m["engines"];
  if (!engines.IsDefined() || engines.IsNull()) {
    r.error(m, "missing required key \"engines\"");
  } else if (!engines.IsSequence()) {
    r.error(engines, "\"engines\" must be a list");
  } else {
    for (const auto& e : engines) {
      if (auto ep = read_engine(r, e)) c.engines.push_back(std::move(*ep));
    }
    if (engines.size() == 0) r.error(engines, "\"engines\" must list at least one engine");
  }

  const YAML::Node probes = m["probes"];
  if (probes.IsDefined() && !probes.IsNull()) {
    if (!probes.IsSequence()) {
      r.error(probes, "\"probes\" must be a list");
    } else {
      std::set<std::string> names;
      for (const auto& p : probes) {
        auto spec = read_probe(r, p);
        if (!spec) continue;
        if (!spec->name.empty() && !names.insert(spec->name).second) {
          r.error(p["name"], "probe name \"" + spec->name + "\" is used twice");
        }
        c.probes.push_back(std::move(*spec));
      }
    }
  }
  if (m["guest_ping"].IsDefined()) read_guest_ping(r, m["guest_ping"], &c.guest_ping);
  if (m["lanes"].IsDefined()) read_lanes(r, m["lanes"], &c.lanes);

  if (c.seed == 0) c.seed = std::hash<std::string>{}(c.host) | 1;
  if (!r.ok()) return std::nullopt;
  return c;
}

namespace {

Result<CollectorConfig> from_root(const YAML::Node& root, const std::string& name) {
  ConfigReader r(name);
  if (!r.expect_map(root, "the agent configuration")) return r.status();
  const YAML::Node section = root["collector"];
  if (!section.IsDefined() || section.IsNull()) {
    r.error(root, "missing required key \"collector\"");
    return r.status();
  }
  auto c = read_collector_config(r, section);
  if (!c) return r.status();
  return std::move(*c);
}

}  // namespace

Result<CollectorConfig> parse_collector_config(const std::string& yaml_text,
                                               const std::string& name) {
  auto root = load_yaml_string(yaml_text, name);
  if (!root.ok()) return root.status();
  return from_root(*root, name);
}

Result<CollectorConfig> load_collector_config(const std::string& path) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  return from_root(*root, path);
}

}  // namespace medic::collectors
