#include "core/log.h"
#include "core/json.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

TEST(Log, JsonLinesCarryEscapedMessages) {
  testing::TempDir dir;
  LogOptions o;
  o.json = true;
  o.file = dir.file("medic.log");
  o.level = "debug";
  ASSERT_OK(setup_logging(o));
  spdlog::info("vm \"web-1\" said {}", "hi\nthere");
  spdlog::default_logger()->flush();
  std::ifstream in(o.file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string line = ss.str();
  EXPECT_NE(line.find(R"("level":"info")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("msg":"vm \"web-1\" said hi\nthere")"), std::string::npos) << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  spdlog::drop("medic");
  spdlog::set_default_logger(spdlog::stderr_color_mt("default"));
}

TEST(Log, JsonLinesStayValidJsonWhenAMessageHoldsIllFormedUtf8) {
  testing::TempDir dir;
  LogOptions o;
  o.json = true;
  o.file = dir.file("medic.log");
  ASSERT_OK(setup_logging(o));
  spdlog::info("guest said {}", "caf\xc3\xa9 \xff\xfe tab\t");
  spdlog::default_logger()->flush();
  std::ifstream in(o.file);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  auto parsed = parse_json(line);
  ASSERT_OK(parsed) << line;
  const std::string* msg = json_string_member(*parsed, "msg");
  ASSERT_NE(msg, nullptr) << line;
  // Well-formed bytes survive; the ill-formed ones become U+FFFD.
  EXPECT_EQ(*msg, "guest said caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd tab\t");
  spdlog::drop("medic");
  spdlog::set_default_logger(spdlog::stderr_color_mt("default"));
}

TEST(Log, UnknownLevelIsRejected) {
  LogOptions o;
  o.level = "loud";
  Status s = setup_logging(o);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("expected trace"), std::string::npos);
}

TEST(LogLimiter, OneLinePerCausePerIntervalCountingTheRest) {
  VirtualClock clock;
  LogLimiter limiter(10s);
  uint64_t held = 99;
  EXPECT_TRUE(limiter.allow("bad_signature", clock.now(), &held));
  EXPECT_EQ(held, 0u);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter.allow("bad_signature", clock.now()));
  EXPECT_TRUE(limiter.allow("replayed", clock.now()));  // other causes are separate
  clock.advance(10s);
  EXPECT_TRUE(limiter.allow("bad_signature", clock.now(), &held));
  EXPECT_EQ(held, 5u);
}

}  // namespace
}  // namespace medic

namespace medic {
namespace {

TEST(LogLimiter, WarnLogsOncePerCauseAndSaysHowManyWereHeldBack) {
  testing::TempDir dir;
  LogOptions o;
  o.file = dir.file("w.log");
  ASSERT_OK(setup_logging(o));
  VirtualClock clock;
  LogLimiter limiter(std::chrono::seconds(10));
  EXPECT_TRUE(limiter.warn("replayed", clock.now(), "rejected a batch"));
  EXPECT_FALSE(limiter.warn("replayed", clock.now(), "rejected a batch"));
  EXPECT_FALSE(limiter.warn("replayed", clock.now(), "rejected a batch"));
  clock.advance(std::chrono::seconds(10));
  EXPECT_TRUE(limiter.warn("replayed", clock.now(), "rejected a batch"));
  spdlog::default_logger()->flush();
  std::ifstream in(o.file);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 2);
  EXPECT_NE(all.find("(2 more like this held back)"), std::string::npos) << all;
  spdlog::drop("medic");
  spdlog::set_default_logger(spdlog::stderr_color_mt("default2"));
}

}  // namespace
}  // namespace medic
