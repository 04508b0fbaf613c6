#include <gtest/gtest.h>

#include <random>

#include "vmm/qmp/json.h"

namespace medic::vmm::qmp {
namespace {

TEST(QmpJson, ParsesQmpEventObject) {
  auto j = parse_json(
      R"({"timestamp": {"seconds": 1795574681, "microseconds": 417734}, "event": "GUEST_PANICKED", "data": {"action": "pause"}})");
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_NE(j->string_at("event"), nullptr);
  EXPECT_EQ(*j->string_at("event"), "GUEST_PANICKED");
  EXPECT_EQ(*j->find("data")->string_at("action"), "pause");
  EXPECT_EQ(*j->find("timestamp")->find("seconds")->as_number(), 1795574681.0);
}

TEST(QmpJson, ParsesEveryKindOfValue) {
  auto j = parse_json(R"( [null, true, false, -1.5e2, 0, "a\"b\\c\n\u00e9\ud83d\ude00", [], {}] )");
  ASSERT_TRUE(j.ok()) << j.status();
  const auto& v = j->items();
  ASSERT_EQ(v.size(), 8u);
  EXPECT_TRUE(v[0].is_null());
  EXPECT_EQ(v[1].as_bool(), true);
  EXPECT_EQ(v[2].as_bool(), false);
  EXPECT_EQ(v[3].as_number(), -150.0);
  EXPECT_EQ(v[4].as_number(), 0.0);
  EXPECT_EQ(*v[5].as_string(), "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v[6].kind(), Json::Kind::kArray);
  EXPECT_EQ(v[7].kind(), Json::Kind::kObject);
}

TEST(QmpJson, RejectsMalformedInputWithOffset) {
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "01", "1.", "\"abc", "tru", "{\"a\":1} x",
                          "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"tab\there\"", "-", "1e"}) {
    auto j = parse_json(bad);
    EXPECT_FALSE(j.ok()) << "accepted: " << bad;
    if (!j.ok()) {
      EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
      EXPECT_NE(j.status().message().find("byte"), std::string::npos) << j.status();
    }
  }
}

TEST(QmpJson, RejectsNestingDeeperThanTheLimitWithoutCrashing) {
  std::string deep(100000, '[');
  auto j = parse_json(deep, 32);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("nested deeper"), std::string::npos);
  std::string ok_depth = std::string(10, '[') + std::string(10, ']');
  EXPECT_TRUE(parse_json(ok_depth, 32).ok());
}

TEST(QmpJson, DumpRoundTripsAndEscapesControlCharacters) {
  Json o = Json::object();
  o.set("execute", Json::string("human-monitor\x01\"x\""));
  o.set("id", Json::number(42));
  o.set("f", Json::number(0.5));
  o.set("list", Json::array().push(Json::boolean(true)).push(Json()));
  std::string text = o.dump();
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_NE(text.find("\"id\":42"), std::string::npos) << text;
  auto back = parse_json(text);
  ASSERT_TRUE(back.ok()) << back.status() << " in " << text;
  EXPECT_EQ(*back->string_at("execute"), "human-monitor\x01\"x\"");
  EXPECT_EQ(back->find("f")->as_number(), 0.5);
  EXPECT_EQ(back->dump(), text);
}

TEST(QmpJson, FindReturnsTheLastOfRepeatedKeysAndNullForNonObjects) {
  auto j = parse_json(R"({"a": 1, "a": 2})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->find("a")->as_number(), 2.0);
  EXPECT_EQ(j->find("b"), nullptr);
  EXPECT_EQ(Json::string("x").find("a"), nullptr);
  EXPECT_EQ(j->string_at("a"), nullptr);  // a number, not a string
}

TEST(QmpJson, SurvivesMutatedQmpMessages) {
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
      EXPECT_TRUE(parse_json(j->dump()).ok()) << s;  // what we accept, we can write back
    } else {
      ++rejected;
    }
  }
  EXPECT_GT(parsed, 0u);
  EXPECT_GT(rejected, 0u);
}

}  // namespace
}  // namespace medic::vmm::qmp
