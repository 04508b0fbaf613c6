// LeaseKeeper's arithmetic on a VirtualClock, against an in-memory lease
// table whose "database clock" is the same clock and whose calls take a
// round-trip time of virtual time, so a late reply is visible.
#include "node/lease_keeper.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"

namespace medic::node {
namespace {

using namespace std::chrono_literals;

class FakeLeaseTable final : public audit::LeaseTable {
 public:
  FakeLeaseTable(VirtualClock& clock, int shards) : clock_(clock), rows_(shards) {}

  // An acquire or renew takes half its round trip to reach the database,
  // runs there, and takes the rest to come back; other calls take no time.
  Duration acquire_round_trip = 0ms;
  Duration renew_round_trip = 0ms;
  bool unreachable = false;  // every call fails at once
  int other_engines = 0;     // live engines besides the caller
  int renews = 0;
  std::vector<Time> acquire_sent_at;

  int shard_count() const override { return static_cast<int>(rows_.size()); }
  Result<std::optional<int64_t>> acquire(int shard, const std::string& holder,
                                         Duration ttl) override {
    std::optional<int64_t> out;
    acquire_sent_at.push_back(clock_.now());
    MEDIC_RETURN_IF_ERROR(call(acquire_round_trip, [&] {
      Row& r = rows_[shard];
      if (r.expires_at > clock_.now()) return;
      r = {holder, r.epoch + 1, clock_.now() + ttl};
      out = r.epoch;
    }));
    return out;
  }
  Result<bool> renew(int shard, const std::string& holder, int64_t epoch, Duration ttl) override {
    ++renews;
    bool ok = false;
    MEDIC_RETURN_IF_ERROR(call(renew_round_trip, [&] {
      Row& r = rows_[shard];
      if (r.holder != holder || r.epoch != epoch || r.expires_at <= clock_.now()) return;
      r.expires_at = clock_.now() + ttl;
      ok = true;
    }));
    return ok;
  }
  Result<bool> release(int shard, const std::string& holder, int64_t epoch) override {
    bool ok = false;
    MEDIC_RETURN_IF_ERROR(call(0ms, [&] {
      Row& r = rows_[shard];
      if (r.holder != holder || r.epoch != epoch || r.expires_at <= clock_.now()) return;
      r.expires_at = Time{};
      ok = true;
    }));
    return ok;
  }
  Result<int> heartbeat(const std::string&, Duration) override {
    MEDIC_RETURN_IF_ERROR(call(0ms, [] {}));
    return 1 + other_engines;
  }
  Status leave(const std::string& engine) override {
    left = engine;
    return call(0ms, [] {});
  }
  Result<std::vector<int>> free_shards() override {
    std::vector<int> out;
    MEDIC_RETURN_IF_ERROR(call(0ms, [&] {
      for (size_t i = 0; i < rows_.size(); ++i) {
        if (rows_[i].expires_at <= clock_.now()) out.push_back(static_cast<int>(i));
      }
    }));
    return out;
  }
  Result<std::vector<audit::LeaseRow>> rows() override { return std::vector<audit::LeaseRow>{}; }

  // Another engine takes `shard` as if the lease had lapsed.
  void take_over(int shard, const std::string& holder) {
    Row& r = rows_[shard];
    r = {holder, r.epoch + 1, clock_.now() + 1h};
  }
  Time expires_at(int shard) const { return rows_[shard].expires_at; }
  int64_t epoch_of(int shard) const { return rows_[shard].epoch; }
  std::string left;

 private:
  struct Row {
    std::string holder;
    int64_t epoch = 0;
    Time expires_at{};
  };
  template <typename F>
  Status call(Duration round_trip, F statement) {
    if (unreachable) return unavailable("database unreachable");
    clock_.advance(round_trip / 2);
    statement();
    clock_.advance(round_trip - round_trip / 2);
    return {};
  }

  VirtualClock& clock_;
  std::vector<Row> rows_;
};

LeaseOptions options() { return {.ttl = 900ms, .margin = 90ms}; }

TEST(LeaseKeeper, MayDispatchUntilTheAcquireWasSentPlusTtlMinusMarginAndNotAfter) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 1);
  table.acquire_round_trip = 200ms;
  LeaseKeeper keeper(clock, table, "engine-a", options());
  ASSERT_OK(keeper.start());
  ASSERT_EQ(keeper.held(), std::vector<int>{0});
  ASSERT_EQ(table.acquire_sent_at.size(), 1u);
  const Time sent = table.acquire_sent_at[0];
  ASSERT_EQ(clock.now(), sent + 200ms);  // the reply came 200 ms after the send
  table.unreachable = true;  // no renewal gets through from now on
  clock.advance_to(sent + 810ms - 1ns);
  EXPECT_TRUE(keeper.may_dispatch(0));
  EXPECT_EQ(keeper.epoch(0), std::optional<int64_t>(1));
  clock.advance(1ns);
  EXPECT_FALSE(keeper.may_dispatch(0));
  EXPECT_EQ(keeper.epoch(0), std::nullopt);
  // The database's own expiry is later: the local deadline comes first.
  EXPECT_GT(table.expires_at(0), sent + 810ms);
}

TEST(LeaseKeeper, ARenewalExtendsFromItsSendTimeNotFromItsLateReply) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 1);
  LeaseKeeper keeper(clock, table, "engine-a", options());
  ASSERT_OK(keeper.start());
  const Time renew_sent = clock.now() + 300ms;  // the first renewal, ttl/3 later
  table.renew_round_trip = 250ms;
  clock.advance_to(renew_sent + 250ms);  // its reply has come
  ASSERT_EQ(table.renews, 1);
  table.unreachable = true;
  clock.advance_to(renew_sent + 810ms - 1ns);
  EXPECT_TRUE(keeper.may_dispatch(0));
  clock.advance_to(renew_sent + 810ms);
  EXPECT_FALSE(keeper.may_dispatch(0)) << "the deadline counted from the reply, not the send";
}

TEST(LeaseKeeper, RenewsEveryThirdOfTheTtlAndKeepsDispatching) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 2);
  LeaseKeeper keeper(clock, table, "engine-a", options());
  ASSERT_OK(keeper.start());
  ASSERT_EQ(keeper.held().size(), 2u);
  for (int i = 0; i < 30; ++i) {
    clock.advance(100ms);
    ASSERT_TRUE(keeper.may_dispatch(0) && keeper.may_dispatch(1)) << "at step " << i;
  }
  EXPECT_EQ(table.renews, 2 * 10);  // 3 s / 300 ms, for each of 2 shards
  EXPECT_EQ(table.epoch_of(0), 1) << "a renewal must not raise the epoch";
  EXPECT_OK(keeper.last_error());
}

TEST(LeaseKeeper, ADeposedHolderStopsDispatchingAtItsNextRenewal) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 1);
  LeaseKeeper keeper(clock, table, "engine-a", options());
  ASSERT_OK(keeper.start());
  table.take_over(0, "engine-b");
  EXPECT_TRUE(keeper.may_dispatch(0));  // it cannot know before it asks
  clock.advance(300ms);
  EXPECT_FALSE(keeper.may_dispatch(0));
  EXPECT_TRUE(keeper.held().empty());
  EXPECT_EQ(keeper.counters().deposed, 1u);
}

TEST(LeaseKeeper, AnUnreachableDatabaseIsReportedAndDispatchEndsAtTheLastDeadline) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 1);
  LeaseKeeper keeper(clock, table, "engine-a", options());
  const Time sent = clock.now();
  ASSERT_OK(keeper.start());
  EXPECT_OK(keeper.last_error());  // positive control
  table.unreachable = true;
  clock.advance(300ms);
  EXPECT_EQ(keeper.last_error().code(), Code::kUnavailable);
  EXPECT_TRUE(keeper.may_dispatch(0));
  clock.advance_to(sent + 810ms);
  EXPECT_FALSE(keeper.may_dispatch(0));
  EXPECT_EQ(keeper.held(), std::vector<int>{0}) << "kept, in case the database comes back in time";
}

TEST(LeaseKeeper, TakesItsFairShareAndReleasesTheRestWhenEnginesJoin) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 8);
  LeaseKeeper keeper(clock, table, "engine-a", options());
  ASSERT_OK(keeper.start());
  EXPECT_EQ(keeper.held().size(), 8u);
  table.other_engines = 2;  // ceil(8 / 3) = 3
  clock.advance(300ms);
  EXPECT_EQ(keeper.held().size(), 3u);
  EXPECT_EQ(keeper.counters().released, 5u);
  int free_now = 0;
  for (int s = 0; s < 8; ++s) free_now += table.expires_at(s) <= clock.now() ? 1 : 0;
  EXPECT_EQ(free_now, 5) << "released shards are free at once, not at expiry";
}

TEST(LeaseKeeper, StopReleasesEveryShardAndLeavesTheLiveEngines) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 3);
  LeaseKeeper keeper(clock, table, "engine-a", options());
  ASSERT_OK(keeper.start());
  ASSERT_TRUE(keeper.may_dispatch(2));
  ASSERT_OK(keeper.stop());
  EXPECT_FALSE(keeper.may_dispatch(2));
  EXPECT_EQ(keeper.counters().released, 3u);
  EXPECT_EQ(table.left, "engine-a");
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(LeaseKeeper, RefusesAMarginThatLetsAHeldLeaseLapseBetweenRenewals) {
  VirtualClock clock;
  FakeLeaseTable table(clock, 1);
  LeaseKeeper bad(clock, table, "engine-a", {.ttl = 900ms, .margin = 600ms});
  Status s = bad.start();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("two thirds"), std::string::npos) << s;
  EXPECT_TRUE(bad.held().empty());
  LeaseKeeper good(clock, table, "engine-b", {.ttl = 900ms, .margin = 599ms});
  EXPECT_OK(good.start());
}

}  // namespace
}  // namespace medic::node
