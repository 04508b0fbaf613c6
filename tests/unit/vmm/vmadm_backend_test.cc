// The SmartOS backend against tests/fakes/vmadm, a fake that follows vmadm's
// documented output format and exit codes, copied into a temp dir per test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/testing/testing.h"
#include "vmm/vmadm/vmadm.h"

namespace medic::vmm::vmadm {
namespace {

using namespace std::chrono_literals;
using medic::v1::VERB_REBOOT;
using medic::v1::VERB_RESET;
using medic::v1::VERB_RESTART;
using medic::v1::VERB_START;
using medic::v1::VERB_STOP;
using ::testing::HasSubstr;

constexpr char kWeb[] = "11111111-2222-4333-8444-000000000001";
constexpr char kDb[] = "11111111-2222-4333-8444-000000000002";
constexpr char kOdd[] = "11111111-2222-4333-8444-000000000003";
constexpr char kNew[] = "11111111-2222-4333-8444-000000000004";
constexpr char kGone[] = "99999999-2222-4333-8444-000000000009";

class VmadmBackend : public ::testing::Test {
 protected:
  VmadmBackend() {
    std::filesystem::copy_file(testing::source_dir() + "/tests/fakes/vmadm", dir_.file("vmadm"));
    std::filesystem::permissions(dir_.file("vmadm"), std::filesystem::perms::owner_all);
    set_vms(std::string(kWeb) + "\trunning\tweb-01\n" +  //
            kDb + "\tstopped\t\n" +                      // no alias
            kOdd + "\trunning\tshop: eu-west:1 (ü)\n" +  // colons, spaces, UTF-8
            kNew + "\tprovisioning\tnew\n");
    opts_.host = "cn-07";
    opts_.vmadm_path = dir_.file("vmadm");
    opts_.zones_root = dir_.file("zones");
  }

  void set_vms(const std::string& lines) { dir_.write("vms", lines); }
  void touch(const std::string& name) { dir_.write(name, ""); }

  // The vmadm invocations so far, one per line.
  std::vector<std::string> calls() const {
    std::ifstream in(dir_.file("calls"));
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  std::vector<std::string> verb_calls() const {
    std::vector<std::string> out;
    for (const auto& c : calls()) {
      if (c.rfind("list", 0) != 0) out.push_back(c);
    }
    return out;
  }
  VmState state_of(const std::string& uuid) {
    auto vm = backend().get(uuid);
    EXPECT_OK(vm);
    return vm.ok() ? vm->state : medic::v1::VM_STATE_UNSPECIFIED;
  }
  VmadmHypervisor& backend() {
    if (!hv_) hv_ = std::make_unique<VmadmHypervisor>(opts_);
    return *hv_;
  }
  Status run_verb(Verb verb, const std::string& vm, Duration timeout) {
    return execute_and_wait(backend(), clock_, verb, vm, timeout);
  }

  VirtualClock clock_;
  testing::TempDir dir_;
  VmadmOptions opts_;
  std::unique_ptr<VmadmHypervisor> hv_;
};

// ----------------------------------------------------------------- parsing

TEST(VmadmParse, SplitsUuidAliasAndStateEvenWhenTheAliasHasColons) {
  auto r = parse_vmadm_list(std::string(kWeb) + ":a:b::c:running\r\n\n" + kDb + "::stopped");
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].uuid, kWeb);
  EXPECT_EQ((*r)[0].alias, "a:b::c");
  EXPECT_EQ((*r)[0].state, "running");
  EXPECT_EQ((*r)[1].alias, "");
  EXPECT_EQ((*r)[1].state, "stopped");
}

TEST(VmadmParse, EmptyOutputIsNoVms) {
  auto r = parse_vmadm_list("");
  ASSERT_OK(r);
  EXPECT_TRUE(r->empty());
}

TEST(VmadmParse, RejectsLinesThatAreNotVmadmOutputNamingTheLine) {
  for (std::string bad : {std::string(kWeb) + ":web:running\nhello world\n",
                          std::string(kWeb) + ":web:running\nnot-a-uuid:web:running\n",
                          std::string(kWeb) + ":web:running\n" + kDb + ":web:\n",
                          std::string(kWeb) + ":web:running\n" + kDb + ":web:Running now\n"}) {
    auto r = parse_vmadm_list(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInternal);
    EXPECT_THAT(r.status().message(), HasSubstr("line 2")) << r.status();
  }
  auto r = parse_vmadm_list(std::string(kWeb) + "\n");
  EXPECT_THAT(r.status().message(), HasSubstr("expected uuid:alias:state"));
}

TEST(VmadmParse, MapsVmadmStates) {
  EXPECT_EQ(vm_state_from_vmadm("running"), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(vm_state_from_vmadm("stopped"), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(vm_state_from_vmadm("installed"), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(vm_state_from_vmadm("stopping"), medic::v1::VM_STATE_SHUTTING_DOWN);
  EXPECT_EQ(vm_state_from_vmadm("provisioning"), medic::v1::VM_STATE_BOOTING);
  EXPECT_EQ(vm_state_from_vmadm("failed"), medic::v1::VM_STATE_UNSPECIFIED);
  EXPECT_EQ(vm_state_from_vmadm("frobnicated"), medic::v1::VM_STATE_UNSPECIFIED);
}

TEST(VmadmParse, RecognisesVmUuids) {
  EXPECT_TRUE(is_vm_uuid(kWeb));
  EXPECT_FALSE(is_vm_uuid("-F"));
  EXPECT_FALSE(is_vm_uuid("11111111-2222-4333-8444-00000000000g"));
  EXPECT_FALSE(is_vm_uuid("11111111x2222-4333-8444-000000000001"));
}

// --------------------------------------------------------------- list, get

TEST_F(VmadmBackend, ListsEveryVmWithAliasAndState) {
  auto vms = backend().list();
  ASSERT_OK(vms);
  ASSERT_EQ(vms->size(), 4u);
  EXPECT_EQ((*vms)[0].id, kWeb);
  EXPECT_EQ((*vms)[0].name, "web-01");
  EXPECT_EQ((*vms)[0].state, medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ((*vms)[1].name, "");
  EXPECT_EQ((*vms)[1].state, medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ((*vms)[2].name, "shop: eu-west:1 (ü)");
  EXPECT_EQ((*vms)[3].state, medic::v1::VM_STATE_BOOTING);
  EXPECT_EQ((*vms)[3].labels.at("vmadm_state"), "provisioning");
  EXPECT_THAT(calls(), ::testing::ElementsAre("list -p -o uuid,alias,state"));
  EXPECT_EQ(backend().host(), "cn-07");
}

TEST_F(VmadmBackend, ListsAnEmptyHost) {
  std::filesystem::remove(dir_.file("vms"));
  auto vms = backend().list();
  ASSERT_OK(vms);
  EXPECT_TRUE(vms->empty());
}

TEST_F(VmadmBackend, GetsOneVmByUuid) {
  auto vm = backend().get(kOdd);
  ASSERT_OK(vm);
  EXPECT_EQ(vm->name, "shop: eu-west:1 (ü)");
  EXPECT_EQ(vm->state, medic::v1::VM_STATE_RUNNING);
  EXPECT_THAT(calls(),
              ::testing::ElementsAre(std::string("list -p -o uuid,alias,state uuid=") + kOdd));
}

TEST_F(VmadmBackend, GetOfAnUnknownUuidIsNotFound) {
  EXPECT_EQ(backend().get(kGone).status().code(), Code::kNotFound);
}

TEST_F(VmadmBackend, AMalformedUuidNeverReachesVmadm) {
  auto vm = backend().get("-F");
  EXPECT_EQ(vm.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(run_verb(VERB_STOP, "; rm -rf /", 5s).code(), Code::kInvalidArgument);
  EXPECT_TRUE(calls().empty());
}

TEST_F(VmadmBackend, GarbageOutputIsAClearError) {
  touch("garbage");
  auto vms = backend().list();
  ASSERT_FALSE(vms.ok());
  EXPECT_EQ(vms.status().code(), Code::kInternal);
  EXPECT_THAT(vms.status().message(), HasSubstr("unexpected vmadm list output, line 1"));
  EXPECT_THAT(vms.status().message(), HasSubstr("Uncaught TypeError"));
  EXPECT_THAT(vms.status().message(), HasSubstr("vmadm list -p -o uuid,alias,state"));
}

TEST_F(VmadmBackend, OutputBeyondTheBoundIsRefused) {
  std::string many;
  for (int i = 0; i < 200; ++i) many += std::string(kWeb) + "\trunning\tweb\n";
  set_vms(many);
  opts_.max_output_bytes = 1000;
  auto vms = backend().list();
  EXPECT_EQ(vms.status().code(), Code::kIo);
  EXPECT_THAT(vms.status().message(), HasSubstr("exceeded 1000 bytes"));
}

TEST_F(VmadmBackend, AMissingBinaryIsAClearError) {
  opts_.vmadm_path = dir_.file("no-such-vmadm");
  auto vms = backend().list();
  ASSERT_FALSE(vms.ok());
  EXPECT_EQ(vms.status().code(), Code::kIo);
  EXPECT_THAT(vms.status().message(), HasSubstr(dir_.file("no-such-vmadm")));
  EXPECT_THAT(vms.status().message(), HasSubstr("No such file"));
  EXPECT_EQ(run_verb(VERB_START, kDb, 5s).code(), Code::kIo);
}

TEST_F(VmadmBackend, AHangingListTimesOut) {
  touch("hang");
  opts_.list_timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto vms = backend().list();
  EXPECT_EQ(vms.status().code(), Code::kTimeout) << vms.status();
  EXPECT_THAT(vms.status().message(), HasSubstr("killed"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// ------------------------------------------------------------------- verbs

TEST_F(VmadmBackend, StopForcesARunningVmOff) {
  ASSERT_TRUE(run_verb(VERB_STOP, kWeb, 5s).ok());
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("stop ") + kWeb + " -F"));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_STOPPED);
}

TEST_F(VmadmBackend, StopWithoutForceWhenConfigured) {
  opts_.force_stop = false;
  ASSERT_TRUE(run_verb(VERB_STOP, kWeb, 5s).ok());
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("stop ") + kWeb));
}

TEST_F(VmadmBackend, StopOfAStoppedVmIsFailedPrecondition) {
  Status s = run_verb(VERB_STOP, kDb, 5s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("stopped"));
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, StartBootsAStoppedVm) {
  ASSERT_TRUE(run_verb(VERB_START, kDb, 5s).ok());
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("start ") + kDb));
  EXPECT_EQ(state_of(kDb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, StartOfARunningVmIsRefusedBeforeVmadmRuns) {
  Status s = run_verb(VERB_START, kWeb, 5s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_TRUE(verb_calls().empty());
  // And a provisioning VM is not started either.
  EXPECT_EQ(run_verb(VERB_START, kNew, 5s).code(), Code::kFailedPrecondition);
}

TEST_F(VmadmBackend, RebootRunsVmadmReboot) {
  ASSERT_TRUE(run_verb(VERB_REBOOT, kWeb, 5s).ok());
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("reboot ") + kWeb));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, RebootOfAStoppedVmIsFailedPrecondition) {
  EXPECT_EQ(run_verb(VERB_REBOOT, kDb, 5s).code(), Code::kFailedPrecondition);
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, RestartStopsForcefullyThenStarts) {
  ASSERT_TRUE(run_verb(VERB_RESTART, kWeb, 5s).ok());
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("stop ") + kWeb + " -F",
                                                   std::string("start ") + kWeb));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, RestartOfAStoppedVmOnlyStartsIt) {
  // A crashed QEMU leaves the zone stopped on SmartOS.
  ASSERT_TRUE(run_verb(VERB_RESTART, kDb, 5s).ok());
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("start ") + kDb));
  EXPECT_EQ(state_of(kDb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, EveryVerbOnAnUnknownUuidIsNotFound) {
  for (auto verb : {VERB_REBOOT, VERB_RESET, VERB_RESTART, VERB_STOP, VERB_START}) {
    Status s = run_verb(verb, kGone, 5s);
    EXPECT_EQ(s.code(), Code::kNotFound) << verb_name(verb) << ": " << s;
  }
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, AVmThatVanishesBeforeTheVerbIsNotFound) {
  // The lookup sees the VM; vmadm then says it does not exist (deleted in
  // between). Simulated with a list that lies: a VM only in the listing.
  std::string lie = dir_.write("vmadm-lie",
                               "#!/bin/sh\n"
                               "if [ \"$1\" = list ]; then echo '" +
                                   std::string(kGone) +
                                   "::stopped'; exit 0; fi\n"
                                   "exec \"$(dirname \"$0\")/vmadm\" \"$@\"\n",
                               0755);
  opts_.vmadm_path = lie;
  Status s = run_verb(VERB_START, kGone, 5s);
  EXPECT_EQ(s.code(), Code::kNotFound) << s;
  EXPECT_THAT(s.message(), HasSubstr("does not exist"));
}

// vmadm exits 0 when asked to start a running VM or reboot a stopped one; a
// state change between our lookup and the verb must not read as success.
TEST_F(VmadmBackend, VmadmsAlreadyRunningNoOpIsNotTakenForAStart) {
  std::string lie = dir_.write("vmadm-lie",
                               "#!/bin/sh\n"
                               "if [ \"$1\" = list ]; then echo '" +
                                   std::string(kWeb) +
                                   ":web-01:stopped'; exit 0; fi\n"
                                   "exec \"$(dirname \"$0\")/vmadm\" \"$@\"\n",
                               0755);
  opts_.vmadm_path = lie;
  Status s = run_verb(VERB_START, kWeb, 5s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("already 'running'"));
}

TEST_F(VmadmBackend, VmadmsNotRunningNoOpIsNotTakenForAReboot) {
  std::string lie = dir_.write("vmadm-lie",
                               "#!/bin/sh\n"
                               "if [ \"$1\" = list ]; then echo '" +
                                   std::string(kDb) +
                                   "::running'; exit 0; fi\n"
                                   "exec \"$(dirname \"$0\")/vmadm\" \"$@\"\n",
                               0755);
  opts_.vmadm_path = lie;
  Status s = run_verb(VERB_REBOOT, kDb, 5s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("already not 'running'"));
}

TEST_F(VmadmBackend, AFailingVerbQuotesVmadm) {
  touch("fail");
  Status s = run_verb(VERB_STOP, kWeb, 5s);
  EXPECT_EQ(s.code(), Code::kIo) << s;
  EXPECT_THAT(s.message(), HasSubstr("exit 1"));
  EXPECT_THAT(s.message(), HasSubstr("Unable to stop VM"));
  EXPECT_THAT(s.message(), HasSubstr("simulated failure"));
  EXPECT_THAT(s.message(), HasSubstr(std::string("vmadm stop ") + kWeb));
}

TEST_F(VmadmBackend, AHangingVerbTimesOutWithinItsLimit) {
  // The state lookup answers; the verb itself hangs.
  std::string slow = dir_.write("vmadm-slow",
                                "#!/bin/sh\n"
                                "if [ \"$1\" = stop ]; then exec sleep 60; fi\n"
                                "exec \"$(dirname \"$0\")/vmadm\" \"$@\"\n",
                                0755);
  opts_.vmadm_path = slow;
  auto start = std::chrono::steady_clock::now();
  Status s = run_verb(VERB_STOP, kWeb, 500ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), Code::kTimeout) << s;
  EXPECT_THAT(s.message(), HasSubstr("stop"));
  EXPECT_LT(took, 5s);
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, AHangingVmadmTimesOutEvenBeforeTheVerb) {
  touch("hang");
  auto start = std::chrono::steady_clock::now();
  Status s = run_verb(VERB_RESTART, kWeb, 300ms);
  EXPECT_EQ(s.code(), Code::kTimeout) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// ------------------------------------------------------------------- reset

TEST_F(VmadmBackend, QmpSocketLivesInTheZoneRoot) {
  EXPECT_EQ(backend().qmp_socket_path(kWeb), dir_.file("zones") + "/" + kWeb + "/root/tmp/vm.qmp");
  opts_.zones_root = "/zones";
  VmadmHypervisor real(opts_);
  EXPECT_EQ(real.qmp_socket_path(kWeb), std::string("/zones/") + kWeb + "/root/tmp/vm.qmp");
}

TEST_F(VmadmBackend, ResetWithoutAQmpClientIsRefusedNamingTheSocket) {
  Status s = run_verb(VERB_RESET, kWeb, 5s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("/root/tmp/vm.qmp"));
  EXPECT_THAT(s.message(), HasSubstr("QMP"));
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, ResetGoesThroughTheQmpHookWithTheZoneSocket) {
  std::string seen_socket;
  Duration seen_timeout{};
  opts_.qmp_reset = [&](const std::string& socket, Duration timeout) {
    seen_socket = socket;
    seen_timeout = timeout;
    return Status{};
  };
  ASSERT_TRUE(run_verb(VERB_RESET, kWeb, 7s).ok());
  EXPECT_EQ(seen_socket, backend().qmp_socket_path(kWeb));
  EXPECT_EQ(seen_timeout, Duration(7s));
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, ResetOfAStoppedVmIsFailedPrecondition) {
  bool called = false;
  opts_.qmp_reset = [&](const std::string&, Duration) {
    called = true;
    return Status{};
  };
  EXPECT_EQ(run_verb(VERB_RESET, kDb, 5s).code(), Code::kFailedPrecondition);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace medic::vmm::vmadm
