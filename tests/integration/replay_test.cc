// `medic record` and `medic rules replay --diff` on a real fleet: the
// examples' engine and a simulated agent (scripts/make-example-keys), with a
// recorder listed as one more subscriber in the agent's `engines:`, all real
// processes. Two VMs are made to panic (`medic inject`); the engine resets
// them. Replaying the recording with the engine's own rules and policies
// finds exactly its decisions (no difference); changed rules show the action
// they remove and the one they add, by VM.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/json.h"
#include "fabric/trust.h"
#include "tests/testing/daemon.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using testing::Daemon;
using testing::medic_binary;
using testing::query_number;
using testing::read_file;
using testing::replace_all;
using testing::write_file;

constexpr const char* kLiveRules =
    "rules:\n"
    "  - {name: guest-panicked, on: vm.panicked, do: reset, cooldown: 2m}\n";

uint64_t recorded_bytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) n += e.file_size(ec);
  return n;
}

class ReplayFleet : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.file("fleet");
    ::setenv("MEDIC", medic_binary().c_str(), 1);
    auto made =
        testing::run_command({testing::source_dir() + "/scripts/make-example-keys", dir_}, 30s);
    ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
    auto key = testing::run_command({medic_binary(), "keygen", "-o", dir_ + "/recorder.key"});
    ASSERT_EQ(key.exit_code, 0) << key.err;
    recorder_key_ = key.out.substr(0, 64);
    auto trust = fabric::TrustStore::load(dir_ + "/trust.yaml");
    ASSERT_OK(trust);
    engine_key_ = fabric::key_id(trust->find_name("engine-1")->key);
    write_configs();
    if (HasFatalFailure()) return;
    start_daemons();
  }

  void TearDown() override {
    if (agent_) agent_->terminate();
    if (recorder_) recorder_->terminate();
    if (engine_) engine_->terminate();
  }

  // Our own loopback ports and rules; no random faults, quick boots; and the
  // recorder as a second subscriber of host-a's collector.
  void write_configs() {
    std::string engine = read_file(dir_ + "/engine.yaml");
    std::string agent = read_file(dir_ + "/agent.yaml");
    engine = replace_all(engine, "tcp://0.0.0.0:", "tcp://127.0.0.1:");
    for (const char* port : {"7701", "7702", "7703", "7704"}) {
      const std::string to = ":" + std::to_string(testing::free_port());
      if (std::string(port) == "7704") control_ = "tcp://127.0.0.1" + to;
      engine = replace_all(engine, std::string(":") + port, to);
      if (std::string(port) != "7704") agent = replace_all(agent, std::string(":") + port, to);
    }
    rec_events_ = "tcp://127.0.0.1:" + std::to_string(testing::free_port());
    rec_urgent_ = "tcp://127.0.0.1:" + std::to_string(testing::free_port());
    agent = replace_all(agent, "faults_per_hour: 12", "faults_per_hour: 0");
    agent = replace_all(agent, "boot_time: 20s", "boot_time: 2s");
    agent = replace_all(agent, "\nactuator:\n",
                        "\n    - name: recorder\n      key: " + recorder_key_ + "\n      events: " +
                            rec_events_ + "\n      urgent: " + rec_urgent_ + "\nactuator:\n");
    write_file(dir_ + "/engine.yaml", engine);
    write_file(dir_ + "/agent.yaml", agent);
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/rules")) {
      std::filesystem::remove(e.path());
    }
    write_file(dir_ + "/rules/live.rules.yaml", kLiveRules);
  }

  void start_daemons() {
    recorder_ = std::make_unique<Daemon>(
        std::vector<std::string>{medic_binary(), "record", "--key", dir_ + "/recorder.key",
                                 "--trust", dir_ + "/trust.yaml", "--events", rec_events_,
                                 "--urgent", rec_urgent_, "--dir", recording(), "--keep", "1h"},
        dir_ + "/recorder.log");
    engine_ = std::make_unique<Daemon>(
        std::vector<std::string>{medic_binary(), "engine", "-c", dir_ + "/engine.yaml"},
        dir_ + "/engine.log");
    agent_ = std::make_unique<Daemon>(
        std::vector<std::string>{medic_binary(), "agent", "-c", dir_ + "/agent.yaml"},
        dir_ + "/agent.log");
    ASSERT_OK(recorder_->start());
    ASSERT_OK(engine_->start());
    ASSERT_TRUE(testing::wait_until(
        [&] { return read_file(dir_ + "/recorder.log").find("record: up") != std::string::npos; },
        10s))
        << logs();
    ASSERT_OK(agent_->start());
  }

  testing::CommandResult operator_command(std::vector<std::string> args) {
    std::vector<std::string> argv{medic_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& a : {std::string("--engine"), control_, std::string("--engine-key"),
                                 engine_key_, std::string("--key"), dir_ + "/operator.key",
                                 std::string("--trust"), dir_ + "/trust.yaml"}) {
      argv.push_back(a);
    }
    return testing::run_command(argv, 20s);
  }

  // The ids of host-a's VMs once the engine has heard of them.
  std::vector<std::string> vm_ids() {
    std::vector<std::string> ids;
    testing::wait_until(
        [&] {
          auto r = operator_command({"hosts", "--vms", "--json"});
          auto j = parse_json(r.out);
          if (r.exit_code != 0 || !j.ok() || !(*j)["hosts"].is_array()) return false;
          ids.clear();
          for (const auto& h : (*j)["hosts"]) {
            for (const auto& v : h["vm_list"]) ids.push_back(v["id"].get<std::string>());
          }
          return ids.size() >= 2;
        },
        30s);
    return ids;
  }

  // Injects a panic and waits until the engine's reset of it healed.
  void panic_and_heal(const std::string& vm, long long decisions_after) {
    auto r = operator_command({"inject", "panic", vm});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ASSERT_TRUE(testing::wait_until(
        [&] {
          return query_number(db(), "select count(*) from decisions") >= decisions_after &&
                 query_number(db(), "select count(*) from transitions where state = 'succeeded'") >=
                     decisions_after;
        },
        40s))
        << logs();
  }

  testing::CommandResult replay(const std::string& rules_dir, bool json = false) {
    std::vector<std::string> argv{medic_binary(), "rules",
                                  "replay",       recording(),
                                  "--rules",      rules_dir,
                                  "--options",    dir_ + "/engine.yaml",
                                  "--trust",      dir_ + "/trust.yaml",
                                  "--diff",       db()};
    if (json) argv.push_back("--json");
    return testing::run_command(argv, 60s);
  }

  std::string recording() const { return dir_ + "/recording"; }
  std::string db() const { return dir_ + "/audit.db"; }
  std::string logs() const {
    return read_file(dir_ + "/engine.log") + read_file(dir_ + "/agent.log") +
           read_file(dir_ + "/recorder.log");
  }

  testing::TempDir tmp_;
  std::string dir_, control_, engine_key_, recorder_key_, rec_events_, rec_urgent_;
  std::unique_ptr<Daemon> recorder_, engine_, agent_;
};

TEST_F(ReplayFleet, TheEnginesOwnRulesReplayToItsDecisionsAndChangedRulesShowTheirDifference) {
  ASSERT_TRUE(testing::wait_until([&] { return recorded_bytes(recording()) > 4096; }, 30s))
      << "the recorder got nothing:\n"
      << logs();
  const std::vector<std::string> vms = vm_ids();
  ASSERT_GE(vms.size(), 2u) << logs();
  const std::string a = vms[0], b = vms[1];
  panic_and_heal(a, 1);
  if (HasFatalFailure()) return;
  panic_and_heal(b, 2);
  if (HasFatalFailure()) return;
  // The heartbeats after the heal reach the recording too.
  const uint64_t so_far = recorded_bytes(recording());
  ASSERT_TRUE(
      testing::wait_until([&] { return recorded_bytes(recording()) > so_far + 2048; }, 20s));
  EXPECT_EQ(agent_->terminate(), 0) << logs();
  EXPECT_EQ(recorder_->terminate(), 0) << logs();
  EXPECT_EQ(engine_->terminate(), 0) << logs();
  EXPECT_NE(read_file(dir_ + "/recorder.log").find("0 refused"), std::string::npos) << logs();
  ASSERT_EQ(query_number(db(), "select count(*) from decisions"), 2) << logs();

  // The same rules and policies: what the engine did, and nothing else.
  auto same = replay(dir_ + "/rules");
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  EXPECT_NE(same.out.find(", 0 refused)"), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("decisions (2):"), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("actions answered as live: 2; by the stand-in (succeeded): 0"),
            std::string::npos)
      << same.out;
  EXPECT_NE(same.out.find("compared with " + db() + ": 2 the same, no differences"),
            std::string::npos)
      << same.out;

  // Candidate rules: A is restarted by a new rule instead of reset.
  const std::string candidate = tmp_.file("candidate");
  std::filesystem::create_directories(candidate);
  write_file(candidate + "/candidate.rules.yaml",
             "rules:\n"
             "  - {name: guest-panicked, on: vm.panicked, where: vm.id != \"" +
                 a +
                 "\", do: reset, cooldown: 2m}\n"
                 "  - {name: a-restart, on: vm.panicked, where: vm.id == \"" +
                 a + "\", do: restart}\n");
  auto changed = replay(candidate);
  EXPECT_EQ(changed.exit_code, 1) << changed.out << changed.err;
  EXPECT_NE(changed.out.find("1 the same, 1 added, 1 removed, 0 changed"), std::string::npos)
      << changed.out;
  auto j = replay(candidate, true);
  auto parsed = parse_json(j.out);
  ASSERT_OK(parsed) << j.out;
  const Json& diff = (*parsed)["diff"]["differences"];
  ASSERT_TRUE(diff.contains("vm " + a)) << j.out;
  EXPECT_FALSE(diff.contains("vm " + b)) << j.out;
  const Json& entries = diff["vm " + a];
  ASSERT_EQ(entries.size(), 2u) << j.out;
  for (const auto& e : entries) {
    if (e["kind"] == "removed") {
      EXPECT_EQ(e["live"]["verb"], "reset");
      EXPECT_EQ(e["live"]["rule"], "guest-panicked");
    } else {
      EXPECT_EQ(e["kind"], "added");
      EXPECT_EQ(e["candidate"]["verb"], "restart");
      EXPECT_EQ(e["candidate"]["rule"], "a-restart");
    }
  }
}

}  // namespace
}  // namespace medic
