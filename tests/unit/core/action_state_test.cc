#include "core/action_state.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace medic {
namespace {

TEST(ActionState, EveryStateRoundTripsThroughItsName) {
  std::set<std::string> names;
  for (ActionState s : kAllActionStates) {
    auto parsed = parse_action_state(state_name(s));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, s) << state_name(s);
    names.insert(state_name(s));
  }
  EXPECT_EQ(names.size(), 12u);  // twelve distinct names, none "unknown"
  EXPECT_EQ(names.count("unknown"), 0u);
}

TEST(ActionState, ParserRefusesUnknownNamesAndSaysWhich) {
  for (const char* bad : {"", "Proposed", "timed-out", "proposed ", "unknown", "healed"}) {
    auto parsed = parse_action_state(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("unknown action state \"" + std::string(bad) + "\""),
              std::string::npos)
        << parsed.status();
  }
}

TEST(ActionState, TerminalStatesAllowNoFurtherMove) {
  for (ActionState from : kAllActionStates) {
    if (!is_terminal(from)) continue;
    for (ActionState to : kAllActionStates) {
      EXPECT_FALSE(transition_allowed(from, to)) << state_name(from) << " -> " << state_name(to);
    }
  }
  EXPECT_TRUE(transition_allowed(ActionState::kAcked, ActionState::kSucceeded));  // control
}

TEST(ActionState, LifecycleAllowsTheDocumentedMovesOnly) {
  using S = ActionState;
  EXPECT_TRUE(transition_allowed(std::nullopt, S::kProposed));
  EXPECT_FALSE(transition_allowed(std::nullopt, S::kDispatched));
  EXPECT_TRUE(transition_allowed(S::kProposed, S::kPendingApproval));
  EXPECT_TRUE(transition_allowed(S::kPendingApproval, S::kApproved));
  EXPECT_TRUE(transition_allowed(S::kApproved, S::kDispatched));
  EXPECT_TRUE(transition_allowed(S::kApproved, S::kSuppressed));  // a fact stopped it
  EXPECT_FALSE(transition_allowed(S::kPendingApproval, S::kSuppressed));
  EXPECT_FALSE(transition_allowed(S::kPendingApproval, S::kDispatched));
  EXPECT_TRUE(transition_allowed(S::kDispatched, S::kExpired));
  EXPECT_FALSE(transition_allowed(S::kAcked, S::kExpired));
  EXPECT_TRUE(transition_allowed(S::kDispatched, S::kTimedOut));  // the ack was lost
}

TEST(ActionState, ResultsAreTheFourEndsAnActuatorReports) {
  std::set<ActionState> results;
  for (ActionState s : kAllActionStates) {
    if (is_result(s)) results.insert(s);
  }
  EXPECT_EQ(results, (std::set<ActionState>{ActionState::kSucceeded, ActionState::kFailed,
                                            ActionState::kRejected, ActionState::kTimedOut}));
}

TEST(DecisionOutcome, EveryOutcomeRoundTripsAndUnknownNamesAreRefused) {
  for (DecisionOutcome o : kAllDecisionOutcomes) {
    auto parsed = parse_decision_outcome(outcome_name(o));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, o);
  }
  auto bad = parse_decision_outcome("approved");  // an action state, not an outcome
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown decision outcome \"approved\""),
            std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace medic
