// Shared test fixtures for the actuator and dispatcher tests: deterministic
// keys and a trust store, a Hypervisor double that records the verbs it
// executes, a fake engine (a ROUTER that seals actions by hand, so tests can
// send expired, forged or replayed ones) and a pump that drives event loops
// until a real condition holds.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "actuators/actuator.h"
#include "actuators/dispatcher.h"
#include "fabric/envelope.h"
#include "fabric/transport.h"
#include "vmm/hypervisor.h"
#include "tests/testing/testing.h"

namespace medic::actuators::testing {

using namespace std::chrono_literals;

inline fabric::Identity seeded(uint8_t b) {
  std::array<uint8_t, 32> seed;
  seed.fill(b);
  return fabric::Identity::from_seed(seed);
}

inline uint8_t roles(std::initializer_list<fabric::Role> rs) {
  uint8_t r = 0;
  for (auto x : rs) r |= static_cast<uint8_t>(x);
  return r;
}

// engine-1 (engine), host-a and host-b (collector + actuator for their own
// host), a collector-only key for host-a, and a stranger not in the store.
struct Keys {
  fabric::Identity engine = seeded(1);
  fabric::Identity host_a = seeded(2);
  fabric::Identity host_b = seeded(3);
  fabric::Identity collector = seeded(4);
  fabric::Identity stranger = seeded(5);
  fabric::TrustStore trust;

  Keys() {
    add(engine, "engine-1", roles({fabric::Role::kEngine}), {"*"});
    add(host_a, "host-a", roles({fabric::Role::kCollector, fabric::Role::kActuator}), {"host-a"});
    add(host_b, "host-b", roles({fabric::Role::kCollector, fabric::Role::kActuator}), {"host-b"});
    add(collector, "collector-a", roles({fabric::Role::kCollector}), {"host-a"});
  }
  void add(const fabric::Identity& id, const std::string& name, uint8_t r,
           std::vector<std::string> hosts) {
    fabric::TrustedNode n;
    n.name = name;
    n.key = id.public_key();
    n.roles = r;
    n.hosts = std::move(hosts);
    EXPECT_OK(trust.add(std::move(n)));
  }
};

// A Hypervisor double: VMs in a map, every execute() recorded (and appended
// to `record_file` when set, so a killed child process leaves evidence).
class FakeHypervisor final : public vmm::Hypervisor {
 public:
  FakeHypervisor(std::string host, Clock& clock) : host_(std::move(host)), clock_(clock) {}

  const std::string& host() const override { return host_; }
  Result<std::vector<vmm::VmInfo>> list() override {
    std::vector<vmm::VmInfo> out;
    for (auto& [id, vm] : vms) out.push_back(vm);
    return out;
  }
  Result<vmm::VmInfo> get(const std::string& vm) override {
    auto it = vms.find(vm);
    if (it == vms.end()) return not_found("no VM " + vm);
    return it->second;
  }
  void subscribe(EventSink sink) override { sink_ = std::move(sink); }
  void poll() override {}
  // The verb takes `verb_time` on the Clock; its effect and its completion
  // come from a timer that long after the call.
  void execute(vmm::Verb verb, const std::string& vm, Duration, VerbDone done) override {
    ++verbs_started;
    clock_.schedule_after(verb_time,
                          [this, verb, vm, done = std::move(done)] { done(run(verb, vm)); });
  }
  Status run(vmm::Verb verb, const std::string& vm) {
    executed.push_back(std::string(vmm::verb_name(verb)) + " " + vm);
    if (!record_file.empty()) {
      std::ofstream(record_file, std::ios::app) << vmm::verb_name(verb) << " " << vm << "\n";
    }
    if (!next_status.ok()) return next_status;
    auto it = vms.find(vm);
    if (it == vms.end()) return not_found("no VM " + vm);
    if (heal_on_execute) {
      it->second.state = medic::v1::VM_STATE_RUNNING;
      it->second.last_heartbeat = clock_.now();
    } else {
      it->second.state = medic::v1::VM_STATE_BOOTING;
      if (boot_time > Duration::zero()) {
        std::string id = vm;
        clock_.schedule_after(boot_time, [this, id] { heartbeat(id); });
      }
    }
    return {};
  }

  // The guest panics: state panicked and a lifecycle event to the subscriber.
  void panic(const std::string& vm) {
    vms[vm].state = medic::v1::VM_STATE_PANICKED;
    if (sink_) {
      vmm::VmEvent ev;
      ev.type = vmm::VmEvent::Type::kLifecycle;
      ev.vm = vm;
      ev.what = medic::v1::LIFECYCLE_PANICKED;
      ev.at = clock_.now();
      sink_(ev);
    }
  }

  void add_vm(const std::string& id, vmm::VmState state = medic::v1::VM_STATE_RUNNING) {
    vmm::VmInfo info;
    info.id = id;
    info.name = id;
    info.state = state;
    vms[id] = info;
  }
  // The guest is back: running, with a heartbeat now.
  void heartbeat(const std::string& vm) {
    vms[vm].state = medic::v1::VM_STATE_RUNNING;
    vms[vm].last_heartbeat = clock_.now();
  }

  std::map<std::string, vmm::VmInfo> vms;
  std::vector<std::string> executed;
  Status next_status;
  bool heal_on_execute = false;
  Duration boot_time{0};  // when set, the guest heartbeats this long after a verb
  Duration verb_time{0};  // how long each verb takes
  int verbs_started = 0;
  std::string record_file;

 private:
  std::string host_;
  Clock& clock_;
  EventSink sink_;
};

// Calls `step` until `cond` holds, at most `limit` of real time (sockets and
// CURVE handshakes take real time; virtual time moves only when told).
inline bool pump(const std::function<void()>& step, const std::function<bool()>& cond,
                 std::chrono::milliseconds limit = 5000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return cond();
    step();
  }
  return true;
}

inline medic::v1::Action make_action(const std::string& id, const std::string& host,
                                     const std::string& vm, Time now,
                                     medic::v1::Verb verb = medic::v1::VERB_RESET,
                                     Duration ttl = 60s, Duration watch = 10s) {
  medic::v1::Action a;
  a.set_id(id);
  a.set_verb(verb);
  a.set_host(host);
  a.set_vm(vm);
  a.set_issued_at_ns(to_ns(now));
  a.set_expires_at_ns(to_ns(now + ttl));
  a.set_rule("guest-panicked");
  a.set_rule_version("1");
  a.set_watch_ns(watch.count());
  return a;
}

// An engine stand-in: a ROUTER bound on loopback tcp with CURVE that sends
// hand-sealed frames and collects the actuator's acks and results.
class FakeEngine {
 public:
  FakeEngine(fabric::Context& ctx, Keys& keys, Clock& clock)
      : keys_(keys), clock_(clock), sealer_(keys.engine), opener_(keys.trust, clock) {
    auto s = ctx.bind(zmq::socket_type::router, "tcp://127.0.0.1:*", keys.engine);
    EXPECT_OK(s);
    socket_ = std::move(s).value();
    socket_.set(zmq::sockopt::router_handover, true);
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    opener_.expect_kinds({medic::v1::KIND_ACTION_ACK, medic::v1::KIND_ACTION_RESULT});
  }

  const std::string& endpoint() const { return endpoint_; }

  std::string seal_action(const medic::v1::Action& a, const std::string& host = "") {
    return sealer_.seal(medic::v1::KIND_ACTION, host.empty() ? a.host() : host,
                        a.SerializeAsString(), clock_.now());
  }
  std::string seal_result_ack(const std::string& id) {
    medic::v1::ActionAck ack;
    ack.set_action_id(id);
    ack.set_what(medic::v1::ActionAck::WHAT_RESULT_RECEIVED);
    return sealer_.seal(medic::v1::KIND_ACTION_ACK, "host-a", ack.SerializeAsString(),
                        clock_.now());
  }

  // Sends one frame to the DEALER with routing id `to`, pumping `step` while
  // the peer is not connected yet.
  bool send_frame(const std::string& frame, const std::function<void()>& step,
                  const std::string& to = "host-a") {
    return pump(step, [&] {
      try {
        socket_.send(zmq::buffer(to), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(frame), zmq::send_flags::none);
        return true;
      } catch (const zmq::error_t& e) {
        if (e.num() != EHOSTUNREACH) throw;
        return false;
      }
    });
  }

  // Reads whatever arrived; opened acks and results go into the lists.
  void poll() {
    while (true) {
      zmq::message_t id, frame;
      if (!socket_.recv(id, zmq::recv_flags::dontwait)) return;
      if (!id.more() || !socket_.recv(frame, zmq::recv_flags::dontwait)) continue;
      fabric::Opened o;
      std::string detail;
      auto err = opener_.open(frame.to_string_view(), &o, &detail);
      if (err != fabric::OpenError::kOk) {
        ADD_FAILURE() << "engine could not open a frame: " << detail;
        continue;
      }
      if (o.envelope.kind() == medic::v1::KIND_ACTION_ACK) {
        medic::v1::ActionAck ack;
        ack.ParseFromString(o.envelope.payload());
        acks.push_back(ack);
      } else {
        medic::v1::ActionResult r;
        r.ParseFromString(o.envelope.payload());
        results.push_back(r);
      }
    }
  }

  size_t results_for(const std::string& id) const {
    size_t n = 0;
    for (auto& r : results) n += r.action_id() == id;
    return n;
  }
  const medic::v1::ActionResult* last_result(const std::string& id) const {
    for (auto it = results.rbegin(); it != results.rend(); ++it) {
      if (it->action_id() == id) return &*it;
    }
    return nullptr;
  }

  std::vector<medic::v1::ActionAck> acks;
  std::vector<medic::v1::ActionResult> results;
  fabric::Sealer& sealer() { return sealer_; }

 private:
  Keys& keys_;
  Clock& clock_;
  fabric::Sealer sealer_;
  fabric::Opener opener_;
  zmq::socket_t socket_;
  std::string endpoint_;
};

inline ActuatorOptions actuator_options(const Keys& keys, const std::string& endpoint,
                                        const std::string& journal) {
  ActuatorOptions o;
  o.host = "host-a";
  o.engine_endpoint = endpoint;
  o.engine_key = keys.engine.public_key();
  o.journal_path = journal;
  o.default_watch = 10s;
  o.watch_poll = 1s;
  o.execute_timeout = 5s;
  o.result_initial_backoff = 200ms;
  o.result_max_backoff = 2s;
  return o;
}

// An actuator stand-in: a DEALER (routing id = host) that records the
// actions it receives and answers only when told.
class FakeActuator {
 public:
  FakeActuator(fabric::Context& ctx, Keys& keys, const fabric::Identity& self,
               const std::string& host, const std::string& endpoint, Clock& clock)
      : host_(host), clock_(clock), sealer_(self), opener_(keys.trust, clock) {
    fabric::SocketOptions so;
    so.routing_id = host;
    auto s = ctx.connect(zmq::socket_type::dealer, endpoint, self, keys.engine.public_key(), so);
    EXPECT_OK(s);
    socket_ = std::move(s).value();
    opener_.expect_kinds({medic::v1::KIND_ACTION, medic::v1::KIND_ACTION_ACK});
    opener_.expect_host(host);
  }

  void poll() {
    while (true) {
      zmq::message_t m;
      if (!socket_.recv(m, zmq::recv_flags::dontwait)) return;
      fabric::Opened o;
      std::string detail;
      // Frames sealed during a long virtual-clock jump arrive stale: count them.
      if (opener_.open(m.to_string_view(), &o, &detail) != fabric::OpenError::kOk) {
        ++refused;
        continue;
      }
      if (o.envelope.kind() == medic::v1::KIND_ACTION) {
        medic::v1::Action a;
        a.ParseFromString(o.envelope.payload());
        actions.push_back(a);
        seqs.push_back(o.envelope.seq());
      } else {
        medic::v1::ActionAck ack;
        ack.ParseFromString(o.envelope.payload());
        result_acks.push_back(ack.action_id());
      }
    }
  }
  void ack(const std::string& id) {
    medic::v1::ActionAck ack;
    ack.set_action_id(id);
    ack.set_what(medic::v1::ActionAck::WHAT_RECEIVED);
    send(medic::v1::KIND_ACTION_ACK, ack.SerializeAsString());
  }
  void result(const medic::v1::ActionResult& r) {
    send(medic::v1::KIND_ACTION_RESULT, r.SerializeAsString());
  }
  void send(medic::v1::Kind kind, const std::string& payload) {
    std::string frame = sealer_.seal(kind, host_, payload, clock_.now());
    socket_.send(zmq::buffer(frame), zmq::send_flags::none);
  }

  std::vector<medic::v1::Action> actions;
  std::vector<uint64_t> seqs;
  std::vector<std::string> result_acks;
  size_t refused = 0;

 private:
  std::string host_;
  Clock& clock_;
  fabric::Sealer sealer_;
  fabric::Opener opener_;
  zmq::socket_t socket_;
};

// Collects a dispatcher's transitions as "type id" strings.
struct EventLog {
  std::vector<DispatchEvent> events;
  Dispatcher::Sink sink() {
    return [this](const DispatchEvent& e) { events.push_back(e); };
  }
  std::vector<std::string> names(const std::string& id) const {
    std::vector<std::string> out;
    for (auto& e : events) {
      if (e.action.id() == id) out.push_back(state_name(e.state));
    }
    return out;
  }
  const DispatchEvent* last(const std::string& id) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->action.id() == id) return &*it;
    }
    return nullptr;
  }
  bool ended(const std::string& id) const {
    auto* e = last(id);
    return e && e->state != ActionState::kDispatched &&
           e->state != ActionState::kAcked;
  }
};

inline DispatcherOptions dispatcher_options() {
  DispatcherOptions o;
  o.endpoint = "tcp://127.0.0.1:*";
  o.initial_backoff = 200ms;
  o.max_backoff = 2s;
  o.default_watch = 10s;
  o.result_grace = 30s;
  return o;
}

}  // namespace medic::actuators::testing
