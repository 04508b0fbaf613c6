#include "fabric/control.h"

#include <gtest/gtest.h>

#include <future>

#include "tests/testing/testing.h"
#include "tests/unit/fabric/fabric_test_util.h"

namespace medic::fabric {
namespace {

using namespace std::chrono_literals;
using test::identity_for;
using test::node;

// Answers status requests with the operator's name; records what it saw.
class RecordingHandler : public ControlHandler {
 public:
  medic::v1::ControlReply handle(const medic::v1::ControlRequest& request, const Opened& opened,
                                 const std::string& peer) override {
    seen.push_back(request);
    peers.push_back(peer);
    signed_bytes.push_back(opened.envelope.SerializeAsString());
    medic::v1::ControlReply reply;
    reply.set_ok(true);
    reply.set_text("hello " + opened.sender->name);
    return reply;
  }
  std::vector<medic::v1::ControlRequest> seen;
  std::vector<std::string> signed_bytes;
  std::vector<std::string> peers;
};

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(trust_.add(node("engine", engine_, test::kEngine, {"*"})));
    ASSERT_OK(trust_.add(node("alice", alice_, test::kOperator, {"*"})));
    ASSERT_OK(trust_.add(node("host-a", collector_, test::kCollector, {"host-a"})));
    auto ctx = Context::create(trust_);
    ASSERT_OK(ctx);
    ctx_ = std::move(*ctx);
    auto server =
        ControlServer::create("tcp://127.0.0.1:*", {*ctx_, engine_, trust_, clock_}, handler_);
    ASSERT_OK(server);
    server_ = std::move(*server);
    target_.endpoint = server_->endpoint();
    target_.engine_key = engine_.public_key();
  }

  // Runs the request on another thread while this one serves the socket.
  Result<medic::v1::ControlReply> round_trip(const Identity& who, const medic::v1::ControlRequest& req,
                                             std::chrono::milliseconds limit = 5s) {
    auto fut = std::async(std::launch::async, [&] {
      return send_control_request(target_, who, trust_, req, limit);
    });
    while (fut.wait_for(1ms) != std::future_status::ready) server_->poll();
    return fut.get();
  }

  SystemClock clock_;
  TrustStore trust_;
  Identity engine_ = identity_for(21);
  Identity alice_ = identity_for(22);
  Identity collector_ = identity_for(23);
  RecordingHandler handler_;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<ControlServer> server_;
  ControlTarget target_;
};

TEST_F(ControlTest, OperatorRequestIsAnsweredWithASignedReply) {
  medic::v1::ControlRequest req;
  req.set_request_id("r1");
  req.mutable_approve()->set_action_id("act-7");
  auto reply = round_trip(alice_, req);
  ASSERT_OK(reply);
  EXPECT_TRUE(reply->ok());
  EXPECT_EQ(reply->text(), "hello alice");
  EXPECT_EQ(reply->request_id(), "r1");
  ASSERT_EQ(handler_.seen.size(), 1u);
  EXPECT_EQ(handler_.seen[0].approve().action_id(), "act-7");
  // The handler got the signed envelope, which verifies on its own.
  Opener again(trust_, clock_);
  Opened o;
  EXPECT_EQ(again.open(handler_.signed_bytes[0], &o), OpenError::kOk);
}

TEST_F(ControlTest, RequestFromANonOperatorKeyIsRejectedAndCounted) {
  medic::v1::ControlRequest req;
  req.set_request_id("r2");
  req.mutable_approve()->set_action_id("act-7");
  auto reply = round_trip(collector_, req, 500ms);
  EXPECT_EQ(reply.status().code(), Code::kTimeout);
  EXPECT_TRUE(handler_.seen.empty());
  EXPECT_EQ(server_->rejections().get(OpenError::kRoleNotAllowed), 1u);
}

TEST_F(ControlTest, UnknownKeyNeverReachesTheHandler) {
  Identity stranger = identity_for(29);
  medic::v1::ControlRequest req;
  req.set_request_id("r3");
  req.mutable_status();
  auto reply = round_trip(stranger, req, 500ms);
  EXPECT_EQ(reply.status().code(), Code::kTimeout);
  EXPECT_TRUE(handler_.seen.empty());
  EXPECT_GE(ctx_->zap_denied(), 1u);
}

TEST_F(ControlTest, ReplyFromAnotherEngineThanAddressedIsRefused) {
  Identity other_engine = identity_for(24);
  ASSERT_OK(trust_.add(node("engine-2", other_engine, test::kEngine, {"*"})));
  // The client believes it talks to engine-2; CURVE fails since the server is
  // engine-1, so nothing can come back.
  target_.engine_key = other_engine.public_key();
  medic::v1::ControlRequest req;
  req.set_request_id("r4");
  req.mutable_status();
  auto reply = round_trip(alice_, req, 500ms);
  EXPECT_FALSE(reply.ok());
  EXPECT_TRUE(handler_.seen.empty());
}

// A handler answers later, more than once, through ControlServer::send; the
// client library reads the replies of its request in order and skips others.
TEST_F(ControlTest, LaterRepliesReachTheSameClientInOrder) {
  auto client = ControlClient::connect(target_, alice_, trust_);
  ASSERT_OK(client);
  medic::v1::ControlRequest req;
  req.set_request_id("r6");
  req.mutable_status();
  ASSERT_OK((*client)->send(req));
  zmq::pollitem_t ready{server_->socket().handle(), 0, ZMQ_POLLIN, 0};
  for (int i = 0; i < 500 && handler_.peers.empty(); ++i) {
    zmq::poll(&ready, 1, 10ms);
    server_->poll();
  }
  ASSERT_EQ(handler_.peers.size(), 1u);
  auto first = (*client)->next("r6", 5s);
  ASSERT_OK(first);
  EXPECT_EQ(first->text(), "hello alice");
  medic::v1::ControlReply other;
  other.set_request_id("someone-else");
  server_->send(handler_.peers[0], other);
  for (const char* text : {"dispatched", "healed"}) {
    medic::v1::ControlReply later;
    later.set_request_id("r6");
    later.set_text(text);
    server_->send(handler_.peers[0], later);
  }
  auto second = (*client)->next("r6", 5s);
  ASSERT_OK(second);
  EXPECT_EQ(second->text(), "dispatched");
  auto third = (*client)->next("r6", 5s);
  ASSERT_OK(third);
  EXPECT_EQ(third->text(), "healed");
  EXPECT_EQ((*client)->next("r6", 100ms).status().code(), Code::kTimeout);
  // A peer that left: the reply is dropped, the server carries on.
  client->reset();
  server_->send(handler_.peers[0], other);
  EXPECT_EQ(round_trip(alice_, req)->text(), "hello alice");
}

TEST_F(ControlTest, NoEngineListeningIsATimeoutWithAHint) {
  target_.endpoint = "tcp://127.0.0.1:1";
  medic::v1::ControlRequest req;
  req.set_request_id("r5");
  req.mutable_status();
  auto reply = send_control_request(target_, alice_, trust_, req, 300ms);
  EXPECT_EQ(reply.status().code(), Code::kTimeout);
  EXPECT_NE(reply.status().message().find("is it running"), std::string::npos);
}

}  // namespace
}  // namespace medic::fabric
