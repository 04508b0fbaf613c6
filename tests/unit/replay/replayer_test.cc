// The replay (replay/replay.h): signed frames from a recording through
// candidate rules on a virtual clock; a forged or altered envelope is refused
// with its cause and never reaches the rules; the diff names what changed.
#include <gtest/gtest.h>

#include "core/json.h"
#include "replay/replay.h"
#include "rules/loader.h"
#include "tests/testing/testing.h"
#include "tests/unit/fabric/fabric_test_util.h"

namespace medic::replay {
namespace {

using namespace std::chrono_literals;
using fabric::test::identity_for;

const Time kStart = from_ns(1'800'000'000'000'000'000);

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(
        trust_.add(fabric::test::node("host-a", host_a_, fabric::test::kCollector, {"host-a"})));
  }

  medic::v1::Event state_event(const std::string& vm, Time at) {
    medic::v1::Event e;
    e.set_host("host-a");
    e.set_vm(vm);
    e.set_observed_at_ns(to_ns(at));
    e.mutable_state()->set_state(medic::v1::VM_STATE_RUNNING);
    return e;
  }
  medic::v1::Event heartbeat(const std::string& vm, Time at) {
    medic::v1::Event e;
    e.set_host("host-a");
    e.set_vm(vm);
    e.set_observed_at_ns(to_ns(at));
    e.mutable_heartbeat()->set_source("sim");
    return e;
  }
  medic::v1::Event panic(const std::string& vm, Time at) {
    medic::v1::Event e;
    e.set_host("host-a");
    e.set_vm(vm);
    e.set_observed_at_ns(to_ns(at));
    e.mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    return e;
  }

  // A batch signed by host-a at `at`, arriving 2 ms later.
  RecordedFrame signed_at(Duration at, std::vector<medic::v1::Event> events,
                          fabric::Sealer* sealer = nullptr) {
    medic::v1::EventBatch b;
    for (auto& e : events) *b.add_events() = std::move(e);
    RecordedFrame f;
    f.received_at = kStart + at + 2ms;
    f.frame = (sealer ? *sealer : sealer_)
                  .seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), kStart + at);
    return f;
  }

  std::shared_ptr<const rules::RuleSet> rules(const std::string& text) {
    auto loaded = rules::load_rule_text(text, "candidate.rules.yaml");
    EXPECT_OK(loaded);
    return loaded.rules;
  }

  const ReplayResult& run(const std::string& rule_text, const std::vector<RecordedFrame>& frames) {
    replayer_ = std::make_unique<Replayer>(trust_, rules(rule_text), options_);
    for (size_t i = 0; i < frames.size(); ++i) {
      replayer_->feed(frames[i], "rec@" + std::to_string(i));
    }
    return replayer_->result();
  }

  fabric::Identity host_a_ = identity_for(1);
  fabric::TrustStore trust_;
  fabric::Sealer sealer_{host_a_};
  ReplayOptions options_;
  std::unique_ptr<Replayer> replayer_;
};

constexpr const char* kPanicReset =
    "rules:\n  - {name: guest-panicked, on: vm.panicked, do: reset, cooldown: 10m}\n";

TEST_F(ReplayTest, ThePanicIsDecidedAtTheTimeItArrived) {
  const auto& r = run(kPanicReset, {signed_at(0s, {state_event("vm-1", kStart)}),
                                    signed_at(10s, {panic("vm-1", kStart + 10s)})});
  EXPECT_TRUE(r.clean());
  EXPECT_EQ(r.batches, 2u);
  EXPECT_EQ(r.events, 2u);
  ASSERT_EQ(r.decisions.size(), 1u);
  const rules::Decision& d = r.decisions[0];
  EXPECT_EQ(d.vm, "vm-1");
  EXPECT_EQ(d.host, "host-a");
  EXPECT_EQ(d.rule, "guest-panicked");
  EXPECT_EQ(d.step, rules::Step::kReset);
  EXPECT_EQ(d.outcome, rules::Outcome::kProposed);
  EXPECT_EQ(d.at, kStart + 10s + 2ms);
  EXPECT_EQ(r.first, kStart + 2ms);
  EXPECT_EQ(r.last, kStart + 10s + 2ms);
}

TEST_F(ReplayTest, AnAlteredEnvelopeIsRefusedWithItsCauseAndNeverReachesTheRules) {
  RecordedFrame genuine = signed_at(10s, {panic("vm-1", kStart + 10s)});
  RecordedFrame altered = signed_at(20s, {panic("vm-2", kStart + 20s)});
  // vm-2 -> vm-3 in the signed payload: the bytes still parse, the signature does not hold.
  const size_t at = altered.frame.find("vm-2");
  ASSERT_NE(at, std::string::npos);
  altered.frame[at + 3] = '3';
  const auto& r = run(kPanicReset, {genuine, altered});
  EXPECT_FALSE(r.clean());
  EXPECT_EQ(r.refused, 1u);
  EXPECT_EQ(r.refused_by_cause.at("bad_signature"), 1u);
  ASSERT_EQ(r.refusals.size(), 1u);
  EXPECT_EQ(r.refusals[0].where, "rec@1");
  EXPECT_EQ(r.refusals[0].cause, "bad_signature");
  // The genuine panic is decided (the positive control); neither vm-2 nor vm-3 is.
  ASSERT_EQ(r.decisions.size(), 1u);
  EXPECT_EQ(r.decisions[0].vm, "vm-1");
  const std::string text = replay_text(r, "rec");
  EXPECT_NE(text.find("refused frames (their events were not replayed): 1 bad_signature"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rec@1: bad_signature"), std::string::npos) << text;
}

TEST_F(ReplayTest, AFrameFromAKeyOutsideTheTrustStoreIsRefusedAsAnUnknownSender) {
  fabric::Identity stranger = identity_for(9);
  fabric::Sealer forger(stranger);
  const auto& r = run(kPanicReset, {signed_at(10s, {panic("vm-1", kStart + 10s)}, &forger),
                                    signed_at(11s, {panic("vm-2", kStart + 11s)})});
  EXPECT_EQ(r.refused_by_cause.at("unknown_sender"), 1u);
  ASSERT_EQ(r.decisions.size(), 1u);
  EXPECT_EQ(r.decisions[0].vm, "vm-2");
}

TEST_F(ReplayTest, AFrameRecordedTwiceIsRefusedAsReplayed) {
  RecordedFrame f = signed_at(10s, {panic("vm-1", kStart + 10s)});
  RecordedFrame again = f;
  again.received_at += 1s;
  const auto& r = run(kPanicReset, {f, again});
  EXPECT_EQ(r.refused_by_cause.at("replayed"), 1u);
  EXPECT_EQ(r.decisions.size(), 1u);
}

// The absence timer runs on the virtual clock between frames; the stand-in
// result lets the ladder climb when the VM never heals, as live.
TEST_F(ReplayTest, AbsenceFiresBetweenFramesAndTheLadderClimbsWhenNoHealComes) {
  std::vector<RecordedFrame> frames;
  for (int s = 0; s <= 200; ++s) {
    std::vector<medic::v1::Event> events{state_event("vm-1", kStart + s * 1s)};
    if (s <= 20) events.push_back(heartbeat("vm-1", kStart + s * 1s));
    frames.push_back(signed_at(s * 1s, std::move(events)));
  }
  const auto& r =
      run("rules:\n  - {name: silent, absent: vm.heartbeat, for: 30s, do: [reboot, reset], "
          "heal_within: 1m}\n",
          frames);
  EXPECT_TRUE(r.clean());
  ASSERT_EQ(r.decisions.size(), 3u);
  EXPECT_EQ(r.decisions[0].step, rules::Step::kReboot);
  // The last heartbeat arrived at 20s + 2ms; 30s later the absence is due.
  EXPECT_EQ(r.decisions[0].at, kStart + 50s + 2ms);
  EXPECT_EQ(r.decisions[1].step, rules::Step::kReset);
  // The stand-in answers 1s after the reboot; the 1m watch from the reboot
  // then runs out.
  EXPECT_EQ(r.decisions[1].at, kStart + 50s + 2ms + 1min);
  // The ladder ran out at the reset's watch end; the trigger that still holds
  // opens a fresh incident, which the cooldown since the reset holds back.
  EXPECT_EQ(r.decisions[2].step, rules::Step::kReboot);
  EXPECT_EQ(r.decisions[2].outcome, rules::Outcome::kSuppressed);
  EXPECT_EQ(r.decisions[2].policy, rules::Policy::kCooldown);
}

TEST_F(ReplayTest, AHeartbeatAfterTheActionHealsItSoNothingMoreIsDecided) {
  std::vector<RecordedFrame> frames;
  for (int s = 0; s <= 200; ++s) {
    std::vector<medic::v1::Event> events{state_event("vm-1", kStart + s * 1s)};
    if (s <= 20 || s >= 60) events.push_back(heartbeat("vm-1", kStart + s * 1s));
    frames.push_back(signed_at(s * 1s, std::move(events)));
  }
  const auto& r =
      run("rules:\n  - {name: silent, absent: vm.heartbeat, for: 30s, do: [reboot, reset], "
          "heal_within: 1m}\n",
          frames);
  ASSERT_EQ(r.decisions.size(), 1u);
  EXPECT_EQ(r.decisions[0].step, rules::Step::kReboot);
}

// Given the live engine's results, a verb it also dispatched gets the live
// answer: the live reboot failed after 2s, so the replay climbs to the reset
// then, as live did, long before the heartbeats come back.
TEST_F(ReplayTest, AVerbTheLiveEngineAlsoTookGetsTheLiveResultAtTheSameDelay) {
  std::vector<RecordedFrame> frames;
  for (int s = 0; s <= 200; ++s) {
    std::vector<medic::v1::Event> events{state_event("vm-1", kStart + s * 1s)};
    if (s <= 20 || s >= 60) events.push_back(heartbeat("vm-1", kStart + s * 1s));
    frames.push_back(signed_at(s * 1s, std::move(events)));
  }
  LiveResult failed;
  failed.decision.at = kStart + 50s;  // the live engine decided 2 ms before the replay
  failed.decision.vm = "vm-1";
  failed.decision.host = "host-a";
  failed.decision.rule = "silent";
  failed.decision.verb = "reboot";
  failed.decision.ladder_step = 1;
  failed.after = 2s;
  failed.outcome = ActionState::kFailed;
  failed.detail = "powerdown refused";
  options_.live_results = {failed};
  const auto& r =
      run("rules:\n  - {name: silent, absent: vm.heartbeat, for: 30s, do: [reboot, reset], "
          "heal_within: 1m}\n",
          frames);
  ASSERT_EQ(r.decisions.size(), 2u);
  EXPECT_EQ(r.decisions[0].step, rules::Step::kReboot);
  EXPECT_EQ(r.decisions[1].step, rules::Step::kReset);
  EXPECT_EQ(r.decisions[1].at, kStart + 50s + 2ms + 2s);
  EXPECT_EQ(r.answered_as_live, 1u);
  EXPECT_EQ(r.answered_by_stand_in, 1u);  // the reset: the live engine never took it
  EXPECT_NE(replay_text(r, "rec").find("actions answered as live: 1; by the stand-in"),
            std::string::npos);
}

// ---- diff

DecisionLine line(Duration at, std::string vm, std::string verb, std::string outcome = "proposed",
                  std::string policy = "") {
  DecisionLine l;
  l.at = kStart + at;
  l.vm = std::move(vm);
  l.host = "host-a";
  l.rule = "guest-panicked";
  l.verb = std::move(verb);
  l.ladder_step = 1;
  l.outcome = std::move(outcome);
  l.policy = std::move(policy);
  l.id = "d-" + l.vm;
  return l;
}

TEST(ReplayDiff, TheSameDecisionsWithinTheToleranceAreNoDifference) {
  auto d = diff_decisions({line(10s, "vm-1", "reset"), line(20s, "vm-2", "reset")},
                          {line(10s + 300ms, "vm-1", "reset"), line(20s, "vm-2", "reset")}, 2s);
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.same, 2u);
  EXPECT_NE(diff_text(d, "audit.db").find("2 the same, no differences"), std::string::npos);
}

TEST(ReplayDiff, AnAddedARemovedAndAChangedDecisionAreEachNamedUnderTheirVm) {
  auto d = diff_decisions(
      {line(10s, "vm-1", "restart"), line(30s, "vm-3", "reset"),
       line(40s, "vm-4", "reset", "suppressed", "cooldown")},
      {line(10s, "vm-1", "reset"), line(20s, "vm-2", "reset"), line(40s, "vm-4", "reset")}, 2s);
  EXPECT_EQ(d.changed, 2u);
  EXPECT_EQ(d.added, 1u);
  EXPECT_EQ(d.removed, 1u);
  ASSERT_EQ(d.by_subject.count("vm vm-1"), 1u);
  EXPECT_EQ(d.by_subject.at("vm vm-1")[0].kind, DiffEntry::Kind::kChanged);
  EXPECT_EQ(d.by_subject.at("vm vm-1")[0].changes,
            std::vector<std::string>{"verb reset -> restart"});
  EXPECT_EQ(d.by_subject.at("vm vm-2")[0].kind, DiffEntry::Kind::kRemoved);
  EXPECT_EQ(d.by_subject.at("vm vm-3")[0].kind, DiffEntry::Kind::kAdded);
  EXPECT_EQ(
      d.by_subject.at("vm vm-4")[0].changes,
      (std::vector<std::string>{"outcome proposed -> suppressed", "policy (none) -> cooldown"}));
  const std::string text = diff_text(d, "audit.db");
  EXPECT_NE(text.find("0 the same, 1 added, 1 removed, 2 changed"), std::string::npos) << text;
  EXPECT_NE(text.find("vm vm-2:\n  - "), std::string::npos) << text;
  EXPECT_NE(text.find("now verb reset -> restart"), std::string::npos) << text;
  const Json j = diff_json(d, "audit.db");
  EXPECT_EQ(j["added"], 1);
  EXPECT_EQ(j["differences"]["vm vm-3"][0]["kind"], "added");
  EXPECT_EQ(j["differences"]["vm vm-3"][0]["candidate"]["verb"], "reset");
}

TEST(ReplayDiff, DecisionsFurtherApartThanTheToleranceAreNotTheSame) {
  auto d = diff_decisions({line(10s, "vm-1", "reset")}, {line(13s, "vm-1", "reset")}, 2s);
  EXPECT_EQ(d.added, 1u);
  EXPECT_EQ(d.removed, 1u);
  auto close = diff_decisions({line(10s, "vm-1", "reset")}, {line(13s, "vm-1", "reset")}, 5s);
  EXPECT_TRUE(close.empty());
}

}  // namespace
}  // namespace medic::replay
