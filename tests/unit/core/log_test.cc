#include "core/log.h"
#include "core/json.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <spdlog/sinks/stdout_color_sinks.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <vector>
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

// Reads the whole log file without flushing the logger first.
std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void reset_default_logger() {
  spdlog::drop("medic");
  spdlog::set_default_logger(spdlog::stderr_color_mt("default"));
}

TEST(Log, EveryLineReachesTheFileWhenWrittenWithoutAFlush) {
  testing::TempDir dir;
  LogOptions o;
  o.file = dir.file("medic.log");
  ASSERT_OK(setup_logging(o));
  spdlog::info("first line");
  EXPECT_NE(read_all(o.file).find("first line"), std::string::npos);
  spdlog::debug("below the level");
  spdlog::warn("second line");
  std::string text = read_all(o.file);
  EXPECT_NE(text.find("second line"), std::string::npos) << text;
  EXPECT_EQ(text.find("below the level"), std::string::npos) << text;
  reset_default_logger();
}

TEST(Log, TimestampsAreUtcWhateverTheLocalTimeZone) {
  testing::TempDir dir;
  const char* old_tz = std::getenv("TZ");
  std::string saved = old_tz ? old_tz : "";
  // A POSIX TZ string (no tzdata needed): UTC+05:30, so a local stamp is hours off.
  setenv("TZ", "XST-5:30", 1);
  tzset();
  for (bool json : {false, true}) {
    LogOptions o;
    o.json = json;
    o.file = dir.file(json ? "json.log" : "text.log");
    ASSERT_OK(setup_logging(o));
    spdlog::info("stamped");
    std::string line = read_all(o.file);
    size_t at = json ? line.find("\"ts\":\"") + 6 : 0;
    ASSERT_LT(at + 20, line.size()) << line;
    std::tm tm{};
    ASSERT_NE(strptime(line.c_str() + at, "%Y-%m-%dT%H:%M:%S", &tm), nullptr) << line;
    EXPECT_LE(std::llabs(static_cast<long long>(timegm(&tm) - time(nullptr))), 60) << line;
    EXPECT_NE(line.find("Z"), std::string::npos) << line;
    reset_default_logger();
  }
  if (old_tz) setenv("TZ", saved.c_str(), 1); else unsetenv("TZ");
  tzset();
}

TEST(Log, PriorityPrefixesFollowTheLevelForTheJournal) {
  testing::TempDir dir;
  LogOptions o;
  o.file = dir.file("medic.log");
  o.level = "debug";
  o.priority = LogOptions::Priority::kOn;
  ASSERT_OK(setup_logging(o));
  spdlog::debug("d");
  spdlog::info("i");
  spdlog::warn("w");
  spdlog::error("e");
  spdlog::critical("c");
  std::istringstream lines(read_all(o.file));
  std::vector<std::string> prefixes;
  for (std::string line; std::getline(lines, line);) prefixes.push_back(line.substr(0, 3));
  EXPECT_EQ(prefixes, (std::vector<std::string>{"<7>", "<6>", "<4>", "<3>", "<2>"}));
  reset_default_logger();

  // The default (auto) adds none when the output is a file.
  LogOptions plain;
  plain.file = dir.file("plain.log");
  ASSERT_OK(setup_logging(plain));
  spdlog::warn("w");
  EXPECT_EQ(read_all(plain.file).rfind("<", 0), std::string::npos);
  reset_default_logger();
}

TEST(Log, StderrIsTheJournalOnlyWhenJournalStreamNamesIt) {
  struct stat st {};
  ASSERT_EQ(fstat(2, &st), 0);
  std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_TRUE(stderr_is_journal());
  std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  setenv("JOURNAL_STREAM", other.c_str(), 1);
  EXPECT_FALSE(stderr_is_journal());
  setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_FALSE(stderr_is_journal());
  unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
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
