// RequestFollowers by itself: one reply per stage to the peer that asked,
// the last saying done; past its limit the oldest follower is told it is no
// longer followed; one past its time is told so; both are forgotten.
#include "node/request_replies.h"

#include <gtest/gtest.h>

namespace medic::node {
namespace {

struct Sent {
  std::string peer;
  medic::v1::ControlReply reply;
};

class RequestRepliesTest : public ::testing::Test {
 protected:
  RequestFollowers make(size_t limit) {
    return RequestFollowers(
        [this](const std::string& peer, const medic::v1::ControlReply& r) {
          sent_.push_back({peer, r});
        },
        limit);
  }
  static std::vector<RequestFollowers::Step> one(const std::string& vm, const std::string& id) {
    return {{vm, "request:reset", id, medic::v1::STAGE_ACCEPTED}};
  }
  std::vector<Sent> sent_;
};

TEST_F(RequestRepliesTest, EachStageIsOneReplyAndTheHealIsTheLast) {
  RequestFollowers f = make(8);
  f.follow("peer-1", "r-1", one("vm1", "d-1"), Time(std::chrono::hours(1)));
  ASSERT_EQ(f.size(), 1u);
  f.on_dispatched("d-1", "host-a");
  f.on_result("d-1", true, "executed");
  f.on_dispatched("d-other", "host-a");  // another action: not this request's
  rules::HealVerdict v;
  v.decision_id = "d-1";
  v.healed = true;
  v.detail = "beating";
  f.on_heal(v);
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(sent_[0].reply.stage(), medic::v1::STAGE_DISPATCHED);
  EXPECT_EQ(sent_[1].reply.stage(), medic::v1::STAGE_RESULT);
  EXPECT_EQ(sent_[2].reply.stage(), medic::v1::STAGE_HEALED);
  EXPECT_TRUE(sent_[2].reply.done());
  EXPECT_FALSE(sent_[1].reply.done());
  for (const auto& s : sent_) EXPECT_EQ(s.peer, "peer-1");
  EXPECT_EQ(f.size(), 0u);
}

TEST_F(RequestRepliesTest, PastItsLimitTheOldestIsToldAndForgotten) {
  RequestFollowers f = make(1);
  f.follow("peer-1", "r-1", one("vm1", "d-1"), Time(std::chrono::hours(1)));
  f.follow("peer-2", "r-2", one("vm2", "d-2"), Time(std::chrono::hours(1)));
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].peer, "peer-1");
  EXPECT_EQ(sent_[0].reply.request_id(), "r-1");
  EXPECT_TRUE(sent_[0].reply.done());
  EXPECT_NE(sent_[0].reply.error().find("no longer followed"), std::string::npos);
  EXPECT_EQ(f.size(), 1u);
  f.on_dispatched("d-1", "host-a");  // the forgotten one's action: no reply
  EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(RequestRepliesTest, OnePastItsTimeIsToldAndForgotten) {
  RequestFollowers f = make(8);
  f.follow("peer-1", "r-1", one("vm1", "d-1"), Time(std::chrono::seconds(10)));
  f.expire(Time(std::chrono::seconds(9)));
  EXPECT_TRUE(sent_.empty());
  f.expire(Time(std::chrono::seconds(10)));
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_TRUE(sent_[0].reply.done());
  EXPECT_NE(sent_[0].reply.error().find("within the time the engine follows it"),
            std::string::npos);
  EXPECT_EQ(f.size(), 0u);
}

TEST_F(RequestRepliesTest, AFinalFirstStageIsNotFollowed) {
  RequestFollowers f = make(8);
  f.follow("peer-1", "r-1", {{"vm1", "request:reset", "d-1", medic::v1::STAGE_REFUSED}},
           Time(std::chrono::hours(1)));
  EXPECT_EQ(f.size(), 0u);
}

}  // namespace
}  // namespace medic::node
