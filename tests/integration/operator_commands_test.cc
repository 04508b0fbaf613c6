// The operator commands beyond approve/deny, each as the medic CLI in its own
// process against a real engine: silence (its checks) and silence list,
// incidents, hosts, unfreeze; their --json answers parse. Every refusal is
// asserted with its reason and has an accepted request beside it; requests
// that change something land in the audit log.
#include "tests/integration/control_fixture.h"

#include "core/json.h"
#include "tests/testing/daemon.h"

namespace medic {
namespace {

class OperatorCommandsTest : public ControlFlowTest {
 protected:
  // Panics for every VM in `vms` in one batch, until the engine has seen them.
  void panic_all(const std::vector<std::string>& vms) {
    medic::v1::EventBatch b;
    for (const auto& vm : vms) {
      auto* e = b.add_events();
      e->set_host("host-a");
      e->set_vm(vm);
      e->set_observed_at_ns(to_ns(clock_.now()));
      e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    }
    testing::wait_until([&] {
      if (node_->engine().stats().events < vms.size()) {
        pub_.send(zmq::buffer(sealer_->seal(medic::v1::KIND_EVENT_BATCH, "host-a",
                                            b.SerializeAsString(), clock_.now())),
                  zmq::send_flags::dontwait);
      }
      node_->run_once(5ms);
      return node_->engine().stats().events >= vms.size();
    }, 10s);
  }

  Json json_of(const testing::CommandResult& r) {
    auto j = parse_json(r.out);
    EXPECT_OK(j) << r.out;
    return j.ok() ? *j : Json();
  }

  long long requests(const std::string& verb, bool accepted) {
    return testing::query_number(db_, "SELECT count(*) FROM operator_requests WHERE verb = '" +
                                          verb + "' AND accepted = " + (accepted ? "1" : "0"));
  }
};

TEST_F(OperatorCommandsTest, SilenceOfAHostNoOneHeardOfIsRefusedUnlessForced) {
  auto r = cli({"silence", "--host", "host-zz", "--for", "1h", "--reason", "typo?"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no host \"host-zz\" has reported to this engine"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  auto forced = cli({"silence", "--host", "host-zz", "--for", "1h", "--reason", "new rack",
                     "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(forced.out.find("on host=host-zz for 1h (new rack)"), std::string::npos) << forced.out;
  EXPECT_EQ(requests("silence", false), 1);
  EXPECT_EQ(requests("silence", true), 1);
}

TEST_F(OperatorCommandsTest, SilenceOfAKnownVmAndLabelIsAcceptedAndUnknownOnesAreNot) {
  pending_for("db-1");
  EXPECT_EQ(cli({"silence", "--vm", "db-1", "--for", "10m", "--reason", "r"}).exit_code, 0);
  auto vm = cli({"silence", "--vm", "db-9", "--for", "10m", "--reason", "r"});
  EXPECT_EQ(vm.exit_code, 1);
  EXPECT_NE(vm.err.find("no VM \"db-9\" has reported"), std::string::npos) << vm.err;
  auto label = cli({"silence", "--label", "team=db", "--for", "10m", "--reason", "r"});
  EXPECT_EQ(label.exit_code, 1);
  EXPECT_NE(label.err.find("no VM reports a label \"team\""), std::string::npos) << label.err;
}

TEST_F(OperatorCommandsTest, SilenceLongerThanMaxSilenceIsRefusedEvenWhenForced) {
  auto r = cli({"silence", "--host", "host-a", "--for", "3650d", "--reason", "forever",
                "--force"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("longer than max_silence (7d"), std::string::npos) << r.err;
  auto week = cli({"silence", "--host", "host-a", "--for", "7d", "--reason", "a week", "--force"});
  EXPECT_EQ(week.exit_code, 0) << week.err;
}

TEST_F(OperatorCommandsTest, SilenceOfARuleThatIsNotLoadedIsRefused) {
  auto r = cli({"silence", "--rule", "db-panicd", "--for", "1h", "--reason", "r", "--force"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no rule named \"db-panicd\" is loaded"), std::string::npos) << r.err;
  EXPECT_EQ(cli({"silence", "--rule", "db-panicked", "--for", "1h", "--reason", "r"}).exit_code,
            0);
}

TEST_F(OperatorCommandsTest, SilenceNeedsExactlyOneScopeADurationAndAReason) {
  auto none = cli({"silence", "--for", "1h", "--reason", "r"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("exactly one of --vm, --host, --label, --rule"), std::string::npos);
  auto two = cli({"silence", "--vm", "a", "--host", "b", "--for", "1h", "--reason", "r"});
  EXPECT_EQ(two.exit_code, 2);
  auto no_reason = cli({"silence", "--host", "host-a", "--for", "1h"});
  EXPECT_EQ(no_reason.exit_code, 2);
  EXPECT_NE(no_reason.err.find("--reason is required"), std::string::npos) << no_reason.err;
}

TEST_F(OperatorCommandsTest, SilenceListShowsEachSilenceAsTextAndJson) {
  auto empty = cli({"silence", "list"});
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out, "no silences\n");
  ASSERT_EQ(cli({"silence", "--host", "host-a", "--for", "2h", "--reason", "rack work",
                 "--force"}).exit_code, 0);
  auto text = cli({"silence", "list"});
  EXPECT_NE(text.out.find("host=host-a  2h left  by alice: rack work"), std::string::npos)
      << text.out;
  Json j = json_of(cli({"silence", "list", "--json"}));
  ASSERT_EQ(j["silences"].size(), 1u) << dump_json(j);
  EXPECT_EQ(j["silences"][0]["scope"], "host");
  EXPECT_EQ(j["silences"][0]["value"], "host-a");
  EXPECT_EQ(j["silences"][0]["remaining_s"], 7200);
  EXPECT_EQ(j["silences"][0]["by"], "alice");
  const std::string id = j["silences"][0]["id"];
  ASSERT_EQ(cli({"unsilence", id}).exit_code, 0);
  EXPECT_EQ(cli({"silence", "list"}).out, "no silences\n");
}

TEST_F(OperatorCommandsTest, RequestsAnswerJsonSayingWhetherTheEngineAcceptedThemAndWhy) {
  auto made = cli(
      {"silence", "--host", "host-a", "--for", "1h", "--reason", "rack work", "--force", "--json"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Json ok = json_of(made);
  EXPECT_EQ(ok["request"], "silence");
  EXPECT_EQ(ok["accepted"], true);
  EXPECT_EQ(ok["error"], "");
  EXPECT_NE(ok["text"].get<std::string>().find("on host=host-a for 1h (rack work)"),
            std::string::npos)
      << made.out;
  EXPECT_EQ(ok["request_id"].get<std::string>().size(), 16u);
  auto refused = cli({"unsilence", "s-nope", "--json"});
  EXPECT_EQ(refused.exit_code, 1);
  Json no = json_of(refused);
  EXPECT_EQ(no["request"], "unsilence");
  EXPECT_EQ(no["accepted"], false);
  EXPECT_FALSE(no["error"].get<std::string>().empty()) << refused.out;
  EXPECT_NE(refused.err.find("refused: "), std::string::npos) << refused.err;
  auto deny = cli({"deny", "no-such-action", "--reason", "x", "--json"});
  EXPECT_EQ(deny.exit_code, 1);
  EXPECT_EQ(json_of(deny)["request"], "deny");
  Json status = json_of(cli({"status", "--json"}));  // a query: the engine's own JSON
  EXPECT_TRUE(status.contains("counters")) << dump_json(status);
}

TEST_F(OperatorCommandsTest, VmShowFindsAVmByNameWithItsDesiredStateAndIncident) {
  medic::v1::EventBatch b;
  auto* e = b.add_events();
  e->set_host("host-a");
  e->set_vm("vm-7");
  e->set_observed_at_ns(to_ns(clock_.now()));
  auto* st = e->mutable_state();
  st->set_state(medic::v1::VM_STATE_RUNNING);
  for (const auto& [k, v] : {std::pair{"name", "web-7"}, std::pair{"desired", "running"}}) {
    auto* l = st->add_labels();
    l->set_key(k);
    l->set_value(v);
  }
  testing::wait_until(
      [&] {
        if (!node_->engine().knows_vm("vm-7")) {
          pub_.send(zmq::buffer(sealer_->seal(medic::v1::KIND_EVENT_BATCH, "host-a",
                                              b.SerializeAsString(), clock_.now())),
                    zmq::send_flags::dontwait);
        }
        node_->run_once(5ms);
        return node_->engine().knows_vm("vm-7");
      },
      10s);
  medic::v1::EventBatch p;
  auto* panic = p.add_events();
  panic->set_host("host-a");
  panic->set_vm("vm-7");
  panic->set_observed_at_ns(to_ns(clock_.now()));
  panic->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
  ASSERT_TRUE(testing::wait_until(
      [&] {
        if (node_->engine().stats().open_incidents == 0) {
          pub_.send(zmq::buffer(sealer_->seal(medic::v1::KIND_EVENT_BATCH, "host-a",
                                              p.SerializeAsString(), clock_.now())),
                    zmq::send_flags::dontwait);
        }
        node_->run_once(5ms);
        return node_->engine().stats().open_incidents == 1;
      },
      10s));
  auto shown = cli({"vm", "show", "web-7"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("VM web-7 (vm-7) on host-a: running, desired running"),
            std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("incident "), std::string::npos) << shown.out;
  Json j = json_of(cli({"vm", "show", "vm-7", "--json"}));
  EXPECT_EQ(j["name"], "web-7");
  EXPECT_EQ(j["desired"], "running");
  EXPECT_EQ(j["state"], "running");
  ASSERT_EQ(j["incidents"].size(), 1u) << dump_json(j);
  auto unknown = cli({"vm", "show", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no VM \"nope\" (id or name) has reported to this engine"),
            std::string::npos)
      << unknown.err;
  EXPECT_EQ(requests("vm", true), 0) << "a query is not audited";
}

TEST_F(OperatorCommandsTest, IncidentsShowTheLadderStepAndWhatEachWaitsFor) {
  EXPECT_EQ(cli({"incidents"}).out, "no open incidents\n");
  std::string id = pending_for("db-1");
  ASSERT_FALSE(id.empty());
  auto text = cli({"incidents"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("db-1 on host-a  rule db-panicked  step 1/1 (reset)  open"),
            std::string::npos) << text.out;
  EXPECT_NE(text.out.find("waits for an operator: medic approve " + id + " (or deny), 30s left"),
            std::string::npos) << text.out;
  Json j = json_of(cli({"incidents", "--json"}));
  ASSERT_EQ(j["incidents"].size(), 1u) << dump_json(j);
  EXPECT_EQ(j["incidents"][0]["vm"], "db-1");
  EXPECT_EQ(j["incidents"][0]["step"], 1);
  EXPECT_EQ(j["incidents"][0]["ladder_size"], 1);
  EXPECT_EQ(j["incidents"][0]["action_id"], id);
  EXPECT_GT(j["incidents"][0]["deadline_ns"].get<int64_t>(), to_ns(clock_.now()));
}

TEST_F(OperatorCommandsTest, HostsShowLastReportAndTurnSilentWhenNothingComes) {
  EXPECT_EQ(cli({"hosts"}).out, "no hosts have reported\n");
  pending_for("db-1");
  auto text = cli({"hosts"});
  EXPECT_NE(text.out.find("host-a  1 VMs  last report 0s ago\n"), std::string::npos) << text.out;
  clock_.advance(25s);
  auto later = cli({"hosts"});
  EXPECT_NE(later.out.find("host-a  1 VMs  last report 25s ago  SILENT"), std::string::npos)
      << later.out;
  Json j = json_of(cli({"hosts", "--json"}));
  ASSERT_EQ(j["hosts"].size(), 1u) << dump_json(j);
  EXPECT_EQ(j["hosts"][0]["name"], "host-a");
  EXPECT_EQ(j["hosts"][0]["silent"], true);
  EXPECT_EQ(j["hosts"][0]["frozen"], false);
  EXPECT_EQ(j["fleet_frozen"], false);
  EXPECT_EQ(j["hosts"][0].count("vm_list"), 0u) << "VMs only when asked";
  auto vms = cli({"hosts", "--vms"});
  EXPECT_NE(vms.out.find("\n    db-1  "), std::string::npos) << vms.out;
  Json with = json_of(cli({"hosts", "--vms", "--json"}));
  ASSERT_EQ(with["hosts"][0]["vm_list"].size(), 1u) << dump_json(with);
  EXPECT_EQ(with["hosts"][0]["vm_list"][0]["id"], "db-1");
}

TEST_F(OperatorCommandsTest, UnfreezeLiftsAStormGuardFreezeAndIsRefusedWhenNothingIsFrozen) {
  auto early = cli({"unfreeze", "host-a", "--reason", "checked"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.err.find("host host-a is not frozen"), std::string::npos) << early.err;
  panic_all({"db-1", "db-2", "db-3", "db-4"});
  Json before = json_of(cli({"hosts", "--json"}));
  ASSERT_EQ(before["hosts"][0]["frozen"], true) << dump_json(before);
  auto r = cli({"unfreeze", "host-a", "--reason", "PDU replaced"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("unfroze host host-a (PDU replaced)"), std::string::npos) << r.out;
  Json after = json_of(cli({"hosts", "--json"}));
  EXPECT_EQ(after["hosts"][0]["frozen"], false) << dump_json(after);
  if (before["fleet_frozen"] == true) {
    EXPECT_EQ(cli({"unfreeze", "fleet", "--reason", "ok"}).exit_code, 0);
  }
  auto fleet = cli({"unfreeze", "fleet", "--reason", "again"});
  EXPECT_EQ(fleet.exit_code, 1);
  EXPECT_NE(fleet.err.find("the fleet is not frozen"), std::string::npos) << fleet.err;
  EXPECT_GE(requests("unfreeze", true), 1);
  EXPECT_GE(requests("unfreeze", false), 2);
}

TEST_F(OperatorCommandsTest, InjectIntoAVmNoOneHeardOfIsRefused) {
  auto r = cli({"inject", "panic", "db-9"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no VM \"db-9\" has reported to this engine"), std::string::npos) << r.err;
  EXPECT_EQ(requests("inject", false), 1);
}

TEST_F(OperatorCommandsTest, QueriesAreNotAuditedButRequestsAre) {
  ASSERT_EQ(cli({"hosts"}).exit_code, 0);
  ASSERT_EQ(cli({"incidents"}).exit_code, 0);
  ASSERT_EQ(cli({"silence", "list"}).exit_code, 0);
  EXPECT_EQ(testing::query_number(db_, "SELECT count(*) FROM operator_requests"), 0);
  ASSERT_EQ(cli({"silence", "--host", "h", "--for", "1h", "--reason", "r", "--force"}).exit_code,
            0);
  EXPECT_EQ(testing::query_number(db_, "SELECT count(*) FROM operator_requests"), 1);
}

}  // namespace
}  // namespace medic
