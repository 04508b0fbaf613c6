// `medic inject FAULT VM` end to end: the CLI's signed request to a real
// engine, which sends it as an action to the agent (collector and actuator)
// of a simulated host; the VM breaks, the engine sees it and heals it. A
// fault name the simulator does not have comes back as a failed action and
// breaks nothing. The agent's own HTTP listener (/healthz, /readyz,
// /metrics) is checked on the same flow: ready once it has listed its VMs
// and reached the engine, the panic -> executed latency in its histogram,
// and not ready once the engine is gone.
#include <future>
#include <sstream>

#include "core/json.h"
#include "node/agent_http.h"
#include "node/agent_node.h"
#include "node/engine_metrics.h"
#include "tests/integration/control_fixture.h"
#include "tests/testing/daemon.h"
#include "tests/testing/http_get.h"
#include "vmm/sim/sim.h"

namespace medic {
namespace {

class InjectTest : public SimHostFlowTest {
 protected:
  // GET on the agent's listener while this thread keeps the loops turning.
  testing::HttpReply agent_get(const node::AgentHttp& web, const std::string& path) {
    auto fut = std::async(std::launch::async, [&] { return testing::http_get(web.url() + path); });
    while (fut.wait_for(1ms) != std::future_status::ready) step();
    return fut.get();
  }
};

TEST_F(InjectTest, InjectedPanicBreaksTheVmAndTheEngineHealsIt) {
  ASSERT_TRUE(fleet_->is_healthy(vm_));
  auto r = cli({"inject", "panic", vm_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("sent panic to " + vm_ + " on host-a (action inject-"), std::string::npos)
      << r.out;
  ASSERT_TRUE(run_until([&] { return !fleet_->is_healthy(vm_); })) << "the VM never broke";
  bool reset = false;
  ASSERT_TRUE(run_until([&] {
    for (const auto& d : rec_.decisions) {
      reset = reset || (d.vm == vm_ && d.outcome == rules::Outcome::kProposed);
    }
    return reset && fleet_->is_healthy(vm_);
  })) << "no heal";
  EXPECT_EQ(testing::query_number(db_, "SELECT count(*) FROM operator_requests WHERE verb = "
                                       "'inject' AND accepted = 1"), 1);
}

TEST_F(InjectTest, UnknownFaultNameBreaksNothing) {
  auto r = cli({"inject", "meltdown", vm_});
  ASSERT_EQ(r.exit_code, 0) << r.err;  // the engine sent it; the host refuses it
  for (int i = 0; i < 100; ++i) step();
  EXPECT_TRUE(fleet_->is_healthy(vm_));
  EXPECT_FALSE(has_fault(vmm::sim::FaultKind::kPanic));
  // Positive control: a real fault name does break it.
  ASSERT_EQ(cli({"inject", "hang", vm_}).exit_code, 0);
  EXPECT_TRUE(run_until([&] { return has_fault(vmm::sim::FaultKind::kHang); }));
}

TEST_F(InjectTest, TheAgentsListenerShowsReadinessAndThePanicToExecutedLatency) {
  auto web = node::AgentHttp::start({"127.0.0.1:0", "", "", ""}, *agent_);
  ASSERT_OK(web);
  EXPECT_EQ(agent_get(**web, "/healthz").status, 200);
  testing::HttpReply ready;
  ASSERT_TRUE(run_until([&] {
    ready = agent_get(**web, "/readyz");
    return ready.status == 200;
  })) << ready.body;
  auto checks = parse_json(ready.body);
  ASSERT_OK(checks);
  EXPECT_EQ((*checks)["checks"]["collector"]["ok"], true) << ready.body;
  EXPECT_EQ((*checks)["checks"]["actuator"]["detail"], "connected to the engine") << ready.body;

  ASSERT_EQ(cli({"inject", "panic", vm_}).exit_code, 0);
  const std::string count = "medic_urgent_event_to_executed_seconds_count{event=\"panicked\"} 1";
  testing::HttpReply metrics;
  ASSERT_TRUE(run_until([&] {
    metrics = agent_get(**web, "/metrics");
    return metrics.body.find(count) != std::string::npos;
  })) << metrics.body;
  EXPECT_NE(metrics.body.find("medic_actuator_executed_total 2"), std::string::npos)
      << "the inject and the reset";
  EXPECT_NE(metrics.body.find("medic_ready 1"), std::string::npos) << metrics.body;
  EXPECT_EQ(metrics.body.find("medic_collector_urgent_flush_seconds_count 0"), std::string::npos)
      << "the panic went out on the urgent lane";
  EXPECT_NE(metrics.body.find("medic_probe_duration_seconds_count{result=\"succeeded\"} 0"),
            std::string::npos)
      << metrics.body;
  auto promtool =
      testing::run_command({"/usr/bin/promtool", "check", "metrics"}, 30s, metrics.body);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.out << promtool.err;

  // The engine's side of the same action, read on its loop (this thread).
  const std::string engine_metrics = node::engine_metrics_text(*node_);
  EXPECT_NE(engine_metrics.find("medic_decided_to_dispatched_seconds_count 1"), std::string::npos)
      << engine_metrics;
  EXPECT_NE(engine_metrics.find("medic_urgent_event_to_dispatched_seconds_count 1"),
            std::string::npos)
      << engine_metrics;
  EXPECT_EQ(engine_metrics.find("medic_audit_commit_seconds_count 0"), std::string::npos)
      << "the decision's rows were committed";
  EXPECT_NE(engine_metrics.find("medic_audit_commit_seconds_bucket{le=\"+Inf\"}"),
            std::string::npos);
  EXPECT_EQ(engine_metrics.find("medic_event_lane_lag_seconds_count{lane=\"urgent\"} 0"),
            std::string::npos)
      << "the panic's batch came on the urgent lane";
  EXPECT_NE(engine_metrics.find("medic_events_received_total{type=\"lifecycle\"}"),
            std::string::npos);
  EXPECT_EQ(engine_metrics.find("medic_events_received_total{type=\"state\"} 0"),
            std::string::npos)
      << "state reports came every flush";

  // docs/operations.md names every metric either daemon exports.
  const std::string doc = testing::read_file(testing::source_dir() + "/docs/operations.md");
  size_t families = 0;
  for (const std::string* text : std::vector<const std::string*>{&metrics.body, &engine_metrics}) {
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("# TYPE ", 0) != 0) continue;
      const std::string family = line.substr(7, line.find(' ', 7) - 7);
      ++families;
      EXPECT_NE(doc.find("`" + family + "`"), std::string::npos)
          << family << " is not in docs/operations.md";
    }
  }
  EXPECT_GT(families, 40u);

  // The engine goes away: the actuator loses its connection and says so.
  node_.reset();
  ASSERT_TRUE(run_until([&] {
    ready = agent_get(**web, "/readyz");
    return ready.status == 503;
  })) << ready.body;
  EXPECT_NE(ready.body.find("not connected to the engine"), std::string::npos) << ready.body;
}

}  // namespace
}  // namespace medic
