// A VM is bound to the host that owns it: another host's report of the same
// id is refused as the owner's, counted, noticed once, and never keeps the
// owner's VM from being healed (whichever host spoke first).
#include <gtest/gtest.h>

#include "rules/engine.h"
#include "tests/unit/rules/harness.h"

namespace medic::rules {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using testing::lifecycle;
using testing::state;

constexpr auto kPanic = medic::v1::LIFECYCLE_PANICKED;
constexpr auto kRunning = medic::v1::VM_STATE_RUNNING;

const char* kPanicRule = R"(rules:
  - name: guest-panicked
    on: vm.panicked
    do: reset
)";

EngineOptions no_storm() {
  EngineOptions o;
  o.storm.min_vms = 1000;
  return o;
}

std::vector<Decision> resets_on(const std::vector<Decision>& ds, const std::string& host) {
  std::vector<Decision> out;
  for (const auto& d : ds) {
    if (d.step == Step::kReset && d.outcome == Outcome::kProposed && d.host == host)
      out.push_back(d);
  }
  return out;
}

std::vector<Decision> claim_notices(const std::vector<Decision>& ds) {
  std::vector<Decision> out;
  for (const auto& d : ds) {
    if (d.trigger == "vm claimed by two hosts") out.push_back(d);
  }
  return out;
}

// The finding: host-a reports host-b's VM as its own and panics it; the
// engine acted on host-a, and host-b's genuine panic that followed produced
// no decision (one incident per VM id, and the VM moved to host-a).
TEST(VmIdentity, AnotherHostsClaimOfAnOwnedVmNeverSuppressesTheOwnersHealing) {
  Harness h(kPanicRule, no_storm());
  h.send(state("host-b", "vm1", kRunning), 1);  // host-b owns vm1
  h.send(state("host-a", "vm1", kRunning), 2);  // the claim
  h.send(lifecycle("host-a", "vm1", kPanic), 3);
  h.send(lifecycle("host-b", "vm1", kPanic), 4);  // the genuine panic
  auto ds = h.take();
  auto on_b = resets_on(ds, "host-b");
  ASSERT_EQ(on_b.size(), 1u) << "the owner's genuine panic is acted on";
  EXPECT_EQ(on_b[0].vm, "vm1");
  EXPECT_EQ(on_b[0].evidence, std::vector<EvidenceRef>{4}) << "on the owner's evidence only";
  auto notices = claim_notices(ds);
  ASSERT_EQ(notices.size(), 1u) << "one notice for the conflicting claim";
  EXPECT_EQ(notices[0].host, "host-a");
  EXPECT_EQ(notices[0].vm, "vm1");
  EXPECT_EQ(notices[0].step, Step::kNotify);
  EXPECT_NE(notices[0].reason.find("which host host-b owns"), std::string::npos)
      << notices[0].reason;
  EXPECT_EQ(h.engine.stats().vm_claims_refused, 2u) << "each report of the claimant counts";
}

// The same, with the lying host first: it owns the id, yet the genuine host's
// VM is still its own VM and is healed.
TEST(VmIdentity, AClaimMadeBeforeTheGenuineHostSpokeNeverSuppressesItsHealing) {
  Harness h(kPanicRule, no_storm());
  h.send(state("host-a", "vm1", kRunning), 1);  // the lie comes first
  h.send(lifecycle("host-a", "vm1", kPanic), 2);
  h.send(state("host-b", "vm1", kRunning), 3);
  h.send(lifecycle("host-b", "vm1", kPanic), 4);
  auto ds = h.take();
  auto on_b = resets_on(ds, "host-b");
  ASSERT_EQ(on_b.size(), 1u) << "the genuine panic is acted on";
  EXPECT_EQ(on_b[0].evidence, std::vector<EvidenceRef>{4});
  auto notices = claim_notices(ds);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].host, "host-b") << "host-a owns the id: host-b's report is the conflict";
  EXPECT_EQ(h.engine.stats().vm_claims_refused, 2u);
}

// Positive control: one host alone raises no notice and counts no refusal;
// its second panic joins its open incident, as before.
TEST(VmIdentity, OneHostsVmRaisesNoClaimNoticeAndKeepsOneIncident) {
  Harness h(kPanicRule, no_storm());
  h.send(state("host-b", "vm1", kRunning), 1);
  h.send(lifecycle("host-b", "vm1", kPanic), 2);
  h.send(lifecycle("host-b", "vm1", kPanic), 3);
  auto ds = h.take();
  EXPECT_EQ(resets_on(ds, "host-b").size(), 1u);
  EXPECT_TRUE(claim_notices(ds).empty());
  EXPECT_EQ(h.engine.stats().vm_claims_refused, 0u);
  EXPECT_EQ(h.engine.stats().open_incidents, 1u);
}

// A VM that migrates: the old host reports it stopped, the new one takes it
// over without a notice.
TEST(VmIdentity, AVmTheOwnerReportedStoppedMovesToTheNextHostWithoutANotice) {
  Harness h(kPanicRule, no_storm());
  h.send(state("host-b", "vm1", kRunning), 1);
  h.send(state("host-b", "vm1", medic::v1::VM_STATE_STOPPED), 2);
  h.send(state("host-c", "vm1", kRunning), 3);
  h.send(lifecycle("host-c", "vm1", kPanic), 4);
  auto ds = h.take();
  EXPECT_EQ(resets_on(ds, "host-c").size(), 1u);
  EXPECT_TRUE(claim_notices(ds).empty());
  EXPECT_EQ(h.engine.stats().vm_claims_refused, 0u);
}

TEST(VmIdentity, AVmTheOwnerStoppedReportingMovesAfterForgetVmAfter) {
  EngineOptions o = no_storm();
  o.forget_vm_after = 1min;
  Harness h(kPanicRule, o);
  h.send(state("host-b", "vm1", kRunning), 1);
  h.send(state("host-c", "vm1", kRunning), 2);
  EXPECT_EQ(h.engine.stats().vm_claims_refused, 1u) << "the owner was heard of just now";
  h.advance(61s);
  h.send(state("host-c", "vm1", kRunning), 3);
  EXPECT_EQ(h.engine.stats().vm_claims_refused, 1u) << "host-b let go: host-c owns vm1 now";
  h.send(state("host-b", "vm1", kRunning), 4);
  EXPECT_EQ(h.engine.stats().vm_claims_refused, 2u) << "and host-b's return is the claim";
}

// Ownership and each host's own incidents survive a snapshot and restore.
TEST(VmIdentity, SnapshotKeepsOwnershipAndEachHostsIncidents) {
  Harness h(kPanicRule, no_storm());
  h.send(state("host-b", "vm1", kRunning), 1);
  h.send(state("host-a", "vm1", kRunning), 2);
  h.send(lifecycle("host-a", "vm1", kPanic), 3);
  h.send(lifecycle("host-b", "vm1", kPanic), 4);
  EngineState s = h.engine.snapshot();
  ASSERT_EQ(s.vms.size(), 2u);
  EXPECT_TRUE(s.vms[0].owner);
  EXPECT_FALSE(s.vms[1].owner);
  EXPECT_TRUE(s.vms[1].claim_noticed);
  ASSERT_EQ(s.incidents.size(), 2u);
  EXPECT_EQ(s.incidents[0].host, "host-a");
  EXPECT_EQ(s.incidents[1].host, "host-b");

  Harness fresh(kPanicRule, no_storm());
  ASSERT_TRUE(fresh.engine.restore(s).ok());
  EngineState again = fresh.engine.snapshot();
  EXPECT_EQ(again.incidents.size(), 2u);
  fresh.send(state("host-a", "vm1", kRunning), 5);
  EXPECT_TRUE(claim_notices(fresh.take()).empty()) << "the claim was noticed before the restart";
  EXPECT_EQ(fresh.engine.stats().vm_claims_refused, 1u);
}

}  // namespace
}  // namespace medic::rules
