#include "fabric/receiver.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"
#include "tests/unit/fabric/fabric_test_util.h"

namespace medic::fabric {
namespace {

using namespace std::chrono_literals;
using test::identity_for;
using test::node;

class ReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(trust_.add(node("engine", engine_, test::kEngine, {"*"})));
    ASSERT_OK(trust_.add(node("host-a", host_, test::kCollector, {"host-a"})));
    auto ctx = Context::create(trust_);
    ASSERT_OK(ctx);
    ctx_ = std::move(*ctx);
    auto r = EventReceiver::create({"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"},
                                   {*ctx_, engine_, trust_, clock_});
    ASSERT_OK(r);
    receiver_ = std::move(*r);
    auto bulk = ctx_->connect(zmq::socket_type::pub, receiver_->bulk_endpoint(), host_,
                              engine_.public_key());
    auto urgent = ctx_->connect(zmq::socket_type::pub, receiver_->urgent_endpoint(), host_,
                                engine_.public_key());
    ASSERT_TRUE(bulk.ok() && urgent.ok());
    bulk_ = std::move(*bulk);
    urgent_ = std::move(*urgent);
    // Wait until both PUB sockets have a subscriber: probe frames that the
    // receiver rejects as unknown kind until one shows up on each lane.
    ASSERT_TRUE(testing::wait_until([&] {
      bulk_.send(zmq::str_buffer("probe"), zmq::send_flags::dontwait);
      urgent_.send(zmq::str_buffer("probe"), zmq::send_flags::dontwait);
      receiver_->drain([](std::string_view, auto&, auto&, bool) {});
      return receiver_->rejections().get(OpenError::kMalformed) >= 2;
    }, 10s));
  }

  std::string batch_frame(Sealer& s, const std::string& vm) {
    medic::v1::EventBatch b;
    auto* e = b.add_events();
    e->set_host("host-a");
    e->set_vm(vm);
    return s.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), clock_.now());
  }

  SystemClock clock_;
  TrustStore trust_;
  Identity engine_ = identity_for(31);
  Identity host_ = identity_for(32);
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<EventReceiver> receiver_;
  zmq::socket_t bulk_;
  zmq::socket_t urgent_;
};

// Over inproc every send lands in the receiver's queue before send returns,
// so the test knows exactly what is queued when it drains.
TEST(ReceiverOrder, UrgentLaneIsDrainedBeforeQueuedBulk) {
  TrustStore trust;
  Identity engine = identity_for(33);
  Identity host = identity_for(34);
  ASSERT_OK(trust.add(node("engine", engine, test::kEngine, {"*"})));
  ASSERT_OK(trust.add(node("host-a", host, test::kCollector, {"host-a"})));
  auto ctx = Context::create(trust);
  ASSERT_OK(ctx);
  SystemClock clock;
  auto receiver =
      EventReceiver::create({"inproc://bulk", "inproc://urgent"}, {**ctx, engine, trust, clock});
  ASSERT_OK(receiver);
  auto bulk = (*ctx)->connect(zmq::socket_type::pub, "inproc://bulk", host, engine.public_key());
  auto urgent = (*ctx)->connect(zmq::socket_type::pub, "inproc://urgent", host, engine.public_key());
  ASSERT_TRUE(bulk.ok() && urgent.ok());
  // Until each PUB has seen its subscriber, probes are dropped; read each
  // lane's socket directly until its probe shows up, then nothing is in flight.
  auto ready = [](zmq::socket_t& pub, zmq::socket_t& sub) {
    return testing::wait_until([&] {
      pub.send(zmq::str_buffer("probe"), zmq::send_flags::dontwait);
      bool got = false;
      zmq::message_t m;
      while (sub.recv(m, zmq::recv_flags::dontwait)) got = true;
      return got;
    }, 10s);
  };
  ASSERT_TRUE(ready(*bulk, (*receiver)->bulk_socket()));
  ASSERT_TRUE(ready(*urgent, (*receiver)->urgent_socket()));

  Sealer bulk_sealer(host, 0);
  Sealer urgent_sealer(host, 1);
  auto frame = [&](Sealer& s, const std::string& vm) {
    medic::v1::EventBatch b;
    auto* e = b.add_events();
    e->set_host("host-a");
    e->set_vm(vm);
    return s.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), clock.now());
  };
  for (int i = 0; i < 100; ++i) {
    bulk->send(zmq::buffer(frame(bulk_sealer, "bulk-" + std::to_string(i))), zmq::send_flags::none);
  }
  urgent->send(zmq::buffer(frame(urgent_sealer, "panic")), zmq::send_flags::none);
  std::vector<std::string> order;
  (*receiver)->drain([&](std::string_view, const Opened&, const medic::v1::EventBatch& b,
                         bool is_urgent) { order.push_back((is_urgent ? "U:" : "B:") + b.events(0).vm()); },
                     1000);
  ASSERT_EQ(order.size(), 101u);
  EXPECT_EQ(order[0], "U:panic");
  EXPECT_EQ(order[1], "B:bulk-0");
  EXPECT_EQ(order[100], "B:bulk-99");
}

TEST_F(ReceiverTest, RejectedAndUndecodableFramesAreCountedAndDoNotStopTheFlow) {
  Sealer sealer(host_);
  Identity stranger = identity_for(39);
  ASSERT_OK(trust_.add(node("host-b", stranger, test::kCollector, {"host-b"})));
  Sealer other(stranger);
  // Another host's collector claiming host-a: out of scope.
  medic::v1::EventBatch b;
  b.add_events()->set_host("host-a");
  bulk_.send(zmq::buffer(other.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), clock_.now())),
             zmq::send_flags::none);
  // A batch whose payload is not protobuf: outside the schema.
  bulk_.send(zmq::buffer(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", "\xff\xff", clock_.now())),
             zmq::send_flags::none);
  // A batch for host-a carrying host-b's VM: refused when decoded.
  medic::v1::EventBatch mixed;
  mixed.add_events()->set_host("host-b");
  bulk_.send(zmq::buffer(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", mixed.SerializeAsString(),
                                     clock_.now())),
             zmq::send_flags::none);
  bulk_.send(zmq::buffer(batch_frame(sealer, "good")), zmq::send_flags::none);
  std::vector<std::string> got;
  ASSERT_TRUE(testing::wait_until([&] {
    receiver_->drain([&](std::string_view frame, const Opened& o, const medic::v1::EventBatch& batch, bool) {
      // The frame handed on is the signed bytes exactly as received.
      medic::v1::Envelope again;
      EXPECT_TRUE(again.ParseFromArray(frame.data(), static_cast<int>(frame.size())));
      EXPECT_EQ(again.signature(), o.envelope.signature());
      got.push_back(batch.events(0).vm());
    });
    return !got.empty();
  }, 10s));
  EXPECT_EQ(got, std::vector<std::string>{"good"});
  EXPECT_EQ(receiver_->rejections().get(OpenError::kOutOfScope), 1u);
  EXPECT_EQ(receiver_->rejections().get(OpenError::kOutsideSchema), 1u);
  EXPECT_EQ(receiver_->undecodable(), 1u);
  EXPECT_EQ(receiver_->accepted_batches(), 1u);
}

}  // namespace
}  // namespace medic::fabric
