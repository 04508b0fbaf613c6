// The fixture of the operator-command tests: a real engine (EngineNode) on a
// VirtualClock with CurveZMQ sockets, a trusted host key that sends signed
// events, an operator key (alice), and the medic CLI run as a separate
// process while the test's thread keeps the engine going.
#pragma once

#include <gtest/gtest.h>

#include <future>
#include <sstream>

#include "audit/log.h"
#include "core/json.h"
#include "node/agent_node.h"
#include "node/engine_node.h"
#include "tests/testing/testing.h"
#include "vmm/sim/sim.h"

namespace medic {

using namespace std::chrono_literals;

class Recorder final : public node::EngineObserver {
 public:
  void on_decision(const rules::Decision& d) override { decisions.push_back(d); }
  std::vector<rules::Decision> decisions;
};

class ControlFlowTest : public ::testing::Test {
 protected:
  virtual std::string rules_text() const {
    return "rules:\n"
           "  - {name: db-panicked, on: vm.panicked, do: reset, approval: required,"
           " approval_timeout: 30s}\n";
  }

  // More trust-store entries (lines of the nodes: list), keys saved in dir_.
  virtual std::string more_trusted() { return ""; }
  // Changes to the engine's configuration before it starts.
  virtual void configure(node::EngineConfig&) {}

  void SetUp() override {
    engine_id_ = std::make_unique<fabric::Identity>(fabric::Identity::generate());
    auto host = fabric::Identity::generate();
    auto alice = fabric::Identity::generate();
    ASSERT_OK(host.save(dir_.file("host-a.key")));
    ASSERT_OK(alice.save(dir_.file("alice.key")));
    host_id_ = std::make_unique<fabric::Identity>(*fabric::Identity::load(dir_.file("host-a.key")));
    dir_.write("trust.yaml",
               "nodes:\n"
               "  - {name: engine-1, key: " +
                   engine_id_->id() +
                   ", roles: [engine]}\n"
                   "  - {name: host-a, key: " +
                   host.id() +
                   ", roles: [collector, actuator]}\n"
                   "  - {name: alice, key: " +
                   alice.id() + ", roles: [operator]}\n" + more_trusted());
    auto trust = fabric::TrustStore::load(dir_.file("trust.yaml"));
    ASSERT_OK(trust);
    trust_ = std::make_unique<fabric::TrustStore>(std::move(*trust));
    auto ctx = fabric::Context::create(*trust_);
    ASSERT_OK(ctx);
    ctx_ = std::move(*ctx);
    auto rules = rules::load_rule_text(rules_text(), "rules.yaml");
    ASSERT_OK(rules) << rules.text();
    node::EngineConfig c;
    c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
    c.actions_endpoint = "tcp://127.0.0.1:*";
    c.control_endpoint = "tcp://127.0.0.1:*";
    configure(c);
    db_ = dir_.file("audit.db");
    auto store = audit::open_sqlite_store(db_, clock_, *engine_id_);
    ASSERT_OK(store);
    auto node = node::EngineNode::create(c, {*ctx_, *engine_id_, *trust_, clock_}, rules.rules,
                                         std::move(*store), &rec_);
    ASSERT_OK(node);
    node_ = std::move(*node);
    auto pub = ctx_->connect(zmq::socket_type::pub, node_->urgent_endpoint(), *host_id_,
                             engine_id_->public_key());
    ASSERT_OK(pub);
    pub_ = std::move(*pub);
    sealer_ = std::make_unique<fabric::Sealer>(*host_id_, 1);
  }

  void TearDown() override {
    pub_.close();
    node_.reset();
  }

  // Sends a panic for `vm` until the engine has a pending approval for it;
  // returns the action id.
  std::string pending_for(const std::string& vm) {
    medic::v1::EventBatch b;
    auto* e = b.add_events();
    e->set_host("host-a");
    e->set_vm(vm);
    e->set_observed_at_ns(to_ns(clock_.now()));
    e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    std::string id;
    testing::wait_until([&] {
      if (node_->engine().stats().events == 0 || id.empty()) {
        pub_.send(zmq::buffer(sealer_->seal(medic::v1::KIND_EVENT_BATCH, "host-a",
                                            b.SerializeAsString(), clock_.now())),
                  zmq::send_flags::dontwait);
      }
      node_->run_once(5ms);
      for (const auto& d : rec_.decisions) {
        if (d.vm == vm && d.outcome == rules::Outcome::kPendingApproval) id = d.id;
      }
      return !id.empty();
    }, 10s);
    return id;
  }

  // Runs the medic CLI while this thread keeps the engine going.
  testing::CommandResult cli(std::vector<std::string> args, const std::string& key = "alice.key",
                             const std::string& timeout = "3s") {
    std::vector<std::string> argv = {testing::medic_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const auto& a : std::vector<std::string>{
             "--engine", node_->control_endpoint(), "--engine-key", engine_id_->id(), "--key",
             dir_.file(key), "--trust", dir_.file("trust.yaml"), "--timeout", timeout}) {
      argv.push_back(a);
    }
    return run_stepping(argv);
  }

  // Runs `argv` while this thread keeps the engine going.
  testing::CommandResult run_stepping(const std::vector<std::string>& argv) {
    auto fut = std::async(std::launch::async, [argv] { return testing::run_command(argv, 20s); });
    while (fut.wait_for(1ms) != std::future_status::ready) step();
    for (int i = 0; i < 20; ++i) step();  // let the audit writes land
    return fut.get();
  }

  // One turn of everything the test runs: the engine, and what a subclass adds.
  virtual void step() { node_->run_once(1ms); }

  // The replies of a `medic request --json` run, one object per line.
  static std::vector<Json> replies(const std::string& out) {
    std::vector<Json> v;
    std::istringstream lines(out);
    for (std::string l; std::getline(lines, l);) {
      auto j = parse_json(l);
      EXPECT_OK(j) << out;
      if (j.ok()) v.push_back(*j);
    }
    return v;
  }
  // Their stages, in order.
  static std::vector<std::string> stages(const std::vector<Json>& v) {
    std::vector<std::string> s;
    for (const auto& j : v) s.push_back(j["stage"].get<std::string>());
    return s;
  }

  std::string state_and_actor(const std::string& action_id) {
    auto reader = audit::AuditReader::open(db_);
    if (!reader.ok()) return "no reader: " + reader.status().message();
    auto h = reader->history(action_id);
    if (!h.ok()) return "no history: " + h.status().message();
    std::string out;
    for (const auto& t : h->transitions) out += std::string(state_name(t.state)) + ":" + t.actor + " ";
    return out;
  }

  testing::TempDir dir_;
  VirtualClock clock_{SystemClock::wall_now()};
  std::unique_ptr<fabric::Identity> engine_id_;
  std::unique_ptr<fabric::Identity> host_id_;
  std::unique_ptr<fabric::TrustStore> trust_;
  std::unique_ptr<fabric::Context> ctx_;
  Recorder rec_;
  std::string db_;
  std::unique_ptr<node::EngineNode> node_;
  zmq::socket_t pub_;
  std::unique_ptr<fabric::Sealer> sealer_;
};

// The same engine with the agent (collector and actuator) of a simulated
// host, host-a, of two VMs beside it; vm_ is the first.
class SimHostFlowTest : public ControlFlowTest {
 protected:
  std::string rules_text() const override {
    return "rules:\n  - {name: guest-panicked, on: vm.panicked, do: reset}\n";
  }

  void SetUp() override {
    ControlFlowTest::SetUp();
    if (HasFatalFailure()) return;
    vmm::sim::SimOptions so;
    so.host_names = {"host-a"};
    so.vms_per_host = 2;
    so.boot_time = 2s;
    configure_sim(so);
    fleet_ = std::make_unique<vmm::sim::SimFleet>(clock_, so);
    vm_ = fleet_->vm_ids()[0];
    vmm::Hypervisor* hv = &fleet_->host(0);
    if (vmm::Hypervisor* other = host_backend()) hv = other;
    node::AgentConfig ac;
    ac.host = "host-a";
    collectors::CollectorConfig cc;
    cc.host = "host-a";
    cc.engines.push_back(
        {"engine-1", engine_id_->public_key(), node_->events_endpoint(), node_->urgent_endpoint()});
    ac.collector = cc;
    actuators::ActuatorConfig act;
    act.options.host = "host-a";
    act.options.engine_endpoint = node_->actions_endpoint();
    act.options.engine_key = engine_id_->public_key();
    act.options.journal_path = dir_.file("host-a.journal.db");
    act.options.default_watch = 5s;
    ac.actuator = act;
    auto agent = node::AgentNode::create(ac, {*ctx_, *host_id_, *trust_, clock_}, *hv);
    ASSERT_OK(agent);
    agent_ = std::move(*agent);
    ASSERT_TRUE(run_until([&] { return node_->engine().knows_vm(vm_); }))
        << "the engine never heard of " << vm_;
  }

  void TearDown() override {
    agent_.reset();
    ControlFlowTest::TearDown();
  }

  // What a subclass changes in the simulated host before it is made.
  virtual void configure_sim(vmm::sim::SimOptions&) {}
  // Another backend for host-a's agent (then it sets vm_ to one of its
  // VMs); null: the simulated host.
  virtual vmm::Hypervisor* host_backend() { return nullptr; }

  // With tick_ set, each turn also moves the clock (for CLI commands that
  // wait for the fleet to do something).
  void step() override {
    if (tick_ > Duration(0)) clock_.advance(tick_);
    if (node_) node_->run_once(1ms);
    if (agent_) agent_->run_once(Duration(0));
  }

  // Steps with the clock moving 50ms a turn (at most 60s of it).
  bool run_until(const std::function<bool()>& cond) {
    for (int i = 0; i < 1200; ++i) {
      if (cond()) return true;
      clock_.advance(50ms);
      for (int j = 0; j < 3; ++j) step();
    }
    return cond();
  }

  bool has_fault(vmm::sim::FaultKind k) {
    for (auto f : fleet_->active_faults(vm_)) {
      if (f == k) return true;
    }
    return false;
  }

  std::unique_ptr<vmm::sim::SimFleet> fleet_;
  std::unique_ptr<node::AgentNode> agent_;
  std::string vm_;
  Duration tick_{0};
};

}  // namespace medic
