// `audit why` judges healing by the engine's heal verdicts, links ladder
// steps, reads the approver's comment from the signed request and still
// reads a log written before heal verdicts were recorded. The whole stories,
// recorded by a real engine, are golden files (tests/integration/why_golden_test.cc).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "tests/testing/testing.h"
#include "tests/unit/audit/fixture.h"

namespace medic::audit {
namespace {

using test::at_ms;
using test::commit;
using test::decision;
using test::step;

class WhyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("audit.db");
    auto s = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
    ASSERT_OK(s);
    store_ = std::move(*s);
  }

  // A reset of web-1 on a panic at 0 ms that the actuator reports done at
  // 3.1 s, seeing the VM healthy itself; `id` is its action id.
  void executed(const std::string& id) {
    auto ev = commit(*store_, store_->append_evidence(
                                  {at_ms(0), keys_.panic_batch("web-1", at_ms(0)), "host-a"}));
    commit(*store_, store_->append_decision(decision(id, "web-1", at_ms(20), ev)));
    commit(*store_, store_->append_transition(step(id, ActionState::kDispatched, at_ms(30))));
    auto res = commit(*store_, store_->append_evidence(
                                   {at_ms(3100), keys_.result(id, at_ms(40), at_ms(3000), true),
                                    "host-a"}));
    commit(*store_, store_->append_transition(step(id, ActionState::kSucceeded, at_ms(3100),
                                                   "host-a", "executed", res)));
  }

  Seq verdict(const std::string& id, Time at, bool healed, const std::string& detail,
              const std::string& next = "") {
    std::vector<Record> batch;
    batch.push_back(Record::of(HealVerdict{id, at, healed, detail, next, 0}));
    return commit(*store_, store_->append_batch(std::move(batch)));
  }

  std::string why(const std::string& id, bool json = false) {
    if (store_) {
      EXPECT_OK(store_->close());
    }
    auto r = AuditReader::open(path_);
    EXPECT_OK(r);
    auto h = r->history(id);
    EXPECT_OK(h);
    if (!h.ok()) return "";
    return json ? why_json(*h) : why_text(*h);
  }

  VirtualClock clock_;  // before the store: outlives it
  testing::TempDir dir_;
  std::string path_;
  test::Keys keys_;
  AuditStorePtr store_;
};

TEST_F(WhyTest, AVerbThatSucceededIsNotCalledHealedWithoutTheEnginesVerdict) {
  executed("a-1");
  executed("a-2");
  verdict("a-2", at_ms(8000), true, "vm.heartbeat came back");
  const std::string unjudged = why("a-1");
  EXPECT_NE(unjudged.find("Answer: reset succeeded; not judged yet"), std::string::npos)
      << unjudged;
  EXPECT_EQ(unjudged.find("Healed: yes"), std::string::npos) << unjudged;
  EXPECT_EQ(unjudged.find("time to heal"), std::string::npos) << unjudged;
  // The actuator's own look is reported as that, not as the verdict.
  EXPECT_NE(unjudged.find("the actuator's own look after the verb: VM healthy"),
            std::string::npos)
      << unjudged;

  const std::string healed = why("a-2");  // positive control: the verdict decides
  EXPECT_NE(healed.find("the VM healed at 2026-01-01 03:00:08.000Z (vm.heartbeat came back)"),
            std::string::npos)
      << healed;
  EXPECT_NE(healed.find("time to heal: 8.00s, from the problem's start (2026-01-01 03:00:00.000Z)"),
            std::string::npos)
      << healed;
  EXPECT_NE(why("a-2", true).find("\"time_to_heal_ms\":8000"), std::string::npos);
}

TEST_F(WhyTest, ALadderStepNamesTheStepBeforeAndWhyItClimbed) {
  executed("a-1");
  verdict("a-1", at_ms(33'000), false, "no vm.heartbeat within 30s of the step", "d-a-2");
  auto second = decision("a-2", "web-1", at_ms(33'000), 1);
  second.ladder_step = 1;  // stored 0-based
  commit(*store_, store_->append_decision(second));

  const std::string first = why("a-1");
  EXPECT_NE(first.find("Healed: no, judged 2026-01-01 03:00:33.000Z: no vm.heartbeat within 30s"),
            std::string::npos)
      << first;
  EXPECT_NE(first.find("the engine climbed to step 2 (reset, a-2)"), std::string::npos) << first;
  const std::string text = why("a-2");
  EXPECT_NE(text.find("ladder step 2 (reset)"), std::string::npos) << text;
  EXPECT_NE(text.find("climbed from step 1 (reset, a-1), which did not heal the VM: no "
                      "vm.heartbeat within 30s of the step"),
            std::string::npos)
      << text;
  const std::string json = why("a-2", true);
  EXPECT_NE(json.find("\"ladder_step\":2"), std::string::npos) << json;
  EXPECT_NE(json.find("\"previous_step\":{\"id\":\"a-1\",\"verb\":\"reset\",\"ladder_step\":1"),
            std::string::npos)
      << json;
}

TEST_F(WhyTest, TheApproversCommentIsReadFromTheSignedRequest) {
  test::populate(*store_, keys_);
  const std::string text = why("a-1");
  EXPECT_NE(text.find("approved by alice at 2026-01-01 03:00:00.900Z, comment: \"looked at the "
                      "console, go\""),
            std::string::npos)
      << text;
  EXPECT_NE(why("a-1", true).find("\"comment\":\"looked at the console, go\""), std::string::npos);
}

TEST_F(WhyTest, ALogWrittenBeforeHealVerdictsStillReadsAndVerifies) {
  executed("a-1");
  ASSERT_OK(store_->close());
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE heal_verdicts", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const std::string text = why("a-1");
  EXPECT_NE(text.find("Healed: not judged yet"), std::string::npos) << text;
  auto report = verify_log(path_);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->text();
}

}  // namespace
}  // namespace medic::audit
