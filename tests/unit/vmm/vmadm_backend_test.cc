// The SmartOS backend against tests/fakes/vmadm, a fake that follows vmadm's
// documented output format and exit codes, copied into a temp dir per test.
// The backend runs on an EventLoop with a VirtualClock: vmadm processes are
// real, time limits and list intervals move only when a test advances the
// Clock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>

#include "core/event_loop.h"
#include "tests/testing/testing.h"
#include "tests/unit/vmm/fake_qmp_server.h"
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
    dir_.write("autoboot_off", std::string(kDb) + "\n");  // stopped by vmadm stop
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
  // The state of `uuid` in a listing started after this call.
  VmState state_of(const std::string& uuid) {
    const uint64_t want = backend().stats().listings_started + 1;
    backend().refresh();
    EXPECT_TRUE(run_until([&] { return backend().stats().listings_done >= want; }));
    auto vm = backend().get(uuid);
    EXPECT_OK(vm);
    return vm.ok() ? vm->state : medic::v1::VM_STATE_UNSPECIFIED;
  }
  VmadmHypervisor& backend() {
    if (!hv_) {
      hv_ = std::make_unique<VmadmHypervisor>(clock_, opts_);
      loop_.add_source(&source_.emplace(*hv_));
    }
    return *hv_;
  }
  // Turns the loop (waiting on vmadm's pipes and exits, never on time) until
  // `cond` holds.
  bool run_until(const std::function<bool()>& cond) {
    backend();
    return testing::wait_until([&] {
      loop_.run_once(20ms);
      return cond();
    });
  }
  // list() once the first listing has ended.
  Result<std::vector<VmInfo>> first_listing() {
    EXPECT_TRUE(run_until([&] { return backend().stats().listings_done >= 1; }));
    return backend().list();
  }
  // Runs a verb to its end; `between(turn)` runs after each turn of the loop
  // (to move the Clock).
  Status run_verb(Verb verb, const std::string& vm, Duration timeout,
                  const std::function<void(int)>& between = nullptr) {
    std::optional<Status> result;
    backend().execute(verb, vm, timeout, [&](Status s) { result = s; });
    EXPECT_FALSE(result.has_value()) << "done ran inside execute()";
    int turn = 0;
    EXPECT_TRUE(run_until([&] {
      if (between && !result) between(++turn);
      return result.has_value();
    }));
    return result.value_or(internal_error("the verb did not finish"));
  }
  // True once vmadm was called with arguments starting with `prefix`.
  bool called(const std::string& prefix) const {
    for (const auto& c : calls()) {
      if (c.rfind(prefix, 0) == 0) return true;
    }
    return false;
  }

  VirtualClock clock_;
  testing::TempDir dir_;
  VmadmOptions opts_;
  EventLoop loop_{clock_};
  std::unique_ptr<VmadmHypervisor> hv_;
  std::optional<HypervisorSource> source_;
};

// ----------------------------------------------------------------- parsing

TEST(VmadmParse, SplitsUuidAutobootStateTemplateAndAliasEvenWhenTheAliasHasColons) {
  auto r = parse_vmadm_list(std::string(kWeb) + ":true:running::a:b::c\r\n\n" + kDb +
                            ":false:stopped:web:");
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].uuid, kWeb);
  EXPECT_TRUE((*r)[0].autoboot);
  EXPECT_EQ((*r)[0].alias, "a:b::c");
  EXPECT_EQ((*r)[0].state, "running");
  EXPECT_EQ((*r)[0].template_name, "");
  EXPECT_FALSE((*r)[1].autoboot);
  EXPECT_EQ((*r)[1].alias, "");
  EXPECT_EQ((*r)[1].state, "stopped");
  EXPECT_EQ((*r)[1].template_name, "web");
  // A tag set by hand that is no template name is no template, and the
  // listing of the other VMs stands.
  auto odd = parse_vmadm_list(std::string(kWeb) + ":true:running:../etc:web-01\n");
  ASSERT_OK(odd);
  EXPECT_EQ((*odd)[0].template_name, "");
  EXPECT_EQ((*odd)[0].alias, "web-01");
}

TEST(VmadmParse, EmptyOutputIsNoVms) {
  auto r = parse_vmadm_list("");
  ASSERT_OK(r);
  EXPECT_TRUE(r->empty());
}

TEST(VmadmParse, RejectsLinesThatAreNotVmadmOutputNamingTheLine) {
  const std::string good = std::string(kWeb) + ":true:running::web\n";
  for (std::string bad : {good + "hello world\n", good + "not-a-uuid:true:running::web\n",
                          good + kDb + ":true:::web\n", good + kDb + ":true:Running now::web\n",
                          good + kDb + ":yes:running::web\n", good + kDb + ":running::web\n",
                          good + kDb + ":true:running:web\n"}) {
    auto r = parse_vmadm_list(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInternal);
    EXPECT_THAT(r.status().message(), HasSubstr("line 2")) << r.status();
  }
  auto r = parse_vmadm_list(std::string(kWeb) + "\n");
  EXPECT_THAT(r.status().message(),
              HasSubstr("expected uuid,autoboot,state,tags.medic_template,alias"));
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
  EXPECT_EQ(backend().list().status().code(), Code::kUnavailable) << "listed before any listing";
  auto vms = first_listing();
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
  EXPECT_EQ((*vms)[0].labels.at("vmadm_autoboot"), "true");
  EXPECT_EQ((*vms)[1].labels.at("vmadm_autoboot"), "false");
  EXPECT_EQ((*vms)[1].labels.at("desired"), "stopped");
  EXPECT_EQ((*vms)[0].labels.at("desired"), "running");
  EXPECT_THAT(calls(),
              ::testing::ElementsAre("list -p -o uuid,autoboot,state,tags.medic_template,alias"));
  EXPECT_EQ(backend().host(), "cn-07");
}

// Desired state is autoboot (docs/backends.md): a stop through vmadm clears
// it and is left alone; a VM that stops with it still set did not stop
// through vmadm and is reported crashed, which the shipped rules heal.
TEST_F(VmadmBackend, AVmadmStopIsIntendedAndAStopWithAutobootStillOnIsACrash) {
  std::vector<VmEvent> events;
  backend().subscribe([&](const VmEvent& e) { events.push_back(e); });
  ASSERT_OK(first_listing());
  EXPECT_EQ(backend().get(kDb)->state, medic::v1::VM_STATE_STOPPED)
      << "autoboot off: meant to be down";
  ASSERT_OK(run_verb(VERB_STOP, kWeb, 5s));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(backend().get(kWeb)->labels.at("vmadm_autoboot"), "false");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].vm, kWeb);
  EXPECT_EQ(events[0].what, medic::v1::LIFECYCLE_STOPPED);
  EXPECT_THAT(events[0].detail, HasSubstr("intended stop"));
  // kOdd's QEMU dies: its zone is stopped, autoboot still true.
  set_vms(std::string(kWeb) + "\tstopped\tweb-01\n" + kDb + "\tstopped\t\n" + kOdd +
          "\tstopped\tshop: eu-west:1 (ü)\n" + kNew + "\tprovisioning\tnew\n");
  EXPECT_EQ(state_of(kOdd), medic::v1::VM_STATE_CRASHED);
  ASSERT_EQ(events.size(), 2u) << "one event for kOdd, none again for kWeb";
  EXPECT_EQ(events[1].vm, kOdd);
  EXPECT_EQ(events[1].what, medic::v1::LIFECYCLE_CRASHED);
  EXPECT_THAT(events[1].detail, HasSubstr("autoboot=true"));
  // The guest-crashed rule's restart: vmadm start, and the VM is meant to run again.
  ASSERT_OK(run_verb(VERB_RESTART, kOdd, 5s));
  EXPECT_EQ(state_of(kOdd), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(backend().get(kOdd)->labels.at("vmadm_autoboot"), "true");
  // A new agent finds kWeb (stopped on purpose) and kOdd (crashed again) down:
  // only kOdd is reported, as a crash.
  set_vms(std::string(kWeb) + "\tstopped\tweb-01\n" + kOdd + "\tstopped\todd\n");
  {
    EventLoop loop(clock_);
    VmadmHypervisor restarted(clock_, opts_);
    HypervisorSource source(restarted);
    loop.add_source(&source);
    std::vector<VmEvent> fresh;
    restarted.subscribe([&](const VmEvent& e) { fresh.push_back(e); });
    ASSERT_TRUE(testing::wait_until([&] {
      loop.run_once(20ms);
      return restarted.stats().listings_done >= 1;
    }));
    ASSERT_EQ(fresh.size(), 1u);
    EXPECT_EQ(fresh[0].vm, kOdd);
    EXPECT_EQ(fresh[0].what, medic::v1::LIFECYCLE_CRASHED);
    EXPECT_EQ(restarted.get(kWeb)->state, medic::v1::VM_STATE_STOPPED);
  }
  // And a start of the VM stopped on purpose makes it meant to run again.
  ASSERT_OK(run_verb(VERB_START, kWeb, 5s));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(backend().get(kWeb)->labels.at("vmadm_autoboot"), "true");
}

TEST_F(VmadmBackend, ListsAnEmptyHost) {
  std::filesystem::remove(dir_.file("vms"));
  auto vms = first_listing();
  ASSERT_OK(vms);
  EXPECT_TRUE(vms->empty());
}

TEST_F(VmadmBackend, GetsOneVmFromTheLastListing) {
  ASSERT_OK(first_listing());
  auto vm = backend().get(kOdd);
  ASSERT_OK(vm);
  EXPECT_EQ(vm->name, "shop: eu-west:1 (ü)");
  EXPECT_EQ(vm->state, medic::v1::VM_STATE_RUNNING);
  EXPECT_THAT(calls(),
              ::testing::ElementsAre("list -p -o uuid,autoboot,state,tags.medic_template,alias"));
}

TEST_F(VmadmBackend, GetOfAnUnknownUuidIsNotFound) {
  ASSERT_OK(first_listing());
  EXPECT_EQ(backend().get(kGone).status().code(), Code::kNotFound);
  EXPECT_OK(backend().get(kWeb));
}

TEST_F(VmadmBackend, AMalformedUuidNeverReachesVmadm) {
  auto vm = backend().get("-F");
  EXPECT_EQ(vm.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(run_verb(VERB_STOP, "; rm -rf /", 5s).code(), Code::kInvalidArgument);
  EXPECT_TRUE(verb_calls().empty());
  for (const auto& c : calls()) EXPECT_EQ(c.find("rm -rf"), std::string::npos) << c;
}

TEST_F(VmadmBackend, GarbageOutputIsAClearError) {
  touch("garbage");
  auto vms = first_listing();
  ASSERT_FALSE(vms.ok());
  EXPECT_EQ(vms.status().code(), Code::kInternal);
  EXPECT_THAT(vms.status().message(), HasSubstr("unexpected vmadm list output, line 1"));
  EXPECT_THAT(vms.status().message(), HasSubstr("Uncaught TypeError"));
  EXPECT_THAT(vms.status().message(),
              HasSubstr("vmadm list -p -o uuid,autoboot,state,tags.medic_template,alias"));
}

TEST_F(VmadmBackend, OutputBeyondTheBoundIsRefused) {
  std::string many;
  for (int i = 0; i < 200; ++i) many += std::string(kWeb) + "\trunning\tweb\n";
  set_vms(many);
  opts_.max_output_bytes = 1000;
  auto vms = first_listing();
  EXPECT_EQ(vms.status().code(), Code::kIo);
  EXPECT_THAT(vms.status().message(), HasSubstr("exceeded 1000 bytes"));
}

TEST_F(VmadmBackend, AMissingBinaryIsAClearError) {
  opts_.vmadm_path = dir_.file("no-such-vmadm");
  auto vms = first_listing();
  ASSERT_FALSE(vms.ok());
  EXPECT_EQ(vms.status().code(), Code::kIo);
  EXPECT_THAT(vms.status().message(), HasSubstr(dir_.file("no-such-vmadm")));
  EXPECT_THAT(vms.status().message(), HasSubstr("No such file"));
  EXPECT_EQ(run_verb(VERB_START, kDb, 5s).code(), Code::kIo);
}

TEST_F(VmadmBackend, AHangingListTimesOutOnTheClock) {
  touch("hang");
  opts_.list_timeout = 300ms;
  ASSERT_TRUE(run_until([&] { return called("list"); }));
  for (int i = 0; i < 5; ++i) loop_.run_once(10ms);
  EXPECT_EQ(backend().stats().listings_done, 0u) << "ended before the Clock moved";
  clock_.advance(300ms);
  ASSERT_TRUE(run_until([&] { return backend().stats().listings_done == 1; }));
  auto vms = backend().list();
  EXPECT_EQ(vms.status().code(), Code::kTimeout) << vms.status();
  EXPECT_THAT(vms.status().message(),
              HasSubstr("no answer within 300ms, killed (time limit of 300ms passed: SIGTERM"));
}

TEST_F(VmadmBackend, ListsOnTheClockAndReportsStatesUnknownWhileVmadmHangs) {
  opts_.list_interval = 1s;
  opts_.unresponsive_after = 3;
  opts_.list_timeout = 10s;
  auto vms = first_listing();
  ASSERT_OK(vms);
  auto web = [&] { return backend().get(kWeb)->state; };
  EXPECT_EQ(web(), medic::v1::VM_STATE_RUNNING);
  touch("hang");
  clock_.advance(1s);  // the next listing starts, and hangs
  ASSERT_TRUE(run_until([&] { return backend().stats().listings_started == 2; }));
  clock_.advance(2s);  // two intervals without an answer
  loop_.run_once(0ms);
  EXPECT_EQ(web(), medic::v1::VM_STATE_RUNNING) << "unknown too early";
  clock_.advance(1s);  // the third
  EXPECT_EQ(web(), medic::v1::VM_STATE_UNSPECIFIED);
  EXPECT_EQ(backend().stats().missed_intervals, 3u);
  std::filesystem::remove(dir_.file("hang"));
  clock_.advance(7s);  // the hanging listing reaches its time limit (started at 1s)
  ASSERT_TRUE(run_until([&] { return backend().stats().listings_done == 2; }));
  EXPECT_EQ(backend().list().status().code(), Code::kTimeout);
  EXPECT_EQ(backend().get(kWeb).status().code(), Code::kTimeout);
  clock_.advance(1s);  // the next listing answers
  ASSERT_TRUE(run_until([&] { return backend().stats().listings_done == 3; }));
  EXPECT_EQ(web(), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(backend().stats().listing_failures, 1u);
}

// ------------------------------------------------------------------- verbs

TEST_F(VmadmBackend, StopForcesARunningVmOff) {
  ASSERT_OK(run_verb(VERB_STOP, kWeb, 5s));
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("stop ") + kWeb + " -F"));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_STOPPED);
}

TEST_F(VmadmBackend, StopWithoutForceWhenConfigured) {
  opts_.force_stop = false;
  ASSERT_OK(run_verb(VERB_STOP, kWeb, 5s));
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("stop ") + kWeb));
}

TEST_F(VmadmBackend, StopOfAStoppedVmIsFailedPrecondition) {
  Status s = run_verb(VERB_STOP, kDb, 5s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("stopped"));
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, StartBootsAStoppedVm) {
  ASSERT_OK(run_verb(VERB_START, kDb, 5s));
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
  ASSERT_OK(run_verb(VERB_REBOOT, kWeb, 5s));
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("reboot ") + kWeb));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, RebootOfAStoppedVmIsFailedPrecondition) {
  EXPECT_EQ(run_verb(VERB_REBOOT, kDb, 5s).code(), Code::kFailedPrecondition);
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, RestartStopsForcefullyThenStarts) {
  ASSERT_OK(run_verb(VERB_RESTART, kWeb, 5s));
  EXPECT_THAT(verb_calls(), ::testing::ElementsAre(std::string("stop ") + kWeb + " -F",
                                                   std::string("start ") + kWeb));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, RestartOfAStoppedVmOnlyStartsIt) {
  // A crashed QEMU leaves the zone stopped on SmartOS.
  ASSERT_OK(run_verb(VERB_RESTART, kDb, 5s));
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
                                   ":false:stopped::'; exit 0; fi\n"
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
                                   ":false:stopped::web-01'; exit 0; fi\n"
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
                                   ":true:running::'; exit 0; fi\n"
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
                                "if [ \"$1\" = stop ]; then\n"
                                "  echo \"$*\" >> \"$(dirname \"$0\")/calls\"; exec sleep 60\n"
                                "fi\n"
                                "exec \"$(dirname \"$0\")/vmadm\" \"$@\"\n",
                                0755);
  opts_.vmadm_path = slow;
  bool waited = false;
  Status s = run_verb(VERB_STOP, kWeb, 500ms, [&](int) {
    if (!waited && called("stop")) {
      waited = true;
      for (int i = 0; i < 5; ++i) loop_.run_once(10ms);
      clock_.advance(500ms);
    }
  });
  EXPECT_TRUE(waited);
  EXPECT_EQ(s.code(), Code::kTimeout) << s;
  EXPECT_THAT(s.message(), HasSubstr(std::string("vmadm stop ") + kWeb + " -F: no answer within"));
  EXPECT_THAT(s.message(), HasSubstr("SIGTERM to its process group"));
  EXPECT_EQ(state_of(kWeb), medic::v1::VM_STATE_RUNNING);
}

TEST_F(VmadmBackend, AHangingVmadmTimesOutEvenBeforeTheVerb) {
  touch("hang");
  Status s = run_verb(VERB_RESTART, kWeb, 300ms, [&](int turn) {
    if (turn == 5) clock_.advance(300ms);
  });
  EXPECT_EQ(s.code(), Code::kTimeout) << s;
  EXPECT_THAT(s.message(), HasSubstr(std::string("restart ") + kWeb));
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, ASecondVerbOnAVmWithOneInProgressIsRefused) {
  std::string slow = dir_.write("vmadm-slow",
                                "#!/bin/sh\n"
                                "if [ \"$1\" = stop ]; then\n"
                                "  echo \"$*\" >> \"$(dirname \"$0\")/calls\"; exec sleep 60\n"
                                "fi\n"
                                "exec \"$(dirname \"$0\")/vmadm\" \"$@\"\n",
                                0755);
  opts_.vmadm_path = slow;
  std::optional<Status> stop;
  backend().execute(VERB_STOP, kWeb, 5s, [&](Status s) { stop = s; });
  Status second = run_verb(VERB_START, kWeb, 5s);
  EXPECT_EQ(second.code(), Code::kFailedPrecondition) << second;
  EXPECT_THAT(second.message(), HasSubstr(std::string("stop ") + kWeb + " is in progress"));
  // Another VM is not held up by it.
  ASSERT_OK(run_verb(VERB_START, kDb, 5s));
  EXPECT_FALSE(stop.has_value());
}

// ------------------------------------------------------------------- reset

TEST_F(VmadmBackend, QmpSocketLivesInTheZoneRoot) {
  EXPECT_EQ(backend().qmp_socket_path(kWeb), dir_.file("zones") + "/" + kWeb + "/root/tmp/vm.qmp");
  opts_.zones_root = "/zones";
  VmadmHypervisor real(clock_, opts_);
  EXPECT_EQ(real.qmp_socket_path(kWeb), std::string("/zones/") + kWeb + "/root/tmp/vm.qmp");
}

TEST_F(VmadmBackend, ResetWithoutAQemuOnTheZoneSocketIsUnavailableNamingTheSocket) {
  Status s = run_verb(VERB_RESET, kWeb, 5s);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr(backend().qmp_socket_path(kWeb)));
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, ResetGoesThroughQmpOnTheZoneSocket) {
  const std::string socket = backend().qmp_socket_path(kWeb);
  std::filesystem::create_directories(std::filesystem::path(socket).parent_path());
  qmp::FakeQmpServer qemu(socket, {R"({"return": {}})", R"({"return": {"status": "paused"}})",
                                   R"({"return": {}})", R"({"return": {}})"});
  ASSERT_OK(run_verb(VERB_RESET, kWeb, 7s));
  EXPECT_EQ(qemu.commands(),
            (std::vector<std::string>{"qmp_capabilities", "query-status", "system_reset", "cont"}));
  EXPECT_TRUE(verb_calls().empty());
}

TEST_F(VmadmBackend, ResetOfAStoppedVmIsFailedPrecondition) {
  Status s = run_verb(VERB_RESET, kDb, 5s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("it is stopped"));
}

}  // namespace
}  // namespace medic::vmm::vmadm
