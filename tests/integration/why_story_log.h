// A recorded audit log for the `medic audit why` golden stories: a real
// engine (EngineNode: rules engine, SQLite audit log, dispatcher, control
// handler) on a VirtualClock that starts at a fixed time, fed signed event
// batches over CurveZMQ by host-a's and host-b's collector keys, with an
// actuator stand-in that answers each action as the story needs. Every key
// is seeded and every time virtual, so the log, and each story printed from
// it, is the same on every run.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "audit/log.h"
#include "medic/v1/control.pb.h"
#include "node/engine_node.h"
#include "rules/loader.h"
#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"

namespace medic::testing {

using namespace std::chrono_literals;

// 2026-03-01T09:00:00Z.
inline constexpr int64_t kStoryStartNs = 1'772'355'600'000'000'000;

class DecisionLog final : public node::EngineObserver {
 public:
  void on_decision(const rules::Decision& d) override { decisions.push_back(d); }
  void on_dispatch_event(const actuators::DispatchEvent& e) override {
    if (e.state != ActionState::kDispatched) ++results[e.action.id()];
  }
  std::vector<rules::Decision> decisions;
  std::map<std::string, int> results;  // action id -> acks and results seen by the node
};

class StoryLog {
 public:
  // `rules` is a rule file's text; `tweak` may change the engine config.
  explicit StoryLog(const std::string& rules,
                    const std::function<void(node::EngineConfig&)>& tweak = {}) {
    keys_.add(alice_, "alice", actuators::testing::roles({fabric::Role::kOperator}), {"*"});
    auto ctx = fabric::Context::create(keys_.trust);
    EXPECT_OK(ctx);
    ctx_ = std::move(*ctx);
    auto loaded = rules::load_rule_text(rules, "rules.yaml");
    EXPECT_TRUE(loaded.rules) << loaded.text();
    node::EngineConfig c;
    c.name = "engine-1";
    c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
    c.actions_endpoint = "tcp://127.0.0.1:*";
    c.control_endpoint = "tcp://127.0.0.1:*";
    if (tweak) tweak(c);
    db_ = dir_.file("audit.db");
    audit::StoreOptions o;
    o.durability = audit::Durability::kProcessCrash;
    o.checkpoint_every_rows = 1'000'000;  // checkpoints would land where the writer's batches end
    o.checkpoint_every = std::chrono::hours(10'000);
    auto store = audit::open_sqlite_store(db_, clock_, keys_.engine, o);
    EXPECT_OK(store);
    auto node = node::EngineNode::create(c, {*ctx_, keys_.engine, keys_.trust, clock_},
                                         loaded.rules, std::move(*store), &log_);
    EXPECT_OK(node);
    node_ = std::move(*node);
    actuator_ = std::make_unique<actuators::testing::FakeActuator>(
        *ctx_, keys_, keys_.host_a, "host-a", node_->actions_endpoint(), clock_);
    actuator_->ack("hello");
    connect("host-a", keys_.host_a);
    connect("host-b", keys_.host_b);
  }

  ~StoryLog() {
    actuator_.reset();
    for (auto& [host, p] : pubs_) p.socket.close();
    node_.reset();
  }

  // ---- what the collectors report -------------------------------------

  // A state report of `vm` (labelled with its name), the heartbeat it last saw.
  void state(const std::string& vm, const std::string& name, medic::v1::VmState s, Time last_beat,
             const std::string& host = "host-a") {
    medic::v1::Event e = event(vm, host);
    names_[vm] = name;
    e.mutable_state()->set_state(s);
    auto* l = e.mutable_state()->add_labels();
    l->set_key("name");
    l->set_value(name);
    e.mutable_state()->set_last_heartbeat_ns(to_ns(last_beat));
    send(host, {e});
  }
  void heartbeat(const std::string& vm, const std::string& host = "host-a") {
    medic::v1::Event e = event(vm, host);
    e.mutable_heartbeat()->set_source("serial");
    send(host, {e});
  }
  void panic(const std::vector<std::string>& vms, const std::string& host = "host-a") {
    std::vector<medic::v1::Event> events;
    for (const auto& vm : vms) {
      medic::v1::Event e = event(vm, host);
      e.mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
      e.mutable_lifecycle()->set_detail("pvpanic");
      // As the collector does: the name from the VM's last state report.
      auto it = names_.find(vm);
      if (it != names_.end()) e.mutable_lifecycle()->set_vm_name(it->second);
      events.push_back(e);
    }
    send(host, events);
  }

  // ---- the actuator -----------------------------------------------------

  // The next action sent to host-a, acknowledged; "" if none comes.
  std::string take_action() {
    const size_t before = actuator_->actions.size();
    bool got = wait_until([&] {
      node_->run_once(1ms);
      actuator_->poll();
      return actuator_->actions.size() > before;
    });
    if (!got) return "";
    const std::string id = actuator_->actions.back().id();
    actuator_->ack(id);
    settle(id, 1);
    return id;
  }
  // Answers action `id`: the verb ran for 2s of the clock; `healthy` is the
  // actuator's own look at the VM afterwards.
  void succeed(const std::string& id, bool healthy) { answer(id, true, healthy, ""); }
  void fail(const std::string& id, const std::string& reason) { answer(id, false, false, reason); }

  // ---- operators (signed by alice, straight into the control handler) ---

  std::string approve(const std::string& id, const std::string& comment) {
    medic::v1::ControlRequest q;
    q.mutable_approve()->set_action_id(id);
    q.mutable_approve()->set_comment(comment);
    return control(q);
  }
  std::string deny(const std::string& id, const std::string& reason) {
    medic::v1::ControlRequest q;
    q.mutable_deny()->set_action_id(id);
    q.mutable_deny()->set_reason(reason);
    return control(q);
  }
  std::string silence_vm(const std::string& vm, Duration d, const std::string& reason) {
    medic::v1::ControlRequest q;
    q.mutable_silence()->set_scope(medic::v1::Silence::SCOPE_VM);
    q.mutable_silence()->set_value(vm);
    q.mutable_silence()->set_duration_ns(d.count());
    q.mutable_silence()->set_reason(reason);
    return control(q);
  }

  // ---- time and reading -------------------------------------------------

  // Lets `total` pass while host-a's collector keeps reporting `vm` every
  // 10s (with the heartbeat it last saw), so the host never looks silent.
  void pass(Duration total, const std::string& vm, const std::string& name, medic::v1::VmState s,
            Time last_beat) {
    while (total > Duration::zero()) {
      Duration step = std::min<Duration>(total, 10s);
      advance(step);
      total -= step;
      state(vm, name, s, last_beat);
    }
  }

  void advance(Duration d) {
    clock_.advance(d);
    for (int i = 0; i < 5; ++i) node_->run_once(Duration(0));
  }
  Time now() const { return clock_.now(); }
  // The id of the n-th decision (0-based) the engine made for `vm` ("" for
  // the engine's own notices about a host: pass the host's name as `vm`).
  std::string decision(const std::string& vm, size_t n = 0) const {
    for (const auto& d : log_.decisions) {
      if ((d.vm == vm || (d.vm.empty() && d.host == vm)) && n-- == 0) return d.id;
    }
    return "";
  }
  const std::vector<rules::Decision>& decisions() const { return log_.decisions; }
  // Closes the log (the engine shuts down) and returns what `audit why` prints.
  std::string why(const std::string& id, bool json) {
    if (node_) {
      EXPECT_OK(node_->shutdown());
    }
    auto reader = audit::AuditReader::open(db_);
    if (!reader.ok()) return "no reader: " + reader.status().message();
    auto h = reader->history(id);
    if (!h.ok()) return "no history for " + id + ": " + h.status().message();
    return json ? audit::why_json(*h) : audit::why_text(*h);
  }
  const std::string& db() const { return db_; }

 private:
  struct Publisher {
    zmq::socket_t socket;
    std::unique_ptr<fabric::Sealer> sealer;
  };

  medic::v1::Event event(const std::string& vm, const std::string& host) const {
    medic::v1::Event e;
    e.set_host(host);
    e.set_vm(vm);
    e.set_observed_at_ns(to_ns(clock_.now()));
    return e;
  }

  // A PUB from `host`'s collector key; a host-only batch is sent until the
  // engine has read one, so the subscription is up before the story starts.
  void connect(const std::string& host, const fabric::Identity& id) {
    auto pub = ctx_->connect(zmq::socket_type::pub, node_->events_endpoint(), id,
                             keys_.engine.public_key());
    EXPECT_OK(pub);
    Publisher& p = pubs_[host];
    p.socket = std::move(*pub);
    p.sealer = std::make_unique<fabric::Sealer>(id, 1);
    const uint64_t before = node_->stats().batches;
    medic::v1::EventBatch b;
    b.add_events()->set_host(host);
    EXPECT_TRUE(wait_until([&] {
      publish(p, host, b);
      node_->run_once(5ms);
      return node_->stats().batches > before;
    })) << host << "'s collector never reached the engine";
  }

  void publish(Publisher& p, const std::string& host, const medic::v1::EventBatch& b) {
    p.socket.send(zmq::buffer(p.sealer->seal(medic::v1::KIND_EVENT_BATCH, host,
                                             b.SerializeAsString(), clock_.now())),
                  zmq::send_flags::dontwait);
  }

  // One signed batch, sent once; returns when the engine has taken it in.
  void send(const std::string& host, const std::vector<medic::v1::Event>& events) {
    medic::v1::EventBatch b;
    for (const auto& e : events) *b.add_events() = e;
    const uint64_t before = node_->stats().batches;
    publish(pubs_.at(host), host, b);
    EXPECT_TRUE(wait_until([&] {
      node_->run_once(1ms);
      return node_->stats().batches > before;
    })) << "the engine never read a batch from " << host;
    for (int i = 0; i < 5; ++i) node_->run_once(Duration(0));
  }

  void answer(const std::string& id, bool ok, bool healthy, const std::string& reason) {
    medic::v1::ActionResult r;
    r.set_action_id(id);
    r.set_outcome(ok ? medic::v1::ActionResult::OUTCOME_SUCCEEDED
                     : medic::v1::ActionResult::OUTCOME_FAILED);
    r.set_reason(reason);
    r.set_healed(healthy);
    r.set_executed_at_ns(to_ns(clock_.now()));
    clock_.advance(2s);
    r.set_finished_at_ns(to_ns(clock_.now()));
    const int before = log_.results[id];
    actuator_->result(r);
    settle(id, before + 1);
  }

  // Runs the engine until it has seen `n` acks and results of `id`.
  void settle(const std::string& id, int n) {
    EXPECT_TRUE(wait_until([&] {
      node_->run_once(1ms);
      actuator_->poll();
      return log_.results[id] >= n;
    })) << "the engine never heard back about " << id;
    for (int i = 0; i < 5; ++i) node_->run_once(Duration(0));
  }

  std::string control(const medic::v1::ControlRequest& q) {
    fabric::Sealer sealer(alice_, 9);
    fabric::Opened opened;
    EXPECT_TRUE(opened.envelope.ParseFromString(sealer.seal(
        medic::v1::KIND_CONTROL_REQUEST, "", q.SerializeAsString(), clock_.now())));
    opened.sender = keys_.trust.find(alice_.public_key());
    auto reply = node_->handle(q, opened, "");
    for (int i = 0; i < 5; ++i) node_->run_once(Duration(0));
    return reply.ok() ? reply.text() : "refused: " + reply.error();
  }

  TempDir dir_;
  VirtualClock clock_{from_ns(kStoryStartNs)};
  actuators::testing::Keys keys_;
  fabric::Identity alice_ = actuators::testing::seeded(6);
  std::unique_ptr<fabric::Context> ctx_;
  DecisionLog log_;
  std::string db_;
  std::unique_ptr<node::EngineNode> node_;
  std::unique_ptr<actuators::testing::FakeActuator> actuator_;
  std::map<std::string, Publisher> pubs_;
  std::map<std::string, std::string> names_;  // VM id -> name, from its last state report
};

}  // namespace medic::testing
