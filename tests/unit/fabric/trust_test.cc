#include "fabric/trust.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"

namespace medic::fabric {
namespace {

class TrustStoreTest : public ::testing::Test {
 protected:
  Identity engine_ = Identity::generate();
  Identity host_ = Identity::generate();
  Identity op_ = Identity::generate();
};

TEST_F(TrustStoreTest, LoadsNodesWithRolesAndDefaultScopes) {
  testing::TempDir dir;
  std::string p = dir.write("trust.yaml",
                            "nodes:\n"
                            "  - name: engine-1\n    key: " + engine_.id() + "\n    roles: [engine]\n"
                            "  - name: host-a\n    key: " + host_.id() +
                                "\n    roles: [collector, actuator]\n"
                            "  - name: alice\n    key: " + op_.id() + "\n    roles: operator\n");
  auto store = TrustStore::load(p);
  ASSERT_OK(store);
  EXPECT_EQ(store->size(), 3u);
  const TrustedNode* e = store->find(engine_.public_key());
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->has_role(Role::kEngine));
  EXPECT_FALSE(e->has_role(Role::kCollector));
  EXPECT_TRUE(e->covers_host("anything"));
  const TrustedNode* h = store->find(host_.public_key());
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->has_role(Role::kCollector) && h->has_role(Role::kActuator));
  EXPECT_TRUE(h->covers_host("host-a"));
  EXPECT_FALSE(h->covers_host("host-b"));
  EXPECT_EQ(store->find_curve(host_.curve_public()), h);
  EXPECT_EQ(store->find_name("alice")->key, op_.public_key());
  EXPECT_EQ(store->find(Identity::generate().public_key()), nullptr);
}

TEST_F(TrustStoreTest, ErrorsNameFileAndLineForEveryProblem) {
  std::string text =
      "nodes:\n"
      "  - name: a\n    key: 1234\n    roles: [engine]\n"                                   // 2-4
      "  - name: b\n    key: " + host_.id() + "\n    roles: [wizard]\n"                     // 5-7
      "  - key: " + op_.id() + "\n    roles: [operator]\n"                                  // 8-9
      "  - name: b\n    key: " + engine_.id() + "\n    roles: [engine]\n    colour: red\n";  // 10-13
  auto r = TrustStore::parse(text, "trust.yaml");
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("trust.yaml:3:10: error: public key: expected 64 hex digits"), std::string::npos) << m;
  EXPECT_NE(m.find("trust.yaml:7:12: error: unknown role \"wizard\""), std::string::npos) << m;
  EXPECT_NE(m.find("trust.yaml:8:5: error: missing required key \"name\""), std::string::npos) << m;
  EXPECT_NE(m.find("trust.yaml:10:11: error: duplicate node name \"b\""), std::string::npos) << m;
  EXPECT_NE(m.find("trust.yaml:13:5: error: unknown key \"colour\""), std::string::npos) << m;
}

TEST_F(TrustStoreTest, MissingFileAndSyntaxErrorsAreReported) {
  EXPECT_EQ(TrustStore::load("/nonexistent/trust.yaml").status().code(), Code::kNotFound);
  auto r = TrustStore::parse("nodes: [\n", "t.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("t.yaml:"), std::string::npos);
  auto empty = TrustStore::parse("other: 1\n", "t.yaml");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("\"nodes:\""), std::string::npos) << empty.status();
}

TEST_F(TrustStoreTest, ExplicitHostScopeOverridesDefault) {
  auto r = TrustStore::parse("nodes:\n  - name: rack-7\n    key: " + host_.id() +
                                 "\n    roles: [collector]\n    hosts: [h1, h2]\n",
                             "t.yaml");
  ASSERT_OK(r);
  const TrustedNode* n = r->find(host_.public_key());
  EXPECT_TRUE(n->covers_host("h1"));
  EXPECT_TRUE(n->covers_host("h2"));
  EXPECT_FALSE(n->covers_host("rack-7"));
}

TEST_F(TrustStoreTest, ARequesterHasAScopeOfVmsLabelsVerbsAndApproval) {
  auto r = TrustStore::parse(
      "nodes:\n  - name: billing\n    key: " + host_.id() +
          "\n    roles: [requester]\n    hosts: [h1]\n"
          "    vms: [web-1, web-2]\n    labels: {team: billing}\n"
          "    verbs: [reboot, restart]\n    approval: restart\n"
          "  - name: anyone\n    key: " +
          op_.id() + "\n    roles: [requester]\n    verbs: reset\n    approval: \"*\"\n",
      "t.yaml");
  ASSERT_OK(r);
  const TrustedNode* n = r->find_name("billing");
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(n->has_role(Role::kRequester));
  EXPECT_FALSE(n->has_role(Role::kOperator));
  const RequesterScope& s = n->scope;
  EXPECT_TRUE(s.allows_verb("reboot"));
  EXPECT_FALSE(s.allows_verb("stop"));
  EXPECT_TRUE(s.needs_approval("restart"));
  EXPECT_FALSE(s.needs_approval("reboot"));
  EXPECT_TRUE(s.covers_vm("web-1", {{"team", "billing"}, {"tier", "web"}}));
  EXPECT_FALSE(s.covers_vm("web-1", {{"team", "search"}}));
  EXPECT_FALSE(s.covers_vm("web-1", {}));
  EXPECT_FALSE(s.covers_vm("db-1", {{"team", "billing"}}));
  EXPECT_EQ(s.describe(), "VMs web-1, web-2 with team=billing");
  const TrustedNode* any = r->find_name("anyone");
  EXPECT_TRUE(any->covers_host("whatever"));  // a requester's hosts default to all
  EXPECT_TRUE(any->scope.covers_vm("x", {}));
  EXPECT_TRUE(any->scope.needs_approval("reset"));
  EXPECT_EQ(any->scope.describe(), "any VM");
}

TEST_F(TrustStoreTest, ARequesterThatClonesHasACloneLimitTenPerHourUnlessItSetsOne) {
  auto r = TrustStore::parse("nodes:\n  - name: orch\n    key: " + host_.id() +
                                 "\n    roles: [requester]\n    verbs: [clone, delete]\n"
                                 "  - name: tight\n    key: " +
                                 op_.id() +
                                 "\n    roles: [requester]\n    verbs: [clone]\n"
                                 "    clones: 3 per 1d\n"
                                 "  - name: fixer\n    key: " +
                                 engine_.id() + "\n    roles: [requester]\n    verbs: [reboot]\n",
                             "t.yaml");
  ASSERT_OK(r);
  EXPECT_EQ(r->find_name("orch")->scope.clones.count, 10u);
  EXPECT_EQ(r->find_name("orch")->scope.clones.window, std::chrono::hours(1));
  EXPECT_EQ(r->find_name("tight")->scope.clones.count, 3u);
  EXPECT_EQ(r->find_name("tight")->scope.clones.window, std::chrono::hours(24));
  EXPECT_EQ(r->find_name("fixer")->scope.clones.count, 0u);  // it does not clone
}

TEST_F(TrustStoreTest, ACloneLimitIsCheckedWithPositions) {
  std::string text = "nodes:\n  - name: a\n    key: " + host_.id() +
                     "\n    roles: [requester]\n    verbs: [clone]\n"  // 2-5
                     "    clones: lots\n"                              // 6
                     "  - name: b\n    key: " +
                     op_.id() +
                     "\n    roles: [requester]\n    verbs: [reboot]\n"  // 7-10
                     "    clones: 2 per 1h\n"                           // 11
                     "  - name: c\n    key: " +
                     engine_.id() +
                     "\n    roles: [requester]\n    verbs: [clone]\n"  // 12-15
                     "    clones: 0 per 1h\n"                          // 16
                     "  - name: d\n    key: " +
                     Identity::generate().id() +
                     "\n    roles: [operator]\n"  // 17-19
                     "    clones: 2 per 1h\n";    // 20
  auto r = TrustStore::parse(text, "trust.yaml");
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("trust.yaml:6:13: error: \"lots\" is not N per DURATION, such as 3 per 1h"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("trust.yaml:11:13: error: \"clones\" limits the verb clone, which this "
                   "requester does not hold"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("trust.yaml:16:13: error: \"0 per 1h\" is not N per DURATION"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("trust.yaml:20:13: error: \"clones\" is a requester's scope"), std::string::npos)
      << m;
}

TEST_F(TrustStoreTest, AScopeIsCheckedWithPositionsAndOnlyARequesterMayHaveOne) {
  std::string text =
      "nodes:\n"
      "  - name: a\n    key: " +
      host_.id() +
      "\n    roles: [requester]\n"                            // 2-4
      "    verbs: [reboot, destroy]\n    approval: [stop]\n"  // 5-6
      "    labels: [team]\n"                                  // 7
      "  - name: b\n    key: " +
      op_.id() +
      "\n    roles: [operator]\n"  // 8-10
      "    verbs: [reboot]\n"      // 11
      "  - name: c\n    key: " +
      engine_.id() + "\n    roles: [requester]\n";  // 12-14
  auto r = TrustStore::parse(text, "trust.yaml");
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("trust.yaml:5:12: error: unknown verb \"destroy\""), std::string::npos) << m;
  EXPECT_NE(m.find("trust.yaml:6:15: error: \"stop\" is not one of this requester's verbs "
                   "(reboot, destroy)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("trust.yaml:7:13: error: expected \"labels:\" to be a map"), std::string::npos)
      << m;
  EXPECT_NE(m.find("trust.yaml:11:12: error: \"verbs\" is a requester's scope"), std::string::npos)
      << m;
  EXPECT_NE(m.find("trust.yaml:12:5: error: missing required key \"verbs\""), std::string::npos)
      << m;
}

}  // namespace
}  // namespace medic::fabric
