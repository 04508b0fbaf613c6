// Shard leases on a real PostgreSQL server started by the test: the database
// clock decides expiry, every takeover raises the epoch, a deposed holder's
// renewal fails, a clean shutdown releases at once, and the shards spread
// over the live engines.
#include <gtest/gtest.h>

#include <set>

#include "audit/lease.h"
#include "node/lease_keeper.h"
#include "tests/testing/postgres.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

class PgLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::PostgresServer::start();
    ASSERT_OK(server);
    server_ = std::move(*server);
  }
  audit::LeaseTablePtr open(int shards) {
    auto t = audit::open_pg_lease_table(server_->url(), shards);
    EXPECT_OK(t);
    return t.ok() ? std::move(*t) : nullptr;
  }
  std::unique_ptr<testing::PostgresServer> server_;
};

TEST_F(PgLeaseTest, AnExpiredLeaseIsTakenOverWithAHigherEpochAndTheOldHolderCannotRenew) {
  auto a = open(4);
  auto b = open(4);
  ASSERT_TRUE(a && b);
  auto first = a->acquire(0, "engine-a", 300ms);
  ASSERT_OK(first);
  ASSERT_EQ(*first, std::optional<int64_t>(1));
  auto early = b->acquire(0, "engine-b", 300ms);
  ASSERT_OK(early);
  EXPECT_EQ(*early, std::nullopt) << "a live lease was taken";
  auto renewed = a->renew(0, "engine-a", 1, 300ms);
  ASSERT_OK(renewed);
  EXPECT_TRUE(*renewed);  // positive control for the refusal below

  // The database clock, not ours, says when it has lapsed.
  std::optional<int64_t> taken;
  ASSERT_TRUE(testing::wait_until([&] {
    auto r = b->acquire(0, "engine-b", 60s);
    if (r.ok()) taken = *r;
    return taken.has_value();
  }));
  EXPECT_EQ(*taken, 2);
  auto late = a->renew(0, "engine-a", 1, 300ms);
  ASSERT_OK(late);
  EXPECT_FALSE(*late) << "a deposed holder renewed";
  auto late_release = a->release(0, "engine-a", 1);
  ASSERT_OK(late_release);
  EXPECT_FALSE(*late_release) << "a deposed holder released the new holder's lease";
  auto rows = b->rows();
  ASSERT_OK(rows);
  EXPECT_EQ((*rows)[0].holder, "engine-b");
  EXPECT_EQ((*rows)[0].epoch, 2);
  EXPECT_TRUE((*rows)[0].live);
}

TEST_F(PgLeaseTest, AKeeperWhoseLeaseWasTakenOverStopsDispatchingAtItsNextTick) {
  auto ta = open(2);
  auto tb = open(2);
  ASSERT_TRUE(ta && tb);
  MonotonicClock clock;
  node::LeaseKeeper a(clock, *ta, "engine-a", {.ttl = 600ms, .margin = 60ms});
  ASSERT_OK(a.start());
  ASSERT_EQ(a.held(), (std::vector<int>{0, 1}));
  ASSERT_TRUE(a.may_dispatch(0));
  // engine-a stalls (no ticks); engine-b takes both once they lapse.
  node::LeaseKeeper b(clock, *tb, "engine-b", {.ttl = 10s, .margin = 1s});
  ASSERT_OK(b.start());
  ASSERT_TRUE(testing::wait_until([&] {
    b.tick();
    return b.held().size() == 2;
  }));
  EXPECT_FALSE(a.may_dispatch(0)) << "its own clock must have ended it before the takeover";
  EXPECT_EQ(b.epoch(0), std::optional<int64_t>(2));
  a.tick();
  EXPECT_TRUE(a.held().empty());
  EXPECT_EQ(a.counters().deposed, 2u);
}

TEST_F(PgLeaseTest, ACleanShutdownReleasesSoAnotherEngineTakesOverAtOnce) {
  auto ta = open(3);
  auto tb = open(3);
  ASSERT_TRUE(ta && tb);
  MonotonicClock clock;
  node::LeaseOptions long_ttl{.ttl = 60s, .margin = 1s};
  node::LeaseKeeper a(clock, *ta, "engine-a", long_ttl);
  node::LeaseKeeper b(clock, *tb, "engine-b", long_ttl);
  ASSERT_OK(a.start());
  ASSERT_EQ(a.held().size(), 3u);
  ASSERT_OK(b.start());
  EXPECT_TRUE(b.held().empty()) << "positive control: live leases are not taken";
  ASSERT_OK(a.stop());
  b.tick();  // one round, long before a 60 s lease could expire
  EXPECT_EQ(b.held(), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(b.epoch(1), std::optional<int64_t>(2));
}

TEST_F(PgLeaseTest, ShardsSpreadEvenlyOverLiveEnginesAndOverTheSurvivorsWhenOneLeaves) {
  constexpr int kShards = 12;
  MonotonicClock clock;  // outlives the keepers
  std::vector<audit::LeaseTablePtr> tables;
  std::vector<std::unique_ptr<node::LeaseKeeper>> keepers;
  for (int i = 0; i < 3; ++i) {
    tables.push_back(open(kShards));
    ASSERT_TRUE(tables.back());
    keepers.push_back(std::make_unique<node::LeaseKeeper>(
        clock, *tables.back(), "engine-" + std::to_string(i),
        node::LeaseOptions{.ttl = 30s, .margin = 1s}));
    ASSERT_OK(keepers.back()->start());
  }
  auto spread = [&] {
    std::vector<size_t> sizes;
    std::set<int> all;
    size_t total = 0;
    for (auto& k : keepers) {
      sizes.push_back(k->held().size());
      total += k->held().size();
      for (int s : k->held()) all.insert(s);
    }
    EXPECT_EQ(all.size(), total) << "a shard is held twice";
    return sizes;
  };
  for (int round = 0; round < 4; ++round) {
    for (auto& k : keepers) k->tick();
  }
  EXPECT_EQ(spread(), (std::vector<size_t>{4, 4, 4}));

  ASSERT_OK(keepers[1]->stop());
  for (int round = 0; round < 2; ++round) {
    keepers[0]->tick();
    keepers[2]->tick();
  }
  EXPECT_EQ(spread(), (std::vector<size_t>{6, 0, 6}));
  for (auto& k : keepers) EXPECT_OK(k->last_error());
}

TEST_F(PgLeaseTest, TheShardCountIsFixedWhenTheDatabaseIsFirstSetUp) {
  ASSERT_TRUE(open(64));
  auto again = audit::open_pg_lease_table(server_->url(), 64);
  EXPECT_OK(again);  // positive control: the same count opens
  auto other = audit::open_pg_lease_table(server_->url(), 32);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("set up with 64 shards, not 32"), std::string::npos)
      << other.status();
}

TEST_F(PgLeaseTest, AStoppedDatabaseIsUnavailableAndTheKeeperRecoversWhenItReturns) {
  auto t = open(1);
  ASSERT_TRUE(t);
  MonotonicClock clock;
  node::LeaseKeeper k(clock, *t, "engine-a", {.ttl = 60s, .margin = 1s});
  ASSERT_OK(k.start());
  ASSERT_TRUE(k.may_dispatch(0));
  ASSERT_OK(server_->stop());
  k.tick();
  EXPECT_EQ(k.last_error().code(), Code::kUnavailable) << k.last_error();
  EXPECT_TRUE(k.may_dispatch(0)) << "within its own deadline it still holds the shard";
  ASSERT_OK(server_->restart());
  k.tick();
  EXPECT_OK(k.last_error());
  EXPECT_EQ(k.epoch(0), std::optional<int64_t>(1)) << "renewed, not re-acquired";
}

}  // namespace
}  // namespace medic
