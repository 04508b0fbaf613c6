// The engine's safety state outlives the engine process: a real engine (this
// test binary re-executed as the child entry engine_restart_child) on a real
// SQLite file, stopped with SIGTERM or killed with SIGKILL and started again,
// while this process plays the collector (signed panics on the urgent lane)
// and host-a's actuator.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "audit/log.h"
#include "core/subprocess.h"
#include "node/engine_node.h"
#include "node/engine_state_rows.h"
#include "rules/loader.h"
#include "tests/testing/daemon.h"
#include "tests/testing/testing.h"
#include "tests/unit/actuators/fixtures.h"

namespace medic::node {
namespace {

using namespace std::chrono_literals;
using actuators::testing::FakeActuator;
using actuators::testing::Keys;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_atomically(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path + ".tmp");
    out << text;
  }
  std::filesystem::rename(path + ".tmp", path);
}

std::atomic<bool> g_stop{false};

// The engine: rules from rules.yaml, the log at the path in `db`, action_ttl
// in ms from `ttl_ms` when present; writes its endpoints and, every 100 ms,
// its status text.
MEDIC_TEST_CHILD_ENTRY(engine_restart_child) {
  const char* env = std::getenv("MEDIC_TEST_ENGINE_DIR");
  if (!env) return 6;
  const std::string dir = env;
  ::signal(SIGTERM, [](int) { g_stop = true; });
  Keys keys;
  SystemClock clock;
  auto loaded = rules::load_rule_text(read_file(dir + "/rules.yaml"), "rules.yaml");
  if (!loaded.rules) return 7;
  auto ctx = fabric::Context::create(keys.trust);
  if (!ctx.ok()) return 4;
  EngineConfig c;
  c.name = "engine-1";
  c.events = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
  c.actions_endpoint = "tcp://127.0.0.1:*";
  c.control_endpoint = "tcp://127.0.0.1:*";
  if (std::filesystem::exists(dir + "/ttl_ms")) {
    c.engine.action_ttl = std::chrono::milliseconds(std::stoll(read_file(dir + "/ttl_ms")));
  }
  c.dispatch.result_grace = 2s;
  audit::StoreOptions so;
  so.durability = audit::Durability::kProcessCrash;
  auto store = audit::open_sqlite_store(read_file(dir + "/db"), clock, keys.engine, so);
  if (!store.ok()) {
    std::fprintf(stderr, "engine: %s\n", store.status().message().c_str());
    return 2;
  }
  auto node = EngineNode::create(c, {**ctx, keys.engine, keys.trust, clock}, loaded.rules,
                                 std::move(*store));
  if (!node.ok()) {
    std::fprintf(stderr, "engine: %s\n", node.status().message().c_str());
    return 3;
  }
  write_atomically(dir + "/endpoints", (*node)->urgent_endpoint() + "\n" +
                                           (*node)->actions_endpoint() + "\n");
  auto next_status = std::chrono::steady_clock::now();
  while (!g_stop) {
    (*node)->run_once(10ms);
    if (std::chrono::steady_clock::now() >= next_status) {
      write_atomically(dir + "/status", (*node)->status_text());
      next_status += 100ms;
    }
  }
  return (*node)->shutdown().ok() ? 0 : 9;
}

constexpr const char* kFlapRules =
    "rules:\n  - {name: db-panicked, on: vm.panicked, do: reset, cooldown: 0s, budget: 3 per 1h, "
    "heal_within: 20s}\n";

class EngineRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ctx = fabric::Context::create(keys_.trust);
    ASSERT_OK(ctx);
    ctx_ = std::move(*ctx);
    dir_.write("rules.yaml", kFlapRules);
    db_ = dir_.file("audit.db");
    dir_.write("db", db_);
  }
  void TearDown() override { stop(SIGKILL); }

  // Starts the engine and connects a collector and host-a's actuator to it.
  // Returns false (with the child's log) when it does not come up.
  bool start() {
    std::filesystem::remove(dir_.file("endpoints"));
    ::setenv("MEDIC_TEST_ENGINE_DIR", dir_.path().c_str(), 1);
    ::setenv("MEDIC_TEST_CHILD", "engine_restart_child", 1);
    auto pid = spawn_process({medic::testing::self_exe()}, dir_.file("engine.log"));
    ::unsetenv("MEDIC_TEST_CHILD");
    ::unsetenv("MEDIC_TEST_ENGINE_DIR");
    if (!pid.ok()) return false;
    pid_ = *pid;
    if (!medic::testing::wait_until([&] { return std::filesystem::exists(dir_.file("endpoints")); },
                                    20s)) {
      return false;
    }
    std::istringstream eps(read_file(dir_.file("endpoints")));
    std::string urgent, actions;
    eps >> urgent >> actions;
    auto pub = ctx_->connect(zmq::socket_type::pub, urgent, keys_.host_a, keys_.engine.public_key());
    if (!pub.ok()) return false;
    pub_ = std::move(*pub);
    act_ = std::make_unique<FakeActuator>(*ctx_, keys_, keys_.host_a, "host-a", actions, clock_);
    act_->ack("hello");
    return true;
  }
  // SIGTERM (a clean stop) or SIGKILL; returns the exit status.
  int stop(int sig) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, sig);
    int status = 0;
    medic::testing::wait_until([&] { return reap(pid_, &status); }, 15s);
    pid_ = 0;
    act_.reset();
    pub_ = zmq::socket_t();
    return status;
  }

  std::string panic_frame(const std::string& vm) {
    medic::v1::EventBatch b;
    auto* e = b.add_events();
    e->set_host("host-a");
    e->set_vm(vm);
    e->set_observed_at_ns(to_ns(clock_.now()));
    e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    return sealer_.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), clock_.now());
  }
  void send(const std::string& frame) { pub_.send(zmq::buffer(frame), zmq::send_flags::none); }

  long long count(const std::string& where) {
    return medic::testing::query_number(db_, "SELECT count(*) FROM decisions WHERE " + where);
  }
  long long decisions() { return count("rule = 'db-panicked' AND verb = 'reset'"); }
  long long proposed() { return count("verb = 'reset' AND outcome = 'proposed'"); }

  // Sends panics of `vm` (one per poll of wait_until, at most every 50 ms:
  // the SUB may still be joining) until the engine has decided once more;
  // returns the frame that did it (the last one sent) or "" on timeout.
  std::string panic_until_decided(const std::string& vm) {
    const long long before = decisions();
    std::string frame;
    bool ok = medic::testing::wait_until(
        [&] {
          frame = panic_frame(vm);
          send(frame);
          act_->poll();
          return decisions() > before;
        },
        20s);
    return ok ? frame : "";
  }
  // The event batches the running engine has accepted, from the status file
  // it rewrites every 100 ms ("counters: N batches, ..."); -1 before the first.
  long long accepted_batches() {
    const std::string text = read_file(dir_.file("status"));
    const size_t at = text.find("counters: ");
    return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + 10);
  }
  // Sends `frame_of()` frames until the engine has accepted `n` more batches.
  bool send_until_accepted(long long n, const std::function<std::string()>& frame_of) {
    long long before = -1;
    if (!medic::testing::wait_until([&] { return (before = accepted_batches()) >= 0; }, 10s)) {
      return false;
    }
    return medic::testing::wait_until(
        [&] {
          send(frame_of());
          act_->poll();
          return accepted_batches() >= before + n;
        },
        20s);
  }
  // The actuator takes action number `n` (1-based) and reports it healed.
  bool heal(size_t n) {
    if (!medic::testing::wait_until([&] {
          act_->poll();
          return act_->actions.size() >= n;
        }, 20s)) {
      return false;
    }
    const std::string id = act_->actions[n - 1].id();
    medic::v1::ActionResult r;
    r.set_action_id(id);
    r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
    r.set_healed(true);
    act_->result(r);
    return medic::testing::wait_until([&] {
      act_->poll();
      return medic::testing::query_number(
                 db_, "SELECT count(*) FROM transitions WHERE action_id = '" + id +
                          "' AND state = 'succeeded'") == 1;
    }, 20s);
  }
  // One flap of a VM: a panic, the decision, and (when proposed) the reset
  // run and healed.
  void flap(const std::string& vm) {
    const long long before = proposed();
    ASSERT_NE(panic_until_decided(vm), "") << read_file(dir_.file("engine.log"));
    if (proposed() > before) {
      ASSERT_TRUE(heal(1)) << read_file(dir_.file("engine.log"));
    }
  }

  Keys keys_;
  std::unique_ptr<fabric::Context> ctx_;
  SystemClock clock_;
  fabric::Sealer sealer_{keys_.host_a};
  medic::testing::TempDir dir_;
  std::string db_;
  pid_t pid_ = 0;
  zmq::socket_t pub_;
  std::unique_ptr<FakeActuator> act_;
};

class FlappingVm : public EngineRestartTest, public ::testing::WithParamInterface<int> {};

// `budget: 3 per 1h` on a VM that flaps forever, the engine restarted after
// every action (SIGTERM, or SIGKILL): exactly three actions in the hour, one
// decision for the held incident and one budget notice, however many engine
// lives and panics.
TEST_P(FlappingVm, GetsThreeActionsInTheHourAcrossRestarts) {
  const int sig = GetParam();
  for (int life = 0; life < 4; ++life) {
    ASSERT_TRUE(start()) << read_file(dir_.file("engine.log"));
    flap("db-1");
    int status = stop(sig);
    if (sig == SIGTERM) {
      EXPECT_EQ(status, 0) << read_file(dir_.file("engine.log"));
    }
  }
  // A fifth life: the restored incident is still held, so panics are
  // accepted and join it without a decision.
  ASSERT_TRUE(start()) << read_file(dir_.file("engine.log"));
  const long long before = decisions();
  ASSERT_TRUE(send_until_accepted(5, [&] { return panic_frame("db-1"); }))
      << read_file(dir_.file("engine.log"));
  EXPECT_EQ(decisions(), before) << read_file(dir_.file("engine.log"));
  stop(sig);
  EXPECT_EQ(proposed(), 3);
  EXPECT_EQ(count("verb = 'reset' AND outcome = 'suppressed' AND policy = 'budget'"), 1);
  EXPECT_EQ(count("verb = 'notify' AND reason LIKE '%used its action budget%'"), 1)
      << "one budget notice, not one per engine life";
  EXPECT_TRUE(audit::verify_log(db_)->ok);
}

INSTANTIATE_TEST_SUITE_P(Stops, FlappingVm, ::testing::Values(SIGTERM, SIGKILL),
                         [](const auto& info) { return info.param == SIGTERM ? "Sigterm" : "Sigkill"; });

// Killed between dispatch and result: the next engine re-sends the same id,
// and another panic of that VM is no new decision while the action is in
// flight.
TEST_F(EngineRestartTest, AKilledEngineResendsItsActionAndDoesNotDecideTwice) {
  ASSERT_TRUE(start());
  ASSERT_NE(panic_until_decided("db-1"), "");
  ASSERT_TRUE(medic::testing::wait_until([&] {
    act_->poll();
    return !act_->actions.empty();
  }, 20s));
  const std::string id = act_->actions[0].id();
  stop(SIGKILL);

  ASSERT_TRUE(start());
  ASSERT_TRUE(medic::testing::wait_until([&] {
    act_->poll();
    return !act_->actions.empty();
  }, 20s));
  EXPECT_EQ(act_->actions[0].id(), id);
  // Panics the restarted engine has read (not merely sent), while the reset runs.
  ASSERT_TRUE(send_until_accepted(5, [&] { return panic_frame("db-1"); }));
  EXPECT_EQ(decisions(), 1) << "no second decision while the reset is in flight";
  ASSERT_TRUE(heal(1));
  // Positive control: finished, the VM may be acted on again.
  ASSERT_NE(panic_until_decided("db-1"), "");
  EXPECT_EQ(proposed(), 2);
}

// A captured signed panic replayed to a restarted engine within the skew.
TEST_F(EngineRestartTest, AReplayedEnvelopeIsRefusedByARestartedEngine) {
  ASSERT_TRUE(start());
  const std::string captured = panic_until_decided("db-1");
  ASSERT_NE(captured, "");
  ASSERT_TRUE(heal(1));
  ASSERT_EQ(stop(SIGTERM), 0);

  ASSERT_TRUE(start());
  // The SUB joins asynchronously: send the replay until the engine refuses it.
  ASSERT_TRUE(medic::testing::wait_until(
      [&] {
        send(captured);
        return read_file(dir_.file("engine.log")).find("(replayed)") != std::string::npos;
      },
      10s))
      << read_file(dir_.file("engine.log"));
  EXPECT_EQ(decisions(), 1);
  // Positive control: a fresh panic of the same VM is accepted.
  ASSERT_NE(panic_until_decided("db-1"), "");
  EXPECT_EQ(proposed(), 2);
}

// Down past the action's expiry; the actuator ran it and answers afterwards.
TEST_F(EngineRestartTest, AResultThatArrivesAfterALongOutageIsRecordedAsSucceeded) {
  dir_.write("ttl_ms", "1000");
  ASSERT_TRUE(start());
  ASSERT_NE(panic_until_decided("db-1"), "");
  ASSERT_TRUE(medic::testing::wait_until([&] {
    act_->poll();
    return !act_->actions.empty();
  }, 20s));
  const medic::v1::Action action = act_->actions[0];
  // action_ttl honoured: the action expires 1 s after it was issued.
  EXPECT_NEAR(action.expires_at_ns() - action.issued_at_ns(), 1e9, 2e8);
  stop(SIGKILL);
  // The engine stays down until the action's expiry has passed on the wall
  // clock its SystemClock reads.
  ASSERT_TRUE(medic::testing::wait_until(
      [&] { return to_ns(SystemClock().now()) > action.expires_at_ns() + 200'000'000; }, 5s));
  ASSERT_TRUE(start());
  // Expired, it is not sent again; the actuator (which ran it) reports it now.
  medic::v1::ActionResult r;
  r.set_action_id(action.id());
  r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
  r.set_healed(true);
  act_->result(r);
  ASSERT_TRUE(medic::testing::wait_until([&] {
    act_->poll();
    return medic::testing::query_number(db_, "SELECT count(*) FROM transitions WHERE action_id = '" +
                                                 action.id() + "' AND state = 'succeeded'") == 1;
  }, 20s)) << read_file(dir_.file("engine.log"));
  EXPECT_EQ(medic::testing::query_number(db_, "SELECT count(*) FROM transitions WHERE action_id = '" +
                                                  action.id() + "' AND state = 'timed_out'"),
            0);
}

// The log on a small tmpfs this test mounts, filled while an action runs:
// the engine degrades, does not acknowledge the result it cannot record (so
// the actuator keeps it), says so in its status, and once space returns
// records the result and acknowledges it by itself. A real engine process
// on a real SQLite file on a really full file system.
TEST_F(EngineRestartTest, AFullDiskDegradesWithoutAnAckAndRecoversWhenSpaceReturns) {
  const std::string mnt = dir_.file("mnt");
  std::filesystem::create_directories(mnt);
  // The tests run as root (CI, make test): no mount is a failure, not a skip.
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=4m"), 0)
      << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  db_ = mnt + "/audit.db";
  dir_.write("db", db_);
  ASSERT_TRUE(start()) << read_file(dir_.file("engine.log"));
  ASSERT_NE(panic_until_decided("db-1"), "") << read_file(dir_.file("engine.log"));
  ASSERT_TRUE(medic::testing::wait_until(
      [&] {
        act_->poll();
        return !act_->actions.empty();
      },
      20s));
  const std::string id = act_->actions[0].id();
  {  // every byte that is left goes to a ballast file
    std::ofstream ballast(mnt + "/ballast", std::ios::binary);
    const std::string block(4096, 'x');
    while (ballast.write(block.data(), block.size())) {
    }
  }
  medic::v1::ActionResult r;
  r.set_action_id(id);
  r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
  r.set_healed(true);
  act_->result(r);
  ASSERT_TRUE(medic::testing::wait_until(
      [&] {
        act_->poll();
        return read_file(dir_.file("status")).find("degraded") != std::string::npos;
      },
      20s))
      << "the full disk was never noticed: " << read_file(dir_.file("status"));
  // Degraded for a while: the result is neither acknowledged nor lost.
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until) act_->poll();
  EXPECT_TRUE(act_->result_acks.empty())
      << "a result it could not record was acknowledged; succeeded rows: "
      << medic::testing::query_number(db_, "SELECT count(*) FROM transitions WHERE action_id = '" +
                                               id + "' AND state = 'succeeded'")
      << "\n"
      << read_file(dir_.file("engine.log"));
  EXPECT_NE(read_file(dir_.file("engine.log")).find("degraded"), std::string::npos)
      << read_file(dir_.file("engine.log"));

  std::filesystem::remove(mnt + "/ballast");  // space returns
  ASSERT_TRUE(medic::testing::wait_until(
      [&] {
        act_->poll();
        return !act_->result_acks.empty();
      },
      30s))
      << read_file(dir_.file("engine.log"));
  EXPECT_EQ(act_->result_acks[0], id);
  ASSERT_TRUE(medic::testing::wait_until(
      [&] { return read_file(dir_.file("status")).find("degraded") == std::string::npos; }, 10s))
      << read_file(dir_.file("status"));
  ASSERT_EQ(stop(SIGTERM), 0) << read_file(dir_.file("engine.log"));
  EXPECT_EQ(
      medic::testing::query_number(db_, "SELECT count(*) FROM transitions WHERE action_id = '" +
                                            id + "' AND state = 'succeeded'"),
      1);
  EXPECT_TRUE(audit::verify_log(db_)->ok);
}

}  // namespace
}  // namespace medic::node
