// QmpHypervisor against a fake QEMU: this test binary itself, started under
// the name "medic-fake-qemu", serves QMP and a heartbeat channel the way
// QEMU does (greeting, replies with ids, events, exit on quit or a guest
// power-off) and logs each command it receives. That makes verb sequences,
// crash detection and the reboot restart exact and fast; the real QEMU is
// exercised by tests/e2e/qemu_guest_test.cc.
#include "vmm/qmp/qmp_hypervisor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "tests/testing/testing.h"

namespace medic::vmm::qmp {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr const char* kFakeName = "medic-fake-qemu";
constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";
const Duration kTimeout = std::chrono::seconds(10);

// ---- the fake QEMU (runs in the child process only) ----

int listen_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) _exit(90);
  return fd;
}

void put(int fd, const std::string& s) {
  if (fd >= 0) (void)!::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
}

std::string event(const std::string& name, const std::string& data = "{}") {
  return R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": ")" + name +
         R"(", "data": )" + data + "}\n";
}

std::string option_value(const std::vector<std::string>& args, const std::string& opt,
                         const std::string& prefix) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == opt && args[i + 1].rfind(prefix, 0) == 0) return args[i + 1];
  }
  return "";
}

// Extracts "path=<p>" (up to the next ',') from a QEMU option value.
std::string path_of(const std::string& v, const std::string& key) {
  size_t at = v.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  return v.substr(at, v.find(',', at) - at);
}

[[noreturn]] void fake_qemu(const std::vector<std::string>& args) {
  std::string qmp_path = path_of(option_value(args, "-qmp", "unix:"), "unix:");
  std::string hb_path = path_of(option_value(args, "-chardev", "socket,id=heartbeat"), "path=");
  const char* log_path = std::getenv("MEDIC_FAKE_QEMU_LOG");
  int qmp_l = listen_unix(qmp_path);
  int hb_l = hb_path.empty() ? -1 : listen_unix(hb_path);
  int qmp = -1, hb = -1;
  std::string buf, status = "running";
  uint64_t counter = 0;
  auto log = [&](const std::string& cmd) {
    if (!log_path) return;
    std::ofstream(log_path, std::ios::app) << cmd << "\n";
  };
  auto next_hb = SteadyClock::now();
  while (true) {
    std::vector<pollfd> p{{qmp_l, POLLIN, 0}, {qmp, POLLIN, 0}, {hb_l, POLLIN, 0}};
    ::poll(p.data(), p.size(), 20);
    if (p[0].revents & POLLIN) {
      if (qmp >= 0) ::close(qmp);
      qmp = ::accept4(qmp_l, nullptr, nullptr, SOCK_CLOEXEC);
      buf.clear();
      // MEDIC_FAKE_QEMU_SILENT: accepts, never greets (a QEMU stuck early).
      if (!std::getenv("MEDIC_FAKE_QEMU_SILENT")) {
        put(qmp, R"({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})"
                 "\n");
      }
    }
    if (hb_l >= 0 && (p[2].revents & POLLIN)) {
      if (hb >= 0) ::close(hb);
      hb = ::accept4(hb_l, nullptr, nullptr, SOCK_CLOEXEC);
      put(hb, "garbage, not a heartbeat\n");
    }
    if (hb >= 0 && status == "running" && SteadyClock::now() >= next_hb) {
      put(hb, "hb " + std::to_string(counter++) + "\r\n");
      next_hb = SteadyClock::now() + milliseconds(50);
    }
    if (qmp >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
      char chunk[4096];
      ssize_t n = ::read(qmp, chunk, sizeof chunk);
      if (n <= 0) {
        ::close(qmp);
        qmp = -1;
        continue;
      }
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        auto req = parse_json(std::string_view(buf).substr(0, nl));
        buf.erase(0, nl + 1);
        if (!req.ok() || !json_string_member(*req, "execute")) continue;
        std::string cmd = *json_string_member(*req, "execute");
        const Json* id_member = json_member(*req, "id");
        std::string id = id_member ? dump_json(*id_member) : "null";
        auto ok = [&](const std::string& ret = "{}") {
          put(qmp, R"({"return": )" + ret + R"(, "id": )" + id + "}\n");
        };
        if (cmd != "qmp_capabilities" && cmd != "query-status") log(cmd);
        if (cmd == "qmp_capabilities") {
          ok();
        } else if (cmd == "query-status") {
          ok(R"({"status": ")" + status + R"(", "running": )" +
             (status == "running" ? "true" : "false") + "}");
        } else if (cmd == "stop") {
          ok();
          status = "paused";
          put(qmp, event("STOP"));
        } else if (cmd == "cont") {
          ok();
          status = "running";
          put(qmp, event("RESUME"));
        } else if (cmd == "system_reset") {
          ok();
          counter = 0;
          put(qmp, event("RESET", R"({"guest": false, "reason": "host-qmp-system-reset"})"));
        } else if (cmd == "inject-nmi") {
          ok();
          status = "guest-panicked";
          put(qmp, event("GUEST_PANICKED", R"({"action": "pause"})"));
          put(qmp, event("STOP"));
        } else if (cmd == "system_powerdown") {
          ok();  // the guest obeys the ACPI button and powers off
          put(qmp, event("SHUTDOWN", R"({"guest": true, "reason": "guest-shutdown"})"));
          _exit(0);
        } else if (cmd == "quit") {
          ok();
          put(qmp, event("SHUTDOWN", R"({"guest": false, "reason": "host-qmp-quit"})"));
          _exit(0);
        } else if (cmd == "medic-test-die") {
          _exit(3);  // dies in the middle of a command, no reply
        } else {
          put(qmp, R"({"error": {"class": "CommandNotFound", "desc": "no such command"}, "id": )" +
                       id + "}\n");
        }
      }
    }
  }
}

std::vector<std::string> own_cmdline() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return args;
}

// Before main(): when started as the fake QEMU, be one and never return.
const bool kFakeQemuChecked = [] {
  auto args = own_cmdline();
  if (!args.empty() && fs::path(args[0]).filename() == kFakeName) fake_qemu(args);
  return true;
}();

// ---- the tests ----

class QmpHypervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = dir_.file(kFakeName);
    fs::create_symlink(fs::read_symlink("/proc/self/exe"), fake_);
    ::setenv("MEDIC_FAKE_QEMU_LOG", dir_.file("commands.log").c_str(), 1);
    make(fake_);
  }
  void TearDown() override {
    ::unsetenv("MEDIC_FAKE_QEMU_LOG");
    ::unsetenv("MEDIC_FAKE_QEMU_SILENT");
  }

  void make(const std::string& qemu, QmpHypervisorOptions opts = {}) {
    VmSpec s;
    s.name = "vm1";
    s.uuid = kUuid;
    s.kernel = "/nonexistent/vmlinuz";
    s.qmp_socket = dir_.file("run/vm1.qmp");
    s.heartbeat_socket = dir_.file("run/vm1.hb");
    s.qemu_log = dir_.file("vm1.log");
    s.qemu = qemu;
    s.accel = Accel::kTcg;
    hv_ = std::make_unique<QmpHypervisor>("host-a", std::vector<VmSpec>{s}, clock_, opts);
    hv_->subscribe([this](const VmEvent& e) { events_.push_back(e); });
  }

  bool pump_until(const std::function<bool()>& cond,
                  SteadyClock::duration limit = std::chrono::seconds(10)) {
    const auto deadline = SteadyClock::now() + limit;
    while (true) {
      hv_->poll();
      if (cond()) return true;
      if (SteadyClock::now() >= deadline) return false;
      std::vector<pollfd> p;
      for (int fd : hv_->fds()) p.push_back({fd, POLLIN, 0});
      ::poll(p.data(), p.size(), 20);
    }
  }
  size_t count(Lifecycle what, size_t from = 0) const {
    size_t n = 0;
    for (size_t i = from; i < events_.size(); ++i) {
      n += events_[i].type == VmEvent::Type::kLifecycle && events_[i].what == what;
    }
    return n;
  }
  size_t heartbeats(size_t from = 0) const {
    size_t n = 0;
    for (size_t i = from; i < events_.size(); ++i)
      n += events_[i].type == VmEvent::Type::kHeartbeat;
    return n;
  }
  std::string detail_of(Lifecycle what) const {
    for (const auto& e : events_) {
      if (e.type == VmEvent::Type::kLifecycle && e.what == what) return e.detail;
    }
    return "";
  }
  std::vector<std::string> commands() const {
    std::ifstream in(dir_.file("commands.log"));
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  VmState state() { return hv_->get(kUuid)->state; }
  void start() {
    Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_START, kUuid, kTimeout);
    ASSERT_OK(s) << s;
  }

  testing::TempDir dir_;
  std::string fake_;
  VirtualClock clock_;
  std::unique_ptr<QmpHypervisor> hv_;
  std::vector<VmEvent> events_;
};

TEST_F(QmpHypervisorTest, ListsNeverStartedVmsAsStoppedAndRefusesVerbsNeedingAProcess) {
  auto all = hv_->list();
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].id, kUuid);
  EXPECT_EQ((*all)[0].name, "vm1");
  EXPECT_EQ((*all)[0].state, medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ((*all)[0].pid, 0);
  EXPECT_EQ(hv_->get("vm1")->id, kUuid);  // by name too
  EXPECT_EQ(hv_->get("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, "nope", kTimeout).code(), Code::kNotFound);
  for (Verb v : {medic::v1::VERB_RESET, medic::v1::VERB_REBOOT, medic::v1::VERB_STOP,
                 medic::v1::VERB_RESTART}) {
    Status s = execute_and_wait(*hv_, clock_, v, kUuid, kTimeout);
    EXPECT_EQ(s.code(), Code::kFailedPrecondition) << verb_name(v) << ": " << s;
  }
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_UNSPECIFIED, kUuid, kTimeout).code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(events_.empty());
  EXPECT_TRUE(hv_->fds().empty());
}

TEST_F(QmpHypervisorTest, StartsQemuAndReportsHeartbeatsAndRunning) {
  start();
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STARTED), 1u);
  ASSERT_TRUE(pump_until([&] { return heartbeats() >= 3; }));
  auto info = hv_->get(kUuid);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, medic::v1::VM_STATE_RUNNING);
  EXPECT_GT(info->pid, 0);
  EXPECT_EQ(info->last_heartbeat, clock_.now());
  EXPECT_EQ(hv_->stats().bad_heartbeat_lines, 1u);  // the fake's garbage line
  EXPECT_FALSE(hv_->fds().empty());
  for (size_t i = 0, want = 0; i < events_.size(); ++i) {
    if (events_[i].type != VmEvent::Type::kHeartbeat) continue;
    EXPECT_EQ(events_[i].counter, want++);
    EXPECT_EQ(events_[i].vm, kUuid);
  }
  Status again = execute_and_wait(*hv_, clock_, medic::v1::VERB_START, kUuid, kTimeout);
  EXPECT_EQ(again.code(), Code::kFailedPrecondition) << again;
  EXPECT_NE(again.message().find("never started twice"), std::string::npos);
}

TEST_F(QmpHypervisorTest, ReportsBootingUntilTheFirstHeartbeat) {
  bool done = false;
  hv_->execute(medic::v1::VERB_START, kUuid, kTimeout, [&](Status s) {
    EXPECT_OK(s) << s;
    done = true;
  });
  // execute() returned at once: QEMU is spawned, its QMP not yet looked
  // for, no heartbeat read, and the completion waits for poll().
  EXPECT_FALSE(done);
  EXPECT_EQ(state(), medic::v1::VM_STATE_BOOTING);
  EXPECT_GT(hv_->get(kUuid)->pid, 0);
  ASSERT_TRUE(pump_until([&] { return done; }));
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STARTED), 1u);
}

TEST_F(QmpHypervisorTest, PanicIsReportedAndResetSendsSystemResetThenCont) {
  start();
  ASSERT_OK(hv_->qmp_command(kUuid, "inject-nmi", milliseconds(5000)));
  ASSERT_TRUE(pump_until([&] { return count(medic::v1::LIFECYCLE_PANICKED) == 1; }));
  EXPECT_NE(detail_of(medic::v1::LIFECYCLE_PANICKED).find("\"action\":\"pause\""),
            std::string::npos);
  EXPECT_EQ(state(), medic::v1::VM_STATE_PANICKED);
  size_t mark = events_.size();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kTimeout);
  ASSERT_OK(s) << s;
  EXPECT_EQ(commands(), (std::vector<std::string>{"inject-nmi", "system_reset", "cont"}));
  ASSERT_TRUE(pump_until([&] { return count(medic::v1::LIFECYCLE_RESUMED, mark) == 1; }));
  EXPECT_EQ(count(medic::v1::LIFECYCLE_RESET, mark), 1u);
  ASSERT_TRUE(pump_until([&] { return heartbeats(mark) >= 1; }));
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

TEST_F(QmpHypervisorTest, ResetOfARunningGuestDoesNotResumeIt) {
  start();
  ASSERT_OK(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kTimeout));
  EXPECT_EQ(commands(), (std::vector<std::string>{"system_reset"}));
}

TEST_F(QmpHypervisorTest, PausedGuestIsReportedPaused) {
  start();
  ASSERT_OK(hv_->qmp_command(kUuid, "stop", milliseconds(5000)));
  ASSERT_TRUE(pump_until([&] { return count(medic::v1::LIFECYCLE_STOPPED) == 1; }));
  EXPECT_EQ(state(), medic::v1::VM_STATE_PAUSED);
  auto bad = hv_->qmp_command(kUuid, "no-such-command", milliseconds(5000));
  EXPECT_EQ(bad.status().code(), Code::kFailedPrecondition);
}

TEST_F(QmpHypervisorTest, StopQuitsQemuWithoutACrashAndRestartWillNotUndoIt) {
  start();
  EXPECT_EQ(hv_->get(kUuid)->labels.at("desired"), "running");  // the spec's default
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_STOP, kUuid, kTimeout);
  ASSERT_OK(s) << s;
  EXPECT_EQ(commands(), (std::vector<std::string>{"quit"}));
  pump_until([] { return false; }, milliseconds(100));
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 0u);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STOPPED), 1u);
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(hv_->get(kUuid)->pid, 0);
  EXPECT_EQ(hv_->get(kUuid)->labels.at("desired"), "stopped") << "stopped on purpose";
  EXPECT_EQ(hv_->stats().crashes, 0u);
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESTART, kUuid, kTimeout).code(),
            Code::kFailedPrecondition);
  start();
  EXPECT_EQ(hv_->stats().launches, 2u);
  EXPECT_EQ(hv_->get(kUuid)->labels.at("desired"), "running");
}

TEST_F(QmpHypervisorTest, AnIntendedStopOutlivesTheAgentInItsStateDirUntilAStart) {
  QmpHypervisorOptions o;
  o.state_dir = dir_.file("state");
  make(fake_, o);
  start();
  ASSERT_OK(execute_and_wait(*hv_, clock_, medic::v1::VERB_STOP, kUuid, kTimeout));
  const std::string marker = dir_.file("state/vm1.stopped");
  EXPECT_TRUE(fs::exists(marker));
  // The agent restarts: the guest a person stopped is not started again.
  make(fake_, o);
  EXPECT_EQ(hv_->start_desired(kTimeout), 0u);
  EXPECT_EQ(hv_->get(kUuid)->labels.at("desired"), "stopped");
  EXPECT_EQ(hv_->get(kUuid)->pid, 0);
  start();  // a start clears it
  EXPECT_FALSE(fs::exists(marker));
  ASSERT_OK(execute_and_wait(*hv_, clock_, medic::v1::VERB_STOP, kUuid, kTimeout));
  ::unlink(marker.c_str());
  // Positive control: with no stop on record the desired guest starts.
  make(fake_, o);
  EXPECT_EQ(hv_->start_desired(kTimeout), 1u);
}

TEST_F(QmpHypervisorTest, QemuDyingMidCommandIsUnavailableThenReportedCrashed) {
  start();
  auto t0 = SteadyClock::now();
  auto r = hv_->qmp_command(kUuid, "medic-test-die", milliseconds(30'000));
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status();
  EXPECT_LT(SteadyClock::now() - t0, std::chrono::seconds(5));
  ASSERT_TRUE(pump_until([&] { return count(medic::v1::LIFECYCLE_CRASHED) == 1; }));
  EXPECT_NE(detail_of(medic::v1::LIFECYCLE_CRASHED).find("exited with status 3"),
            std::string::npos);
  EXPECT_EQ(state(), medic::v1::VM_STATE_CRASHED);
  EXPECT_EQ(hv_->stats().crashes, 1u);
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kTimeout).code(), Code::kFailedPrecondition);
  // A crashed VM is restarted (not refused as stopped on purpose).
  size_t mark = events_.size();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_RESTART, kUuid, kTimeout);
  ASSERT_OK(s) << s;
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STARTED, mark), 1u);
  ASSERT_TRUE(pump_until([&] { return heartbeats(mark) >= 1; }));
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

TEST_F(QmpHypervisorTest, KilledQemuIsReportedCrashedOnce) {
  start();
  pid_t pid = hv_->get(kUuid)->pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(pump_until([&] { return count(medic::v1::LIFECYCLE_CRASHED) == 1; }));
  EXPECT_NE(detail_of(medic::v1::LIFECYCLE_CRASHED).find("killed by signal 9"), std::string::npos);
  pump_until([] { return false; }, milliseconds(100));
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 1u);
  EXPECT_EQ(hv_->get(kUuid)->pid, 0);
}

TEST_F(QmpHypervisorTest, RebootPowersDownThenStartsQemuAgain) {
  start();
  pid_t first = hv_->get(kUuid)->pid;
  size_t mark = events_.size();
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_REBOOT, kUuid, kTimeout);
  ASSERT_OK(s) << s;
  EXPECT_EQ(commands(), (std::vector<std::string>{"system_powerdown"}));
  ASSERT_TRUE(pump_until([&] { return count(medic::v1::LIFECYCLE_STARTED, mark) == 1; }));
  size_t restarted = events_.size();
  ASSERT_TRUE(pump_until([&] { return heartbeats(restarted) >= 1; }));
  EXPECT_EQ(count(medic::v1::LIFECYCLE_SHUTDOWN, mark), 1u);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 0u);
  EXPECT_EQ(hv_->stats().launches, 2u);
  EXPECT_NE(hv_->get(kUuid)->pid, first);
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
}

TEST_F(QmpHypervisorTest, StartFailureLeavesTheVmStoppedAndQuotesTheLog) {
  make(dir_.write("broken-qemu", "#!/bin/sh\necho 'qemu: no such machine' >&2\nexit 1\n", 0755));
  Status s = execute_and_wait(*hv_, clock_, medic::v1::VERB_START, kUuid, kTimeout);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s;
  EXPECT_NE(s.message().find("no such machine"), std::string::npos) << s;
  hv_->poll();
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 0u);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STARTED), 0u);
}

// The status machine: query-status every status_interval (1 s by default) on
// the Clock, answered at once by list() from the last known state. A QEMU
// frozen with SIGSTOP (QMP unanswered, as a hard-frozen QEMU) becomes
// "unresponsive" after exactly three unanswered intervals, with one
// UNRESPONSIVE lifecycle event, and list() stays quick; once it thaws, its
// answer brings the state back.
TEST_F(QmpHypervisorTest, AFrozenQemuIsReportedUnresponsiveAfterThreeUnansweredIntervalsAndListNeverWaits) {
  start();
  ASSERT_TRUE(pump_until([&] { return heartbeats() >= 1; }));
  const auto& st = hv_->stats();
  // The query sent once the handshake was done.
  ASSERT_TRUE(pump_until([&] { return st.status_queries == 1 && st.status_replies == 1; }));
  // Positive control: an answering QEMU stays running, every query answered.
  for (int i = 0; i < 4; ++i) {
    clock_.advance(std::chrono::seconds(1));
    ASSERT_TRUE(pump_until([&] { return st.status_replies == st.status_queries; }));
  }
  EXPECT_EQ(st.status_queries, 5u);  // one on connect, one per interval
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(st.unresponsive, 0u);

  pid_t pid = hv_->get(kUuid)->pid;
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const uint64_t answered = st.status_replies;
  clock_.advance(std::chrono::seconds(1));  // sends a query nobody answers
  hv_->poll();
  for (int missed = 1; missed <= 2; ++missed) {
    clock_.advance(std::chrono::seconds(1));
    hv_->poll();
    EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING) << "after " << missed << " missed";
    EXPECT_EQ(count(medic::v1::LIFECYCLE_UNRESPONSIVE), 0u) << "after " << missed << " missed";
  }
  clock_.advance(std::chrono::seconds(1));  // the third unanswered interval
  EXPECT_EQ(count(medic::v1::LIFECYCLE_UNRESPONSIVE), 1u);
  const auto t0 = SteadyClock::now();
  auto all = hv_->list();
  const auto took = SteadyClock::now() - t0;
  ASSERT_OK(all);
  EXPECT_EQ((*all)[0].state, medic::v1::VM_STATE_UNRESPONSIVE);
  EXPECT_EQ((*all)[0].pid, pid);
  EXPECT_LT(took, milliseconds(50)) << "list() waited on the frozen QMP";
  EXPECT_EQ(st.unresponsive, 1u);
  EXPECT_EQ(st.status_replies, answered);

  // Still frozen at the next tick: reported once, not once per tick.
  clock_.advance(std::chrono::seconds(1));
  hv_->poll();
  EXPECT_EQ(count(medic::v1::LIFECYCLE_UNRESPONSIVE), 1u);

  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_TRUE(pump_until([&] { return st.status_replies > answered; }));
  EXPECT_EQ(state(), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(st.unresponsive, 1u);
}

// reset never waits on QMP: on a frozen QEMU execute() returns at once, a
// second verb meanwhile is refused, and the verb ends with kTimeout when its
// timeout passes on the Clock. Thawed, the same QEMU is reset normally.
TEST_F(QmpHypervisorTest, AResetOfAFrozenQemuTimesOutOnTheClockWithoutBlocking) {
  start();
  ASSERT_TRUE(pump_until([&] { return heartbeats() >= 1; }));
  pid_t pid = hv_->get(kUuid)->pid;
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  bool done = false;
  Status got;
  const auto t0 = SteadyClock::now();
  hv_->execute(medic::v1::VERB_RESET, kUuid, std::chrono::seconds(2), [&](Status s) {
    done = true;
    got = std::move(s);
  });
  hv_->poll();
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(50)) << "execute() waited on the frozen QMP";
  EXPECT_FALSE(done);
  Status second = execute_and_wait(*hv_, clock_, medic::v1::VERB_REBOOT, kUuid, kTimeout);
  EXPECT_EQ(second.code(), Code::kFailedPrecondition) << second;
  EXPECT_NE(second.message().find("reset vm1 is in progress"), std::string::npos) << second;
  clock_.advance(std::chrono::milliseconds(1999));
  hv_->poll();
  EXPECT_FALSE(done);
  clock_.advance(std::chrono::milliseconds(1));
  hv_->poll();
  ASSERT_TRUE(done);
  EXPECT_EQ(got.code(), Code::kTimeout) << got;
  EXPECT_TRUE(commands().empty());  // nothing reached the frozen QEMU

  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_OK(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESET, kUuid, kTimeout));
  EXPECT_EQ(commands(), (std::vector<std::string>{"system_reset"}));
}

// stop never waits either: a frozen QEMU does not read quit, so at half the
// verb's timeout on the Clock it gets SIGKILL, and its exit (seen on the
// launcher's pidfd) ends the verb: stopped on purpose, no crash.
TEST_F(QmpHypervisorTest, StopOfAFrozenQemuKillsItAtHalfTheTimeoutWithoutBlocking) {
  start();
  ASSERT_TRUE(pump_until([&] { return heartbeats() >= 1; }));
  pid_t pid = hv_->get(kUuid)->pid;
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  bool done = false;
  Status got;
  const auto t0 = SteadyClock::now();
  hv_->execute(medic::v1::VERB_STOP, kUuid, std::chrono::seconds(4), [&](Status s) {
    done = true;
    got = std::move(s);
  });
  hv_->poll();
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(50)) << "execute() waited on the frozen QMP";
  pump_until([] { return false; }, milliseconds(100));
  EXPECT_FALSE(done) << "ended before the kill at half the timeout: " << got;
  EXPECT_EQ(::kill(pid, 0), 0) << "QEMU went before the kill";
  clock_.advance(std::chrono::seconds(2));  // half of 4 s: SIGKILL
  ASSERT_TRUE(pump_until([&] { return done; }));
  EXPECT_OK(got);
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 0u);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STOPPED), 1u);
  EXPECT_TRUE(commands().empty());  // the frozen QEMU never read quit
  // Stopped on purpose: restart will not undo it.
  EXPECT_EQ(execute_and_wait(*hv_, clock_, medic::v1::VERB_RESTART, kUuid, kTimeout).code(),
            Code::kFailedPrecondition);
}

// restart never waits: the frozen QEMU is killed at half the timeout, and
// the new one is started and looked for on the loop.
TEST_F(QmpHypervisorTest, RestartOfAFrozenQemuKillsItAndStartsANewOneWithoutBlocking) {
  start();
  pid_t old_pid = hv_->get(kUuid)->pid;
  ASSERT_EQ(::kill(old_pid, SIGSTOP), 0);
  bool done = false;
  Status got;
  const auto t0 = SteadyClock::now();
  hv_->execute(medic::v1::VERB_RESTART, kUuid, std::chrono::seconds(4), [&](Status s) {
    done = true;
    got = std::move(s);
  });
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(50)) << "execute() waited";
  pump_until([] { return false; }, milliseconds(100));
  EXPECT_FALSE(done) << got;
  clock_.advance(std::chrono::seconds(2));  // half of 4 s: SIGKILL, then a new QEMU
  ASSERT_TRUE(pump_until([&] { return done; }));
  EXPECT_OK(got);
  const pid_t new_pid = hv_->get(kUuid)->pid;
  EXPECT_GT(new_pid, 0);
  EXPECT_NE(new_pid, old_pid);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STARTED), 2u);
  std::string last_started;
  for (const auto& e : events_) {
    if (e.type == VmEvent::Type::kLifecycle && e.what == medic::v1::LIFECYCLE_STARTED) {
      last_started = e.detail;
    }
  }
  EXPECT_EQ(last_started, "restart");
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 0u);
  EXPECT_EQ(hv_->stats().launches, 2u);
}

// Once a frozen QEMU is reported unresponsive, a reset is refused at once
// (kUnavailable, so a ladder's next step comes without waiting out the
// reset's timeout) and restart kills it at once instead of sending quit.
TEST_F(QmpHypervisorTest, AnUnresponsiveQemuFailsResetAtOnceAndRestartKillsItWithoutQuit) {
  start();
  ASSERT_TRUE(pump_until([&] { return heartbeats() >= 1; }));
  const auto& st = hv_->stats();
  ASSERT_TRUE(pump_until([&] { return st.status_replies == 1; }));
  const pid_t old_pid = hv_->get(kUuid)->pid;
  // Positive control: before it is unresponsive, a reset of the frozen QEMU
  // waits for its reply (it is still in progress after a poll).
  ASSERT_EQ(::kill(old_pid, SIGSTOP), 0);
  for (int i = 0; i < 4; ++i) {  // a query, then three unanswered intervals
    clock_.advance(std::chrono::seconds(1));
    hv_->poll();
  }
  ASSERT_EQ(state(), medic::v1::VM_STATE_UNRESPONSIVE);
  bool reset_done = false;
  Status reset;
  hv_->execute(medic::v1::VERB_RESET, kUuid, std::chrono::seconds(30), [&](Status s) {
    reset_done = true;
    reset = std::move(s);
  });
  hv_->poll();
  ASSERT_TRUE(reset_done) << "the reset waited for the unresponsive QMP";
  EXPECT_EQ(reset.code(), Code::kUnavailable) << reset;
  EXPECT_NE(reset.message().find("has not answered for 3 status intervals"), std::string::npos)
      << reset;

  bool done = false;
  Status got;
  hv_->execute(medic::v1::VERB_RESTART, kUuid, std::chrono::seconds(30), [&](Status s) {
    done = true;
    got = std::move(s);
  });
  // No clock advance: the kill does not wait for half the timeout.
  ASSERT_TRUE(pump_until([&] { return done; }));
  EXPECT_OK(got);
  EXPECT_NE(hv_->get(kUuid)->pid, old_pid);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 0u);
  EXPECT_TRUE(commands().empty());  // neither system_reset nor quit reached it
  ASSERT_TRUE(pump_until([&] { return st.status_replies >= 2; }));
  EXPECT_NE(state(), medic::v1::VM_STATE_UNRESPONSIVE);  // the new QEMU answers
}

// A QEMU whose QMP socket accepts but never greets: start fails at its
// deadline on the Clock, saying the handshake did not finish.
TEST_F(QmpHypervisorTest, AStartWhoseQmpNeverGreetsTimesOutNamingTheHandshake) {
  ::setenv("MEDIC_FAKE_QEMU_SILENT", "1", 1);
  bool done = false;
  Status got;
  hv_->execute(medic::v1::VERB_START, kUuid, std::chrono::seconds(10), [&](Status s) {
    done = true;
    got = std::move(s);
  });
  ASSERT_TRUE(pump_until([&] { return fs::exists(dir_.file("run/vm1.qmp")); }));
  pump_until([] { return false; }, milliseconds(100));  // connects; no greeting comes
  EXPECT_FALSE(done) << got;
  const pid_t pid = hv_->get(kUuid)->pid;
  clock_.advance(std::chrono::seconds(10));
  ASSERT_TRUE(pump_until([&] { return done; }));
  EXPECT_EQ(got.code(), Code::kTimeout) << got;
  EXPECT_EQ(got.message(), "start vm1: QMP socket " + dir_.file("run/vm1.qmp") +
                               " accepted the connection, but the QMP handshake did not finish "
                               "within 10s; QEMU (pid " + std::to_string(pid) + ") killed");
  ASSERT_TRUE(pump_until([&] { return hv_->get(kUuid)->pid == 0; }));
  EXPECT_EQ(state(), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_STARTED), 0u);
  EXPECT_EQ(count(medic::v1::LIFECYCLE_CRASHED), 0u);
}

TEST_F(QmpHypervisorTest, DestroyingTheBackendEndsItsQemu) {
  start();
  pid_t pid = hv_->get(kUuid)->pid;
  hv_.reset();
  EXPECT_NE(::kill(pid, 0), 0) << "QEMU outlived its backend";
}

}  // namespace
}  // namespace medic::vmm::qmp
