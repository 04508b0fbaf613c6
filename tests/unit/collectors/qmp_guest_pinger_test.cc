// The collector's guest_ping over the qmp backend, end to end on one host:
// a Collector whose backend is a QmpHypervisor running one VM and whose
// GuestPinger is QmpGuestPinger, against the real qemu-ga on the VM's
// guest_agent_socket. The VM's QEMU is this test binary started as
// "medic-fake-qemu" (it serves QMP and says "running"; a real QEMU would
// need a guest with an agent inside, see tests/e2e/qemu_guest_test.cc).
#include "collectors/qmp_guest_pinger.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "tests/testing/qemu_ga.h"
#include "tests/testing/testing.h"
#include "tests/unit/collectors/fakes.h"
#include "core/json.h"

namespace medic::collectors {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
constexpr const char* kFakeName = "medic-fake-qemu";
constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";

// ---- the fake QEMU (child process only): QMP greeting, capabilities,
// query-status "running"; everything else gets an empty return ----

[[noreturn]] void fake_qemu(const std::vector<std::string>& args) {
  std::string qmp_path;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "-qmp") qmp_path = args[i + 1].substr(5, args[i + 1].find(',') - 5);
  }
  int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, qmp_path.c_str(), sizeof a.sun_path - 1);
  ::unlink(qmp_path.c_str());
  if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 1) != 0) _exit(90);
  while (true) {
    int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string greeting = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n";
    (void)!::send(c, greeting.data(), greeting.size(), MSG_NOSIGNAL);
    std::string buf;
    char chunk[1024];
    ssize_t n;
    while ((n = ::read(c, chunk, sizeof chunk)) > 0) {
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        auto req = parse_json(std::string_view(buf).substr(0, nl));
        buf.erase(0, nl + 1);
        if (!req.ok()) continue;
        const Json* id_member = json_member(*req, "id");
        std::string id = id_member ? dump_json(*id_member) : "null";
        const std::string* cmd = json_string_member(*req, "execute");
        std::string ret =
            cmd && *cmd == "query-status" ? "{\"status\": \"running\", \"running\": true}" : "{}";
        std::string reply = "{\"return\": " + ret + ", \"id\": " + id + "}\n";
        (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        if (cmd && *cmd == "quit") _exit(0);
      }
    }
    ::close(c);
  }
}

const bool kFakeQemuChecked = [] {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  if (!args.empty() && fs::path(args[0]).filename() == kFakeName) fake_qemu(args);
  return true;
}();

// ---- the test ----

class QmpGuestPingerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    qemu_ga_ = testing::find_qemu_ga();
    if (qemu_ga_.empty()) {
      FAIL() << "qemu-ga is not installed (Debian package qemu-guest-agent, "
                      "scripts/bootstrap installs it)";
    }
    std::string fake = dir_.file(kFakeName);
    fs::create_symlink(fs::read_symlink("/proc/self/exe"), fake);
    vmm::qmp::VmSpec s;
    s.name = "vm1";
    s.uuid = kUuid;
    s.kernel = "/nonexistent/vmlinuz";
    s.qmp_socket = dir_.file("vm1.qmp");
    s.guest_agent_socket = dir_.file("vm1.qga");
    s.qemu = fake;
    s.accel = vmm::qmp::Accel::kTcg;
    hv_ = std::make_unique<vmm::qmp::QmpHypervisor>("host-a", std::vector<vmm::qmp::VmSpec>{s},
                                                    clock_);
    pinger_ = std::make_unique<QmpGuestPinger>(*hv_);
    Status started = vmm::execute_and_wait(*hv_, clock_, medic::v1::VERB_START, kUuid, 10s);
    ASSERT_OK(started) << started;
    // The agent the guest would run, on the socket QEMU would serve.
    Status s_ga = agent_.start(qemu_ga_, dir_.file("vm1.qga"), dir_.path());
    ASSERT_OK(s_ga) << s_ga;

    CollectorDeps deps{hv_.get(), &clock_, &keys_.collector, &pub_, nullptr, pinger_.get()};
    CollectorOptions opts;
    opts.host = "host-a";
    opts.guest_ping.enabled = true;
    opts.guest_ping.interval = 1500ms;
    opts.guest_ping.timeout = 5s;
    auto c = Collector::create(opts, deps);
    ASSERT_OK(c);
    collector_ = std::move(*c);
    collector_->start();
  }

  // Runs the collector's loop in real time (virtual time stands still) until
  // `cond` holds, at most 10 s.
  bool run_until(const std::function<bool()>& cond) {
    const auto deadline = SteadyClock::now() + 10s;
    while (!cond()) {
      if (SteadyClock::now() >= deadline) return false;
      collector_->run_once(20ms);
    }
    return true;
  }
  // GuestPing events of the VM in the bulk batches published so far (and no
  // heartbeat: the test guest has no heartbeat writer).
  int guest_agent_beats() {
    fabric::Opener opener(keys_.trust, clock_);
    opener.expect_kinds({medic::v1::KIND_EVENT_BATCH});
    int n = 0;
    for (const auto& frame : pub_.bulk) {
      medic::v1::EventBatch b;
      Status s = testing::open_batch(opener, frame, &b);
      EXPECT_OK(s) << s;
      for (const auto& e : b.events()) {
        EXPECT_FALSE(e.has_heartbeat()) << "an agent answer was reported as a heartbeat";
        n += e.has_guest_ping() && e.vm() == kUuid;
      }
    }
    return n;
  }

  std::string qemu_ga_;
  testing::TempDir dir_;
  VirtualClock clock_;
  testing::Keys keys_;
  testing::RecordingPublisher pub_;
  std::unique_ptr<vmm::qmp::QmpHypervisor> hv_;
  std::unique_ptr<QmpGuestPinger> pinger_;
  testing::QemuGa agent_;
  std::unique_ptr<Collector> collector_;
};

TEST_F(QmpGuestPingerTest, AnsweredGuestPingsBecomeGuestPingEventsAndADeadAgentAFailure) {
  collector_->run_once(0ms);
  clock_.advance(1s);  // first flush: learns that vm1 runs
  ASSERT_EQ(pub_.bulk.size(), 1u);
  clock_.advance(500ms);  // guest ping of vm1 at 1.5 s
  EXPECT_EQ(collector_->counters().guest_pings, 1u);
  ASSERT_TRUE(run_until([&] { return hv_->guest_agent_stats().answered == 1; }))
      << "qemu-ga did not answer; failures: " << hv_->guest_agent_stats().connect_failures
      << " connect, " << hv_->guest_agent_stats().timeouts << " timeouts";
  clock_.advance(500ms);  // flush at 2 s carries the answer
  ASSERT_EQ(pub_.bulk.size(), 2u);
  EXPECT_EQ(guest_agent_beats(), 1);
  EXPECT_EQ(collector_->counters().guest_ping_failures, 0u);

  agent_.kill();       // the agent dies; QEMU (QMP) still says running
  clock_.advance(1s);  // ping at 3 s: nobody listens, fails at once
  collector_->run_once(0ms);
  EXPECT_EQ(collector_->counters().guest_pings, 2u);
  EXPECT_EQ(collector_->counters().guest_ping_failures, 1u);
  EXPECT_EQ(hv_->guest_agent_stats().connect_failures, 1u);
  clock_.advance(1s);  // flush at 4 s: no new answer
  EXPECT_EQ(guest_agent_beats(), 1);
}

// The collector's cadence over the qmp backend while one VM's QEMU is frozen
// (SIGSTOP: its QMP accepts nothing and answers nothing): every interval
// still gives one flush, at once (list() answers from the last known state;
// it used to wait 2 s per frozen VM), the answering VM is reported running
// throughout (the positive control), and the frozen one "unresponsive" from
// the third unanswered interval on, announced once on the urgent lane. No
// qemu-ga needed.
class QmpStatusCadenceTest : public ::testing::Test {
 protected:
  static constexpr const char* kFrozen = "22222222-3333-4444-5555-666666666666";
  void SetUp() override {
    std::string fake = dir_.file(kFakeName);
    fs::create_symlink(fs::read_symlink("/proc/self/exe"), fake);
    std::vector<vmm::qmp::VmSpec> specs;
    for (const char* uuid : {kUuid, kFrozen}) {
      vmm::qmp::VmSpec s;
      s.name = uuid == kUuid ? "answering" : "frozen";
      s.uuid = uuid;
      s.kernel = "/nonexistent/vmlinuz";
      s.qmp_socket = dir_.file(s.name + ".qmp");
      s.qemu = fake;
      s.accel = vmm::qmp::Accel::kTcg;
      specs.push_back(s);
    }
    hv_ = std::make_unique<vmm::qmp::QmpHypervisor>("host-a", specs, clock_);
    for (const char* uuid : {kUuid, kFrozen}) {
      ASSERT_OK(vmm::execute_and_wait(*hv_, clock_, medic::v1::VERB_START, uuid, 10s));
    }
    CollectorDeps deps{hv_.get(), &clock_, &keys_.collector, &pub_, nullptr, nullptr};
    CollectorOptions opts;
    opts.host = "host-a";
    auto c = Collector::create(opts, deps);
    ASSERT_OK(c);
    collector_ = std::move(*c);
    collector_->start();
  }
  void TearDown() override {
    if (frozen_pid_ > 0) ::kill(frozen_pid_, SIGCONT);
  }
  bool run_until(const std::function<bool()>& cond) {
    const auto deadline = SteadyClock::now() + 10s;
    while (!cond()) {
      if (SteadyClock::now() >= deadline) return false;
      collector_->run_once(20ms);
    }
    return true;
  }
  // The state `vm` has in bulk flush number `i`; UNSPECIFIED when absent.
  medic::v1::VmState state_in(size_t i, const std::string& vm) {
    fabric::Opener opener(keys_.trust, clock_);
    opener.expect_kinds({medic::v1::KIND_EVENT_BATCH});
    medic::v1::EventBatch b;
    EXPECT_OK(testing::open_batch(opener, pub_.bulk.at(i), &b));
    for (const auto& e : b.events()) {
      if (e.has_state() && e.vm() == vm) return e.state().state();
    }
    ADD_FAILURE() << "no state of " << vm << " in flush " << i;
    return medic::v1::VM_STATE_UNSPECIFIED;
  }

  testing::TempDir dir_;
  VirtualClock clock_;
  testing::Keys keys_;
  testing::RecordingPublisher pub_;
  std::unique_ptr<vmm::qmp::QmpHypervisor> hv_;
  std::unique_ptr<Collector> collector_;
  pid_t frozen_pid_ = 0;
};

TEST_F(QmpStatusCadenceTest, AFrozenQemuNeitherDelaysNorSkipsAFlushAndIsReportedUnresponsiveOnTheUrgentLane) {
  const auto& st = hv_->stats();
  ASSERT_TRUE(run_until([&] { return st.status_queries == 2 && st.status_replies == 2; }));
  frozen_pid_ = hv_->get(kFrozen)->pid;
  ASSERT_GT(frozen_pid_, 0);
  ASSERT_EQ(::kill(frozen_pid_, SIGSTOP), 0);
  const auto t0 = SteadyClock::now();
  for (uint64_t i = 1; i <= 5; ++i) {
    clock_.advance(1s);  // one status tick, then one flush
    ASSERT_EQ(pub_.bulk.size(), i);
    // Only the answering VM answers the query of this tick.
    ASSERT_TRUE(run_until([&] { return st.status_replies == 2 + i; })) << "interval " << i;
  }
  const auto took = SteadyClock::now() - t0;
  EXPECT_EQ(collector_->counters().flushes, 5u);
  EXPECT_LT(took, 2s) << "the flushes waited on the frozen QMP";
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(state_in(i, kUuid), medic::v1::VM_STATE_RUNNING) << "flush " << i;
  }
  // Tick 1 sends the frozen VM a query, ticks 2 and 3 find it unanswered
  // (last known state), tick 4 is the third unanswered interval.
  EXPECT_EQ(state_in(0, kFrozen), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(state_in(1, kFrozen), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(state_in(2, kFrozen), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(state_in(3, kFrozen), medic::v1::VM_STATE_UNRESPONSIVE);
  EXPECT_EQ(state_in(4, kFrozen), medic::v1::VM_STATE_UNRESPONSIVE);
  EXPECT_EQ(st.unresponsive, 1u);
  // One urgent batch, with the frozen VM's UNRESPONSIVE lifecycle event.
  ASSERT_EQ(pub_.urgent.size(), 1u);
  fabric::Opener opener(keys_.trust, clock_);
  opener.expect_kinds({medic::v1::KIND_EVENT_BATCH});
  medic::v1::EventBatch urgent;
  ASSERT_OK(testing::open_batch(opener, pub_.urgent[0], &urgent));
  EXPECT_TRUE(urgent.urgent());
  ASSERT_EQ(urgent.events_size(), 1);
  EXPECT_EQ(urgent.events(0).vm(), kFrozen);
  EXPECT_EQ(urgent.events(0).lifecycle().what(), medic::v1::LIFECYCLE_UNRESPONSIVE);
  EXPECT_NE(urgent.events(0).lifecycle().detail().find("3 status intervals"), std::string::npos)
      << urgent.events(0).lifecycle().detail();
}

}  // namespace
}  // namespace medic::collectors
