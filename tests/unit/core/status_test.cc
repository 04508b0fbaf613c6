#include "core/status.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"

namespace medic {
namespace {

Result<int> half(int x) {
  if (x % 2) return invalid_argument("odd: " + std::to_string(x));
  return x / 2;
}

Status chain(int x) {
  auto r = half(x);
  MEDIC_RETURN_IF_ERROR(r.status());
  return {};
}

TEST(Status, ResultCarriesValueOrError) {
  EXPECT_EQ(*half(4), 2);
  auto r = half(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status(), invalid_argument("odd: 3"));
  EXPECT_EQ(r.status().to_string(), "invalid argument: odd: 3");
}

TEST(Status, ReturnIfErrorPropagatesAndContextPrefixes) {
  EXPECT_OK(chain(2));
  EXPECT_EQ(chain(1).with_context("load").message(), "load: odd: 1");
}

}  // namespace
}  // namespace medic

#include "core/text.h"

namespace medic {
namespace {

TEST(Text, EditDistanceCountsSingleCharacterEdits) {
  EXPECT_EQ(edit_distance("vm.panicked", "vm.panicked"), 0u);
  EXPECT_EQ(edit_distance("vm.panickd", "vm.panicked"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace medic
