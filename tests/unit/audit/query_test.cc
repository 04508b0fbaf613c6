#include <gmock/gmock.h>

#include "tests/unit/audit/fixture.h"
#include "tests/testing/testing.h"

namespace medic::audit {
namespace {

using test::at_ms;
using test::Keys;

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("audit.db");
    auto s = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
    ASSERT_OK(s);
    test::populate(**s, keys_);
    ASSERT_OK((*s)->close());
    auto r = AuditReader::open(path_);
    ASSERT_OK(r);
    reader_ = std::make_unique<AuditReader>(std::move(*r));
  }

  std::vector<std::string> ids(ListFilter f) {
    auto rows = reader_->list(f);
    EXPECT_OK(rows);
    std::vector<std::string> out;
    if (rows.ok()) {
      for (const auto& r : *rows) out.push_back(r.decision.id);
    }
    return out;
  }

  VirtualClock clock_;  // before the store: outlives it
  testing::TempDir dir_;
  std::string path_;
  Keys keys_;
  std::unique_ptr<AuditReader> reader_;
};

using ::testing::ElementsAre;

TEST_F(QueryTest, ListsNewestFirstWithCurrentStatus) {
  auto rows = reader_->list({});
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ((*rows)[0].decision.id, "d-dry");
  EXPECT_EQ((*rows)[0].state, std::nullopt);
  EXPECT_EQ((*rows)[1].state, ActionState::kDispatched);
  EXPECT_EQ((*rows)[2].state, ActionState::kSuppressed);
  EXPECT_EQ((*rows)[3].state, ActionState::kSucceeded);
  EXPECT_EQ((*rows)[3].updated_at, at_ms(3100));
  EXPECT_EQ((*rows)[3].decision.policies_passed.size(), 4u);
  EXPECT_EQ((*rows)[3].decision.evidence.size(), 1u);
}

TEST_F(QueryTest, FiltersByVmHostRuleStatusAndTime) {
  ListFilter f;
  f.vm = "web-2";
  EXPECT_THAT(ids(f), ElementsAre("d-a-2"));
  f = {};
  f.host = "host-a";
  EXPECT_EQ(ids(f).size(), 4u);
  f.host = "host-b";
  EXPECT_TRUE(ids(f).empty());
  f = {};
  f.rule = "guest-unresponsive";
  EXPECT_THAT(ids(f), ElementsAre("d-a-3"));
  f = {};
  f.status = "succeeded";
  EXPECT_THAT(ids(f), ElementsAre("d-a-1"));
  f.status = "pending_approval";  // an outcome: a-1 was decided pending approval
  EXPECT_THAT(ids(f), ElementsAre("d-a-1"));
  f.status = "dry_run";
  EXPECT_THAT(ids(f), ElementsAre("d-dry"));
  f = {};
  f.since = at_ms(5010);
  f.until = at_ms(7000);
  EXPECT_THAT(ids(f), ElementsAre("d-a-3", "d-a-2"));
  f = {};
  f.limit = 2;
  EXPECT_THAT(ids(f), ElementsAre("d-dry", "d-a-3"));
}

TEST_F(QueryTest, RefusesAnUnknownStatus) {
  ListFilter f;
  f.status = "exploded";
  auto r = reader_->list(f);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown status"), std::string::npos);
}

TEST_F(QueryTest, HistoryGathersDecisionTransitionsEvidenceAndRequests) {
  auto h = reader_->history("a-1");
  ASSERT_OK(h);
  EXPECT_EQ(h->decision.id, "d-a-1");
  ASSERT_EQ(h->transitions.size(), 6u);
  EXPECT_EQ(h->transitions[0].state, ActionState::kProposed);
  EXPECT_EQ(h->transitions[1].state, ActionState::kPendingApproval);
  EXPECT_EQ(h->transitions[2].actor, "alice");
  EXPECT_EQ(h->transitions[5].state, ActionState::kSucceeded);
  EXPECT_EQ(h->evidence.size(), 2u);  // the panic batch and the actuator's result
  ASSERT_EQ(h->requests.size(), 1u);
  EXPECT_EQ(h->requests[0].operator_name, "alice");
  EXPECT_EQ(h->requests[0].sender, keys_.alice.public_key());
  EXPECT_EQ(reader_->history("d-a-1")->decision.action_id, "a-1");
  EXPECT_EQ(reader_->history("nope").status().code(), Code::kNotFound);
}

TEST_F(QueryTest, WhySaysEverythingInPlainWords) {
  auto h = reader_->history("a-1");
  ASSERT_OK(h);
  std::string why = why_text(*h);
  const std::string sender =
      "signed by host-a (key " + fabric::short_key_id(keys_.collector.public_key()) + ")";
  for (const std::string& want : std::vector<std::string>{
           "reset vm web-1 on host host-a",                 // what
           "Answer: reset succeeded; not judged yet",        // the answer first: no heal verdict
           "guest kernel panicked (pvpanic), vm web-1",     // the evidence event
           sender + ", signature valid",                    // its signed sender
           "Rule: guest-panicked version 3, ladder step 1",  // rule + version
           "  cooldown          passed\n",                 // each policy with its verdict
           "approved by alice",                             // who approved
           "comment: \"looked at the console, go\"",        // ... and why, as signed
           "Actuator: succeeded: system_reset done",        // what it reported
           "the actuator's own look after the verb: VM healthy",
       }) {
    EXPECT_NE(why.find(want), std::string::npos) << "missing: " << want << "\n" << why;
  }
  std::string json = why_json(*h);
  EXPECT_NE(json.find("\"state\":\"approved\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"by\":\"alice\""), std::string::npos) << json;
}

TEST_F(QueryTest, WhyOfASuppressedActionNamesThePolicy) {
  std::string why = why_text(*reader_->history("a-2"));
  EXPECT_NE(why.find("  budget            passed\n  storm-guard       passed\n"
                     "  cooldown          STOPPED: vm web-2 was reset 40s ago"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("Answer: not done: stopped by cooldown"), std::string::npos) << why;
  EXPECT_NE(why.find("never dispatched"), std::string::npos) << why;
  EXPECT_NE(why.find("Healed: not applicable: nothing was done (suppressed)\n"), std::string::npos)
      << why;
}

TEST_F(QueryTest, WhyOfAnUnfinishedOrDryRunActionSaysSo) {
  std::string flying = why_text(*reader_->history("a-3"));
  EXPECT_NE(flying.find("dispatched at 2026-01-01 03:00:06.020Z, not acknowledged yet"),
            std::string::npos)
      << flying;
  EXPECT_NE(flying.find("not judged yet: the action is dispatched"), std::string::npos) << flying;
  std::string dry = why_text(*reader_->history("d-dry"));
  EXPECT_NE(dry.find("dry-run           DRY RUN: recorded what would have been done"),
            std::string::npos)
      << dry;
  EXPECT_NE(dry.find("none: no action was created"), std::string::npos) << dry;
}

TEST_F(QueryTest, WhyFlagsEvidenceWhoseSignatureNoLongerHolds) {
  testing::TempDir dir;
  auto s = open_sqlite_store(dir.file("b.db"), clock_, keys_.engine, test::fast_options());
  ASSERT_OK(s);
  medic::v1::Envelope env;
  ASSERT_TRUE(env.ParseFromString(keys_.panic_batch("web-1", at_ms(0))));
  env.set_sent_at_ns(1);
  auto ev = (*s)->append_evidence({at_ms(0), env.SerializeAsString(), "host-a"});
  ASSERT_OK((*s)->append_decision(test::decision("a-1", "web-1", at_ms(1), *ev)));
  ASSERT_OK((*s)->close());
  auto r = AuditReader::open(dir.file("b.db"));
  std::string why = why_text(*r->history("a-1"));
  EXPECT_NE(why.find("signature INVALID"), std::string::npos) << why;
}

// `audit list` names each VM as the signed event of its decision does.
TEST(AuditList, NamesTheVmFromTheEvidenceOfItsDecision) {
  VirtualClock clock;
  testing::TempDir dir;
  Keys keys;
  auto s = open_sqlite_store(dir.file("n.db"), clock, keys.engine, test::fast_options());
  ASSERT_OK(s);
  auto named = (*s)->append_evidence(
      {at_ms(1000), keys.panic_batch("vm-1", at_ms(1000), "db-primary"), "host-a"});
  auto bare =
      (*s)->append_evidence({at_ms(1000), keys.panic_batch("vm-2", at_ms(1000)), "host-a"});
  ASSERT_OK(named);
  ASSERT_OK(bare);
  for (auto [vm, seq] : {std::pair<std::string, Seq>{"vm-1", *named}, {"vm-2", *bare}}) {
    Decision d;
    d.id = d.action_id = "a-" + vm;
    d.at = at_ms(1001);
    d.rule = "guest-panicked";
    d.vm = vm;
    d.host = "host-a";
    d.verb = "reset";
    d.evidence = {{seq, 1}};
    ASSERT_OK((*s)->append_decision(d));
  }
  ASSERT_OK((*s)->close());
  auto r = AuditReader::open(dir.file("n.db"));
  ASSERT_OK(r);
  auto rows = r->list({});
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[1].vm_name, "db-primary");
  EXPECT_EQ((*rows)[0].vm_name, "") << "its event names no VM";
  EXPECT_NE(list_text(*rows).find("db-primary (vm-1)"), std::string::npos) << list_text(*rows);
  EXPECT_NE(list_json(*rows).find("\"vm_name\":\"db-primary\""), std::string::npos);
}

TEST_F(QueryTest, ListAndShowRenderForPeopleAndMachines) {
  auto rows = reader_->list({});
  std::string text = list_text(*rows);
  EXPECT_NE(text.find("TIME (UTC)"), std::string::npos);
  EXPECT_NE(text.find("suppressed by cooldown"), std::string::npos) << text;
  EXPECT_NE(text.find("2026-01-01 03:00:05  a-2"), std::string::npos) << text;
  EXPECT_EQ(list_text({}), "No decisions match.\n");
  std::string json = list_json(*rows);
  EXPECT_EQ(json.front(), '[');
  EXPECT_NE(json.find("\"status\":\"succeeded\""), std::string::npos);
  std::string show = show_text(*reader_->history("a-1"));
  EXPECT_NE(show.find("approved"), std::string::npos);
  EXPECT_NE(show.find("request:   row"), std::string::npos) << show;
  EXPECT_NE(show_json(*reader_->history("a-1")).find("\"transitions\":["), std::string::npos);
}

TEST_F(QueryTest, ExportWritesEveryRowInChainOrder) {
  std::vector<std::string> lines;
  ASSERT_OK(reader_->export_jsonl([&](const std::string& l) { lines.push_back(l); }));
  auto report = verify_log(path_);
  ASSERT_EQ(static_cast<Seq>(lines.size()), report->rows);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind("{\"seq\":" + std::to_string(i + 1) + ",", 0), 0u) << lines[i];
  }
  EXPECT_NE(lines[0].find("\"table\":\"evidence\""), std::string::npos);
  EXPECT_NE(lines.back().find("\"table\":\"checkpoints\""), std::string::npos);
}

TEST_F(QueryTest, PolicyTextWithCommasQuotesAndNewlinesRoundTrips) {
  testing::TempDir dir;
  auto s = open_sqlite_store(dir.file("p.db"), clock_, keys_.engine, test::fast_options());
  ASSERT_OK(s);
  auto d = test::decision("a-1", "web-1", at_ms(1), 0);
  d.policies_passed = {"silence, dry-run, storm guard", "say \"hi\"\nback\\slash", "", "\x01"};
  ASSERT_OK((*s)->append_decision(d));
  ASSERT_OK((*s)->close());
  auto r = AuditReader::open(dir.file("p.db"));
  ASSERT_OK(r);
  EXPECT_EQ(r->history("a-1")->decision.policies_passed, d.policies_passed);
  EXPECT_TRUE(verify_log(dir.file("p.db"))->ok);
}

TEST(QueryOpen, RefusesAMissingFileAndANonAuditFile) {
  testing::TempDir dir;
  EXPECT_EQ(AuditReader::open(dir.file("none.db")).status().code(), Code::kNotFound);
  std::string junk = dir.write("junk.db", "this is not sqlite");
  EXPECT_FALSE(AuditReader::open(junk).ok());
}

}  // namespace
}  // namespace medic::audit
