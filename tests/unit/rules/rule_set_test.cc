#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "rules/loader.h"
#include "rules/rule.h"

namespace medic::rules {
namespace {

std::optional<LabelRequirement> requirement(const std::string& text) {
  auto c = compile_expr(text, Scope{{EventType::kVmState}});
  EXPECT_TRUE(c.ok()) << text;
  return c.expr.required_label();
}

TEST(RequiredLabel, FindsEqualityAndInAsTheWholeConditionOrOneConjunct) {
  auto a = requirement("vm.labels.tier == \"web\"");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->key, "tier");
  EXPECT_EQ(a->values, std::vector<std::string>{"web"});

  auto b = requirement("vm.cpu_percent > 90 and \"db\" == vm.labels[\"role\"]");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->key, "role");
  EXPECT_EQ(b->values, std::vector<std::string>{"db"});

  auto c = requirement("vm.labels.zone in [\"a\", \"b\"] and vm.labels.tier == \"web\"");
  ASSERT_TRUE(c);  // the most selective conjunct wins
  EXPECT_EQ(c->key, "tier");
}

TEST(RequiredLabel, IgnoresConditionsThatDoNotPinALabel) {
  EXPECT_FALSE(requirement("vm.labels.tier != \"web\""));
  EXPECT_FALSE(requirement("vm.labels.tier not in [\"web\"]"));
  EXPECT_FALSE(requirement("vm.labels.tier == \"web\" or vm.cpu_percent > 90"));
  EXPECT_FALSE(requirement("not (vm.labels.tier == \"web\")"));
  EXPECT_FALSE(requirement("vm.labels.tier matches \"^web\""));
  EXPECT_FALSE(requirement("vm.host == \"h1\""));
}

std::shared_ptr<const RuleSet> load(const std::string& yaml) {
  auto r = load_rule_text(yaml, "rules.yaml");
  EXPECT_TRUE(r.ok()) << r.text();
  return r.rules;
}

TEST(RuleSetIndex, AVmMeetsOnlyTheRulesForItsLabelValuesPlusTheUnindexedOnes) {
  auto set = load(R"(rules:
  - {name: any, on: vm.state, do: notify}
  - {name: web, on: vm.state, where: 'vm.labels.tier == "web"', do: notify}
  - {name: db, on: vm.state, where: 'vm.labels.tier in ["db", "cache"]', do: notify}
  - {name: eu, on: vm.state, where: 'vm.labels.zone == "eu"', do: notify}
  - {name: hot, on: vm.state, where: 'vm.cpu_percent > 90', do: notify}
  - {name: panic, on: vm.panicked, where: 'vm.labels.tier == "web"', do: reset}
)");
  ASSERT_TRUE(set);
  VmFacts vm;
  std::vector<uint32_t> scratch;
  vm.labels = {{"tier", "db"}, {"zone", "eu"}};
  EXPECT_EQ(set->candidates(EventType::kVmState, vm, &scratch),
            (std::vector<uint32_t>{0, 2, 3, 4}));
  vm.labels = {{"tier", "web"}};
  EXPECT_EQ(set->candidates(EventType::kVmState, vm, &scratch), (std::vector<uint32_t>{0, 1, 4}));
  EXPECT_EQ(set->candidates(EventType::kVmPanicked, vm, &scratch), (std::vector<uint32_t>{5}));
  vm.labels.clear();
  EXPECT_EQ(set->candidates(EventType::kVmState, vm, &scratch), (std::vector<uint32_t>{0, 4}));
  EXPECT_TRUE(set->candidates(EventType::kVmPanicked, vm, &scratch).empty());
  EXPECT_TRUE(set->candidates(EventType::kVmCrashed, vm, &scratch).empty());
}

TEST(RuleSetIndex, AnEmptyLabelValueMatchesAVmWithoutThatLabel) {
  auto set = load(R"(rules:
  - {name: unlabelled, on: vm.state, where: 'vm.labels.owner == ""', do: notify}
)");
  ASSERT_TRUE(set);
  VmFacts vm;
  std::vector<uint32_t> scratch;
  EXPECT_EQ(set->candidates(EventType::kVmState, vm, &scratch).size(), 1u);
  vm.labels = {{"owner", "ops"}};
  EXPECT_TRUE(set->candidates(EventType::kVmState, vm, &scratch).empty());
}

// The index may only skip rules whose condition is false: for random rule
// sets and VMs, every rule that evaluates true is among the candidates.
TEST(RuleSetIndex, NeverSkipsARuleWhoseConditionIsTrue) {
  const std::vector<std::string> conds = {
      "vm.labels.tier == \"a\"",
      "vm.labels.tier == \"b\" and vm.cpu_percent > 50",
      "vm.labels.tier in [\"a\", \"c\"]",
      "vm.labels.zone == \"x\" and vm.labels.tier == \"b\"",
      "vm.labels.zone == \"y\" or vm.labels.tier == \"a\"",
      "vm.labels.tier != \"a\"",
      "not (vm.labels.zone == \"x\")",
      "vm.labels.zone in [\"x\", \"y\"] and vm.labels.tier not in [\"a\"]",
      "vm.cpu_percent > 50",
      "vm.labels.tier == \"\"",
  };
  const std::vector<std::string> values = {"", "a", "b", "c"};
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::string yaml = "rules:\n";
    int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      yaml += "  - {name: r" + std::to_string(i) + ", on: vm.state, where: '" +
              conds[rng() % conds.size()] + "', do: notify}\n";
    }
    auto set = load(yaml);
    ASSERT_TRUE(set);
    for (int k = 0; k < 20; ++k) {
      VmFacts vm;
      vm.cpu_percent = static_cast<float>(rng() % 100);
      const std::string& tier = values[rng() % values.size()];
      const std::string zone = rng() % 2 ? "x" : "y";
      if (!tier.empty()) vm.labels.emplace_back("tier", tier);
      if (rng() % 3 != 0) vm.labels.emplace_back("zone", zone);
      std::vector<uint32_t> scratch;
      const auto& got = set->candidates(EventType::kVmState, vm, &scratch);
      ASSERT_TRUE(std::is_sorted(got.begin(), got.end()));
      ASSERT_EQ(std::adjacent_find(got.begin(), got.end()), got.end());
      medic::v1::Event ev;
      EvalInput in{&vm, &ev, EventType::kVmState, Time{}};
      for (uint32_t i : set->triggered_by(EventType::kVmState)) {
        const Rule& r = *set->rules()[i];
        bool in_set = std::find(got.begin(), got.end(), i) != got.end();
        if (r.where.eval(in)) {
          EXPECT_TRUE(in_set) << r.name << " " << yaml;
        }
      }
    }
  }
}

}  // namespace
}  // namespace medic::rules
