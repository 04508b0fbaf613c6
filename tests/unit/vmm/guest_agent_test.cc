// GuestAgentPinger against a scripted agent on a real unix socket (the test
// accepts the pinger's connection and writes what an agent would, so stale
// lines, split replies, silence and a peer closing mid-exchange are exact),
// then against the real qemu-ga, and through QmpHypervisor's fds()/poll().
#include "vmm/qmp/guest_agent.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tests/testing/qemu_ga.h"
#include "tests/testing/testing.h"
#include "core/json.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::vmm::qmp {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

int listen_at(const std::string& path, int backlog = 8) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, backlog) != 0) {
    ADD_FAILURE() << "cannot listen on " << path << ": " << std::strerror(errno);
  }
  return fd;
}

// The agent's end, driven step by step by the test on its own thread.
class ScriptedAgent {
 public:
  explicit ScriptedAgent(const std::string& path, int backlog = 8)
      : listener_(listen_at(path, backlog)) {}
  ~ScriptedAgent() {
    hang_up();
    if (listener_ >= 0) ::close(listener_);
  }

  // Takes the pinger's connection (already queued: a unix connect completes
  // at once).
  bool accept() {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return false;
    hang_up();
    request_.clear();
    conn_ = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    return conn_ >= 0;
  }
  // Reads until both request lines are in; returns the guest-sync id.
  std::optional<uint64_t> read_request() {
    const auto deadline = SteadyClock::now() + 5s;
    while (std::count(request_.begin(), request_.end(), '\n') < 2) {
      if (SteadyClock::now() >= deadline) return std::nullopt;
      pollfd p{conn_, POLLIN, 0};
      ::poll(&p, 1, 100);
      char buf[512];
      ssize_t n = ::read(conn_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      request_.append(buf, static_cast<size_t>(n));
    }
    if (request_.empty() || request_[0] != '\xff') return std::nullopt;
    auto sync = parse_json(request_.substr(1, request_.find('\n') - 1));
    const Json* args = sync.ok() ? json_member(*sync, "arguments") : nullptr;
    const Json* id = args ? json_member(*args, "id") : nullptr;
    if (!id || !id->is_number_unsigned()) return std::nullopt;
    return id->get<uint64_t>();
  }
  void send(const std::string& s) {
    ASSERT_EQ(::send(conn_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  void hang_up() {
    if (conn_ >= 0) ::close(conn_);
    conn_ = -1;
  }
  const std::string& request() const { return request_; }
  // True when the pinger has closed its end (EOF after what it sent).
  bool peer_closed() {
    pollfd p{conn_, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return false;
    char c;
    return ::read(conn_, &c, 1) == 0;
  }

 private:
  int listener_ = -1;
  int conn_ = -1;
  std::string request_;
};

std::string sync_reply(uint64_t id) { return "{\"return\": " + std::to_string(id) + "}\n"; }
constexpr const char* kPingReply = "{\"return\": {}}\n";

class GuestAgentPingerTest : public ::testing::Test {
 protected:
  GuestAgentPingerTest() : pinger_(clock_, options()) {}
  static GuestAgentOptions options() {
    GuestAgentOptions o;
    o.seed = 7;
    o.max_line_bytes = 512;
    o.max_stale_bytes = 2048;
    return o;
  }

  void ping(Duration timeout = 2s) {
    pinger_.ping(path_, timeout, [this](const GuestPingResult& r) { results_.push_back(r); });
  }
  // Real I/O, virtual time: waits on the pinger's sockets and polls it until
  // `n` pings have ended (at most 5 s of wall time).
  bool pump_until_results(size_t n) {
    const auto deadline = SteadyClock::now() + 5s;
    while (results_.size() < n) {
      if (SteadyClock::now() >= deadline) return false;
      std::vector<int> fds;
      pinger_.append_fds(&fds);
      std::vector<pollfd> p;
      for (int fd : fds) p.push_back({fd, POLLIN, 0});
      ::poll(p.data(), p.size(), 20);
      pinger_.poll();
      clock_.run_due();
    }
    return true;
  }
  // Pings, lets the agent take the request and returns its sync id.
  uint64_t start_exchange() {
    ping();
    EXPECT_TRUE(agent_.accept());
    auto id = agent_.read_request();
    EXPECT_TRUE(id.has_value()) << "request: " << agent_.request();
    return id.value_or(0);
  }

  testing::TempDir dir_;
  std::string path_ = dir_.file("qga.sock");
  ScriptedAgent agent_{path_};
  VirtualClock clock_;
  GuestAgentPinger pinger_;
  std::vector<GuestPingResult> results_;
};

TEST_F(GuestAgentPingerTest, SucceedsWhenTheSyncReplyWithItsIdAndThenThePingReplyArrive) {
  uint64_t id = start_exchange();
  EXPECT_GT(id, 0u);
  // 0xFF first, then guest-sync with the id, then guest-ping, one per line.
  EXPECT_EQ(agent_.request(), "\xff{\"execute\":\"guest-sync\",\"arguments\":{\"id\":" +
                                  std::to_string(id) + "}}\n{\"execute\":\"guest-ping\"}\n");
  clock_.advance(300ms);
  agent_.send(sync_reply(id) + kPingReply);
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_OK(results_[0]) << results_[0].detail;
  EXPECT_EQ(results_[0].latency, 300ms);
  EXPECT_EQ(pinger_.stats().pings, 1u);
  EXPECT_EQ(pinger_.stats().answered, 1u);
  EXPECT_EQ(pinger_.in_flight(), 0u);
  std::vector<int> fds;
  pinger_.append_fds(&fds);
  EXPECT_TRUE(fds.empty());
  // The deadline timer went with the exchange: nothing fires later.
  clock_.advance(10s);
  EXPECT_EQ(results_.size(), 1u);
  EXPECT_EQ(clock_.pending_timers(), 0u);
}

TEST_F(GuestAgentPingerTest, UsesAFreshSyncIdForEachPing) {
  uint64_t first = start_exchange();
  agent_.send(sync_reply(first) + kPingReply);
  ASSERT_TRUE(pump_until_results(1));
  uint64_t second = start_exchange();
  EXPECT_NE(second, first);
}

TEST_F(GuestAgentPingerTest, SkipsStaleLinesBeforeTheSyncReply) {
  uint64_t id = start_exchange();
  // Replies meant for an earlier client that timed out, the agent's complaint
  // about the 0xFF, a sync reply with another id, and a line of noise.
  agent_.send(std::string(kPingReply) + sync_reply(id + 1) +
              "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n"
              "not json at all\n\n" +
              sync_reply(id) + kPingReply);
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_OK(results_[0]) << results_[0].detail;
  EXPECT_EQ(pinger_.stats().stale_lines, 4u);
}

TEST_F(GuestAgentPingerTest, FailsOnAnErrorReplyToThePing) {
  uint64_t id = start_exchange();
  agent_.send(sync_reply(id) +
              "{\"error\": {\"class\": \"CommandDisabled\", \"desc\": \"guest-ping is off\"}}\n");
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kErrorReply);
  EXPECT_EQ(results_[0].detail, "guest-ping: CommandDisabled: guest-ping is off");
  EXPECT_EQ(pinger_.stats().error_replies, 1u);
  EXPECT_EQ(pinger_.stats().answered, 0u);
}

TEST_F(GuestAgentPingerTest, TimesOutByTheClockWhenTheAgentStaysSilent) {
  start_exchange();
  pinger_.poll();
  clock_.advance(2s - 1ns);
  pinger_.poll();
  EXPECT_TRUE(results_.empty());
  EXPECT_EQ(pinger_.in_flight(), 1u);
  clock_.advance(1ns);  // the deadline timer fires
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kTimeout);
  EXPECT_EQ(results_[0].detail, "no answer within 2s");
  EXPECT_EQ(results_[0].latency, 2s);
  EXPECT_EQ(pinger_.stats().timeouts, 1u);
  EXPECT_EQ(pinger_.in_flight(), 0u);
  // The connection is gone with the ping; a late answer reaches nobody.
  EXPECT_TRUE(agent_.peer_closed());
  pinger_.poll();
  EXPECT_EQ(results_.size(), 1u);
  EXPECT_EQ(pinger_.stats().answered, 0u);
}

TEST_F(GuestAgentPingerTest, FailsWhenTheAgentClosesBeforeTheSyncReply) {
  start_exchange();
  agent_.send("{\"return\": {}}\n");  // stale, then gone
  agent_.hang_up();
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kClosed);
  EXPECT_EQ(results_[0].detail, "the agent closed the connection before guest-sync");
  EXPECT_EQ(pinger_.stats().closed, 1u);
}

TEST_F(GuestAgentPingerTest, FailsWhenTheAgentClosesAfterTheSyncReply) {
  uint64_t id = start_exchange();
  agent_.send(sync_reply(id) + "{\"return\":");  // half a ping reply
  agent_.hang_up();
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kClosed);
  EXPECT_EQ(results_[0].detail, "the agent closed the connection after guest-sync");
}

TEST_F(GuestAgentPingerTest, FailsPromptlyWhenNobodyListensButNeverInsidePing) {
  path_ = dir_.file("nobody.sock");
  ping();
  EXPECT_TRUE(results_.empty());  // not inside ping()
  std::vector<int> fds;
  pinger_.append_fds(&fds);
  EXPECT_TRUE(fds.empty());
  clock_.run_due();  // a timer due now, long before the 2 s deadline
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kConnect);
  EXPECT_NE(results_[0].detail.find("nobody.sock: connect: No such file"), std::string::npos)
      << results_[0].detail;
  // A socket file whose listener is gone: connection refused.
  path_ = dir_.file("gone.sock");
  ::close(listen_at(path_));
  ping();
  clock_.run_due();
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_EQ(results_[1].failure, GuestPingFailure::kConnect);
  EXPECT_NE(results_[1].detail.find("Connection refused"), std::string::npos) << results_[1].detail;
  EXPECT_EQ(pinger_.stats().connect_failures, 2u);
  EXPECT_EQ(clock_.pending_timers(), 0u);
}

TEST_F(GuestAgentPingerTest, RetriesABusySocketUntilTheAgentTakesTheConnection) {
  // Like QEMU's chardev and qemu-ga: a backlog this small that one waiting
  // client fills it.
  ScriptedAgent busy(dir_.file("busy.sock"), 0);
  int other = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, dir_.file("busy.sock").c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::connect(other, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  path_ = dir_.file("busy.sock");
  ping();
  EXPECT_EQ(pinger_.stats().connect_retries, 1u);
  pinger_.poll();
  EXPECT_EQ(pinger_.stats().connect_retries, 2u);
  clock_.run_due();
  EXPECT_TRUE(results_.empty());
  ASSERT_TRUE(busy.accept());  // the other client's turn ends the wait
  busy.hang_up();
  ::close(other);
  pinger_.poll();  // connects now
  ASSERT_TRUE(busy.accept());
  auto id = busy.read_request();
  ASSERT_TRUE(id);
  busy.send(sync_reply(*id) + kPingReply);
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_OK(results_[0]) << results_[0].detail;
}

TEST_F(GuestAgentPingerTest, ABusySocketThatNeverFreesTimesOut) {
  ScriptedAgent busy(dir_.file("busy.sock"), 0);
  int other = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, dir_.file("busy.sock").c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::connect(other, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  path_ = dir_.file("busy.sock");
  ping();
  pinger_.poll();
  clock_.advance(2s);
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kTimeout);
  ::close(other);
}

TEST_F(GuestAgentPingerTest, FailsOnAnOverlongLineWithoutWaitingForItsEnd) {
  start_exchange();
  agent_.send(std::string(600, 'x'));  // longer than max_line_bytes, no newline yet
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kBadReply);
  EXPECT_EQ(results_[0].detail, "a reply line longer than 512 bytes");
  EXPECT_EQ(pinger_.stats().bad_replies, 1u);
}

TEST_F(GuestAgentPingerTest, FailsOnAnOverlongCompleteLine) {
  start_exchange();
  agent_.send(std::string(600, 'x') + "\n");
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kBadReply);
}

TEST_F(GuestAgentPingerTest, FailsWhenStaleLinesBeforeTheSyncReplyExceedTheirBound) {
  start_exchange();
  std::string noise;
  for (int i = 0; i < 30; ++i) noise += std::string(100, 'n') + "\n";  // 3 KB > 2 KB
  agent_.send(noise);
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kBadReply);
  EXPECT_EQ(results_[0].detail, "more than 2048 bytes before the guest-sync reply");
}

TEST_F(GuestAgentPingerTest, FailsOnAPingReplyThatIsNotTheExpectedOne) {
  uint64_t id = start_exchange();
  agent_.send(sync_reply(id) + "{\"return\": 42}\n");
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kBadReply);
  EXPECT_EQ(results_[0].detail, "unexpected reply to guest-ping: {\"return\": 42}");
}

TEST_F(GuestAgentPingerTest, FailsOnAPingReplyThatIsNotJson) {
  uint64_t id = start_exchange();
  agent_.send(sync_reply(id) + "pong\n");
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kBadReply);
  EXPECT_EQ(results_[0].detail, "reply to guest-ping is not a JSON object: pong");
}

TEST_F(GuestAgentPingerTest, ReassemblesRepliesSplitAcrossReads) {
  uint64_t id = start_exchange();
  std::string all = sync_reply(id) + kPingReply;
  for (char c : all) {
    agent_.send(std::string(1, c));
    pinger_.poll();
  }
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_OK(results_[0]) << results_[0].detail;
}

TEST_F(GuestAgentPingerTest, KeepsPingsInFlightApartEachWithItsOwnAnswer) {
  ScriptedAgent other(dir_.file("other.sock"));
  uint64_t id = start_exchange();
  pinger_.ping(dir_.file("other.sock"), 5s,
               [this](const GuestPingResult& r) { results_.push_back(r); });
  ASSERT_TRUE(other.accept());
  auto other_id = other.read_request();
  ASSERT_TRUE(other_id);
  EXPECT_NE(*other_id, id);
  std::vector<int> fds;
  pinger_.append_fds(&fds);
  EXPECT_EQ(fds.size(), 2u);
  other.send(sync_reply(*other_id) + kPingReply);
  ASSERT_TRUE(pump_until_results(1));
  EXPECT_OK(results_[0]);
  EXPECT_EQ(pinger_.in_flight(), 1u);
  clock_.advance(2s);  // the first one's deadline; the agent never answered
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_EQ(results_[1].failure, GuestPingFailure::kTimeout);
}

TEST_F(GuestAgentPingerTest, DestroyingThePingerDropsPingsInFlightWithoutRunningThem) {
  VirtualClock clock;
  bool ran = false;
  {
    GuestAgentPinger p(clock);
    p.ping(path_, 1s, [&](const GuestPingResult&) { ran = true; });
    p.ping(dir_.file("nobody.sock"), 1s, [&](const GuestPingResult&) { ran = true; });
    EXPECT_EQ(p.in_flight(), 2u);
  }
  clock.advance(5s);
  EXPECT_FALSE(ran);
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST_F(GuestAgentPingerTest, AnEmptySocketPathOrARejectFailsPromptlyAndIsCounted) {
  pinger_.ping("", 2s, [this](const GuestPingResult& r) { results_.push_back(r); });
  pinger_.reject(GuestPingFailure::kUnknownVm, "no VM x",
                 [this](const GuestPingResult& r) { results_.push_back(r); });
  EXPECT_TRUE(results_.empty());
  clock_.run_due();
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kNoSocket);
  EXPECT_EQ(results_[1].failure, GuestPingFailure::kUnknownVm);
  EXPECT_EQ(results_[1].detail, "no VM x");
  EXPECT_EQ(pinger_.stats().no_socket, 1u);
  EXPECT_EQ(pinger_.stats().unknown_vm, 1u);
  EXPECT_EQ(pinger_.stats().pings, 2u);
}

TEST(GuestPingFailureNames, NameEveryCause) {
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kNone), "ok");
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kTimeout), "timeout");
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kErrorReply), "error_reply");
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kBadReply), "bad_reply");
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kClosed), "closed");
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kConnect), "connect");
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kNoSocket), "no_socket");
  EXPECT_STREQ(guest_ping_failure_name(GuestPingFailure::kUnknownVm), "unknown_vm");
}

// ---- the real qemu-ga ----

class RealQemuGaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::find_qemu_ga();
    if (binary_.empty()) {
      FAIL() << "qemu-ga is not installed (Debian package qemu-guest-agent, "
                      "scripts/bootstrap installs it)";
    }
  }
  // Pings on the system clock and waits for the answer (real time).
  GuestPingResult ping_once(Duration timeout = 5s) {
    std::optional<GuestPingResult> result;
    pinger_.ping(socket_, timeout, [&](const GuestPingResult& r) { result = r; });
    const auto deadline = SteadyClock::now() + timeout + 2s;
    while (!result && SteadyClock::now() < deadline) {
      std::vector<int> fds;
      pinger_.append_fds(&fds);
      std::vector<pollfd> p;
      for (int fd : fds) p.push_back({fd, POLLIN, 0});
      ::poll(p.data(), p.size(), 10);
      pinger_.poll();
      clock_.run_due();
    }
    EXPECT_TRUE(result.has_value()) << "done never ran";
    return result.value_or(GuestPingResult{GuestPingFailure::kNone, "done never ran", {}});
  }

  std::string binary_;
  testing::TempDir dir_;
  std::string socket_ = dir_.file("qga.sock");
  SystemClock clock_;
  GuestAgentPinger pinger_{clock_};
  testing::QemuGa agent_;
};

TEST_F(RealQemuGaTest, AnswersAPingAndFailsOnceTheAgentIsKilled) {
  Status s = agent_.start(binary_, socket_, dir_.path());
  ASSERT_OK(s) << s;
  for (int i = 0; i < 3; ++i) {
    GuestPingResult r = ping_once();
    EXPECT_OK(r) << guest_ping_failure_name(r.failure) << ": " << r.detail;
  }
  // qemu-ga complains about the 0xFF with an error line: skipped as stale.
  EXPECT_GE(pinger_.stats().stale_lines, 3u);
  agent_.kill();
  GuestPingResult dead = ping_once();
  EXPECT_EQ(dead.failure, GuestPingFailure::kConnect) << dead.detail;
  EXPECT_EQ(pinger_.stats().answered, 3u);
  EXPECT_EQ(pinger_.stats().connect_failures, 1u);
}

TEST_F(RealQemuGaTest, AHalfSentRequestOfAnEarlierClientDoesNotConfuseTheNextPing) {
  Status s = agent_.start(binary_, socket_, dir_.path());
  ASSERT_OK(s) << s;
  {
    // An earlier client gave up in the middle of a request.
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, socket_.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    std::string half = "{\"execute\":\"guest-sync\",\"argu";
    ASSERT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(half.size()));
    ::close(fd);
  }
  GuestPingResult r = ping_once();
  EXPECT_OK(r) << guest_ping_failure_name(r.failure) << ": " << r.detail;
}

TEST_F(RealQemuGaTest, ABlockedGuestPingIsAnErrorReply) {
  Status s = agent_.start(binary_, socket_, dir_.path(), {"-b", "guest-ping"});
  ASSERT_OK(s) << s;
  GuestPingResult r = ping_once();
  EXPECT_EQ(r.failure, GuestPingFailure::kErrorReply) << r.detail;
  EXPECT_NE(r.detail.find("guest-ping: "), std::string::npos) << r.detail;
  EXPECT_EQ(pinger_.stats().error_replies, 1u);
}

// ---- through the qmp backend ----

class QmpHypervisorGuestPingTest : public ::testing::Test {
 protected:
  QmpHypervisorGuestPingTest() {
    VmSpec with;
    with.name = "with-agent";
    with.uuid = "11111111-2222-3333-4444-555555555555";
    with.kernel = "/nonexistent/vmlinuz";
    with.qmp_socket = dir_.file("with.qmp");
    with.guest_agent_socket = dir_.file("with.qga");
    VmSpec without = with;
    without.name = "without-agent";
    without.uuid = "11111111-2222-3333-4444-666666666666";
    without.qmp_socket = dir_.file("without.qmp");
    without.guest_agent_socket.clear();
    hv_ = std::make_unique<QmpHypervisor>("host-a", std::vector<VmSpec>{with, without}, clock_);
  }
  void ping(const std::string& vm) {
    hv_->ping_guest_agent(vm, 2s, [this](const GuestPingResult& r) { results_.push_back(r); });
  }

  testing::TempDir dir_;
  VirtualClock clock_;
  std::unique_ptr<QmpHypervisor> hv_;
  std::vector<GuestPingResult> results_;
};

TEST_F(QmpHypervisorGuestPingTest, WaitsOnPingSocketsInFdsAndEndsThemInPoll) {
  ScriptedAgent agent(dir_.file("with.qga"));
  EXPECT_TRUE(hv_->has_guest_agent());
  EXPECT_TRUE(hv_->fds().empty());
  ping("with-agent");
  ASSERT_EQ(hv_->fds().size(), 1u);  // the ping's socket, for the owner's poll()
  ASSERT_TRUE(agent.accept());
  auto id = agent.read_request();
  ASSERT_TRUE(id);
  agent.send(sync_reply(*id) + kPingReply);
  pollfd p{hv_->fds()[0], POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  hv_->poll();
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_OK(results_[0]) << results_[0].detail;
  EXPECT_TRUE(hv_->fds().empty());
  EXPECT_EQ(hv_->guest_agent_stats().answered, 1u);
}

TEST_F(QmpHypervisorGuestPingTest, AVmWithoutAGuestAgentSocketOrAnUnknownVmFailsPromptly) {
  ping("without-agent");
  ping("11111111-2222-3333-4444-666666666666");  // by id too
  ping("nope");
  EXPECT_TRUE(results_.empty());
  clock_.run_due();
  ASSERT_EQ(results_.size(), 3u);
  EXPECT_EQ(results_[0].failure, GuestPingFailure::kNoSocket);
  EXPECT_EQ(results_[0].detail, "without-agent has no guest_agent_socket");
  EXPECT_EQ(results_[1].failure, GuestPingFailure::kNoSocket);
  EXPECT_EQ(results_[2].failure, GuestPingFailure::kUnknownVm);
  EXPECT_EQ(hv_->guest_agent_stats().no_socket, 2u);
  EXPECT_EQ(hv_->guest_agent_stats().unknown_vm, 1u);
}

TEST_F(QmpHypervisorGuestPingTest, ReportsNoGuestAgentWhenNoSpecHasASocket) {
  VmSpec s;
  s.name = "plain";
  s.uuid = "11111111-2222-3333-4444-777777777777";
  s.kernel = "/k";
  s.qmp_socket = dir_.file("plain.qmp");
  QmpHypervisor plain("host-a", {s}, clock_);
  EXPECT_FALSE(plain.has_guest_agent());
}

}  // namespace
}  // namespace medic::vmm::qmp
