// The collector against a real engine-side subscriber: PUB -> SUB over tcp
// loopback with CurveZMQ and the ZAP handler, frames opened with the
// engine's Opener and decode_event_batch.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <thread>

#include "collectors/collector.h"
#include "collectors/publisher.h"
#include "fabric/envelope.h"
#include "fabric/transport.h"
#include "tests/testing/testing.h"
#include "tests/unit/collectors/fakes.h"

namespace medic::collectors {
namespace {

using namespace std::chrono_literals;
using medic::v1::EventBatch;
using testing::FakeHypervisor;
using testing::Keys;

uint64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// The engine side: a SUB socket per lane, bound with CURVE as the engine.
class Engine {
 public:
  Engine(const Keys& keys, const Clock& clock) : opener(keys.trust, clock), keys_(keys) {
    auto ctx = fabric::Context::create(keys.trust);
    EXPECT_OK(ctx);
    ctx_ = std::move(*ctx);
    opener.expect_kinds({medic::v1::KIND_EVENT_BATCH});
  }
  ~Engine() { down(); }

  // Binds both lanes; "*" ports pick free ones the first time.
  void up(const std::string& events = "tcp://127.0.0.1:*",
          const std::string& urgent = "tcp://127.0.0.1:*") {
    events_ = bind(events);
    urgent_ = bind(urgent);
    events_endpoint = events_->get(zmq::sockopt::last_endpoint);
    urgent_endpoint = urgent_->get(zmq::sockopt::last_endpoint);
  }
  void down() {
    events_.reset();
    urgent_.reset();
  }

  EngineEndpoint endpoint() const {
    return EngineEndpoint{"engine-1", keys_.engine.public_key(), events_endpoint, urgent_endpoint};
  }

  // Receives every frame waiting on a lane.
  std::vector<std::string> drain(bool urgent) {
    std::vector<std::string> out;
    zmq::socket_t* s = urgent ? urgent_.get() : events_.get();
    if (!s) return out;
    zmq::message_t m;
    while (s->recv(m, zmq::recv_flags::dontwait)) {
      EXPECT_EQ(fabric::peer_name(m), "host-a");  // the ZAP user id
      out.push_back(m.to_string());
    }
    return out;
  }

  std::string events_endpoint, urgent_endpoint;
  fabric::Opener opener;
  fabric::Context& context() { return *ctx_; }

 private:
  // ZeroMQ closes a listener in its I/O thread, after close() returns, so
  // binding the same port again may need a few tries.
  std::unique_ptr<zmq::socket_t> bind(const std::string& ep) {
    std::unique_ptr<zmq::socket_t> out;
    EXPECT_TRUE(::medic::testing::wait_until([&] {
      auto s = ctx_->bind(zmq::socket_type::sub, ep, keys_.engine);
      if (!s.ok()) return false;
      s->set(zmq::sockopt::subscribe, "");
      out = std::make_unique<zmq::socket_t>(std::move(*s));
      return true;
    }));
    return out;
  }

  const Keys& keys_;
  std::unique_ptr<fabric::Context> ctx_;
  std::unique_ptr<zmq::socket_t> events_, urgent_;
};

class CollectorFabricTest : public ::testing::Test {
 protected:
  CollectorFabricTest() : hv("host-a"), engine(keys, clock) {
    auto ctx = fabric::Context::create(empty_trust);
    EXPECT_OK(ctx);
    collector_ctx = std::move(*ctx);
    for (int i = 0; i < 3; ++i) {
      hv.add_vm("vm-" + std::to_string(i), medic::v1::VM_STATE_RUNNING, 0, {{"tier", "web"}});
    }
  }
  ~CollectorFabricTest() override {
    collector.reset();
    publisher.reset();
  }

  void start_collector(LaneConfig lanes = {}) {
    lanes.reconnect_ivl = 10ms;
    lanes.reconnect_ivl_max = 100ms;
    auto pub = ZmqPublisher::create({engine.endpoint()}, lanes,
                                    {*collector_ctx, keys.collector, keys.trust, clock});
    ASSERT_OK(pub);
    publisher = std::move(*pub);
    CollectorDeps deps{&hv, &clock, &keys.collector, publisher.get(), nullptr, nullptr};
    CollectorOptions opts;
    opts.host = "host-a";
    opts.max_events_per_batch = lanes.max_events_per_batch;
    auto c = Collector::create(opts, deps);
    ASSERT_OK(c);
    collector = std::move(*c);
    collector->start();
  }

  void tick() {
    collector->run_once(Duration::zero());
    clock.advance(1s);
    collector->run_once(Duration::zero());
  }

  // Flushes until the engine opens a bulk batch (the first ones are lost
  // until the subscription reaches the PUB: ZeroMQ's slow joiner).
  bool until_engine_opens_bulk(EventBatch* out) {
    return ::medic::testing::wait_until([&] {
      tick();
      for (const auto& f : engine.drain(false)) {
        if (testing::open_batch(engine.opener, f, out).ok()) return true;
      }
      return false;
    });
  }

  // Sends lifecycle events until the engine opens one on the urgent lane.
  bool until_engine_opens_urgent() {
    return ::medic::testing::wait_until([&] {
      hv.queued.push_back({vmm::VmEvent::Type::kLifecycle, "vm-1", medic::v1::LIFECYCLE_PANICKED,
                           "oops", 0, clock.now()});
      collector->run_once(Duration::zero());
      bool got = false;
      for (const auto& f : engine.drain(true)) {
        EventBatch b;
        Status s = testing::open_batch(engine.opener, f, &b);
        EXPECT_OK(s) << s;
        got =
            got || (b.urgent() && b.events(0).lifecycle().what() == medic::v1::LIFECYCLE_PANICKED);
      }
      return got;
    });
  }

  Keys keys;
  fabric::TrustStore empty_trust;
  VirtualClock clock;
  FakeHypervisor hv;
  Engine engine;
  std::unique_ptr<fabric::Context> collector_ctx;
  std::unique_ptr<ZmqPublisher> publisher;
  std::unique_ptr<Collector> collector;
};

TEST_F(CollectorFabricTest, BatchesOpenAtAnEngineSubscriberOverCurve) {
  engine.up();
  start_collector();
  EventBatch bulk;
  ASSERT_TRUE(until_engine_opens_bulk(&bulk));
  ASSERT_EQ(bulk.events_size(), 3);
  for (const auto& e : bulk.events()) {
    EXPECT_EQ(e.host(), "host-a");
    EXPECT_EQ(e.state().state(), medic::v1::VM_STATE_RUNNING);
    EXPECT_EQ(e.state().labels(0).value(), "web");
  }
  EXPECT_GE(engine.context().zap_accepted(), 2u);

  // The urgent lane, on its own socket.
  ASSERT_TRUE(until_engine_opens_urgent());
  EXPECT_EQ(engine.opener.counters().rejected(), 0u);
}

TEST_F(CollectorFabricTest, ACollectorCannotReportAnotherHostsVm) {
  engine.up();
  start_collector();
  EventBatch first;
  ASSERT_TRUE(until_engine_opens_bulk(&first));  // the paths work
  ASSERT_TRUE(until_engine_opens_urgent());

  // A collector key sealing for another host: refused by open().
  fabric::Sealer sealer(keys.collector, 7);
  EventBatch foreign;
  auto* e = foreign.add_events();
  e->set_host("host-b");
  e->set_vm("vm-of-b");
  e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
  std::string payload = foreign.SerializeAsString();
  publisher->publish(Lane::kUrgent,
                     {sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-b", payload, clock.now())});
  // Its own host on the envelope, another host's VM inside: refused by
  // decode_event_batch.
  publisher->publish(Lane::kUrgent,
                     {sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", payload, clock.now())});

  std::vector<std::string> frames;
  ASSERT_TRUE(::medic::testing::wait_until([&] {
    // Skip lifecycle batches still in flight from the collector's own stream.
    for (auto& f : engine.drain(true)) {
      medic::v1::Envelope env;
      if (env.ParseFromString(f) && env.stream() == 7) frames.push_back(std::move(f));
    }
    return frames.size() >= 2;
  }));
  fabric::Opened opened;
  EXPECT_EQ(engine.opener.open(frames[0], &opened), fabric::OpenError::kOutOfScope);
  ASSERT_EQ(engine.opener.open(frames[1], &opened), fabric::OpenError::kOk);
  EventBatch b;
  Status s = fabric::decode_event_batch(opened, &b);
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s;
}

TEST_F(CollectorFabricTest, AKeyOutsideTheTrustStoreCannotConnect) {
  engine.up();
  fabric::Identity stranger = testing::identity_from_byte(9);
  auto pub = ZmqPublisher::create({engine.endpoint()}, LaneConfig{},
                                  {*collector_ctx, stranger, keys.trust, clock});
  ASSERT_OK(pub);
  EXPECT_TRUE(::medic::testing::wait_until([&] { return engine.context().zap_denied() >= 1; }));
  EXPECT_EQ(engine.context().zap_accepted(), 0u);
}

TEST_F(CollectorFabricTest, FlowResumesWhenTheEngineComesUpAndMemoryStaysBoundedWhileItIsDown) {
  // Learn two free ports, then take the engine down before the collector starts.
  engine.up();
  engine.down();
  LaneConfig lanes;
  lanes.urgent_hwm = 10;
  lanes.max_events_per_batch = 5000;  // one frame per flush
  start_collector(lanes);
  for (int i = 0; i < 5; ++i) tick();  // nobody listening: nothing blocks

  // The engine binds later: batches flow without restarting the collector.
  engine.up(engine.events_endpoint, engine.urgent_endpoint);
  EventBatch b;
  ASSERT_TRUE(until_engine_opens_bulk(&b));
  EXPECT_EQ(b.events_size(), 3);

  // Down again, with a big host: each flush is ~0.5 MB. Unbounded queues
  // would hold every one of them.
  engine.down();
  for (int i = 0; i < 2000; ++i) {
    hv.add_vm("big-" + std::to_string(i), medic::v1::VM_STATE_RUNNING, 0,
              {{"tier", "web"},
               {"owner", "team-" + std::to_string(i)},
               {"description", std::string(150, 'd')}});
  }
  const uint64_t before = rss_bytes();
  for (int i = 0; i < 150; ++i) {
    tick();
    for (int j = 0; j < 5; ++j) {
      hv.queued.push_back({vmm::VmEvent::Type::kLifecycle, "big-1", medic::v1::LIFECYCLE_WATCHDOG,
                           std::string(1000, 'w'), 0, clock.now()});
    }
  }
  const uint64_t grown = rss_bytes() - std::min(before, rss_bytes());
  const PublisherCounters pc = publisher->counters();
#ifndef __SANITIZE_ADDRESS__  // ASan's quarantine keeps freed memory resident
  EXPECT_LT(grown, 40u << 20) << "RSS grew by " << grown << " bytes";
#endif
  // The connect-side pipe keeps the engine's subscription while it is away,
  // so the small queues fill and the rest is counted as dropped.
  EXPECT_GT(pc.dropped[0], 100u);
  EXPECT_GT(pc.dropped[1], 100u);
  EXPECT_LE(pc.waiting_bulk_frames, 1u);  // at most one flush waits (one frame here)
  EXPECT_EQ(collector->counters().bulk_batches,
            pc.sent[0] + pc.dropped[0] + pc.waiting_bulk_frames);
  std::cerr << "while down: bulk sent " << pc.sent[0] << " dropped " << pc.dropped[0]
            << ", urgent sent " << pc.sent[1] << " dropped " << pc.dropped[1] << ", RSS +"
            << grown / 1024 << " KiB\n";

  // Up again: current state arrives; batches queued during the outage are
  // too old for the engine's skew bound and are rejected, never acted on.
  engine.up(engine.events_endpoint, engine.urgent_endpoint);
  const Time back = clock.now();
  EventBatch fresh;
  ASSERT_TRUE(until_engine_opens_bulk(&fresh));
  EXPECT_EQ(fresh.events_size(), 2003);
  EXPECT_GE(fresh.events(0).observed_at_ns(), to_ns(back));
}

TEST_F(CollectorFabricTest, TheServiceRunsFromAnAgentConfig) {
  engine.up();
  ::medic::testing::TempDir dir;
  const std::string key_file = dir.file("host-a.key");
  ASSERT_OK(keys.collector.save(key_file));
  const std::string yaml =
      "collector:\n"
      "  host: host-a\n"
      "  key: " +
      key_file +
      "\n"
      "  interval: 20ms\n"
      "  backend: {kind: fake}\n"
      "  engines:\n"
      "    - name: engine-1\n"
      "      key: " +
      keys.engine.id() +
      "\n"
      "      events: " +
      engine.events_endpoint +
      "\n"
      "      urgent: " +
      engine.urgent_endpoint + "\n";
  auto config = load_collector_config(dir.write("agent.yaml", yaml));
  ASSERT_OK(config);
  SystemClock wall;
  fabric::Opener opener(keys.trust, wall);
  auto service = CollectorService::create(*config, hv, wall);
  ASSERT_OK(service);
  std::atomic<bool> stop{false};
  std::thread loop([&] { (*service)->run(stop); });
  EventBatch b;
  const bool got = ::medic::testing::wait_until([&] {
    for (const auto& f : engine.drain(false)) {
      if (testing::open_batch(opener, f, &b).ok()) return true;
    }
    return false;
  });
  stop = true;
  loop.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(b.events_size(), 3);
  EXPECT_GE((*service)->collector().counters().flushes, 1u);
}

TEST_F(CollectorFabricTest, TheServiceRefusesAMissingKeyFile) {
  auto config = parse_collector_config(
      "collector:\n  host: host-a\n  key: /nonexistent/key\n  backend: {kind: fake}\n"
      "  engines:\n    - {key: " +
          keys.engine.id() +
          ", events: 'tcp://127.0.0.1:1', "
          "urgent: 'tcp://127.0.0.1:2'}\n",
      "agent.yaml");
  ASSERT_OK(config);
  SystemClock wall;
  auto service = CollectorService::create(*config, hv, wall);
  ASSERT_FALSE(service.ok());
  EXPECT_NE(service.status().message().find("collector key"), std::string::npos);
}

}  // namespace
}  // namespace medic::collectors
