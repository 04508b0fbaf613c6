// `medic request clone` and `medic request delete` end to end: a requester's
// signed ask to a real engine over CurveZMQ, checked against the key's scope
// (host, verb, labels {template: NAME}), decided through the policy chain,
// carried out by the agent of a simulated host that holds the template; the
// new VM's id comes back in the replies, joins the engine's fleet table and
// is watched like any other, and a delete removes it for good. Refusals and
// failures name what refused and why.
#include <filesystem>
#include <regex>

#include "core/json.h"
#include "tests/integration/control_fixture.h"
#include "tests/testing/daemon.h"
#include "vmm/vmadm/vmadm.h"

namespace medic {
namespace {

class ProvisionRequestTest : public SimHostFlowTest {
 protected:
  std::string rules_text() const override {
    return "rules:\n"
           "  - {name: guest-panicked, on: vm.panicked, do: reset}\n"
           "  - name: guest-unresponsive\n"
           "    absent: vm.heartbeat\n"
           "    for: 30s\n"
           "    where: vm.state == \"running\"\n"
           "    do: reboot\n";
  }

  std::string more_trusted() override {
    std::string out;
    for (const auto& [name, scope] : std::vector<std::pair<std::string, std::string>>{
             {"orch", "hosts: [host-a], labels: {template: web}, verbs: [clone, delete]"},
             {"app-1", "hosts: [host-a], verbs: [reboot]"},
             {"far", "hosts: [host-b], verbs: [clone]"},
             {"tight", "hosts: [host-a], verbs: [clone], clones: 1 per 1h"}}) {
      auto id = fabric::Identity::generate();
      EXPECT_OK(id.save(dir_.file(name + ".key")));
      out += "  - {name: " + name + ", key: " + id.id() + ", roles: [requester], " + scope + "}\n";
    }
    return out;
  }

  void configure_sim(vmm::sim::SimOptions& so) override {
    so.templates["web"] = {{"tier", "web"}};
    so.templates["db"] = {{"tier", "db"}};
  }

  void configure(node::EngineConfig& c) override { c.engine.defaults.cooldown = Duration(0); }

  testing::CommandResult request(std::vector<std::string> args, const std::string& key = "orch") {
    args.insert(args.begin(), "request");
    return cli(args, key + ".key", "15s");
  }

  long long rows(const std::string& sql) { return testing::query_number(db_, sql); }

  // Clones template web as `name` and waits for the healed reply; the new id.
  std::string clone(const std::string& name) {
    auto r = request({"clone", "--template", "web", "--host", "host-a", "--name", name, "--reason",
                      "scale out", "--wait", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto v = replies(r.out);
    EXPECT_EQ(stages(v), (std::vector<std::string>{"accepted", "dispatched", "result", "healed"}))
        << r.out;
    return v.empty() ? "" : v.front()["vm"].get<std::string>();
  }

  bool listed(const std::string& id) {
    auto vms = fleet_->host(0).list();
    if (!vms.ok()) return false;
    for (const auto& vm : *vms) {
      if (vm.id == id) return true;
    }
    return false;
  }
};

TEST_F(ProvisionRequestTest, ACloneIsMadeOnItsHostNamedInEveryReplyAndWatchedLikeAnyVm) {
  tick_ = 2ms;  // virtual time moves while the CLI waits (the clone boots in 2 s)
  const std::string id = clone("web-9");
  ASSERT_TRUE(
      std::regex_match(id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                      "[0-9a-f]{12}")))
      << id;
  EXPECT_TRUE(listed(id)) << "the simulated host made it";
  auto info = fleet_->host(0).get(id);
  ASSERT_OK(info);
  EXPECT_EQ(info->name, "web-9");
  EXPECT_EQ(info->labels["template"], "web");
  EXPECT_EQ(info->labels["tier"], "web");
  EXPECT_EQ(node_->engine().vm_host(id), "host-a");
  EXPECT_EQ(node_->engine().vm_name(id), "web-9");
  // The audit story: who asked for what, from which template, why.
  std::string decision;
  for (const auto& d : rec_.decisions) {
    if (d.rule == "request:clone" && d.vm == id) decision = d.id;
  }
  ASSERT_FALSE(decision.empty());
  EXPECT_EQ(rows("SELECT count(*) FROM decisions WHERE decision_id = '" + decision +
                 "' AND verb = 'clone' AND outcome = 'proposed' AND reason LIKE 'trigger: request "
                 "% by orch: clone of template web on host-a as web-9 (scale out)'"),
            1);
  auto why =
      testing::run_command({testing::medic_binary(), "audit", "why", decision, "--db", db_}, 20s);
  EXPECT_EQ(why.exit_code, 0) << why.err;
  for (const std::string& line :
       {std::string("signed by orch"), std::string("Healed: yes"),
        std::string("clone of template web on host host-a as web-9 (reason: scale out)")}) {
    EXPECT_NE(why.out.find(line), std::string::npos) << line << "\n" << why.out;
  }
  // Watched like any VM: a panic of the clone is reset by the rules.
  ASSERT_OK(fleet_->inject(vmm::sim::FaultKind::kPanic, "host-a", id));
  ASSERT_TRUE(run_until([&] { return fleet_->verbs_executed(id, medic::v1::VERB_RESET) == 1; }))
      << "the clone's panic was not reset";
}

TEST_F(ProvisionRequestTest, ARequesterPastItsCloneLimitIsRefusedNamingTheLimitAndNoVmIsMade) {
  tick_ = 2ms;
  auto first = request(
      {"clone", "--template", "web", "--host", "host-a", "--name", "web-5", "--wait"}, "tight");
  EXPECT_EQ(first.exit_code, 0) << first.out << first.err;
  auto second =
      request({"clone", "--template", "web", "--host", "host-a", "--name", "web-6"}, "tight");
  EXPECT_NE(second.exit_code, 0) << second.out;
  EXPECT_NE((second.out + second.err)
                .find("tight has made 1 clone in the last 1h (its limit: clones: 1 per 1h)"),
            std::string::npos)
      << second.out << second.err;
  for (const auto& h : node_->engine().host_views(true)) {
    for (const auto& vm : h.vm_list) {
      const bool web6 =
          std::find(vm.labels.begin(), vm.labels.end(),
                    std::make_pair(std::string("name"), std::string("web-6"))) != vm.labels.end();
      EXPECT_FALSE(web6) << "a refused clone made a VM " << vm.id;
    }
  }
  // Another requester's count is its own.
  clone("web-7");
}

TEST_F(ProvisionRequestTest, ADeleteRemovesTheCloneAndNothingWatchesItAfterwards) {
  tick_ = 2ms;
  const std::string id = clone("web-9");
  ASSERT_FALSE(id.empty());
  auto r = request({"delete", "--vm", "web-9", "--reason", "scale in", "--wait", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto v = replies(r.out);
  EXPECT_EQ(stages(v), (std::vector<std::string>{"accepted", "dispatched", "result", "healed"}))
      << r.out;
  EXPECT_FALSE(listed(id));
  EXPECT_EQ(fleet_->host(0).get(id).status().code(), Code::kNotFound);
  // The name is free again, and names the new clone, not the deleted one.
  tick_ = 2ms;
  const std::string again = clone("web-9");
  ASSERT_FALSE(again.empty());
  EXPECT_NE(again, id);
  auto second = request({"delete", "--vm", "web-9", "--wait", "--json"});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(replies(second.out).front()["vm"], again);
  EXPECT_FALSE(listed(again));
  // Last (virtual time runs ahead of the CLI's clock from here): 2 min.
  const size_t before = rec_.decisions.size();
  tick_ = Duration(0);
  for (int i = 0; i < 40; ++i) {  // 2 min: the absence rule's 30 s four times over
    clock_.advance(3s);
    for (int j = 0; j < 5; ++j) step();
  }
  for (size_t i = before; i < rec_.decisions.size(); ++i)
    EXPECT_TRUE(rec_.decisions[i].vm != id && rec_.decisions[i].vm != again)
        << "a decision about a deleted VM: " << rec_.decisions[i].trigger;
}

TEST_F(ProvisionRequestTest, RefusalsAndFailuresSayWhy) {
  tick_ = 2ms;
  // A template the host does not have: the actuator's result names those it has.
  auto none = request(
      {"clone", "--template", "mail", "--host", "host-a", "--name", "mail-1", "--wait"}, "orch");
  EXPECT_EQ(none.exit_code, 1) << none.out << none.err;
  EXPECT_NE((none.out + none.err).find("is outside orch's scope"), std::string::npos)
      << "orch's labels say template web: " << none.out << none.err;
  // An operator's key may clone any template; the host says it has no mail.
  auto unknown = request(
      {"clone", "--template", "mail", "--host", "host-a", "--name", "mail-1", "--wait"}, "alice");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.out << unknown.err;
  EXPECT_NE(
      (unknown.out + unknown.err).find("no template 'mail' on host host-a (templates: db, web)"),
      std::string::npos)
      << unknown.out << unknown.err;
  // A name a VM of the host has.
  const std::string taken = node_->engine().vm_name(vm_);
  ASSERT_FALSE(taken.empty());
  auto dup = request({"clone", "--template", "web", "--host", "host-a", "--name", taken});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("host host-a has a VM named " + taken + " (" + vm_ + ")"),
            std::string::npos)
      << dup.err;
  // A host outside the scope, and a verb outside it.
  auto far = request({"clone", "--template", "web", "--host", "host-a", "--name", "x"}, "far");
  EXPECT_EQ(far.exit_code, 1);
  EXPECT_NE(far.err.find("a clone of template web on host host-a is outside far's scope"),
            std::string::npos)
      << far.err;
  auto verb = request({"clone", "--template", "web", "--host", "host-a", "--name", "x"}, "app-1");
  EXPECT_EQ(verb.exit_code, 1);
  EXPECT_NE(verb.err.find("app-1 may not ask for clone (its verbs: reboot)"), std::string::npos)
      << verb.err;
  // A delete of a configured VM: the host refuses, the VM stays and is watched.
  auto keep = request({"delete", "--vm", vm_, "--wait"}, "alice");
  EXPECT_EQ(keep.exit_code, 1) << keep.out << keep.err;
  EXPECT_NE((keep.out + keep.err).find("only clones are deleted"), std::string::npos)
      << keep.out << keep.err;
  EXPECT_TRUE(listed(vm_));
  bool still_watched = false;
  for (const auto& h : node_->engine().host_views(true)) {
    for (const auto& vm : h.vm_list) still_watched = still_watched || (vm.id == vm_ && !vm.deleted);
  }
  EXPECT_TRUE(still_watched);
  // Misuse is a usage error before anything is sent.
  auto mixed =
      request({"clone", "--vm", vm_, "--template", "web", "--host", "host-a", "--name", "y"});
  EXPECT_EQ(mixed.exit_code, 2);
  EXPECT_NE(mixed.err.find("a clone names no --vm or --label"), std::string::npos) << mixed.err;
  EXPECT_EQ(rows("SELECT count(*) FROM operator_requests WHERE verb = 'request clone' AND "
                 "accepted = 0"),
            4)
      << "every refusal is in the audit log";
}

}  // namespace
}  // namespace medic

namespace medic {
namespace {

constexpr char kConfigured[] = "11111111-2222-4333-8444-000000000001";

// The same path to a SmartOS host: the agent's backend is vmadm, run as the
// fake vmadm (tests/fakes/vmadm, vmadm(1M)'s documented behaviour) with a
// template directory holding web.json.
class VmadmProvisionTest : public SimHostFlowTest {
 protected:
  std::string more_trusted() override {
    auto id = fabric::Identity::generate();
    EXPECT_OK(id.save(dir_.file("orch.key")));
    // web-orch may touch only VMs made from template web: the clone's
    // label must outlive the agent's listings for it to delete its clone.
    auto web = fabric::Identity::generate();
    EXPECT_OK(web.save(dir_.file("web-orch.key")));
    return "  - {name: orch, key: " + id.id() +
           ", roles: [requester], hosts: [host-a], verbs: [clone, delete]}\n"
           "  - {name: web-orch, key: " +
           web.id() +
           ", roles: [requester], hosts: [host-a], labels: {template: web}, verbs: [delete]}\n";
  }

  // The clone cannot be seen beating (below): a short watch, so that the
  // engine's virtual time stays within the CLI's clock skew bound.
  void configure(node::EngineConfig& c) override {
    c.engine.defaults.heal_within = 3s;
    c.engine.defaults.boot_timeout = 3s;
  }

  vmm::Hypervisor* host_backend() override {
    std::filesystem::copy_file(testing::source_dir() + "/tests/fakes/vmadm", dir_.file("vmadm"));
    std::filesystem::permissions(dir_.file("vmadm"), std::filesystem::perms::owner_all);
    dir_.write("vms", std::string(kConfigured) + "\trunning\tweb-01\n");
    std::filesystem::create_directory(dir_.file("templates"));
    dir_.write("templates/web.json",
               "{\"brand\": \"kvm\", \"ram\": 1024, \"autoboot\": true, \"tags\": {\"role\": "
               "\"web\"}}\n");
    vmm::vmadm::VmadmOptions o;
    o.host = "host-a";
    o.vmadm_path = dir_.file("vmadm");
    o.list_interval = 1s;
    o.templates_dir = dir_.file("templates");
    vmadm_ = std::make_unique<vmm::vmadm::VmadmHypervisor>(clock_, o);
    vm_ = kConfigured;
    return vmadm_.get();
  }

  void TearDown() override {
    SimHostFlowTest::TearDown();
    vmadm_.reset();
  }

  // vmadm runs as real processes: give the loop real time to read them.
  void step() override {
    if (tick_ > Duration(0)) clock_.advance(tick_);
    if (node_) node_->run_once(1ms);
    if (agent_) agent_->run_once(1ms);
  }

  std::unique_ptr<vmm::vmadm::VmadmHypervisor> vmadm_;
};

TEST_F(VmadmProvisionTest, ACloneIsVmadmCreatedFromTheTemplateAndADeleteRemovesIt) {
  tick_ = 5ms;  // the actuator and the engine watch the clone in vain for 3 s
  auto r = cli({"request", "clone", "--template", "web", "--host", "host-a", "--name", "web-02",
                "--reason", "scale out", "--wait", "--json"},
               "orch.key", "30s");
  auto v = replies(r.out);
  ASSERT_FALSE(v.empty()) << r.out << r.err;
  const std::string id = v.front()["vm"].get<std::string>();
  // vmadm has no heartbeat of its own: the clone runs, the actuator cannot
  // see it beat, and the request says so rather than "healed".
  EXPECT_EQ(stages(v), (std::vector<std::string>{"accepted", "dispatched", "result", "not healed"}))
      << r.out;
  const std::string listed = testing::read_file(dir_.file("vms"));
  EXPECT_NE(listed.find(id + "\trunning\tweb-02"), std::string::npos) << listed;
  const std::string calls = testing::read_file(dir_.file("calls"));
  EXPECT_NE(calls.find("create -f "), std::string::npos) << calls;
  ASSERT_TRUE(run_until([&] {
    for (const auto& h : node_->engine().host_views(true)) {
      for (const auto& vm : h.vm_list) {
        if (vm.id == id && vm.state == medic::v1::VM_STATE_RUNNING) return true;
      }
    }
    return false;
  })) << "the engine never saw the clone running";

  auto keep = cli({"request", "delete", "--vm", kConfigured, "--wait"}, "orch.key", "30s");
  EXPECT_EQ(keep.exit_code, 1) << keep.out << keep.err;
  EXPECT_NE(testing::read_file(dir_.file("vms")).find(kConfigured), std::string::npos)
      << "a VM medic did not clone is never deleted";
  // Listed by vmadm, the clone still carries its template: a key scoped to
  // the template deletes it.
  auto gone =
      cli({"request", "delete", "--vm", "web-02", "--wait", "--json"}, "web-orch.key", "30s");
  EXPECT_EQ(gone.exit_code, 0) << gone.out << gone.err;
  EXPECT_EQ(stages(replies(gone.out)),
            (std::vector<std::string>{"accepted", "dispatched", "result", "healed"}))
      << gone.out;
  EXPECT_EQ(testing::read_file(dir_.file("vms")).find(id), std::string::npos);
  EXPECT_NE(testing::read_file(dir_.file("calls")).find("delete " + id), std::string::npos);
}

}  // namespace
}  // namespace medic
