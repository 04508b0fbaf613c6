#include "core/json.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/testing/testing.h"

namespace medic {
namespace {

TEST(Json, ParsesAQmpEventObject) {
  auto j = parse_json(
      R"({"timestamp": {"seconds": 1795574681, "microseconds": 417734}, "event": "GUEST_PANICKED", "data": {"action": "pause"}})");
  ASSERT_OK(j);
  ASSERT_NE(json_string_member(*j, "event"), nullptr);
  EXPECT_EQ(*json_string_member(*j, "event"), "GUEST_PANICKED");
  EXPECT_EQ(*json_string_member(*json_member(*j, "data"), "action"), "pause");
  EXPECT_EQ(json_member(*json_member(*j, "timestamp"), "seconds")->get<int64_t>(), 1795574681);
}

TEST(Json, ParsesEveryKindOfValue) {
  auto j = parse_json(R"( [null, true, false, -1.5e2, 0, "a\"b\\c\n\u00e9\ud83d\ude00", [], {}] )");
  ASSERT_OK(j);
  ASSERT_EQ(j->size(), 8u);
  const Json& v = *j;
  EXPECT_TRUE(v[0].is_null());
  EXPECT_EQ(v[1], true);
  EXPECT_EQ(v[2], false);
  EXPECT_EQ(v[3].get<double>(), -150.0);
  EXPECT_EQ(v[4].get<double>(), 0.0);
  EXPECT_EQ(v[5].get<std::string>(), "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v[6].is_array());
  EXPECT_TRUE(v[7].is_object());
}

TEST(Json, RejectsMalformedInputNamingTheByte) {
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "01", "1.", "\"abc", "tru", "{\"a\":1} x",
                          "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"tab\there\"", "-", "1e"}) {
    auto j = parse_json(bad);
    EXPECT_FALSE(j.ok()) << "accepted: " << bad;
    if (!j.ok()) {
      EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
      EXPECT_NE(j.status().message().find("at byte"), std::string::npos) << j.status();
    }
  }
}

TEST(Json, RefusesNestingDeeperThanTheLimitWithoutCrashing) {
  const std::string deep(100000, '[');
  auto j = parse_json(deep, {.max_depth = 32});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
  EXPECT_NE(j.status().message().find("nesting deeper than 32"), std::string::npos) << j.status();
  // Closed nesting one past the limit is refused for the same reason...
  auto over = parse_json(std::string(33, '[') + std::string(33, ']'), {.max_depth = 32});
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("nesting deeper than 32"), std::string::npos);
  // ...and exactly at the limit it parses, objects and arrays counted alike.
  std::string at_limit;
  for (int i = 0; i < 16; ++i) at_limit += "{\"k\":[";
  at_limit += "1";
  for (int i = 0; i < 16; ++i) at_limit += "]}";
  EXPECT_OK(parse_json(at_limit, {.max_depth = 32}));
}

TEST(Json, RefusesTextLongerThanTheLimitBeforeParsing) {
  // Valid JSON, so the only reason to refuse it is its length.
  const std::string big = "\"" + std::string(100, 'x') + "\"";
  auto j = parse_json(big, {.max_bytes = 101});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
  EXPECT_NE(j.status().message().find("102 bytes is longer than the 101-byte limit"),
            std::string::npos)
      << j.status();
  EXPECT_OK(parse_json(big, {.max_bytes = 102}));
}

TEST(Json, ReportsIllFormedUtf8InAStringWithoutCrashing) {
  for (const std::string bad : {"\"\xff\"", "\"\xc3\"", "\"\xe2\x82\"", "\"\xed\xa0\x80\"",
                                "{\"event\": \"a\x80z\"}"}) {
    auto j = parse_json(bad);
    ASSERT_FALSE(j.ok()) << "accepted: " << bad;
    EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
    EXPECT_NE(j.status().message().find("UTF-8"), std::string::npos) << j.status();
  }
  // Well-formed multi-byte UTF-8 is fine.
  auto good = parse_json("{\"event\": \"caf\xc3\xa9 \xf0\x9f\x98\x80\"}");
  ASSERT_OK(good);
  EXPECT_EQ(*json_string_member(*good, "event"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

TEST(Json, DumpIsCompactOrderedAndRoundTrips) {
  Json o = {{"execute", "human-monitor\x01\"x\""}, {"id", 42}, {"f", 0.5}, {"list", {true, nullptr}}};
  const std::string text = dump_json(o);
  EXPECT_EQ(text, R"({"execute":"human-monitor\u0001\"x\"","id":42,"f":0.5,"list":[true,null]})");
  auto back = parse_json(text);
  ASSERT_OK(back);
  EXPECT_EQ(*json_string_member(*back, "execute"), "human-monitor\x01\"x\"");
  EXPECT_EQ(dump_json(*back), text);
}

TEST(Json, DumpWritesIllFormedUtf8AsReplacementCharacters) {
  const std::string text = dump_json(Json("a\xff" "b"));
  EXPECT_EQ(text, "\"a\xef\xbf\xbd" "b\"");
  EXPECT_OK(parse_json(text));  // still JSON another reader accepts
  EXPECT_EQ(dump_json(Json("caf\xc3\xa9")), "\"caf\xc3\xa9\"");  // well-formed stays as is
}

TEST(Json, MemberLookupTakesTheLastOfRepeatedKeysAndNullForNonObjects) {
  auto j = parse_json(R"({"a": 1, "a": 2})");
  ASSERT_OK(j);
  ASSERT_NE(json_member(*j, "a"), nullptr);
  EXPECT_EQ(*json_member(*j, "a"), 2);
  EXPECT_EQ(json_member(*j, "b"), nullptr);
  EXPECT_EQ(json_member(Json("x"), "a"), nullptr);
  EXPECT_EQ(json_string_member(*j, "a"), nullptr);  // a number, not a string
}

TEST(Json, SurvivesMutatedQmpMessages) {
  // Byte flips, truncations and insertions of QMP-like text: every result is
  // either a value or an error, never a crash (run under ASan in CI).
  const std::string seeds[] = {
      R"({"return": {"status": "running", "singlestep": false, "running": true}, "id": 7})",
      R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "GUEST_PANICKED", "data": {"action": "pause", "info": {"type": "hyper-v", "arg1": 18446744073709551615}}})",
      R"({"error": {"class": "GenericError", "desc": "\u00e9\ud83d\ude00 \"quoted\""}})",
  };
  const char alphabet[] = "{}[]\",:\\u0123456789abcdefeE+-.truefalsenull \t\n";
  std::mt19937 rng(20261125);
  size_t parsed = 0, rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[i % 3];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[at] = alphabet[rng() % (sizeof alphabet - 1)];
          break;
        case 1:
          s.erase(at, 1 + rng() % 8);
          break;
        case 2:
          s.insert(at, 1, static_cast<char>(rng() % 256));
          break;
        case 3:
          s.resize(at);
          break;
      }
    }
    auto j = parse_json(s);
    if (j.ok()) {
      ++parsed;
      EXPECT_OK(parse_json(dump_json(*j))) << s;  // what we accept, we can write back
    } else {
      ++rejected;
    }
  }
  EXPECT_GT(parsed, 0u);
  EXPECT_GT(rejected, 0u);
}

}  // namespace
}  // namespace medic
