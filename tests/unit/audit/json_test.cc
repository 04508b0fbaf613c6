#include "audit/json.h"

#include <gtest/gtest.h>

namespace medic::audit::internal {
namespace {

TEST(Json, EscapesWhatMustBeEscaped) {
  EXPECT_EQ(json_string("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
  EXPECT_EQ(JsonObject().add("k", int64_t{5}).add_bool("b", true).add("s", "x").str(),
            "{\"k\":5,\"b\":true,\"s\":\"x\"}");
}

TEST(Json, StringArraysRoundTrip) {
  std::vector<std::string> in = {"",     "a,b",  "q\"uote",    "back\\slash",
                                 "nl\n", "\x7f", "caf\xc3\xa9"};
  std::vector<std::string> out;
  ASSERT_TRUE(parse_json_string_array(json_string_array(in), &out));
  EXPECT_EQ(out, in);
  ASSERT_TRUE(parse_json_string_array("[]", &out));
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(parse_json_string_array("[\"\\u00e9\\/\"]", &out));
  EXPECT_EQ(out, std::vector<std::string>{"\xc3\xa9/"});
}

TEST(Json, RejectsWhatIsNotAStringArray) {
  std::vector<std::string> out;
  for (const char* bad : {"", "[", "[\"a\"", "[\"a\",]", "[1]", "[\"a\"] ", "{}", "[\"\\x\"]",
                          "[\"\\u12\"]", "a,b"}) {
    EXPECT_FALSE(parse_json_string_array(bad, &out)) << bad;
  }
}

}  // namespace
}  // namespace medic::audit::internal
