#include "core/subprocess.h"

#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <optional>

#include "core/event_loop.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

TEST(Subprocess, CapturesOutputAndExitCode) {
  auto r = run_process({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out);
}

TEST(Subprocess, ArgumentsAreNotInterpretedByAShell) {
  auto r = run_process({"/bin/echo", "a; rm -rf /tmp/x", "$HOME"});
  ASSERT_OK(r);
  EXPECT_EQ(r->out, "a; rm -rf /tmp/x $HOME\n");
}

TEST(Subprocess, KillsAHangingCommandAtTheTimeLimit) {
  RunOptions o;
  o.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto r = run_process({"/bin/sleep", "30"}, o);
  ASSERT_OK(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->signal, SIGTERM);
  EXPECT_EQ(r->kill_reason, "time limit of 200ms passed: SIGTERM to its process group");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(Subprocess, TimeLimitHoldsWhenTheChildClosesItsOutput) {
  RunOptions o;
  o.timeout = 200ms;
  auto r = run_process({"/bin/sh", "-c", "exec >&- 2>&-; sleep 30"}, o);
  ASSERT_OK(r);
  EXPECT_TRUE(r->timed_out);
}

TEST(Subprocess, BoundsCapturedOutput) {
  RunOptions o;
  o.max_output_bytes = 1000;
  auto r = run_process({"/bin/sh", "-c", "head -c 100000 /dev/zero"}, o);
  ASSERT_OK(r);
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->exit_code, 0);
}

TEST(Subprocess, FeedsStdin) {
  RunOptions o;
  o.stdin_data = "hello";
  auto r = run_process({"/bin/cat"}, o);
  ASSERT_OK(r);
  EXPECT_EQ(r->out, "hello");
}

TEST(Subprocess, MissingProgramIsAnIoErrorNamingIt) {
  auto r = run_process({"/nonexistent/vmadm", "list"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIo);
  EXPECT_NE(r.status().message().find("/nonexistent/vmadm"), std::string::npos);
  EXPECT_FALSE(run_process({}).ok());
}

TEST(Subprocess, SpawnReapAndKill) {
  auto pid = spawn_process({"/bin/sleep", "30"});
  ASSERT_OK(pid);
  EXPECT_FALSE(reap(*pid));
  EXPECT_TRUE(kill_and_reap(*pid));
  auto quick = spawn_process({"/bin/true"});
  ASSERT_OK(quick);
  int status = -99;
  EXPECT_TRUE(testing::wait_until([&] { return reap(*quick, &status); }));
  EXPECT_EQ(status, 0);
}

// ---------------------------------------------------- ChildProcess on a loop

// A ChildProcess on an EventLoop driven by a VirtualClock: the child is real,
// its time limit moves only when the test advances the clock.
class ChildOnLoop : public ::testing::Test {
 protected:
  void start(const std::vector<std::string>& argv, RunOptions o = {}) {
    auto c = ChildProcess::start(argv, o, clock_, [this](RunResult r) {
      ++done_calls_;
      result_ = std::move(r);
    });
    ASSERT_OK(c);
    if (source_ != 0) loop_.remove(source_);
    child_ = std::move(*c);
    source_ = loop_.add_source(child_.get());
  }
  // Runs the loop (waiting on the child's descriptors, never on time) until
  // the run has ended.
  bool run_to_end() {
    return testing::wait_until([&] {
      loop_.run_once(50ms);
      return result_.has_value();
    });
  }

  VirtualClock clock_;
  EventLoop loop_{clock_};
  ChildProcessPtr child_;
  EventLoop::WatchId source_ = 0;
  std::optional<RunResult> result_;
  int done_calls_ = 0;
};

TEST_F(ChildOnLoop, CapturesOutputAndExitStatusWithoutBlocking) {
  start({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(done_calls_, 0) << "done ran inside start()";
  ASSERT_TRUE(run_to_end());
  EXPECT_EQ(result_->exit_code, 3);
  EXPECT_EQ(result_->signal, 0);
  EXPECT_EQ(result_->out, "out\n");
  EXPECT_EQ(result_->err, "err\n");
  EXPECT_FALSE(result_->timed_out);
  EXPECT_EQ(describe_end(*result_), "exit 3");
  EXPECT_TRUE(child_->finished());
  // Done once, and the loop has nothing of the child left to wait on.
  loop_.run_once(0ms);
  EXPECT_EQ(done_calls_, 1);
  std::vector<int> fds;
  child_->append_fds(&fds);
  EXPECT_TRUE(fds.empty());
  EXPECT_EQ(clock_.pending_timers(), 0u) << "the time limit was not cancelled";
}

TEST_F(ChildOnLoop, KillsTheChildWhenTheClockPassesTheTimeLimitAndSaysWhy) {
  RunOptions o;
  o.timeout = 30s;
  start({"/bin/sleep", "600"}, o);
  for (int i = 0; i < 5; ++i) loop_.run_once(10ms);
  EXPECT_FALSE(result_.has_value());  // positive control: alive until the clock moves
  clock_.advance(29s);
  loop_.run_once(10ms);
  EXPECT_FALSE(result_.has_value());
  clock_.advance(1s);  // SIGTERM now
  ASSERT_TRUE(run_to_end());
  EXPECT_TRUE(result_->timed_out);
  EXPECT_EQ(result_->signal, SIGTERM);
  EXPECT_EQ(result_->kill_reason, "time limit of 30s passed: SIGTERM to its process group");
  EXPECT_EQ(describe_end(*result_), result_->kill_reason);
}

TEST_F(ChildOnLoop, AChildThatIgnoresSigtermGetsSigkillAfterTheGrace) {
  testing::TempDir dir;
  RunOptions o;
  o.timeout = 2s;
  o.kill_grace = 3s;
  // The shell ignores SIGTERM (so do its children) and says when it does.
  start({"/bin/sh", "-c", "trap '' TERM; : > " + dir.file("ready") + "; while :; do sleep 1; done"},
        o);
  ASSERT_TRUE(testing::wait_until([&] { return std::filesystem::exists(dir.file("ready")); }));
  clock_.advance(2s);  // SIGTERM, ignored
  for (int i = 0; i < 20; ++i) loop_.run_once(10ms);
  EXPECT_FALSE(result_.has_value()) << "the shell should have survived SIGTERM";
  clock_.advance(3s);  // SIGKILL
  ASSERT_TRUE(run_to_end());
  EXPECT_TRUE(result_->timed_out);
  EXPECT_EQ(result_->signal, SIGKILL);
  EXPECT_EQ(result_->kill_reason,
            "time limit of 2s passed: SIGTERM to its process group, then SIGKILL after 3s");
}

TEST_F(ChildOnLoop, AChildThatClosesItsOutputEarlyIsWaitedForUntilItExits) {
  start({"/bin/sh", "-c", "echo early; exec >&- 2>&-; sleep 0.3; exit 4"});
  ASSERT_TRUE(run_to_end());
  EXPECT_EQ(result_->out, "early\n");
  EXPECT_EQ(result_->exit_code, 4);
  EXPECT_FALSE(result_->timed_out);
}

TEST_F(ChildOnLoop, ReadsLargeOutputCompletelyAndBoundsWhatItKeeps) {
  start({"/bin/sh", "-c", "head -c 3000000 /dev/zero; echo tail >&2"});
  ASSERT_TRUE(run_to_end());
  EXPECT_EQ(result_->exit_code, 0) << "the child blocked on a full pipe";
  EXPECT_EQ(result_->out.size(), 64u * 1024);
  EXPECT_TRUE(result_->truncated);
  EXPECT_EQ(result_->err, "tail\n");

  RunOptions big;
  big.max_output_bytes = 4 << 20;
  result_.reset();
  start({"/bin/sh", "-c", "head -c 3000000 /dev/zero"}, big);
  ASSERT_TRUE(run_to_end());
  EXPECT_EQ(result_->out.size(), 3000000u);
  EXPECT_FALSE(result_->truncated);
}

TEST_F(ChildOnLoop, DestroyingARunningChildKillsItWithoutCallingDone) {
  start({"/bin/sleep", "600"});
  const pid_t pid = child_->pid();
  loop_.run_once(0ms);
  child_.reset();
  EXPECT_EQ(::kill(pid, 0), -1) << "the child outlived its ChildProcess";
  EXPECT_EQ(done_calls_, 0);
  EXPECT_EQ(clock_.pending_timers(), 0u);
}

TEST_F(ChildOnLoop, AMissingProgramFailsAtStartNamingIt) {
  auto c = ChildProcess::start({"/nonexistent/vmadm"}, {}, clock_, [](RunResult) {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kIo);
  EXPECT_NE(c.status().message().find("cannot run /nonexistent/vmadm"), std::string::npos);
  EXPECT_EQ(clock_.pending_timers(), 0u);
}

}  // namespace
}  // namespace medic
