// host -> shard must never change between builds: every engine of a fleet,
// old or new, must put a host in the same shard.
#include <gtest/gtest.h>

#include <set>

#include "audit/lease.h"

namespace medic::audit {
namespace {

TEST(ShardMap, MapsAHostToTheSameShardInEveryBuild) {
  // FNV-1a 64 of the name, pinned: a change here splits a fleet's engines.
  ShardMap map(64);
  EXPECT_EQ(map.shard_of("host-a"), 37);
  EXPECT_EQ(map.shard_of("hv07.example.net"), 15);
  EXPECT_EQ(ShardMap(1).shard_of("anything"), 0);
}

TEST(ShardMap, SpreadsManyHostsOverEveryShard) {
  ShardMap map(16);
  std::vector<int> counts(16);
  for (int i = 0; i < 1600; ++i) {
    int s = map.shard_of("host-" + std::to_string(i));
    ASSERT_GE(s, 0);
    ASSERT_LT(s, 16);
    ++counts[s];
  }
  for (int c : counts) {
    EXPECT_GT(c, 50);
    EXPECT_LT(c, 150);
  }
}

}  // namespace
}  // namespace medic::audit
