// Rules on alerts from monitoring systems (alert.firing, alert.resolved):
// their fields in conditions, the default key (VM and alert name) and heal
// (the same alert resolved), and the loader's words for fields misused.
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "rules/expr.h"
#include "rules/loader.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::state;

medic::v1::Event alert(const std::string& vm, const std::string& name, bool firing,
                       const std::string& severity = "page") {
  medic::v1::Event e;
  e.set_host("h1");
  e.set_vm(vm);
  auto* a = e.mutable_alert();
  a->set_firing(firing);
  a->set_name(name);
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"alertname", name}, {"severity", severity}}) {
    auto* l = a->add_labels();
    l->set_key(k);
    l->set_value(v);
  }
  auto* s = a->add_annotations();
  s->set_key("summary");
  s->set_value("checkout answers 503");
  return e;
}

const char* kRules = R"(rules:
  - name: app-unresponsive
    on: alert.firing
    where: alert.name matches "^App" and alert.labels.severity == "page" and alert.annotations["summary"] != ""
    do: [reboot, reset]
    heal_within: 1m
)";

class AlertRulesTest : public ::testing::Test {
 protected:
  AlertRulesTest() : h_(kRules, testing::no_storm()) {
    h_.send(state("h1", "vm1", medic::v1::VM_STATE_RUNNING));
  }
  testing::Harness h_;
};

TEST_F(AlertRulesTest, AFiringAlertThatMatchesActsAndOneThatDoesNotIsIgnored) {
  h_.send(alert("vm1", "DiskFull", true));
  h_.send(alert("vm1", "AppSlow", true, "ticket"));
  EXPECT_TRUE(h_.take().empty());
  h_.send(alert("vm1", "AppUnresponsive", true));
  auto d = h_.take();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].outcome, Outcome::kProposed);
  EXPECT_EQ(d[0].step, Step::kReboot);
  EXPECT_EQ(d[0].trigger, "alert.firing (alert AppUnresponsive)");
  // Alertmanager repeats a firing alert: the open incident only gathers it.
  h_.send(alert("vm1", "AppUnresponsive", true));
  EXPECT_TRUE(h_.take().empty());
}

TEST_F(AlertRulesTest, OnlyTheSameAlertResolvedHealsItsIncident) {
  h_.send(alert("vm1", "AppUnresponsive", true));
  auto d = h_.take();
  ASSERT_EQ(d.size(), 1u);
  h_.engine.on_action_result(d[0].id, ActionState::kSucceeded, false);
  h_.send(alert("vm1", "AppDown", false));  // another alert's resolution
  EXPECT_TRUE(h_.sink.verdicts.empty());
  h_.send(alert("vm1", "AppUnresponsive", false));
  ASSERT_EQ(h_.sink.verdicts.size(), 1u);
  EXPECT_TRUE(h_.sink.verdicts[0].healed);
  EXPECT_EQ(h_.engine.stats().open_incidents, 0u);
}

TEST_F(AlertRulesTest, AnAlertThatStaysFiringClimbsTheLadder) {
  h_.send(alert("vm1", "AppUnresponsive", true));
  auto first = h_.take();
  ASSERT_EQ(first.size(), 1u);
  h_.engine.on_action_result(first[0].id, ActionState::kSucceeded, false);
  h_.advance(61s);
  auto next = h_.take();
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next.back().step, Step::kReset);
}

TEST(AlertFields, ExistOnlyOnAlertRulesAndNearMissesGetASuggestion) {
  auto off = compile_expr("alert.labels.severity == \"page\"", Scope{{EventType::kVmPanicked}});
  ASSERT_FALSE(off.ok());
  EXPECT_NE(off.errors[0].message.find(
                "alert.labels exists only on alert.firing and alert.resolved events"),
            std::string::npos)
      << off.errors[0].message;
  auto typo = compile_expr("alert.lables.severity == \"page\"", Scope{{EventType::kAlertFiring}});
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.errors[0].message.find("did you mean alert.labels.severity?"), std::string::npos)
      << typo.errors[0].message;
  auto bare = compile_expr("alert.annotations == \"x\"", Scope{{EventType::kAlertFiring}});
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.errors[0].message.find("expected .KEY or [\"KEY\"] after alert.annotations"),
            std::string::npos)
      << bare.errors[0].message;
  auto key = load_rule_text(
      "rules:\n  - {name: x, on: vm.panicked, key: [vm.id, alert.name], do: reset}\n", "r.yaml");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.text().find("alert.name exists only for rules on alert.firing"), std::string::npos)
      << key.text();
}

}  // namespace
}  // namespace medic::rules
