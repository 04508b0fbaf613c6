#include "fabric/transport.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"
#include "tests/unit/fabric/fabric_test_util.h"

namespace medic::fabric {
namespace {

using namespace std::chrono_literals;
using test::identity_for;
using test::node;

// Receives one message within `limit`, or returns nullopt.
std::optional<zmq::message_t> recv_within(zmq::socket_t& s, std::chrono::milliseconds limit) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, limit) <= 0) return std::nullopt;
  zmq::message_t m;
  if (!s.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
  return m;
}

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(trust_.add(node("engine", engine_, test::kEngine, {"*"})));
    ASSERT_OK(trust_.add(node("host-a", host_, test::kCollector | test::kActuator, {"host-a"})));
    auto ctx = Context::create(trust_);
    ASSERT_OK(ctx);
    ctx_ = std::move(*ctx);
  }

  TrustStore trust_;
  Identity engine_ = identity_for(11);
  Identity host_ = identity_for(12);
  Identity stranger_ = identity_for(13);
  std::unique_ptr<Context> ctx_;
};

TEST_F(TransportTest, SealedBatchCrossesTcpLoopbackWithCurveAndOpens) {
  auto sub = ctx_->bind(zmq::socket_type::sub, "tcp://127.0.0.1:*", engine_);
  ASSERT_OK(sub);
  sub->set(zmq::sockopt::subscribe, "");
  std::string endpoint = sub->get(zmq::sockopt::last_endpoint);
  auto pub = ctx_->connect(zmq::socket_type::pub, endpoint, host_, engine_.public_key());
  ASSERT_OK(pub);

  SystemClock clock;
  Sealer sealer(host_);
  Opener opener(trust_, clock);
  // PUB drops until the subscription has crossed the handshake: resend until one lands.
  std::optional<zmq::message_t> got;
  for (int i = 0; i < 200 && !got; ++i) {
    std::string frame = sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a",
                                    test::batch_of("host-a", 16).SerializeAsString(), clock.now());
    pub->send(zmq::buffer(frame), zmq::send_flags::dontwait);
    got = recv_within(*sub, 25ms);
  }
  ASSERT_TRUE(got.has_value()) << "no message crossed the Curve connection";
  Opened o;
  std::string why;
  ASSERT_EQ(opener.open(got->to_string_view(), &o, &why), OpenError::kOk) << why;
  medic::v1::EventBatch batch;
  ASSERT_OK(decode_event_batch(o, &batch));
  EXPECT_EQ(batch.events_size(), 16);
  EXPECT_GE(ctx_->zap_accepted(), 1u);
}

TEST_F(TransportTest, RouterSeesTheTrustedNameAndRoutingIdOfADealer) {
  auto router = ctx_->bind(zmq::socket_type::router, "tcp://127.0.0.1:*", engine_);
  ASSERT_OK(router);
  std::string endpoint = router->get(zmq::sockopt::last_endpoint);
  SocketOptions opts;
  opts.routing_id = "host-a";
  auto dealer = ctx_->connect(zmq::socket_type::dealer, endpoint, host_, engine_.public_key(), opts);
  ASSERT_OK(dealer);
  dealer->send(zmq::str_buffer("hello"), zmq::send_flags::none);
  auto id = recv_within(*router, 5s);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->to_string(), "host-a");
  auto body = recv_within(*router, 1s);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->to_string(), "hello");
  EXPECT_EQ(peer_name(*body), "host-a");
  // And back, addressed by routing id.
  router->send(zmq::str_buffer("host-a"), zmq::send_flags::sndmore);
  router->send(zmq::str_buffer("reply"), zmq::send_flags::none);
  auto reply = recv_within(*dealer, 5s);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->to_string(), "reply");
}

TEST_F(TransportTest, ClientWithAnUnknownKeyIsRefusedAtTheSocket) {
  auto router = ctx_->bind(zmq::socket_type::router, "tcp://127.0.0.1:*", engine_);
  ASSERT_OK(router);
  std::string endpoint = router->get(zmq::sockopt::last_endpoint);
  auto bad = ctx_->connect(zmq::socket_type::dealer, endpoint, stranger_, engine_.public_key());
  ASSERT_OK(bad);
  bad->send(zmq::str_buffer("let me in"), zmq::send_flags::dontwait);
  ASSERT_TRUE(testing::wait_until([&] { return ctx_->zap_denied() >= 1; }, 10s));
  // A trusted client on the same socket still gets through, and only its message arrives.
  auto good = ctx_->connect(zmq::socket_type::dealer, endpoint, host_, engine_.public_key());
  ASSERT_OK(good);
  good->send(zmq::str_buffer("trusted"), zmq::send_flags::none);
  auto id = recv_within(*router, 5s);
  ASSERT_TRUE(id.has_value());
  auto body = recv_within(*router, 1s);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->to_string(), "trusted");
  EXPECT_FALSE(recv_within(*router, 200ms).has_value());
}

TEST_F(TransportTest, ClientThatDoesNotKnowTheServerKeyFailsTheHandshake) {
  auto router = ctx_->bind(zmq::socket_type::router, "tcp://127.0.0.1:*", engine_);
  ASSERT_OK(router);
  std::string endpoint = router->get(zmq::sockopt::last_endpoint);
  // Trusted client, but it expects another server key: the server cannot
  // decrypt its hello, so nothing is delivered.
  auto dealer = ctx_->connect(zmq::socket_type::dealer, endpoint, host_, stranger_.public_key());
  ASSERT_OK(dealer);
  dealer->send(zmq::str_buffer("x"), zmq::send_flags::dontwait);
  EXPECT_FALSE(recv_within(*router, 300ms).has_value());
}

TEST_F(TransportTest, OversizedMessageIsDroppedBySocketLimit) {
  SocketOptions small;
  small.max_message_bytes = 1024;
  auto router = ctx_->bind(zmq::socket_type::router, "tcp://127.0.0.1:*", engine_, small);
  ASSERT_OK(router);
  std::string endpoint = router->get(zmq::sockopt::last_endpoint);
  SocketOptions opts;
  opts.routing_id = "host-a";
  auto big_sender = ctx_->connect(zmq::socket_type::dealer, endpoint, host_, engine_.public_key(), opts);
  ASSERT_OK(big_sender);
  big_sender->send(zmq::buffer(std::string(4096, 'x')), zmq::send_flags::none);
  EXPECT_FALSE(recv_within(*router, 300ms).has_value());
}

TEST_F(TransportTest, IpcWorksWithoutCurveAndBindErrorsAreReported) {
  testing::TempDir dir;
  std::string endpoint = "ipc://" + dir.file("events.sock");
  auto pull = ctx_->bind(zmq::socket_type::pull, endpoint, engine_);
  ASSERT_OK(pull);
  auto push = ctx_->connect(zmq::socket_type::push, endpoint, host_, engine_.public_key());
  ASSERT_OK(push);
  push->send(zmq::str_buffer("plain"), zmq::send_flags::none);
  auto m = recv_within(*pull, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->to_string(), "plain");
  EXPECT_FALSE(uses_curve(endpoint, Curve::kAuto));
  EXPECT_TRUE(uses_curve("tcp://127.0.0.1:1", Curve::kAuto));
  auto tcp = ctx_->bind(zmq::socket_type::pull, "tcp://127.0.0.1:*", engine_);
  ASSERT_OK(tcp);
  auto taken = ctx_->bind(zmq::socket_type::pull, tcp->get(zmq::sockopt::last_endpoint), engine_);
  EXPECT_EQ(taken.status().code(), Code::kUnavailable);
  EXPECT_NE(taken.status().message().find("cannot bind"), std::string::npos);
  auto bogus = ctx_->bind(zmq::socket_type::pull, "nonsense://x", engine_);
  EXPECT_FALSE(bogus.ok());
}

}  // namespace
}  // namespace medic::fabric
