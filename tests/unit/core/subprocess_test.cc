#include "core/subprocess.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(r->signal, SIGKILL);
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

}  // namespace
}  // namespace medic
