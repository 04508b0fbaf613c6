// The actuator killed with SIGKILL between its journal write and the result,
// then restarted: the action ends with the documented safe outcome (failed,
// "actuator restarted during execution; not retried — outcome unknown") and
// is never executed a second time, although the engine keeps re-sending it.
//
// The actuator runs in a real child process: this test binary re-executed as
// the child entry actuator_crash_child (tests/testing/testing.h), with a
// failpoint that raises SIGKILL at the chosen point.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "actuators/actuator.h"
#include "actuators/dispatcher.h"
#include "core/subprocess.h"
#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"

namespace medic::actuators {
namespace {

using namespace medic::actuators::testing;
using medic::testing::read_file;

// The child: one actuator for host-a that dies at the failpoint. Its exit
// code says how it failed otherwise.
MEDIC_TEST_CHILD_ENTRY(actuator_crash_child) {
  const char* dir = std::getenv("MEDIC_TEST_CRASH_DIR");
  if (!dir) return 6;
  const std::string d = dir;
  const std::string endpoint = read_file(d + "/endpoint");
  const std::string point = read_file(d + "/failpoint");
  Keys keys;
  SystemClock clock;
  FakeHypervisor hv("host-a", clock);
  hv.add_vm("vm-1", medic::v1::VM_STATE_PANICKED);
  hv.record_file = d + "/executed.txt";
  auto ctx = fabric::Context::create(keys.trust);
  if (!ctx.ok()) _exit(4);
  auto o = actuator_options(keys, endpoint, d + "/journal.db");
  o.failpoint = [point](std::string_view at) {
    if (at == point) raise(SIGKILL);
  };
  auto act = Actuator::create(o, {**ctx, keys.host_a, keys.trust, clock}, hv);
  if (!act.ok()) _exit(5);
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) (*act)->run_once(10ms);
  _exit(3);  // the failpoint never fired
}

class ActuatorCrash : public ::testing::TestWithParam<const char*> {};

TEST_P(ActuatorCrash, KilledActuatorReportsUnknownOutcomeAndNeverExecutesTwice) {
  const std::string failpoint = GetParam();
  medic::testing::TempDir dir;
  Keys keys;
  SystemClock clock;
  EventLog log;
  auto ctx = fabric::Context::create(keys.trust);
  ASSERT_OK(ctx);
  auto d =
      Dispatcher::create(dispatcher_options(), {**ctx, keys.engine, keys.trust, clock}, log.sink());
  ASSERT_OK(d);
  DispatcherPtr disp = std::move(d).value();
  dir.write("endpoint", disp->endpoint());
  dir.write("failpoint", failpoint);

  ::setenv("MEDIC_TEST_CRASH_DIR", dir.path().c_str(), 1);
  ::setenv("MEDIC_TEST_CHILD", "actuator_crash_child", 1);
  auto pid = spawn_process({medic::testing::self_exe()}, dir.file("child.log"));
  ::unsetenv("MEDIC_TEST_CHILD");
  ::unsetenv("MEDIC_TEST_CRASH_DIR");
  ASSERT_OK(pid);

  auto a = make_action("crash-1", "host-a", "vm-1", clock.now(), medic::v1::VERB_RESET, 60s, 5s);
  ASSERT_OK(disp->dispatch(a));
  int status = 0;
  bool exited = pump([&] { disp->run_once(10ms); }, [&] { return reap(*pid, &status); }, 15000ms);
  if (!exited) kill_and_reap(*pid);
  ASSERT_TRUE(exited) << "the child never reached the failpoint";
  ASSERT_EQ(status, -SIGKILL) << read_file(dir.file("child.log"));

  const std::string before = read_file(dir.file("executed.txt"));
  if (failpoint == std::string("after_journal")) {
    EXPECT_EQ(before, "") << "killed before the backend was touched";
  } else {
    EXPECT_EQ(before, "reset vm-1\n");
  }
  EXPECT_FALSE(log.ended("crash-1"));

  // Restart the actuator (in this process) on the same journal.
  FakeHypervisor hv("host-a", clock);
  hv.add_vm("vm-1", medic::v1::VM_STATE_PANICKED);
  hv.record_file = dir.file("executed.txt");
  auto o = actuator_options(keys, disp->endpoint(), dir.file("journal.db"));
  auto act = Actuator::create(o, {**ctx, keys.host_a, keys.trust, clock}, hv);
  ASSERT_OK(act);
  ASSERT_TRUE(pump(
      [&] {
        disp->run_once(5ms);
        (*act)->run_once(5ms);
      },
      [&] { return log.ended("crash-1"); }, 15000ms));
  const DispatchEvent* end = log.last("crash-1");
  EXPECT_EQ(end->state, ActionState::kFailed);
  ASSERT_TRUE(end->result.has_value());
  EXPECT_EQ(end->result->reason(), kRestartedDuringExecution);
  EXPECT_EQ((*act)->stats().recovered_unknown, 1u);

  // More deliveries of the same id (an engine re-send): answered, not run.
  auto again = disp->dispatch(a);
  ASSERT_OK(again) << again;
  ASSERT_TRUE(pump(
      [&] {
        disp->run_once(5ms);
        (*act)->run_once(5ms);
      },
      [&] { return (*act)->stats().duplicates >= 1; }, 15000ms));
  EXPECT_TRUE(hv.executed.empty());
  EXPECT_EQ(read_file(dir.file("executed.txt")), before);
  act->reset();
}

INSTANTIATE_TEST_SUITE_P(Failpoints, ActuatorCrash,
                         ::testing::Values("after_journal", "after_execute"));

}  // namespace
}  // namespace medic::actuators
