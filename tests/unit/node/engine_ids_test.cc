#include <gtest/gtest.h>

#include "node/engine_node.h"

namespace medic::node {
namespace {

TEST(EngineIds, StartPrefixDiffersForEveryStartAndSortsByTime) {
  Time t = from_ns(1'764'000'000'000'000'000);
  std::string a = start_prefix(t);
  std::string b = start_prefix(t + std::chrono::milliseconds(1));
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_LT(a, b);
  EXPECT_EQ(start_prefix(from_ns(0)), "0");
}

}  // namespace
}  // namespace medic::node
