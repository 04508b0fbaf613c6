// `medic vm start|stop VM` end to end: the CLI's signed request to a real
// engine, decided through the policy chain as a request of its own kind,
// dispatched to the agent of a simulated host, which stops or starts the VM;
// the engine watches it reach the state asked for. A stopped VM stays
// stopped (no rule heals what a person stopped); the audit log tells who
// asked, why, on which signed request. Refusals say which policy and why.
#include "core/json.h"
#include "tests/integration/control_fixture.h"
#include "tests/testing/daemon.h"

namespace medic {
namespace {

class VmRequestTest : public SimHostFlowTest {
 protected:
  std::string rules_text() const override {
    return "rules:\n"
           "  - {name: guest-panicked, on: vm.panicked, do: reset}\n"
           "  - {name: guest-unresponsive, absent: vm.heartbeat, for: 5s,"
           " where: vm.state == \"running\", do: reboot}\n";
  }

  // The log of stop `id`: the decision (who asked, why), sent, done, healed;
  // the signed request as its evidence and as an accepted operator request.
  void expect_stop_story(const std::string& id) {
    EXPECT_EQ(rows("SELECT count(*) FROM decisions WHERE decision_id = '" + id +
                   "' AND rule = 'request:stop' AND outcome = 'proposed' AND reason LIKE "
                   "'trigger: request % by alice: stop (disk swap)' AND evidence != '[]'"),
              1);
    EXPECT_EQ(rows("SELECT count(*) FROM transitions WHERE action_id = '" + id +
                   "' AND state IN ('dispatched', 'succeeded')"),
              2);
    EXPECT_EQ(rows("SELECT count(*) FROM operator_requests WHERE verb = 'vm stop' AND accepted = 1"
                   " AND target = '" +
                   id + "'"),
              1);
    auto why =
        testing::run_command({testing::medic_binary(), "audit", "why", id, "--db", db_}, 20s);
    EXPECT_EQ(why.exit_code, 0) << why.err;
    for (const std::string& line : std::vector<std::string>{
             "Trigger: request ", "signed request ", ": stop VM " + vm_ + " (reason: disk swap)",
             "signed by alice", "Approval: asked for by alice at ", "(the request is the approval)",
             "executed; the actuator saw the VM stopped, as asked", "Healed: yes",
             "the actuator saw the VM stopped after the verb"}) {
      EXPECT_NE(why.out.find(line), std::string::npos) << line << "\n" << why.out;
    }
  }

  long long rows(const std::string& sql) { return testing::query_number(db_, sql); }

  std::string decision_of(const std::string& rule) {
    for (const auto& d : rec_.decisions) {
      if (d.rule == rule && d.vm == vm_) return d.id;
    }
    return "";
  }
};

TEST_F(VmRequestTest, AStoppedVmStaysStoppedAndStartsAgainOnRequestWithTheStoryInTheLog) {
  // The clock runs at about twice real time while the CLI waits; in all, it
  // must stay within the signed requests' 30 s skew of the wall clock.
  tick_ = 2ms;
  auto stop = cli({"vm", "stop", vm_, "--reason", "disk swap", "--wait", "--wait-for", "30s"});
  ASSERT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  const std::string id = decision_of("request:stop");
  ASSERT_FALSE(id.empty());
  EXPECT_NE(stop.out.find("stop of VM " + vm_ + ": sent to host host-a as " + id),
            std::string::npos)
      << stop.out;
  EXPECT_NE(stop.out.find("VM " + vm_ + " is stopped"), std::string::npos) << stop.out;

  // Well past guest-unresponsive's 5 s it is still stopped: no rule acted on it.
  tick_ = Duration(0);
  const size_t decided = rec_.decisions.size();
  for (int i = 0; i < 240; ++i) {
    clock_.advance(50ms);
    for (int j = 0; j < 3; ++j) step();
  }
  EXPECT_FALSE(fleet_->is_healthy(vm_));
  for (size_t i = decided; i < rec_.decisions.size(); ++i) {
    EXPECT_NE(rec_.decisions[i].vm, vm_) << "rule " << rec_.decisions[i].rule << " acted on it";
  }

  expect_stop_story(id);

  tick_ = 2ms;
  auto start = cli({"vm", "start", vm_, "--reason", "disk in", "--wait", "--wait-for", "30s",
                    "--json"});
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;
  auto j = parse_json(start.out);
  ASSERT_OK(j) << start.out;
  EXPECT_EQ((*j)["request"], "vm start");
  EXPECT_EQ((*j)["accepted"], true);
  EXPECT_EQ((*j)["outcome"], "proposed");
  EXPECT_EQ((*j)["reached"], true);
  EXPECT_EQ((*j)["state"], "running");
  EXPECT_TRUE(fleet_->is_healthy(vm_));
}

TEST_F(VmRequestTest, ARequestIsRefusedWithThePolicyThatStoppedItAndUnknownVmsAreNamed) {
  auto unknown = cli({"vm", "stop", "vm-nope", "--reason", "typo"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no VM \"vm-nope\" (id or name) has reported"), std::string::npos)
      << unknown.err;

  // A reset of the VM is in flight (the clock stands still, so it stays so).
  ASSERT_EQ(cli({"inject", "panic", vm_}).exit_code, 0);
  ASSERT_TRUE(run_until([&] { return !decision_of("guest-panicked").empty(); }));
  auto busy = cli({"vm", "stop", vm_, "--reason", "now", "--json"});
  EXPECT_EQ(busy.exit_code, 1);
  auto j = parse_json(busy.out);
  ASSERT_OK(j) << busy.out;
  EXPECT_EQ((*j)["accepted"], false);
  EXPECT_EQ((*j)["policy"], "vm-in-flight");
  EXPECT_NE((*j)["error"].get<std::string>().find(
                "refused by vm-in-flight: approved by alice, but another action on this VM is in "
                "flight"),
            std::string::npos)
      << busy.out;
  EXPECT_EQ(rows("SELECT count(*) FROM decisions WHERE rule = 'request:stop' AND outcome = "
                 "'suppressed' AND policy = 'vm-in-flight'"),
            1);
  EXPECT_EQ(rows("SELECT count(*) FROM operator_requests WHERE verb = 'vm stop' AND accepted = 0"),
            2);
  auto no_reason = cli({"vm", "stop", vm_});
  EXPECT_NE(no_reason.exit_code, 0);
  EXPECT_NE(no_reason.err.find("--reason"), std::string::npos) << no_reason.err;
}

}  // namespace
}  // namespace medic
