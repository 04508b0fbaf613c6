#include "core/text.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace medic {
namespace {

const std::vector<std::string_view> kKeys = {"cooldown", "approval", "approval_timeout", "budget",
                                             "mode"};

TEST(Text, EditDistanceCountsASwapOfNeighboursAsOneEdit) {
  EXPECT_EQ(edit_distance("cooldwon", "cooldown"), 1u);
  EXPECT_EQ(edit_distance("ab", "ba"), 1u);
  EXPECT_EQ(edit_distance("abc", "ca"), 3u);  // no edit of a swapped pair again
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", ""), 0u);
}

TEST(Text, ClosestNameFindsAMisspeltKnownName) {
  EXPECT_EQ(closest_name("cooldwon", kKeys), "cooldown");
  EXPECT_EQ(closest_name("aproval", kKeys), "approval");
  EXPECT_EQ(closest_name("Mode", kKeys), "mode");
}

TEST(Text, ClosestNameSuggestsNothingForAKnownName) {
  EXPECT_EQ(closest_name("approval", kKeys), "");
  EXPECT_EQ(did_you_mean("approval", kKeys), "");
}

TEST(Text, ClosestNameSuggestsNothingWhenEveryNameIsFar) {
  EXPECT_EQ(closest_name("banana", kKeys), "");
  // Three edits are too many for a six-letter name (the limit is a third).
  EXPECT_EQ(closest_name("vm.cpu", std::vector<std::string_view>{"vm.id"}), "");
  EXPECT_EQ(closest_name("", kKeys), "");
}

TEST(Text, ClosestNameExtendsATruncatedNameAtAWordBoundary) {
  const std::array<std::string_view, 3> fields = {"vm.id", "vm.cpu_percent", "vm.rss_bytes"};
  EXPECT_EQ(closest_name("vm.cpu", fields), "vm.cpu_percent");
  EXPECT_EQ(closest_name("vm.rs", fields), "");  // not at a boundary
  // Two names extend "approval": neither is the one meant.
  const std::vector<std::string_view> two = {"approval_timeout", "approval_mode"};
  EXPECT_EQ(closest_name("approval", two), "");
}

TEST(Text, ClosestNamePrefersTheNearestThenTheFirstListed) {
  const std::vector<std::string_view> names = {"reset", "restart", "rest"};
  EXPECT_EQ(closest_name("resta", names), "rest");  // 1 edit beats 2
  EXPECT_EQ(closest_name("resx", std::vector<std::string_view>{"rest", "resa"}), "rest");
}

TEST(Text, DidYouMeanIsTheTailOfAnErrorMessage) {
  EXPECT_EQ(did_you_mean("runing", std::vector<std::string>{"running", "paused"}),
            "; did you mean running?");
  EXPECT_EQ(did_you_mean("zzz", std::vector<std::string>{"running", "paused"}), "");
}

TEST(Text, JoinNamesListsWithTheLastWordBeforeTheLastName) {
  EXPECT_EQ(join_names(std::vector<std::string_view>{"a", "b", "c"}), "a, b or c");
  EXPECT_EQ(join_names(std::vector<std::string>{"a", "b"}, " and "), "a and b");
  EXPECT_EQ(join_names(std::vector<std::string_view>{"a"}), "a");
  EXPECT_EQ(join_names(std::vector<std::string_view>{}), "");
}

TEST(Text, UnknownNameSuggestsANearMissOrListsWhatIsKnown) {
  const std::vector<std::string_view> steps = {"reboot", "reset", "notify"};
  EXPECT_EQ(unknown_name("step", "rebot", steps), "unknown step \"rebot\"; did you mean reboot?");
  EXPECT_EQ(unknown_name("step", "explode", steps),
            "unknown step \"explode\" (expected reboot, reset or notify)");
  EXPECT_EQ(unknown_name("key", "x", std::vector<std::string_view>{"rules"}),
            "unknown key \"x\" (expected rules)");
}

TEST(VmWords, NamesAVmNextToItsIdOnlyWhenTheNameSaysMore) {
  EXPECT_EQ(vm_words("4c1f", "web-1"), "web-1 (4c1f)");
  EXPECT_EQ(vm_words("4c1f", ""), "4c1f");
  EXPECT_EQ(vm_words("web-1", "web-1"), "web-1");
  EXPECT_EQ(vm_words("", "web-1"), "-");
}

}  // namespace
}  // namespace medic
