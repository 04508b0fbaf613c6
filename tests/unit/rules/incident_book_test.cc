#include "rules/incident_book.h"

#include <gtest/gtest.h>

namespace medic::rules {
namespace {

RulePtr a_rule() {
  auto r = std::make_shared<Rule>();
  r->name = "r";
  r->ladder = {Step::kReboot};
  return r;
}

TEST(IncidentBook, OpensIncidentsWithFreshIdsFindableByKeyIdVmAndAction) {
  IncidentBook book;
  Incident& a = book.open("r\x1fvm1", a_rule(), 0);
  Incident& b = book.open("r\x1fvm2", a_rule(), 1);
  EXPECT_EQ(a.id.value, 1u);
  EXPECT_EQ(b.id.value, 2u);
  EXPECT_EQ(a.state, IncidentState::kOpen);
  EXPECT_EQ(book.find_key("r\x1fvm1"), &a);
  EXPECT_EQ(book.find(IncidentId{2}), &b);
  EXPECT_EQ(book.find_key("r\x1fvm3"), nullptr);
  ASSERT_EQ(book.of_vm(1).size(), 1u);
  EXPECT_EQ(book.of_vm(1)[0], &b);
  book.bind_action("d-1", a.id);
  EXPECT_EQ(book.by_action("d-1"), &a);
  EXPECT_EQ(book.size(), 2u);
}

TEST(IncidentBook, AClosedIncidentLeavesEveryIndexAndItsKeyOpensAFreshOne) {
  IncidentBook book;
  Incident& a = book.open("k", a_rule(), 0);
  book.bind_action("d-1", a.id);
  book.close(a, IncidentEnd::kHealed);
  EXPECT_EQ(book.size(), 0u);
  EXPECT_EQ(book.find(IncidentId{1}), nullptr);
  EXPECT_EQ(book.find_key("k"), nullptr);
  EXPECT_EQ(book.by_action("d-1"), nullptr) << "a stale action id finds nothing";
  EXPECT_TRUE(book.of_vm(0).empty());
  EXPECT_EQ(book.ended(IncidentEnd::kHealed), 1u);
  EXPECT_EQ(book.ended(IncidentEnd::kClosed), 0u);
  Incident& again = book.open("k", a_rule(), 0);
  EXPECT_EQ(again.id.value, 2u) << "ids are never reused";
}

TEST(IncidentBook, MovesOnlyAlongTheDiagram) {
  using S = IncidentState;
  IncidentBook book;
  Incident& inc = book.open("k", a_rule(), 0);
  EXPECT_TRUE(book.move_to(inc, S::kActing));
  EXPECT_TRUE(book.move_to(inc, S::kWatching));
  EXPECT_TRUE(book.move_to(inc, S::kOpen)) << "next ladder step";
  inc.waiting_on = Policy::kApproval;
  EXPECT_TRUE(inc.awaiting_approval());
  EXPECT_TRUE(book.move_to(inc, S::kHeld));
  EXPECT_EQ(inc.waiting_on, Policy::kNone) << "a move clears what the old state waited for";
  EXPECT_FALSE(book.move_to(inc, S::kActing)) << "held only closes";
  EXPECT_EQ(inc.state, S::kHeld);
  EXPECT_FALSE(IncidentBook::allowed(S::kActing, S::kHeld));
  EXPECT_FALSE(IncidentBook::allowed(S::kWatching, S::kActing));
  EXPECT_TRUE(IncidentBook::allowed(S::kOpen, S::kHeld));
}

TEST(IncidentBook, ListsIncidentsInTheOrderTheyOpened) {
  IncidentBook book;
  for (int i = 0; i < 20; ++i) book.open("k" + std::to_string(i), a_rule(), i);
  auto all = book.all();
  ASSERT_EQ(all.size(), 20u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i]->id.value, i + 1);
}

TEST(IncidentBook, RestoresAnIncidentUnderItsOwnId) {
  IncidentBook book;
  Incident& inc = book.open("k", a_rule(), 0, IncidentId{41});
  book.set_last_id(41);
  EXPECT_EQ(inc.id.value, 41u);
  EXPECT_EQ(book.find(IncidentId{41}), &inc);
  EXPECT_EQ(book.open("j", a_rule(), 0).id.value, 42u);
}

}  // namespace
}  // namespace medic::rules
