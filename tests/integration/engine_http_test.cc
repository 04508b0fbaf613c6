// The engine's HTTP listener end to end: a real EngineNode on a VirtualClock
// with a rule that needs approval, signed panic events over CurveZMQ, and
// real HTTP requests (libcurl) to /healthz, /readyz, the JSON API and the
// on-call page, which a real headless Chromium then renders. The listener's
// own refusals and its TLS are in http_server_test.cc.
#include "node/engine_http.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>

#include "audit/log.h"
#include "core/json.h"
#include "node/engine_http.h"
#include "node/engine_metrics.h"
#include "node/engine_node.h"
#include "tests/testing/daemon.h"
#include "tests/testing/http_get.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

using Reply = testing::HttpReply;

Reply http(const std::string& url, const std::string& method = "GET",
           const std::string& token = "") {
  return testing::http_get(url, {method, token, ""});
}

Json parsed(const Reply& r) {
  auto j = parse_json(r.body);
  return j.ok() ? *j : Json{{"unparsable", r.body}};
}

class EngineHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_id_ = std::make_unique<fabric::Identity>(fabric::Identity::generate());
    host_id_ = std::make_unique<fabric::Identity>(fabric::Identity::generate());
    dir_.write("trust.yaml", "nodes:\n"
                             "  - {name: engine-1, key: " + engine_id_->id() + ", roles: [engine]}\n"
                             "  - {name: host-a, key: " + host_id_->id() +
                             ", roles: [collector, actuator]}\n");
    auto trust = fabric::TrustStore::load(dir_.file("trust.yaml"));
    ASSERT_OK(trust);
    trust_ = std::make_unique<fabric::TrustStore>(std::move(*trust));
    auto ctx = fabric::Context::create(*trust_);
    ASSERT_OK(ctx);
    ctx_ = std::move(*ctx);
    auto rules = rules::load_rule_text(
        "rules:\n"
        "  - {name: db-panicked, on: vm.panicked, do: reset, approval: required,"
        " approval_timeout: 10m}\n",
        "rules.yaml");
    ASSERT_OK(rules) << rules.text();
    node::EngineConfig c;
    c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
    c.actions_endpoint = "tcp://127.0.0.1:*";
    c.control_endpoint = "tcp://127.0.0.1:*";
    c.audit_path = dir_.file("audit.db");
    auto store = audit::open_sqlite_store(c.audit_path, clock_, *engine_id_);
    ASSERT_OK(store);
    auto node = node::EngineNode::create(c, {*ctx_, *engine_id_, *trust_, clock_}, rules.rules,
                                         std::move(*store));
    ASSERT_OK(node);
    node_ = std::move(*node);
    auto web = node::EngineHttp::start({"127.0.0.1:0", "", "", ""}, *node_,
                                       [this] { return node::engine_metrics_text(*node_); });
    ASSERT_OK(web);
    web_ = std::move(*web);
    auto pub = ctx_->connect(zmq::socket_type::pub, node_->urgent_endpoint(), *host_id_,
                             engine_id_->public_key());
    ASSERT_OK(pub);
    pub_ = std::move(*pub);
    sealer_ = std::make_unique<fabric::Sealer>(*host_id_, 1);
  }

  void TearDown() override {
    web_.reset();
    pub_.close();
    node_.reset();
  }

  // Sends a panic for `vm` until the engine holds a pending approval for it.
  std::string pending_for(const std::string& vm) {
    medic::v1::EventBatch b;
    auto* e = b.add_events();
    e->set_host("host-a");
    e->set_vm(vm);
    e->set_observed_at_ns(to_ns(clock_.now()));
    e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    std::string id;
    testing::wait_until([&] {
      if (node_->engine().stats().open_incidents == 0) {
        pub_.send(zmq::buffer(sealer_->seal(medic::v1::KIND_EVENT_BATCH, "host-a",
                                            b.SerializeAsString(), clock_.now())),
                  zmq::send_flags::dontwait);
      }
      node_->run_once(5ms);
      auto in_flight = node_->store().in_flight(clock_.now());
      if (in_flight.ok()) {
        for (const auto& a : *in_flight) {
          if (a.vm == vm && a.state == ActionState::kPendingApproval) id = a.action_id;
        }
      }
      return !id.empty();
    }, 10s);
    return id;
  }

  // Runs `work` on another thread while this one keeps the engine's loop going.
  template <typename F>
  auto while_running(F work) {
    auto fut = std::async(std::launch::async, work);
    while (fut.wait_for(1ms) != std::future_status::ready) node_->run_once(2ms);
    return fut.get();
  }
  Reply get(const std::string& path) {
    return while_running([&] { return http(web_->url() + path); });
  }

  testing::TempDir dir_;
  VirtualClock clock_{SystemClock::wall_now()};
  std::unique_ptr<fabric::Identity> engine_id_;
  std::unique_ptr<fabric::Identity> host_id_;
  std::unique_ptr<fabric::TrustStore> trust_;
  std::unique_ptr<fabric::Context> ctx_;
  std::unique_ptr<node::EngineNode> node_;
  std::unique_ptr<node::EngineHttp> web_;
  zmq::socket_t pub_;
  std::unique_ptr<fabric::Sealer> sealer_;
};

TEST_F(EngineHttpTest, HealthAndReadinessAnswerWhileTheLoopTurns) {
  Reply health = get("/healthz");
  EXPECT_EQ(health.status, 200) << health.error << health.body;
  EXPECT_EQ(parsed(health)["alive"], true);
  Reply ready = get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  Json j = parsed(ready);
  EXPECT_EQ(j["ready"], true) << ready.body;
  EXPECT_EQ(j["checks"]["rules"]["detail"], "1 rules loaded") << ready.body;
  EXPECT_EQ(j["checks"]["store"]["ok"], true) << ready.body;
}

TEST_F(EngineHttpTest, ApiShowsAPendingApprovalWithTheCommandAndTheIncidentWaitingForIt) {
  const std::string id = pending_for("db-1");
  ASSERT_FALSE(id.empty());
  Json approvals = parsed(get("/api/v1/approvals"));
  ASSERT_EQ(approvals.size(), 1u) << approvals.dump();
  EXPECT_EQ(approvals[0]["approve_command"], "medic approve " + id);
  EXPECT_EQ(approvals[0]["vm"], "db-1");
  EXPECT_EQ(approvals[0]["verb"], "reset");
  Json incidents = parsed(get("/api/v1/incidents"));
  ASSERT_EQ(incidents.size(), 1u) << incidents.dump();
  EXPECT_EQ(incidents[0]["rule"], "db-panicked");
  EXPECT_EQ(incidents[0]["ladder_step"], 1);
  EXPECT_NE(incidents[0]["waits_for"].get<std::string>().find("an operator: medic approve " + id),
            std::string::npos)
      << incidents.dump();
  Json hosts = parsed(get("/api/v1/hosts"));
  ASSERT_EQ(hosts.size(), 1u) << hosts.dump();
  EXPECT_EQ(hosts[0]["host"], "host-a");
  EXPECT_EQ(hosts[0]["silent"], false);
  Json status = parsed(get("/api/v1/status"));
  EXPECT_EQ(status["open_incidents"], 1) << status.dump();
  Json freezes = parsed(get("/api/v1/freezes"));
  EXPECT_EQ(freezes["fleet"], false) << freezes.dump();
}

TEST_F(EngineHttpTest, WhyTellsTheStoryOfAnActionAndAnUnknownIdIsNotFound) {
  const std::string id = pending_for("db-1");
  ASSERT_FALSE(id.empty());
  for (int i = 0; i < 20; ++i) node_->run_once(1ms);  // the audit rows land
  Reply why = get("/api/v1/why/" + id);
  ASSERT_EQ(why.status, 200) << why.body;
  EXPECT_NE(parsed(why)["text"].get<std::string>().find("db-panicked"), std::string::npos)
      << why.body;
  Json actions = parsed(get("/api/v1/actions?limit=5"));
  ASSERT_EQ(actions.size(), 1u) << actions.dump();
  EXPECT_EQ(actions[0]["decision"]["action_id"], id);
  Reply unknown = get("/api/v1/why/no-such-action");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
}

TEST_F(EngineHttpTest, WritesAreRefusedBecauseChangesAreSignedCliRequests) {
  Reply post = while_running([&] { return http(web_->url() + "/api/v1/status", "POST"); });
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.body.find("signed CLI requests"), std::string::npos) << post.body;
  Reply missing = get("/api/v1/nothing-here");
  EXPECT_EQ(missing.status, 404);
}

TEST_F(EngineHttpTest, AQuestionTheLoopDoesNotAnswerGetsBusyNotAHang) {
  // The loop is not run here: the answer cannot come.
  Reply r = http(web_->url() + "/api/v1/status");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("did not answer in time"), std::string::npos) << r.body;
  Reply health = http(web_->url() + "/healthz");  // answered off the loop
  EXPECT_EQ(health.status, 200) << health.body;
}

TEST_F(EngineHttpTest, ThePageNeedsNoExternalAssetAndShowsTheApprovalCommandInChromium) {
  Reply page = get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<title>medic on call</title>"), std::string::npos);
  for (const char* external : {"src=\"http", "href=\"http", "src='http", "@import", "url("}) {
    EXPECT_EQ(page.body.find(external), std::string::npos) << external;
  }
  const std::string id = pending_for("db-1");
  ASSERT_FALSE(id.empty());
  const std::string shot = std::filesystem::current_path().string() + "/on_call_page.png";
  std::filesystem::remove(shot);
  auto r = while_running([&] {
    return testing::run_command(
        {"/usr/bin/python3", testing::source_dir() + "/tests/integration/web/page_check.py",
         web_->url() + "/", shot, "medic approve " + id, "db-panicked",
         "an operator: medic approve"},
        60s);
  });
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_GT(std::filesystem::file_size(shot), 1000u);
}

TEST_F(EngineHttpTest, MetricsPassPromtoolAndShowTheDecisionAndTheOpenIncident) {
  const std::string id = pending_for("db-1");
  ASSERT_FALSE(id.empty());
  Reply metrics = get("/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.error;
  EXPECT_NE(metrics.body.find("medic_decisions_total 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("medic_incidents_open 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("medic_frames_rejected_total{socket=\"events_urgent\",cause=\"replayed\"} 0"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("medic_approvals_pending 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("medic_decision_outcomes_total{rule=\"db-panicked\",outcome=\"pending_approval\",policy=\"approval\"} 1"),
            std::string::npos)
      << metrics.body;
  std::ofstream(std::filesystem::current_path() / "engine_metrics.txt") << metrics.body;
  // Every metric the shipped alerts and dashboard name is one the engine exports.
  for (const char* file : {"alerts.yml", "grafana-dashboard.json"}) {
    std::ifstream in(testing::source_dir() + "/examples/prometheus/" + file);
    std::stringstream text;
    text << in.rdbuf();
    const std::string t = text.str();
    std::regex name("medic_[a-z_]+");
    int named = 0;
    for (auto it = std::sregex_iterator(t.begin(), t.end(), name); it != std::sregex_iterator();
         ++it, ++named) {
      EXPECT_NE(metrics.body.find("\n" + it->str()), std::string::npos) << file << ": " << it->str();
    }
    EXPECT_GT(named, 3) << file;
  }
  auto check = testing::run_command({"/usr/bin/promtool", "check", "metrics"}, 30s, metrics.body);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // The control: promtool does refuse a counter without _total.
  auto bad = testing::run_command({"/usr/bin/promtool", "check", "metrics"}, 30s,
                                  "# HELP medic_x a counter\n# TYPE medic_x counter\nmedic_x 1\n");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE((bad.out + bad.err).find("_total"), std::string::npos) << bad.out << bad.err;
}

// A real Prometheus (Debian prometheus) on loopback scrapes the engine every
// second; after a panic a PromQL query over medic's metrics shows the
// decision and the open incident waiting for its approval.
TEST_F(EngineHttpTest, ARealPrometheusScrapesTheDecisionAfterAPanic) {
  const int port = testing::free_port();
  const std::string target = web_->url().substr(std::string("http://").size());
  dir_.write("prometheus.yml", "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                               "scrape_configs:\n"
                               "  - job_name: medic-engine\n"
                               "    static_configs: [{targets: [\"" + target + "\"]}]\n");
  testing::Daemon prom({"/usr/bin/prometheus", "--config.file=" + dir_.file("prometheus.yml"),
                        "--storage.tsdb.path=" + dir_.file("tsdb"),
                        "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                       dir_.file("prometheus.log"));
  ASSERT_OK(prom.start());
  const std::string id = pending_for("db-1");
  ASSERT_FALSE(id.empty());
  const std::string query = "http://127.0.0.1:" + std::to_string(port) +
                            "/api/v1/query?query=medic_decisions_total%2Bmedic_approvals_pending";
  std::string last;
  bool seen = while_running([&] {
    return testing::wait_until([&] {
      Reply r = http(query);
      last = r.error + r.body;
      Json j = parsed(r);
      if (!j.contains("data") || j["data"]["result"].empty()) return false;
      // decisions (1) + the approval it waits for (1)
      return j["data"]["result"][0]["value"][1] == "2";
    }, 60s);
  });
  std::ifstream log(dir_.file("prometheus.log"));
  std::stringstream log_text;
  log_text << log.rdbuf();
  EXPECT_TRUE(seen) << last << "\n" << log_text.str();
  EXPECT_TRUE(prom.running());
}

TEST(PrometheusExamples, AlertRulesAndScrapeConfigPassPromtoolAndTheDashboardParses) {
  const std::string dir = testing::source_dir() + "/examples/prometheus/";
  auto rules = testing::run_command({"/usr/bin/promtool", "check", "rules", dir + "alerts.yml"});
  EXPECT_EQ(rules.exit_code, 0) << rules.out << rules.err;
  EXPECT_NE(rules.out.find("SUCCESS: 7 rules found"), std::string::npos) << rules.out;
  auto config = testing::run_command({"/usr/bin/promtool", "check", "config", dir + "prometheus.yml"});
  EXPECT_EQ(config.exit_code, 0) << config.out << config.err;
  std::ifstream in(dir + "grafana-dashboard.json");
  std::stringstream text;
  text << in.rdbuf();
  auto dash = parse_json(text.str());
  ASSERT_OK(dash);
  EXPECT_GE((*dash)["panels"].size(), 6u);
}

}  // namespace
}  // namespace medic
