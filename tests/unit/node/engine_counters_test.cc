// Every rejection an engine process makes is in one registry of counters,
// by cause and socket, and `medic status` (its reply's JSON) shows them: a
// hostile frame of each cause goes to the socket it targets, over loopback
// CurveZMQ, and the counter named for that cause and socket moves by one.
#include <gtest/gtest.h>

#include <future>

#include "core/json.h"
#include "node/engine_node.h"
#include "rules/loader.h"
#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"
#include "tests/unit/node/fake_audit_store.h"

namespace medic::node {
namespace {

using namespace std::chrono_literals;
using actuators::testing::roles;
using actuators::testing::seeded;
using testing::FakeAuditBackend;
using testing::FakeAuditStore;

class EngineCountersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_.add(operator_, "alice", roles({fabric::Role::kOperator}), {"*"});
    auto ctx = fabric::Context::create(keys_.trust);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = std::move(*ctx);
    auto loaded = rules::load_rule_text(
        "rules:\n  - {name: db-panicked, on: vm.panicked, do: reset}\n", "rules.yaml");
    ASSERT_TRUE(loaded.rules) << loaded.text();
    EngineConfig c;
    c.name = "engine-1";
    c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
    c.actions_endpoint = "tcp://127.0.0.1:*";
    c.control_endpoint = "tcp://127.0.0.1:*";
    auto node = EngineNode::create(c, {*ctx_, keys_.engine, keys_.trust, clock_}, loaded.rules,
                                   std::make_unique<FakeAuditStore>(backend_));
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = std::move(*node);
    bulk_ = connect(zmq::socket_type::pub, node_->events_endpoint());
    urgent_ = connect(zmq::socket_type::pub, node_->urgent_endpoint());
    // Until each PUB has its subscriber, frames are dropped: send probes
    // (malformed) until one has been counted on each lane.
    ASSERT_TRUE(::medic::testing::wait_until([&] {
      bulk_.send(zmq::str_buffer("probe"), zmq::send_flags::dontwait);
      urgent_.send(zmq::str_buffer("probe"), zmq::send_flags::dontwait);
      node_->run_once(Duration(0));
      return rejected("events_bulk", "malformed") > 0 && rejected("events_urgent", "malformed") > 0;
    }));
    for (int i = 0; i < 20; ++i) node_->run_once(1ms);  // probes still in flight land now
    base_bulk_malformed_ = rejected("events_bulk", "malformed");
  }

  zmq::socket_t connect(zmq::socket_type type, const std::string& endpoint) {
    auto s = ctx_->connect(type, endpoint, keys_.host_a, keys_.engine.public_key());
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : zmq::socket_t();
  }

  uint64_t rejected(const std::string& socket, const std::string& cause) {
    return node_->counters().value("frames_rejected_total", {{"socket", socket}, {"cause", cause}});
  }

  // An event batch of one event for `event_host`, sealed by `by` for `host`.
  std::string batch(fabric::Sealer& by, const std::string& host, const std::string& event_host) {
    medic::v1::EventBatch b;
    auto* e = b.add_events();
    e->set_host(event_host);
    e->set_vm("vm-1");
    e->mutable_heartbeat()->set_source("test");
    return by.seal(medic::v1::KIND_EVENT_BATCH, host, b.SerializeAsString(), clock_.now());
  }

  // Runs the node until `cond` holds.
  bool until(const std::function<bool()>& cond) {
    return ::medic::testing::wait_until([&] {
      node_->run_once(Duration(0));
      return cond();
    });
  }

  // `medic status` over the control channel, as an operator; the reply's JSON.
  Json status_json() {
    medic::v1::ControlRequest r;
    r.mutable_status();
    return request(r);
  }
  Json request(const medic::v1::ControlRequest& r) {
    fabric::ControlTarget target{node_->control_endpoint(), keys_.engine.public_key()};
    auto fut = std::async(std::launch::async, [&] {
      return fabric::send_control_request(target, operator_, keys_.trust, r, 5000ms);
    });
    while (fut.wait_for(1ms) != std::future_status::ready) node_->run_once(1ms);
    auto reply = fut.get();
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok() || reply->json().empty()) return Json();
    auto j = parse_json(reply->json());
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *j : Json();
  }

  actuators::testing::Keys keys_;
  fabric::Identity operator_ = seeded(9);
  std::unique_ptr<fabric::Context> ctx_;
  VirtualClock clock_{SystemClock::wall_now()};  // the control client checks replies against the wall clock
  FakeAuditBackend backend_;
  std::unique_ptr<EngineNode> node_;
  zmq::socket_t bulk_;
  zmq::socket_t urgent_;
  uint64_t base_bulk_malformed_ = 0;
};

// The value of counter `name` with `labels` in a status JSON, or -1.
int64_t in_json(const Json& status, const std::string& name, const Json& labels) {
  if (!status.contains("counters") || !status["counters"].contains(name)) return -1;
  for (const auto& series : status["counters"][name]) {
    if (series["labels"] == labels) return series["value"].get<int64_t>();
  }
  return -1;
}

TEST_F(EngineCountersTest, EachHostileFrameIsCountedByCauseAndSocketInStatusJson) {
  fabric::Sealer stranger(keys_.stranger), engine(keys_.engine), host_a(keys_.host_a, 1);
  fabric::Sealer host_a_urgent(keys_.host_a, 2);
  bulk_.send(zmq::buffer(batch(stranger, "host-a", "host-a")));  // unknown_sender
  bulk_.send(zmq::buffer(batch(engine, "host-a", "host-a")));    // role_not_allowed
  urgent_.send(zmq::buffer(batch(host_a_urgent, "host-b", "host-b")));  // out_of_scope
  std::string good = batch(host_a_urgent, "host-a", "host-a");
  urgent_.send(zmq::buffer(good));
  urgent_.send(zmq::buffer(good));  // replayed
  medic::v1::Envelope forged;
  ASSERT_TRUE(forged.ParseFromString(batch(host_a, "host-a", "host-a")));
  std::string sig = forged.signature();
  sig[0] ^= 1;
  forged.set_signature(sig);
  bulk_.send(zmq::buffer(forged.SerializeAsString()));         // bad_signature
  bulk_.send(zmq::buffer(batch(host_a, "host-a", "host-b")));  // an event for another host
  bulk_.send(zmq::str_buffer("not an envelope"));              // malformed

  // A collector's key on the control socket, and a frame the dispatcher
  // cannot route (three parts, not [routing id][envelope]).
  zmq::socket_t control = connect(zmq::socket_type::dealer, node_->control_endpoint());
  medic::v1::ControlRequest req;
  req.mutable_status();
  control.send(zmq::buffer(host_a.seal(medic::v1::KIND_CONTROL_REQUEST, "host-a",
                                       req.SerializeAsString(), clock_.now())));
  zmq::socket_t actions = connect(zmq::socket_type::dealer, node_->actions_endpoint());
  actions.set(zmq::sockopt::routing_id, "host-a");
  actions.send(zmq::str_buffer("one"), zmq::send_flags::sndmore);
  actions.send(zmq::str_buffer("two"));

  ASSERT_TRUE(until([&] {
    return rejected("events_bulk", "malformed") > base_bulk_malformed_ &&
           rejected("control", "role_not_allowed") == 1 &&
           node_->counters().value("dispatcher_refused_total", {{"cause", "framing"}}) == 1 &&
           node_->counters().value("batches_dropped_total",
                                   {{"socket", "events"}, {"reason", "undecodable"}}) == 1;
  })) << dump_json(node_->status_json());

  medic::v1::ControlRequest approve;
  approve.mutable_approve()->set_action_id("no-such-action");
  request(approve);  // refused: nothing waits for approval

  Json s = status_json();
  auto lbl = [](const char* socket, const char* cause) {
    return Json{{"socket", socket}, {"cause", cause}};
  };
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("events_bulk", "unknown_sender")), 1);
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("events_bulk", "role_not_allowed")), 1);
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("events_bulk", "bad_signature")), 1);
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("events_bulk", "malformed")),
            static_cast<int64_t>(base_bulk_malformed_ + 1));
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("events_urgent", "out_of_scope")), 1);
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("events_urgent", "replayed")), 1);
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("events_bulk", "replayed")), 0)
      << "counted on the socket it came in on";
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("control", "role_not_allowed")), 1);
  EXPECT_EQ(in_json(s, "frames_rejected_total", lbl("actions", "bad_signature")), 0);
  EXPECT_EQ(in_json(s, "batches_dropped_total",
                    Json{{"socket", "events"}, {"reason", "undecodable"}}),
            1);
  EXPECT_EQ(in_json(s, "dispatcher_refused_total", Json{{"cause", "framing"}}), 1);
  EXPECT_EQ(in_json(s, "dispatcher_refused_total", Json{{"cause", "not_actuator"}}), 0);
  EXPECT_EQ(in_json(s, "control_requests_refused_total", Json{{"request", "approve"}}), 1);
  EXPECT_EQ(in_json(s, "batches_total", Json::object()), 1) << "the one good batch";
  EXPECT_EQ(s["engine"], "engine-1");

  medic::v1::ControlRequest text;
  text.mutable_status();
  fabric::ControlTarget target{node_->control_endpoint(), keys_.engine.public_key()};
  auto fut = std::async(std::launch::async, [&] {
    return fabric::send_control_request(target, operator_, keys_.trust, text, 5000ms);
  });
  while (fut.wait_for(1ms) != std::future_status::ready) node_->run_once(1ms);
  auto reply = fut.get();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_NE(reply->text().find("rejected frames: control: role_not_allowed 1; events_bulk: "
                                "bad_signature 1, malformed "),
            std::string::npos)
      << reply->text();
  EXPECT_NE(reply->text().find("role_not_allowed 1, unknown_sender 1; events_urgent: malformed "),
            std::string::npos)
      << reply->text();
  EXPECT_NE(reply->text().find("out_of_scope 1, replayed 1\n"), std::string::npos)
      << reply->text();
}

TEST_F(EngineCountersTest, AQuietEngineShowsEveryCounterAtZero) {
  Json s = status_json();
  ASSERT_TRUE(s.contains("counters")) << dump_json(s);
  EXPECT_EQ(in_json(s, "frames_rejected_total", Json{{"socket", "control"}, {"cause", "replayed"}}),
            0);
  EXPECT_EQ(in_json(s, "vm_claims_refused_total", Json::object()), 0);
  EXPECT_EQ(in_json(s, "dispatcher_refused_total", Json{{"cause", "foreign_result"}}), 0);
  EXPECT_EQ(in_json(s, "control_requests_refused_total", Json{{"request", "silence"}}), 0);
  for (const auto& [name, series] : s["counters"].items()) {
    EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
  }
}

}  // namespace
}  // namespace medic::node
