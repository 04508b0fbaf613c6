// `medic request` end to end: a requester's signed ask to a real engine over
// CurveZMQ, checked against the key's scope, decided through the whole policy
// chain (budget, storm guard, approval where the scope says so), dispatched
// to the agent of a simulated host; with --wait the requester gets a signed
// reply at every stage until the engine says done. Refusals name what
// refused and why; every request is in the audit log, accepted or not.
#include <filesystem>

#include "core/json.h"
#include "tests/integration/control_fixture.h"
#include "tests/testing/daemon.h"

namespace medic {
namespace {

class ActionRequestTest : public SimHostFlowTest {
 protected:
  std::string more_trusted() override {
    std::string out;
    for (const auto& [name, scope] : std::vector<std::pair<std::string, std::string>>{
             {"app-1", "hosts: [host-a], verbs: [reboot, reset, restart], approval: [restart]"},
             {"app-2", "hosts: [host-b], verbs: [reboot]"}}) {
      auto id = fabric::Identity::generate();
      EXPECT_OK(id.save(dir_.file(name + ".key")));
      out += "  - {name: " + name + ", key: " + id.id() + ", roles: [requester], " + scope + "}\n";
    }
    return out;
  }

  void configure(node::EngineConfig& c) override {
    c.engine.defaults.cooldown = Duration(0);
    c.engine.defaults.budget = {1, std::chrono::hours(1)};
    c.engine.defaults.approval_timeout = 10s;
  }

  testing::CommandResult request(std::vector<std::string> args, const std::string& key = "app-1") {
    args.insert(args.begin(), "request");
    return cli(args, key + ".key", "15s");
  }

  long long rows(const std::string& sql) { return testing::query_number(db_, sql); }

  std::string decision_of(const std::string& rule, const std::string& vm) {
    for (const auto& d : rec_.decisions) {
      if (d.rule == rule && d.vm == vm) return d.id;
    }
    return "";
  }
};

TEST_F(ActionRequestTest, AnInScopeRequestIsDispatchedAndHealedWithAReplyAtEveryStage) {
  tick_ = 2ms;  // virtual time moves while the CLI waits (the VM boots in 2 s)
  auto r = request({"reset", "--vm", vm_, "--reason", "app unresponsive", "--wait", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto v = replies(r.out);
  EXPECT_EQ(stages(v), (std::vector<std::string>{"accepted", "dispatched", "result", "healed"}))
      << r.out;
  ASSERT_FALSE(v.empty());
  EXPECT_TRUE(v.back()["done"].get<bool>());
  const std::string id = decision_of("request:reset", vm_);
  ASSERT_FALSE(id.empty());
  for (const auto& j : v) {
    EXPECT_EQ(j["decision"], id);
    EXPECT_EQ(j["vm"], vm_);
  }
  EXPECT_EQ(node_->followed_requests(), 0u);
  // The audit story: who asked, why, on which signed request; it healed.
  EXPECT_EQ(rows("SELECT count(*) FROM decisions WHERE decision_id = '" + id +
                 "' AND outcome = 'proposed' AND reason LIKE "
                 "'trigger: request % by app-1: reset (app unresponsive)' AND evidence != '[]'"),
            1);
  EXPECT_EQ(rows("SELECT count(*) FROM operator_requests WHERE verb = 'request reset' AND "
                 "accepted = 1 AND operator_name = 'app-1' AND target = '" +
                 id + "'"),
            1);
  auto why = testing::run_command({testing::medic_binary(), "audit", "why", id, "--db", db_}, 20s);
  EXPECT_EQ(why.exit_code, 0) << why.err;
  for (const std::string& line : {std::string("signed by app-1"), std::string("Healed: yes"),
                                  std::string("by app-1: reset (app unresponsive)")}) {
    EXPECT_NE(why.out.find(line), std::string::npos) << line << "\n" << why.out;
  }
}

TEST_F(ActionRequestTest, RefusalsNameTheScopeTheVerbOrTheUnknownVm) {
  auto outside = request({"reboot", "--vm", vm_, "--reason", "x"}, "app-2");
  EXPECT_EQ(outside.exit_code, 1);
  EXPECT_NE(outside.err.find("refused: VM " + vm_ +
                             " on host host-a is outside app-2's scope "
                             "(hosts host-b; any VM)"),
            std::string::npos)
      << outside.err;
  auto verb = request({"stop", "--vm", vm_, "--reason", "x"});
  EXPECT_EQ(verb.exit_code, 1);
  EXPECT_NE(verb.err.find("app-1 may not ask for stop (its verbs: reboot, reset, restart)"),
            std::string::npos)
      << verb.err;
  auto unknown = request({"reboot", "--vm", "vm-nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no VM \"vm-nope\""), std::string::npos) << unknown.err;
  // A requester may send requests only: not an operator's commands.
  auto status = cli({"status"}, "app-1.key");
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_NE(status.err.find("\"app-1\" is a requester: it may send action requests"),
            std::string::npos)
      << status.err;
  auto silence = cli({"silence", "--vm", vm_, "--for", "1h", "--reason", "x"}, "app-1.key");
  EXPECT_EQ(silence.exit_code, 1);
  EXPECT_EQ(rows("SELECT count(*) FROM operator_requests WHERE accepted = 0 AND operator_name IN "
                 "('app-1', 'app-2')"),
            4);  // the status query is not recorded
  EXPECT_EQ(rows("SELECT count(*) FROM decisions WHERE rule LIKE 'request:%'"), 0);
  auto bad = request({"reboot"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("name exactly one of --vm and --label"), std::string::npos) << bad.err;
}

TEST_F(ActionRequestTest, ASpentBudgetRefusesTheNextRequestAndSaysSo) {
  tick_ = 2ms;
  ASSERT_EQ(request({"reset", "--vm", vm_, "--wait"}).exit_code, 0);
  tick_ = Duration(0);
  auto again = request({"reset", "--vm", vm_, "--wait", "--json"});
  EXPECT_EQ(again.exit_code, 1);
  auto v = replies(again.out);
  ASSERT_EQ(v.size(), 1u) << again.out;
  EXPECT_EQ(v[0]["stage"], "refused");
  EXPECT_TRUE(v[0]["done"].get<bool>());
  EXPECT_NE(v[0]["error"].get<std::string>().find("refused by budget"), std::string::npos)
      << again.out;
  EXPECT_EQ(v[0]["answer"]["vms"][0]["policy"], "budget");
  EXPECT_EQ(rows("SELECT count(*) FROM decisions WHERE rule = 'request:reset' AND "
                 "outcome = 'suppressed' AND policy = 'budget'"),
            1);
}

TEST_F(ActionRequestTest, AVerbTheScopeSendsForApprovalWaitsAndExpiresUnanswered) {
  tick_ = 10ms;  // 10 s of approval timeout pass while the CLI waits
  auto r = request({"restart", "--vm", vm_, "--reason", "leak", "--wait", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto v = replies(r.out);
  EXPECT_EQ(stages(v), (std::vector<std::string>{"pending approval", "expired"})) << r.out;
  ASSERT_EQ(v.size(), 2u);
  EXPECT_NE(v[0]["text"].get<std::string>().find("the requester's scope requires operator "
                                                 "approval"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(v[1]["done"].get<bool>());
  // It expired because nobody answered, not because the (healthy) VM's
  // heartbeats came: a request is not answered by a healthy sign.
  EXPECT_NE(v[1]["text"].get<std::string>().find("no operator approved it in time"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(rows("SELECT count(*) FROM transitions WHERE state = 'expired'"), 1);
}

TEST_F(ActionRequestTest, AnApprovedRequestGoesOnToDispatchAndHeal) {
  fabric::ControlClient* raw = nullptr;
  auto app = fabric::Identity::load(dir_.file("app-1.key"));
  ASSERT_OK(app);
  auto client = fabric::ControlClient::connect(
      {node_->control_endpoint(), engine_id_->public_key()}, *app, *trust_, &clock_);
  ASSERT_OK(client);
  raw = client->get();
  medic::v1::ControlRequest q;
  q.set_request_id("req-approve");
  q.mutable_request()->set_verb(medic::v1::VERB_RESTART);
  q.mutable_request()->set_vm(vm_);
  q.mutable_request()->set_follow(true);
  ASSERT_OK(raw->send(q));
  std::vector<medic::v1::ControlReply> got;
  auto read = [&] {
    auto r = raw->next("req-approve", 1ms);
    if (r.ok()) got.push_back(*r);
    return !got.empty() && got.back().done();
  };
  ASSERT_TRUE(run_until([&] {
    read();
    return !got.empty();
  }));
  ASSERT_EQ(got[0].stage(), medic::v1::STAGE_PENDING_APPROVAL);
  ASSERT_OK(node_->engine().approve(got[0].decision_id(), "alice"));
  ASSERT_TRUE(run_until(read));
  std::vector<medic::v1::Stage> seen;
  for (const auto& r : got) seen.push_back(r.stage());
  EXPECT_EQ(seen,
            (std::vector<medic::v1::Stage>{medic::v1::STAGE_PENDING_APPROVAL,
                                           medic::v1::STAGE_APPROVED, medic::v1::STAGE_DISPATCHED,
                                           medic::v1::STAGE_RESULT, medic::v1::STAGE_HEALED}));
  EXPECT_NE(state_and_actor(got[0].decision_id()).find("approved:alice"), std::string::npos)
      << state_and_actor(got[0].decision_id());
}

// The requester goes away after the first reply: the action goes on, the
// log has all of it, and the engine forgets the follower once it is done.
TEST_F(ActionRequestTest, ARequesterThatLeavesEarlyMissesItsRepliesAndNothingElseChanges) {
  auto app = fabric::Identity::load(dir_.file("app-1.key"));
  ASSERT_OK(app);
  auto client = fabric::ControlClient::connect(
      {node_->control_endpoint(), engine_id_->public_key()}, *app, *trust_, &clock_);
  ASSERT_OK(client);
  medic::v1::ControlRequest q;
  q.set_request_id("req-gone");
  q.mutable_request()->set_verb(medic::v1::VERB_RESET);
  q.mutable_request()->set_vm(vm_);
  q.mutable_request()->set_follow(true);
  ASSERT_OK((*client)->send(q));
  Result<medic::v1::ControlReply> first = timeout_error("none yet");
  ASSERT_TRUE(run_until([&] {
    first = (*client)->next("req-gone", 1ms);
    return first.ok();
  }));
  EXPECT_EQ(first->stage(), medic::v1::STAGE_ACCEPTED);
  EXPECT_EQ(node_->followed_requests(), 1u);
  client->reset();
  const std::string id = first->decision_id();
  ASSERT_TRUE(run_until([&] { return node_->followed_requests() == 0; }));
  for (int i = 0; i < 20; ++i) step();
  EXPECT_EQ(
      rows("SELECT count(*) FROM heal_verdicts WHERE action_id = '" + id + "' AND healed = 1"), 1);
  EXPECT_EQ(rows("SELECT count(*) FROM transitions WHERE action_id = '" + id +
                 "' AND state = 'succeeded'"),
            1);
}

TEST_F(ActionRequestTest, ALabelRequestAsksForEveryVmWithTheLabelInScope) {
  auto listed = fleet_->host(0).list();
  ASSERT_OK(listed);
  const std::string tier = (*listed)[0].labels.at("tier");
  size_t with = 0;
  for (const auto& vm : *listed) with += vm.labels.at("tier") == tier;
  tick_ = 2ms;
  auto r = request({"reboot", "--label", "tier=" + tier, "--reason", "deploy", "--wait", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto v = replies(r.out);
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0]["answer"]["vms"].size(), with) << r.out;
  size_t healed = 0;
  for (const auto& j : v) healed += j["stage"] == "healed";
  EXPECT_EQ(healed, with) << r.out;
  EXPECT_TRUE(v.back()["done"].get<bool>());
  EXPECT_EQ(rows("SELECT count(*) FROM operator_requests WHERE verb = 'request reboot'"),
            static_cast<long long>(with));
}

// examples/clients/request.py, from Debian's python3-zmq, python3-nacl and
// python3-protobuf, speaks the wire of docs/requests.md: it asks for a
// reset and prints the engine's signed replies until done.
TEST_F(ActionRequestTest, ThePythonClientRequestsAResetAndWaitsForTheHealedReply) {
  const std::string src = testing::source_dir();
  const std::string py = dir_.file("py");
  std::filesystem::create_directories(py);
  auto gen = testing::run_command(
      {"protoc", "--python_out=" + py, "-I", src + "/proto", src + "/proto/medic/v1/actions.proto",
       src + "/proto/medic/v1/control.proto", src + "/proto/medic/v1/envelope.proto"},
      30s);
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  tick_ = 2ms;
  auto r =
      run_stepping({"/usr/bin/env", "PYTHONPATH=" + py, "/usr/bin/python3",
                    src + "/examples/clients/request.py", "--engine", node_->control_endpoint(),
                    "--engine-key", engine_id_->id(), "--key", dir_.file("app-1.key"), "reset",
                    "--vm", vm_, "--reason", "from python", "--wait", "--timeout", "15"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("accepted: VM " + vm_ + ": accepted"), 0u) << r.out;
  EXPECT_NE(r.out.find("\ndispatched: VM " + vm_ + ": dispatched: to the actuator of host-a\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\nhealed: VM " + vm_ + ": healed"), std::string::npos) << r.out;
  const std::string id = decision_of("request:reset", vm_);
  EXPECT_EQ(rows("SELECT count(*) FROM decisions WHERE decision_id = '" + id +
                 "' AND reason LIKE '% by app-1: reset (from python)'"),
            1);
}

// A storm freeze holds a requester's ask as it holds a rule's.
class FrozenHostRequestTest : public ActionRequestTest {
 protected:
  void configure(node::EngineConfig& c) override {
    ActionRequestTest::configure(c);
    c.engine.storm.min_vms = 1;
    c.engine.storm.host_fraction = 0.4;
    c.engine.storm.host_settle = Duration(0);
    c.engine.storm.fleet_settle = Duration(0);
  }
};

TEST_F(FrozenHostRequestTest, AFrozenHostRefusesTheRequestByTheStormGuard) {
  const std::string other = fleet_->vm_ids()[1];
  ASSERT_OK(fleet_->inject(vmm::sim::FaultKind::kPanic, "host-a", other));
  ASSERT_TRUE(run_until([&] {
    for (const auto& h : node_->engine().host_views()) {
      if (h.name == "host-a" && h.frozen) return true;
    }
    return false;
  }));
  auto r = request({"reboot", "--vm", vm_, "--reason", "x", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  auto v = replies(r.out);
  ASSERT_EQ(v.size(), 1u) << r.out;
  EXPECT_EQ(v[0]["stage"], "refused");
  EXPECT_EQ(v[0]["answer"]["vms"][0]["policy"], "storm-guard") << r.out;
}

}  // namespace
}  // namespace medic
