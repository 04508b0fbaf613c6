// kill -9 in the middle of heavy appending: every record the store said was
// durable is there after a restart, the chain verifies, and the engine can
// resume every in-flight action.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/unit/audit/fixture.h"
#include "tests/testing/testing.h"

namespace medic::audit {
namespace {

using test::at_ms;

// The child: appends decision + dispatched batches as fast as it can and
// reports each durable seq on `fd`; exits after `actions` actions.
[[noreturn]] void child_appends(const std::string& path, int fd, int actions = 2'000'000) {
  test::Keys keys;
  StoreOptions o;  // the default: synchronous=FULL
  o.checkpoint_every_rows = 500;
  VirtualClock clock;
  auto store = open_sqlite_store(path, clock, keys.engine, o);
  if (!store.ok()) _exit(3);
  (*store)->on_durable([fd](Seq s) {
    if (write(fd, &s, sizeof s) != sizeof s) _exit(4);
  });
  auto ev = (*store)->append_evidence({at_ms(0), keys.panic_batch("web-1", at_ms(0)), "host-a"});
  if (!ev.ok()) _exit(5);
  for (int i = 0; i < actions; ++i) {
    std::string id = "a-" + std::to_string(i);
    std::vector<Record> batch;
    batch.push_back(Record::of(test::decision(id, "web-1", at_ms(i), *ev)));
    batch.push_back(Record::of(test::step(id, ActionState::kDispatched, at_ms(i))));
    if (!(*store)->append_batch(std::move(batch)).ok()) _exit(6);
  }
  _exit(0);
}

TEST(CrashTest, KillDashNineLosesNothingCommittedAndTheChainVerifies) {
  testing::TempDir dir;
  std::string path = dir.file("audit.db");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_appends(path, fds[1]);
  }
  close(fds[1]);

  // Wait until a good number of rows are durable, then kill without warning.
  const Seq kEnough = 20'000;
  Seq durable = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (durable < kEnough && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    Seq s = 0;
    ssize_t n = read(fds[0], &s, sizeof s);
    if (n != sizeof s) break;  // child gone
    durable = std::max(durable, s);
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  // Whatever is still in the pipe was reported durable before the kill.
  Seq s = 0;
  while (read(fds[0], &s, sizeof s) == sizeof s) durable = std::max(durable, s);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended on its own with status " << status;
  ASSERT_GE(durable, kEnough) << "the child did not get far enough";

  auto report = verify_log(path);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->text();
  EXPECT_GE(report->rows, durable);
  EXPECT_EQ(report->head_seq, report->rows);

  // The engine restarts on the same log and finds every action to resume.
  test::Keys keys;
  VirtualClock clock;
  auto store = open_sqlite_store(path, clock, keys.engine, test::fast_options());
  ASSERT_OK(store);
  auto flying = (*store)->in_flight(at_ms(0));
  ASSERT_OK(flying);
  ASSERT_FALSE(flying->empty());
  // Every row is the evidence, a checkpoint, or one of an action's three rows
  // (decision, proposed, dispatched): so every logged action is in flight,
  // numbered without a gap and dispatched.
  auto reader = AuditReader::open(path);
  ASSERT_OK(reader);
  auto checkpoints = reader->checkpoints();
  ASSERT_OK(checkpoints);
  EXPECT_EQ(1 + static_cast<Seq>(checkpoints->size()) + 3 * static_cast<Seq>(flying->size()),
            report->rows);
  for (size_t i = 0; i < flying->size(); ++i) {
    ASSERT_EQ((*flying)[i].action_id, "a-" + std::to_string(i));
    ASSERT_EQ((*flying)[i].state, ActionState::kDispatched);
  }
  ASSERT_OK((*store)->append_transition(test::step("a-0", ActionState::kAcked, at_ms(1))));
  ASSERT_OK((*store)->close());
  auto again = verify_log(path);
  EXPECT_TRUE(again->ok) << again->text();
}

TEST(CrashTest, AnotherProcessVerifiesAndQueriesWhileTheEngineAppends) {
  testing::TempDir dir;
  std::string path = dir.file("audit.db");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_appends(path, fds[1], 100'000);  // at most ~300k rows
  }
  close(fds[1]);
  Seq s = 0;
  ASSERT_EQ(read(fds[0], &s, sizeof s), static_cast<ssize_t>(sizeof s));  // the log exists
  // The child keeps writing; drain its reports so it never blocks on the pipe.
  std::atomic<bool> stop{false};
  std::thread drain([&] {
    Seq x;
    while (!stop && read(fds[0], &x, sizeof x) == sizeof x) {
    }
  });
  for (int i = 0; i < 3; ++i) {
    auto v = testing::run_command({testing::medic_binary(), "audit", "verify", "--db", path});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    auto l = testing::run_command(
        {testing::medic_binary(), "audit", "list", "--db", path, "--limit", "3"});
    EXPECT_EQ(l.exit_code, 0) << l.err;
    EXPECT_NE(l.out.find("dispatched"), std::string::npos) << l.out;
  }
  stop = true;
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fds[0]);
  drain.join();
}

}  // namespace
}  // namespace medic::audit
