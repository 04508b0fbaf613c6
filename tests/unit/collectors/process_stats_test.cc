#include "collectors/process_stats.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <vector>

#include "tests/testing/testing.h"

namespace medic::collectors {
namespace {

using namespace std::chrono_literals;

// A /proc/<pid>/stat line whose command name holds spaces and parentheses.
// utime=250 stime=50 starttime=1000 rss=2560 (fields 14, 15, 22, 24).
const char* kStat =
    "4242 (qemu (vm) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 "
    "123456789 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";

TEST(ProcStat, ParsesCpuRssAndUptimeCountingFromTheLastParenthesis) {
  ProcessSample s;
  ASSERT_OK(parse_proc_stat(kStat, 100, 4096, 110.0, &s));
  EXPECT_EQ(s.cpu_time, 3s);              // (250 + 50) ticks at 100 Hz
  EXPECT_EQ(s.rss_bytes, 2560u * 4096u);  // pages
  EXPECT_EQ(s.uptime, 100s);              // 110 s since boot - started at 10 s
}

TEST(ProcStat, RejectsTruncatedOrMalformedLines) {
  ProcessSample s;
  EXPECT_FALSE(parse_proc_stat("4242 qemu S 1", 100, 4096, 1, &s).ok());
  EXPECT_FALSE(parse_proc_stat("4242 (qemu) S 1 2 3", 100, 4096, 1, &s).ok());
  std::string bad = kStat;
  bad.replace(bad.find(" 250 "), 5, " 2x0 ");
  EXPECT_FALSE(parse_proc_stat(bad, 100, 4096, 1, &s).ok());
  EXPECT_FALSE(parse_proc_stat(kStat, 0, 4096, 1, &s).ok());
}

TEST(LinuxProcessStats, ReadsAFakeProcTree) {
  testing::TempDir dir;
  dir.write("4242/stat", kStat);
  dir.write("uptime", "110.00 200.00\n");
  LinuxProcessStats stats(dir.path());
  auto s = stats.sample(4242);
  ASSERT_OK(s);
  EXPECT_EQ(s->rss_bytes, 2560u * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(stats.sample(4343).status().code(), Code::kNotFound);
  dir.write("4444/stat", "garbage");
  EXPECT_EQ(stats.sample(4444).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(stats.sample(0).status().code(), Code::kInvalidArgument);
}

TEST(LinuxProcessStats, KeepsStatFilesOpenOnlyForProcessesStillAskedAbout) {
  testing::TempDir dir;
  dir.write("4242/stat", kStat);
  dir.write("uptime", "110.00 200.00\n");
  LinuxProcessStats stats(dir.path());
  stats.refresh();
  ASSERT_OK(stats.sample(4242));
  EXPECT_EQ(stats.open_files(), 1u);
  // Re-read through the open file: new figures appear.
  std::string more = kStat;
  more.replace(more.find(" 2560 "), 6, " 5120 ");
  dir.write("4242/stat", more);
  stats.refresh();
  auto s = stats.sample(4242);
  ASSERT_OK(s);
  EXPECT_EQ(s->rss_bytes, 5120u * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
  stats.refresh();  // a round without 4242
  stats.refresh();
  EXPECT_EQ(stats.open_files(), 0u);
}

#ifdef __linux__
TEST(LinuxProcessStats, ReportsAProcessThatExitedAsNotFound) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  LinuxProcessStats stats;
  EXPECT_OK(stats.sample(child));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(stats.sample(child).status().code(), Code::kNotFound);
  EXPECT_EQ(stats.open_files(), 0u);
}

TEST(LinuxProcessStats, ReadsThisProcess) {
  auto stats = make_process_stats();
  ASSERT_NE(stats, nullptr);
  // Burn a little CPU so the figure cannot be zero.
  volatile uint64_t x = 0;
  for (int i = 0; i < 50'000'000; ++i) x = x + static_cast<uint64_t>(i);
  auto s = stats->sample(::getpid());
  ASSERT_OK(s);
  EXPECT_GT(s->rss_bytes, 1u << 20);
  EXPECT_GT(s->cpu_time, Duration::zero());
  EXPECT_GT(s->uptime, Duration::zero());
}
#endif

TEST(CpuMeter, GivesTheShareOfOneCoreBetweenSamples) {
  CpuMeter m;
  const Time t0 = from_ns(1'000'000'000'000);
  EXPECT_EQ(m.update(1, 10s, t0), 0.0);  // nothing to compare with yet
  EXPECT_DOUBLE_EQ(m.update(1, 10500ms, t0 + 1s), 50.0);
  EXPECT_DOUBLE_EQ(m.update(1, 12500ms, t0 + 2s), 200.0);  // two cores busy
  // The pid was reused by a new process: its CPU time went down.
  EXPECT_EQ(m.update(1, 1s, t0 + 3s), 0.0);
  EXPECT_DOUBLE_EQ(m.update(1, 1250ms, t0 + 4s), 25.0);
}

TEST(CpuMeter, ForgetsProcessesNotSeenLately) {
  CpuMeter m;
  const Time t0 = from_ns(1'000'000'000'000);
  m.update(1, 1s, t0);
  m.update(2, 1s, t0 + 10s);
  m.forget_older_than(t0 + 5s);
  EXPECT_EQ(m.size(), 1u);
}

}  // namespace
}  // namespace medic::collectors
