#include "collectors/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/testing/testing.h"

namespace medic::collectors {
namespace {

using namespace std::chrono_literals;

const std::string kKey(64, 'a');

std::string minimal(const std::string& extra = "") {
  return "collector:\n"
         "  host: host-a\n"
         "  key: /etc/medic/host-a.key\n"
         "  backend: {kind: sim}\n"
         "  engines:\n"
         "    - name: engine-1\n"
         "      key: " +
         kKey +
         "\n"
         "      events: tcp://127.0.0.1:7701\n"
         "      urgent: tcp://127.0.0.1:7702\n" +
         extra;
}

std::string errors(const std::string& text) {
  auto c = parse_collector_config(text, "agent.yaml");
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : c.status().message();
}

// The first ```yaml block after `marker` in a docs file.
std::string doc_example(const std::string& file, const std::string& marker) {
  std::ifstream in(testing::source_dir() + "/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  auto at = text.find(marker);
  if (at == std::string::npos) return "";
  auto begin = text.find("```yaml\n", at);
  auto end = text.find("```", begin + 8);
  if (begin == std::string::npos || end == std::string::npos) return "";
  return text.substr(begin + 8, end - begin - 8);
}

TEST(CollectorConfig, ParsesAMinimalSectionWithDefaults) {
  auto c = parse_collector_config(minimal(), "agent.yaml");
  ASSERT_OK(c);
  EXPECT_EQ(c->host, "host-a");
  EXPECT_EQ(c->key_file, "/etc/medic/host-a.key");
  EXPECT_EQ(c->interval, 1s);
  EXPECT_EQ(c->backend_kind, "sim");
  EXPECT_TRUE(c->backend.IsMap());
  ASSERT_EQ(c->engines.size(), 1u);
  EXPECT_EQ(c->engines[0].name, "engine-1");
  EXPECT_EQ(fabric::key_id(c->engines[0].key), kKey);
  EXPECT_EQ(c->engines[0].events, "tcp://127.0.0.1:7701");
  EXPECT_EQ(c->engines[0].urgent, "tcp://127.0.0.1:7702");
  EXPECT_TRUE(c->probes.empty());
  EXPECT_FALSE(c->guest_ping.enabled);
  EXPECT_EQ(c->lanes.urgent_hwm, 1000);
  EXPECT_LT(c->timer_slack, Duration::zero());  // automatic
  auto slack = parse_collector_config(minimal("  timer_slack: 5ms\n"), "agent.yaml");
  ASSERT_OK(slack);
  EXPECT_EQ(slack->timer_slack, 5ms);
  EXPECT_NE(c->seed, 0u);
}

TEST(CollectorConfig, ParsesTheExampleInTheDocs) {
  const std::string example = doc_example("docs/collectors.md", "<!-- example: agent.yaml -->");
  ASSERT_FALSE(example.empty());
  auto c = parse_collector_config(example, "docs/collectors.md");
  ASSERT_OK(c);
  EXPECT_EQ(c->host, "host-a");
  EXPECT_EQ(c->backend_kind, "qmp");
  EXPECT_EQ(c->engines.size(), 2u);
  ASSERT_EQ(c->probes.size(), 4u);
  EXPECT_EQ(c->probes[0].kind, ProbeKind::kHttp);
  EXPECT_EQ(c->probes[0].body_contains, "ok");
  EXPECT_TRUE(c->probes[1].learn_timeout);
  EXPECT_TRUE(c->probes[1].confirm);
  EXPECT_EQ(c->probes[1].timeout, 1s);  // the interval, shorter than the default 2s
  EXPECT_EQ(c->probes[2].kind, ProbeKind::kProcess);
  EXPECT_EQ(c->probes[2].pid_file, "/run/api.pid");
  EXPECT_EQ(c->probes[3].kind, ProbeKind::kTcp);
  EXPECT_TRUE(c->guest_ping.enabled);
}

TEST(CollectorConfig, ReadsProbes) {
  auto c = parse_collector_config(minimal(R"(  probes:
    - name: web
      vm: 5c7d
      http:
        url: https://10.0.0.5/health
        method: HEAD
        expect_status: 204
        body_contains: ok
        verify_tls: false
      interval: 5s
      timeout: 1s
      jitter: 20%
    - name: short
      http: http://10.0.0.6/
    - name: ssh
      tcp: "[::1]:22"
      jitter: 0.05
    - name: svc
      process: {pid_file: /run/svc.pid}
      interval: 1s
      timeout: 500ms
    - name: fast
      http: http://10.0.0.7/
      learn_timeout: true
      min_timeout: 20ms
      confirm: true
)"),
                                  "agent.yaml");
  ASSERT_OK(c);
  ASSERT_EQ(c->probes.size(), 5u);
  const auto& w = c->probes[0];
  EXPECT_EQ(w.kind, ProbeKind::kHttp);
  EXPECT_EQ(w.vm, "5c7d");
  EXPECT_EQ(w.url, "https://10.0.0.5/health");
  EXPECT_EQ(w.method, "HEAD");
  EXPECT_EQ(w.expect_status, 204);
  EXPECT_EQ(w.body_contains, "ok");
  EXPECT_FALSE(w.verify_tls);
  EXPECT_EQ(w.interval, 5s);
  EXPECT_EQ(w.timeout, 1s);
  EXPECT_DOUBLE_EQ(w.jitter, 0.2);
  EXPECT_EQ(c->probes[1].url, "http://10.0.0.6/");
  EXPECT_EQ(c->probes[1].method, "GET");
  EXPECT_EQ(c->probes[2].kind, ProbeKind::kTcp);
  EXPECT_EQ(c->probes[2].tcp_host, "::1");
  EXPECT_EQ(c->probes[2].tcp_port, 22);
  EXPECT_DOUBLE_EQ(c->probes[2].jitter, 0.05);
  EXPECT_FALSE(c->probes[2].learn_timeout);
  EXPECT_FALSE(c->probes[2].confirm);
  EXPECT_EQ(c->probes[3].kind, ProbeKind::kProcess);
  EXPECT_EQ(c->probes[3].pid_file, "/run/svc.pid");
  EXPECT_TRUE(c->probes[4].learn_timeout);
  EXPECT_EQ(c->probes[4].min_timeout, 20ms);
  EXPECT_TRUE(c->probes[4].confirm);
}

// A probe whose timeout is under the 50ms default floor learns down to its
// timeout, without an error for a key it did not set.
TEST(CollectorConfig, TheDefaultMinTimeoutIsAtMostTheTimeout) {
  auto c = parse_collector_config(minimal(R"(  probes:
    - name: quick
      tcp: a:1
      interval: 100ms
      timeout: 30ms
      learn_timeout: true
)"),
                                  "agent.yaml");
  ASSERT_OK(c);
  EXPECT_EQ(c->probes[0].min_timeout, 30ms);
  EXPECT_EQ(errors(minimal("  probes:\n    - {name: z, tcp: \"a:1\", timeout: 0s}\n"))
                .find("min_timeout"),
            std::string::npos);
}

TEST(CollectorConfig, ReportsUnknownKeysWithTheirPosition) {
  std::string e = errors(minimal("  intervall: 2s\n"));
  EXPECT_NE(e.find("agent.yaml:10:3: error: unknown key \"intervall\""), std::string::npos) << e;
}

TEST(CollectorConfig, GuestPingNeedsAnIntervalAndATimeoutWithinIt) {
  std::string zero = errors(minimal("  guest_ping: {interval: 0s}\n"));
  EXPECT_NE(zero.find("agent.yaml:10:26: error: guest_ping \"interval\" must be above 0"),
            std::string::npos)
      << zero;
  std::string late = errors(minimal("  guest_ping:\n    interval: 5s\n    timeout: 6s\n"));
  EXPECT_NE(late.find("agent.yaml:12:14: error: guest_ping \"timeout\" must be above 0 and at "
                      "most the interval (5s)"),
            std::string::npos)
      << late;
  auto ok =
      parse_collector_config(minimal("  guest_ping: {interval: 5s, timeout: 5s}\n"), "agent.yaml");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->guest_ping.timeout, std::chrono::seconds(5));
}

TEST(CollectorConfig, ReportsEveryMissingRequiredKeyInOnePass) {
  std::string e = errors("collector:\n  interval: 1s\n");
  EXPECT_NE(e.find("missing required key \"host\""), std::string::npos) << e;
  EXPECT_NE(e.find("missing required key \"key\""), std::string::npos) << e;
  EXPECT_NE(e.find("missing required key \"backend\""), std::string::npos) << e;
  EXPECT_NE(e.find("missing required key \"engines\""), std::string::npos) << e;
  EXPECT_NE(errors("actuator: {}\n").find("missing required key \"collector\""), std::string::npos);
}

TEST(CollectorConfig, RejectsBadEngines) {
  std::string e = errors(
      "collector:\n  host: a\n  key: k\n  backend: {kind: sim}\n  engines:\n"
      "    - key: zz\n      events: http://x\n");
  EXPECT_NE(e.find("agent.yaml:6:12: error: \"key\""), std::string::npos) << e;
  EXPECT_NE(e.find("\"events\" must be a tcp://, ipc:// or inproc:// endpoint"), std::string::npos)
      << e;
  EXPECT_NE(e.find("missing required key \"urgent\""), std::string::npos) << e;
}

TEST(CollectorConfig, RequiresAtLeastOneEngine) {
  std::string e =
      errors("collector:\n  host: a\n  key: k\n  backend: {kind: sim}\n  engines: []\n");
  EXPECT_NE(e.find("agent.yaml:5:12: error: \"engines\" must list at least one engine"),
            std::string::npos)
      << e;
}

TEST(CollectorConfig, RejectsBadProbes) {
  std::string e = errors(minimal(R"(  probes:
    - name: both
      http: http://a/
      tcp: a:1
    - name: port
      tcp: host-without-port
    - name: jitter
      tcp: a:1
      jitter: 90%
    - name: slow
      tcp: a:1
      interval: 1s
      timeout: 5s
    - name: url
      http: {url: "ftp://a/", method: DELETE}
    - name: port
      tcp: a:70000
    - name: pidless
      process: {pidfile: /run/x.pid}
    - name: floor
      tcp: a:1
      timeout: 100ms
      learn_timeout: true
      min_timeout: 200ms
)"));
  EXPECT_NE(e.find("exactly one of \"http\", \"tcp\" or \"process\""), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key \"pidfile\""), std::string::npos) << e;
  EXPECT_NE(e.find("missing required key \"pid_file\""), std::string::npos) << e;
  EXPECT_NE(e.find("\"min_timeout\" must be at least 1ms and at most the timeout (100ms)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("expected host:port"), std::string::npos) << e;
  EXPECT_NE(e.find("\"jitter\" must be a fraction"), std::string::npos) << e;
  EXPECT_NE(e.find("\"timeout\" must be above 0 and at most the interval"), std::string::npos) << e;
  EXPECT_NE(e.find("\"url\" must start with http:// or https://"), std::string::npos) << e;
  EXPECT_NE(e.find("\"method\" must be one of"), std::string::npos) << e;
  EXPECT_NE(e.find("port from 1 to 65535"), std::string::npos) << e;
  EXPECT_NE(e.find("probe name \"port\" is used twice"), std::string::npos) << e;
}

TEST(CollectorConfig, ReportsYamlSyntaxErrorsWithTheirPosition) {
  std::string e = errors("collector:\n  host: [a\n");
  EXPECT_NE(e.find("agent.yaml:"), std::string::npos) << e;
}

TEST(CollectorConfig, LoadsFromAFile) {
  testing::TempDir dir;
  auto c = load_collector_config(dir.write("agent.yaml", minimal("  interval: 250ms\n")));
  ASSERT_OK(c);
  EXPECT_EQ(c->interval, 250ms);
  EXPECT_EQ(load_collector_config(dir.file("missing.yaml")).status().code(), Code::kNotFound);
}

TEST(HostPort, ParsesNamesV4AndV6) {
  std::string h;
  uint16_t p = 0;
  ASSERT_OK(parse_host_port("db.internal:5432", &h, &p));
  EXPECT_EQ(h, "db.internal");
  EXPECT_EQ(p, 5432);
  ASSERT_OK(parse_host_port("[fe80::1]:22", &h, &p));
  EXPECT_EQ(h, "fe80::1");
  EXPECT_FALSE(parse_host_port("fe80::1:22", &h, &p).ok());
  EXPECT_FALSE(parse_host_port(":22", &h, &p).ok());
  EXPECT_FALSE(parse_host_port("a:0", &h, &p).ok());
  EXPECT_FALSE(parse_host_port("a:22x", &h, &p).ok());
}

}  // namespace
}  // namespace medic::collectors
