// Alerts as events: the Alertmanager bridge (node/alert_bridge.h) in front
// of a real engine and the agent of a simulated host, over CurveZMQ. A
// webhook's firing alert for a VM becomes a signed alert.firing event, a rule
// on it resets the VM, and `medic audit why` shows the alert; the bridge's
// key speaks only for its hosts; bad bodies get 400, unmappable alerts are
// listed. Last, a real Alertmanager (Debian's prometheus-alertmanager,
// started here on loopback), fed by `amtool alert add`, drives the same path.
#include "node/alert_bridge.h"

#include <filesystem>
#include <future>

#include "core/json.h"
#include "tests/integration/control_fixture.h"
#include "tests/testing/daemon.h"
#include "tests/testing/http_get.h"

namespace medic {
namespace {

const char* kToken = "am-webhook-token";

class AlertBridgeTest : public SimHostFlowTest {
 protected:
  std::string rules_text() const override {
    return "rules:\n"
           "  - name: app-unresponsive\n"
           "    on: alert.firing\n"
           "    where: alert.labels.alertname == \"AppUnresponsive\" and "
           "alert.labels.severity == \"page\"\n"
           "    do: reset\n";
  }

  std::string more_trusted() override {
    auto id = fabric::Identity::generate();
    EXPECT_OK(id.save(dir_.file("alerts.key")));
    return "  - {name: alerts, key: " + id.id() + ", roles: [collector], hosts: [host-a]}\n";
  }

  void SetUp() override {
    SimHostFlowTest::SetUp();
    if (HasFatalFailure()) return;
    auto id = fabric::Identity::load(dir_.file("alerts.key"));
    ASSERT_OK(id);
    bridge_id_ = std::make_unique<fabric::Identity>(std::move(*id));
    node::BridgeConfig c;
    c.engines.push_back(
        {"engine-1", engine_id_->public_key(), node_->events_endpoint(), node_->urgent_endpoint()});
    c.http = {"127.0.0.1:0", "", "", kToken};
    auto b = node::AlertBridge::create(c, {*ctx_, *bridge_id_, *trust_, clock_});
    ASSERT_OK(b);
    bridge_ = std::move(*b);
    ASSERT_TRUE(run_until([&] { return bridge_->connected(); })) << "the bridge never connected";
  }

  void TearDown() override {
    bridge_.reset();
    SimHostFlowTest::TearDown();
  }

  void step() override {
    SimHostFlowTest::step();
    if (bridge_) bridge_->run_once(Duration(0));
  }

  std::string webhook(const std::string& status, const std::string& vm, const std::string& host,
                      const std::string& severity = "page") {
    Json alert{
        {"status", status},
        {"labels",
         {{"alertname", "AppUnresponsive"}, {"vm_id", vm}, {"host", host}, {"severity", severity}}},
        {"annotations", {{"summary", "checkout answers 503"}}},
        {"startsAt", "2026-12-03T11:00:00.250Z"},
        {"endsAt", "0001-01-01T00:00:00Z"},
        {"generatorURL", "http://127.0.0.1:9090/graph"},
        {"fingerprint", "c0ffee"}};
    return dump_json(Json{{"version", "4"},
                          {"status", status},
                          {"receiver", "medic"},
                          {"alerts", Json::array({alert})}});
  }

  // POSTs `body` while this thread keeps the engine, agent and bridge going.
  testing::HttpReply post(const std::string& body, const std::string& token = kToken) {
    testing::HttpGet how;
    how.method = "POST";
    how.token = token;
    how.body = body;
    const std::string url = bridge_->url() + "/api/v1/alerts";
    auto fut = std::async(std::launch::async, [url, how] { return testing::http_get(url, how); });
    while (fut.wait_for(1ms) != std::future_status::ready) step();
    return fut.get();
  }

  const rules::Decision* decision(const std::string& rule) {
    for (const auto& d : rec_.decisions) {
      if (d.rule == rule) return &d;
    }
    return nullptr;
  }

  std::unique_ptr<fabric::Identity> bridge_id_;
  std::unique_ptr<node::AlertBridge> bridge_;
};

TEST_F(AlertBridgeTest, AFiringAlertResetsItsVmAndTheStoryNamesTheAlert) {
  auto r = post(webhook("firing", vm_, "host-a"));
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  auto answer = parse_json(r.body);
  ASSERT_OK(answer);
  EXPECT_EQ((*answer)["sent"], 1);
  ASSERT_TRUE(run_until([&] { return decision("app-unresponsive") != nullptr; }));
  const rules::Decision d = *decision("app-unresponsive");
  EXPECT_EQ(d.vm, vm_);
  EXPECT_EQ(d.outcome, rules::Outcome::kProposed);
  EXPECT_EQ(d.trigger, "alert.firing (alert AppUnresponsive)");
  ASSERT_TRUE(run_until([&] {
    return testing::query_number(db_, "SELECT count(*) FROM transitions WHERE action_id = '" +
                                          d.id + "' AND state = 'succeeded'") == 1;
  }));
  for (int i = 0; i < 20; ++i) step();
  auto why =
      testing::run_command({testing::medic_binary(), "audit", "why", d.id, "--db", db_}, 20s);
  EXPECT_EQ(why.exit_code, 0) << why.err;
  for (const std::string& line :
       {std::string("alert AppUnresponsive firing (summary: checkout answers 503; receiver medic; "
                    "fingerprint c0ffee)"),
        std::string("signed by alerts")}) {
    EXPECT_NE(why.out.find(line), std::string::npos) << line << "\n" << why.out;
  }
  // Another severity does not match the rule: no second decision.
  ASSERT_EQ(post(webhook("firing", fleet_->vm_ids()[1], "host-a", "ticket")).status, 200);
  for (int i = 0; i < 100; ++i) step();
  size_t n = 0;
  for (const auto& x : rec_.decisions) n += x.rule == "app-unresponsive";
  EXPECT_EQ(n, 1u);
}

TEST_F(AlertBridgeTest, TheKeySpeaksOnlyForItsHostsAndBadBodiesAreRefusedByName) {
  // host-b is outside the bridge key's hosts: the engine refuses the batch.
  auto out = post(webhook("firing", vm_, "host-b"));
  EXPECT_EQ(out.status, 200) << out.body;
  ASSERT_TRUE(run_until(
      [&] { return node_->receiver().rejections(true).get(fabric::OpenError::kOutOfScope) == 1; }));
  EXPECT_EQ(decision("app-unresponsive"), nullptr);

  auto not_json = post("{not json");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_NE(not_json.body.find("the body is not JSON"), std::string::npos) << not_json.body;
  auto no_list = post("{\"version\":\"4\"}");
  EXPECT_EQ(no_list.status, 400);
  EXPECT_NE(no_list.body.find("no \\\"alerts\\\" list"), std::string::npos) << no_list.body;
  auto bad_status = post("{\"alerts\":[{\"status\":\"burning\",\"labels\":{}}]}");
  EXPECT_EQ(bad_status.status, 400);
  EXPECT_NE(bad_status.body.find("alerts[0].status must be"), std::string::npos) << bad_status.body;
  EXPECT_EQ(post(webhook("firing", vm_, "host-a"), "wrong").status, 401);
  EXPECT_EQ(post(std::string(node::kHttpMaxBody + 1, ' ')).status, 413);

  auto unmapped = post(
      "{\"alerts\":[{\"status\":\"firing\",\"fingerprint\":\"f1\","
      "\"labels\":{\"alertname\":\"DiskFull\",\"host\":\"host-a\"}}]}");
  EXPECT_EQ(unmapped.status, 200);
  EXPECT_NE(unmapped.body.find("DiskFull (fingerprint f1): no label vm_id or vm names its VM"),
            std::string::npos)
      << unmapped.body;
  EXPECT_EQ(bridge_->counters().value("bridge_alerts_unmapped_total", {}), 1u);
  EXPECT_EQ(bridge_->counters().value("bridge_webhooks_total", {{"code", "400"}}), 3u);
  EXPECT_EQ(bridge_->counters().value("bridge_webhooks_total", {{"code", "413"}}), 1u);
  EXPECT_EQ(decision("app-unresponsive"), nullptr);
}

// A bridge whose engine is not there yet says so (503: Alertmanager sends
// again) rather than sending the alert to nobody.
TEST_F(AlertBridgeTest, ABridgeNotYetConnectedAnswers503) {
  node::BridgeConfig lone;
  lone.engines.push_back(
      {"nobody", engine_id_->public_key(), "tcp://127.0.0.1:9", "tcp://127.0.0.1:9"});
  lone.http = {"127.0.0.1:0", "", "", kToken};
  auto b = node::AlertBridge::create(lone, {*ctx_, *bridge_id_, *trust_, clock_});
  ASSERT_OK(b);
  testing::HttpGet how;
  how.method = "POST";
  how.token = kToken;
  how.body = webhook("firing", vm_, "host-a");
  auto serve = [&](const std::string& path, const testing::HttpGet& h) {
    const std::string url = (*b)->url() + path;
    auto fut = std::async(std::launch::async, [url, h] { return testing::http_get(url, h); });
    while (fut.wait_for(1ms) != std::future_status::ready) (*b)->run_once(Duration(0));
    return fut.get();
  };
  auto r = serve("/api/v1/alerts", how);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("not connected to any engine yet"), std::string::npos) << r.body;
  auto ready = serve("/readyz", {});
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("not connected to any engine"), std::string::npos) << ready.body;
}

// A real Alertmanager: `amtool alert add` -> Alertmanager's webhook (with
// its bearer token from a credentials file) -> the bridge -> a reset.
TEST_F(AlertBridgeTest, ARealAlertmanagersWebhookMakesMedicResetTheVm) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/prometheus-alertmanager"))
      << "scripts/bootstrap installs prometheus-alertmanager";
  const int port = testing::free_port();
  dir_.write("token", kToken);
  dir_.write("alertmanager.yml",
             "route:\n"
             "  receiver: medic\n"
             "  group_by: [alertname, vm_id]\n"
             "  group_wait: 0s\n"
             "  group_interval: 1s\n"
             "  repeat_interval: 1h\n"
             "receivers:\n"
             "  - name: medic\n"
             "    webhook_configs:\n"
             "      - url: " +
                 bridge_->url() +
                 "/api/v1/alerts\n"
                 "        send_resolved: true\n"
                 "        http_config:\n"
                 "          authorization:\n"
                 "            credentials_file: " +
                 dir_.file("token") + "\n");
  const std::string am_url = "http://127.0.0.1:" + std::to_string(port);
  testing::Daemon am(
      {"/usr/bin/prometheus-alertmanager", "--config.file=" + dir_.file("alertmanager.yml"),
       "--storage.path=" + dir_.file("am"),
       "--web.listen-address=127.0.0.1:" + std::to_string(port), "--cluster.listen-address="},
      dir_.file("alertmanager.log"));
  ASSERT_OK(am.start());
  ASSERT_TRUE(testing::wait_until(
      [&] { return testing::http_get(am_url + "/-/ready").status == 200; }, 20s))
      << testing::read_file(dir_.file("alertmanager.log"));
  auto added = testing::run_command(
      {"/usr/bin/amtool", "alert", "add", "alertname=AppUnresponsive", "vm_id=" + vm_,
       "host=host-a", "severity=page", "--annotation=summary=checkout answers 503",
       "--alertmanager.url=" + am_url},
      20s);
  ASSERT_EQ(added.exit_code, 0) << added.err;
  // Alertmanager's clock is the wall's: step in real time until it sends.
  const rules::Decision* d = nullptr;
  testing::wait_until(
      [&] {
        step();
        d = decision("app-unresponsive");
        return d != nullptr;
      },
      30s);
  ASSERT_NE(d, nullptr) << testing::read_file(dir_.file("alertmanager.log"));
  EXPECT_EQ(d->vm, vm_);
  EXPECT_EQ(d->outcome, rules::Outcome::kProposed);
  EXPECT_GE(bridge_->counters().value("bridge_alerts_total", {{"status", "firing"}}), 1u);
  EXPECT_EQ(am.terminate(), 0);
}

// bridge.yaml: what it needs, and its errors at file:line:col; --check.
TEST(BridgeConfigTest, ATokenIsRequiredAndCheckLoadsTheConfigAndKey) {
  testing::TempDir dir;
  ASSERT_OK(fabric::Identity::generate().save(dir.file("alerts.key")));
  const std::string engine = fabric::Identity::generate().id();
  const std::string head =
      "bridge:\n  key: alerts.key\n  engines:\n    - {name: engine-1, key: " + engine +
      ", events: tcp://127.0.0.1:7001, urgent: tcp://127.0.0.1:7002}\n";
  const std::string no_token =
      dir.write("no-token.yaml", head + "  http: {listen: 127.0.0.1:9466}\n");
  auto refused = node::load_bridge_config(no_token);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(
      refused.status().message().find(no_token + ":5:9: error: the bridge needs a bearer token"),
      std::string::npos)
      << refused.status();
  dir.write("alerts.token", "t0ken\n");
  const std::string good = dir.write(
      "bridge.yaml",
      head + "  http: {token_file: alerts.token}\n  map: {vm: [vm_uuid], host: [node]}\n");
  auto c = node::load_bridge_config(good);
  ASSERT_OK(c);
  EXPECT_EQ(c->http.token, "t0ken");
  EXPECT_EQ(c->http.listen, node::kDefaultBridgeHttp);
  EXPECT_EQ(c->map.vm, std::vector<std::string>{"vm_uuid"});
  EXPECT_EQ(c->engines.size(), 1u);
  auto check = testing::run_command(
      {testing::medic_binary(), "bridge", "alertmanager", "-c", good, "--check"}, 20s);
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find(": OK (webhook at 127.0.0.1:9466/api/v1/alerts, 1 engine(s)"),
            std::string::npos)
      << check.out;
  auto bad = testing::run_command(
      {testing::medic_binary(), "bridge", "alertmanager", "-c", no_token, "--check"}, 20s);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("needs a bearer token"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace medic
