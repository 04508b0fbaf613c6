// Operator requests end to end: a rule that needs approval, a real engine
// (EngineNode) on a VirtualClock, signed panic events over CurveZMQ, and the
// `medic approve/deny/status` commands as separate processes. Approve,
// deny and expiry each end up in the audit log with who did it; a request
// signed by a non-operator key is refused.
#include "tests/integration/control_fixture.h"

namespace medic {
namespace {

TEST_F(ControlFlowTest, ApproveLetsTheActionGoAndRecordsWhoApproved) {
  std::string id = pending_for("db-1");
  ASSERT_FALSE(id.empty());
  auto status = cli({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find(id), std::string::npos) << status.out;
  auto r = cli({"approve", id, "--comment", "replica is healthy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("approved " + id), std::string::npos);
  std::string states = state_and_actor(id);
  EXPECT_NE(states.find("approved:alice"), std::string::npos) << states;
  EXPECT_NE(states.find("dispatched:engine"), std::string::npos) << states;
  // Approving again is refused with a reason.
  auto again = cli({"approve", id});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("refused"), std::string::npos) << again.err;
}

TEST_F(ControlFlowTest, DenyStopsTheActionWithTheReason) {
  std::string id = pending_for("db-2");
  ASSERT_FALSE(id.empty());
  auto r = cli({"deny", id, "--reason", "maintenance in progress"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string states = state_and_actor(id);
  EXPECT_NE(states.find("denied:alice"), std::string::npos) << states;
  EXPECT_EQ(states.find("dispatched"), std::string::npos) << states;
}

TEST_F(ControlFlowTest, ApprovalThatNeverComesExpires) {
  std::string id = pending_for("db-3");
  ASSERT_FALSE(id.empty());
  clock_.advance(31s);
  for (int i = 0; i < 50; ++i) node_->run_once(1ms);
  std::string states = state_and_actor(id);
  EXPECT_NE(states.find("expired"), std::string::npos) << states;
  EXPECT_EQ(states.find("dispatched"), std::string::npos) << states;
}

TEST_F(ControlFlowTest, RequestSignedByANonOperatorKeyIsRefused) {
  std::string id = pending_for("db-4");
  ASSERT_FALSE(id.empty());
  auto r = cli({"approve", id}, "host-a.key");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no reply"), std::string::npos) << r.err;
  std::string states = state_and_actor(id);
  EXPECT_EQ(states.find("approved"), std::string::npos) << states;
}

TEST_F(ControlFlowTest, SilenceHoldsNewActionsOnTheVm) {
  auto r = cli({"silence", "--vm", "db-5", "--for", "1h", "--reason", "disk replacement",
                "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("on vm=db-5 for 1h (disk replacement)"), std::string::npos) << r.out;
  medic::v1::EventBatch b;
  auto* e = b.add_events();
  e->set_host("host-a");
  e->set_vm("db-5");
  e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
  bool suppressed = false;
  testing::wait_until([&] {
    pub_.send(zmq::buffer(sealer_->seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(),
                                        clock_.now())),
              zmq::send_flags::dontwait);
    node_->run_once(5ms);
    for (const auto& d : rec_.decisions) {
      suppressed = suppressed || (d.vm == "db-5" && d.outcome == rules::Outcome::kSuppressed &&
                                  d.policy == rules::Policy::kSilence);
    }
    return suppressed;
  }, 10s);
  EXPECT_TRUE(suppressed);
  auto status = cli({"status"});
  EXPECT_NE(status.out.find("disk replacement"), std::string::npos) << status.out;
}

}  // namespace
}  // namespace medic
