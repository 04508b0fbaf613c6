// The QMP client against a scripted peer: the test writes what QEMU would
// send into the other end of a socket pair (so split reads, garbage, events
// between replies and a peer dying mid-command are exact, not timing luck),
// plus a threaded fake server on a real unix socket path for connect().
#include "vmm/qmp/qmp_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "tests/testing/testing.h"
#include "tests/unit/vmm/fake_qmp_server.h"
#include "vmm/qmp/qmp_reset.h"

namespace medic::vmm::qmp {
namespace {

using std::chrono::milliseconds;
constexpr const char* kGreeting = kFakeQmpGreeting;

// The QEMU end of a socket pair.
class Peer {
 public:
  Peer() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    mine_ = sv[0];
    theirs_ = sv[1];
  }
  ~Peer() {
    close_peer();
    if (theirs_ >= 0) ::close(theirs_);
  }
  // The client's end; ownership passes to the caller.
  int release_client_fd() {
    int fd = theirs_;
    theirs_ = -1;
    return fd;
  }
  void write(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t w = ::send(mine_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      ASSERT_GT(w, 0) << std::strerror(errno);
      off += static_cast<size_t>(w);
    }
  }
  // Everything the client has sent so far.
  std::string read_available() {
    std::string out;
    char buf[4096];
    while (true) {
      pollfd p{mine_, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      ssize_t n = ::read(mine_, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  void close_peer() {
    if (mine_ >= 0) ::close(mine_);
    mine_ = -1;
  }

 private:
  int mine_ = -1;
  int theirs_ = -1;
};

// A client attached to `peer` after a normal handshake (capabilities id 1).
void handshake(QmpClient& c, Peer& peer) {
  peer.write(kGreeting);
  peer.write("{\"return\": {}, \"id\": 1}\n");
  Status s = c.attach(peer.release_client_fd(), milliseconds(5000));
  ASSERT_OK(s) << s;
}

std::string event_line(const std::string& name, const std::string& data = "{}") {
  return R"({"timestamp": {"seconds": 10, "microseconds": 5}, "event": ")" + name +
         R"(", "data": )" + data + "}\n";
}

TEST(QmpClient, HandshakeReadsGreetingAndNegotiatesCapabilities) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  EXPECT_TRUE(c.connected());
  EXPECT_NE(json_member(c.greeting(), "version"), nullptr);
  std::string sent = peer.read_available();
  EXPECT_NE(sent.find(R"("execute":"qmp_capabilities")"), std::string::npos) << sent;
  EXPECT_NE(sent.find(R"("id":1)"), std::string::npos) << sent;
  EXPECT_EQ(sent.back(), '\n');
}

TEST(QmpClient, ExecuteReturnsItsOwnReplyAndQueuesEventsReadBeforeIt) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  peer.write(event_line("STOP"));
  peer.write(R"({"return": {"status": "old"}, "id": 99})"
             "\n");  // nobody asked for 99
  peer.write(event_line("GUEST_PANICKED", R"({"action": "pause"})"));
  peer.write(R"({"return": {"status": "paused", "running": false}, "id": 2})"
             "\n");
  peer.write(event_line("RESUME"));
  auto status = c.query_status(milliseconds(5000));
  ASSERT_OK(status);
  EXPECT_EQ(*status, "paused");
  EXPECT_EQ(c.stats().unmatched_replies, 1u);
  ASSERT_OK(c.poll());  // the RESUME after the reply
  auto events = c.take_events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].name, "STOP");
  EXPECT_EQ(events[0].qemu_time_us, 10'000'005);
  EXPECT_EQ(events[1].name, "GUEST_PANICKED");
  EXPECT_EQ(*json_string_member(events[1].data, "action"), "pause");
  EXPECT_EQ(events[2].name, "RESUME");
  EXPECT_TRUE(c.take_events().empty());
}

TEST(QmpClient, SendsArgumentsAndAnIncreasingId) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  peer.read_available();
  peer.write("{\"return\": {}, \"id\": 2}\n");
  const Json args = {{"name", "dev0"}};
  ASSERT_OK(c.execute("device_del", milliseconds(5000), args));
  std::string sent = peer.read_available();
  EXPECT_NE(sent.find(R"({"execute":"device_del","arguments":{"name":"dev0"},"id":2})"),
            std::string::npos)
      << sent;
}

TEST(QmpClient, ReassemblesALineSplitAcrossReads) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  std::string line = event_line("WATCHDOG", R"({"action": "reset"})");
  peer.write(line.substr(0, 17));
  ASSERT_OK(c.poll());
  EXPECT_EQ(c.queued_events(), 0u);
  // Then one byte per read.
  for (size_t i = 17; i < line.size(); ++i) {
    peer.write(line.substr(i, 1));
    ASSERT_OK(c.poll());
    EXPECT_EQ(c.queued_events(), i + 1 == line.size() ? 1u : 0u) << "after byte " << i;
  }
  auto events = c.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].name, "WATCHDOG");
  EXPECT_EQ(c.stats().garbage_lines, 0u);
}

TEST(QmpClient, ReassemblesAReplySplitAcrossReadsDuringExecute) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  // Half of the reply is there before the command; the rest comes with the
  // next line, in the same stream.
  peer.write(R"({"return": {"status": "runn)");
  peer.write("ing\"}, \"id\": 2}\n");
  auto status = c.query_status(milliseconds(5000));
  ASSERT_OK(status);
  EXPECT_EQ(*status, "running");
}

TEST(QmpClient, CountsAndSkipsGarbageLinesAndStaysUsable) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  peer.write("this is not json\n");
  peer.write("[1, 2, 3]\n");  // JSON, but not a QMP message
  peer.write("{\"neither\": \"event nor reply\"}\n");
  peer.write(std::string("\x00\xff\xfe{", 4) + "\n");
  peer.write("{\"event\": \n");  // truncated JSON on one line
  peer.write("\r\n\n");          // blank lines are not garbage
  peer.write("{\"return\": {\"status\": \"running\"}, \"id\": 2}\r\n");
  auto status = c.query_status(milliseconds(5000));
  ASSERT_OK(status);
  EXPECT_EQ(*status, "running");
  EXPECT_EQ(c.stats().garbage_lines, 5u);
  EXPECT_TRUE(c.connected());
}

TEST(QmpClient, PeerDyingMidReplyGivesUnavailableWithoutWaitingForTheTimeout) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  peer.write(R"({"return": {"sta)");
  peer.close_peer();
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.execute("query-status", milliseconds(30'000));
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status();
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_FALSE(c.connected());
  auto again = c.execute("query-status", milliseconds(1000));
  EXPECT_EQ(again.status().code(), Code::kUnavailable);
  EXPECT_EQ(c.poll().code(), Code::kUnavailable);
}

TEST(QmpClient, PeerGoneBeforeTheCommandGivesUnavailable) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  peer.close_peer();
  auto r = c.execute("system_reset", milliseconds(30'000));
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status();
}

TEST(QmpClient, TimesOutWithoutAReplyAndDropsTheLateReply) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  auto r = c.execute("query-status", milliseconds(50));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status();
  EXPECT_TRUE(c.connected());
  peer.write(R"({"return": {"status": "late"}, "id": 2})"
             "\n");
  peer.write(R"({"return": {"status": "running"}, "id": 3})"
             "\n");
  auto status = c.query_status(milliseconds(5000));
  ASSERT_OK(status);
  EXPECT_EQ(*status, "running");
  EXPECT_EQ(c.stats().unmatched_replies, 1u);
}

TEST(QmpClient, ErrorReplyBecomesFailedPreconditionNamingClassAndDescription) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  peer.write(
      R"({"error": {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}, "id": 2})"
      "\n");
  auto r = c.execute("cont", milliseconds(5000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("qmp cont: GenericError: Resetting"), std::string::npos)
      << r.status();
  EXPECT_TRUE(c.connected());
}

TEST(QmpClient, OversizedLineClosesTheConnectionCleanly) {
  Peer peer;
  QmpClientOptions opts;
  opts.max_line_bytes = 1024;
  VirtualClock clock;
  QmpClient c(clock, opts);
  handshake(c, peer);
  peer.write(std::string(4096, 'x'));  // no newline in sight
  auto r = c.execute("query-status", milliseconds(5000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("longer than 1024"), std::string::npos) << r.status();
  EXPECT_FALSE(c.connected());
}

TEST(QmpClient, OversizedCompleteLineIsRejectedToo) {
  Peer peer;
  QmpClientOptions opts;
  opts.max_line_bytes = 150;
  VirtualClock clock;
  QmpClient c(clock, opts);
  handshake(c, peer);
  peer.write("{\"event\": \"" + std::string(400, 'A') + "\"}\n");
  EXPECT_EQ(c.poll().code(), Code::kUnavailable);
  EXPECT_EQ(c.queued_events(), 0u);
}

TEST(QmpClient, RefusesDeepNestingAndIllFormedUtf8AsGarbageAndKeepsWorking) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  handshake(c, peer);
  std::string at_limit = "1", too_deep = "1";
  // Two objects (the message, its data) around the arrays: 32 levels, and 33.
  for (int i = 0; i < 30; ++i) at_limit = "[" + at_limit + "]";
  for (int i = 0; i < 31; ++i) too_deep = "[" + too_deep + "]";
  peer.write("{\"event\": \"STOP\", \"data\": {\"x\": " + too_deep + "}}\n" +
             "{\"event\": \"RESET\", \"data\": {\"x\": " + at_limit + "}}\n" +
             "{\"event\": \"BAD\xff\"}\n" +
             "{\"event\": \"RESUME\", \"data\": {\"who\": \"caf\xc3\xa9\"}}\n");
  ASSERT_OK(c.poll());
  auto events = c.take_events();
  ASSERT_EQ(events.size(), 2u);  // the positive controls beside each refused line
  EXPECT_EQ(events[0].name, "RESET");
  EXPECT_EQ(events[1].name, "RESUME");
  EXPECT_EQ(events[1].data["who"], "caf\xc3\xa9");
  EXPECT_EQ(c.stats().garbage_lines, 2u);  // the 33-deep line and the bad UTF-8
  EXPECT_TRUE(c.connected());
}

TEST(QmpClient, EventQueueIsBoundedAndCountsWhatItDrops) {
  Peer peer;
  QmpClientOptions opts;
  opts.max_queued_events = 2;
  VirtualClock clock;
  QmpClient c(clock, opts);
  handshake(c, peer);
  for (const char* e : {"STOP", "RESUME", "RESET", "STOP", "RESUME"}) peer.write(event_line(e));
  ASSERT_OK(c.poll());
  auto events = c.take_events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].name, "STOP");
  EXPECT_EQ(events[1].name, "RESUME");
  EXPECT_EQ(c.stats().dropped_events, 3u);
  EXPECT_EQ(c.stats().events, 5u);
}

TEST(QmpClient, HandshakeWithoutGreetingTimesOut) {
  Peer peer;
  VirtualClock clock;
  QmpClient c(clock);
  Status s = c.attach(peer.release_client_fd(), milliseconds(50));
  EXPECT_EQ(s.code(), Code::kTimeout) << s;
  EXPECT_FALSE(c.connected());
}

TEST(QmpClient, HandshakeWithPeerClosingGivesUnavailable) {
  Peer peer;
  peer.write(kGreeting);
  peer.close_peer();
  VirtualClock clock;
  QmpClient c(clock);
  Status s = c.attach(peer.release_client_fd(), milliseconds(5000));
  EXPECT_EQ(s.code(), Code::kUnavailable) << s;
  EXPECT_FALSE(c.connected());
}

TEST(QmpClient, RefusedCapabilitiesFailTheHandshake) {
  Peer peer;
  peer.write(kGreeting);
  peer.write(R"({"error": {"class": "CommandNotFound", "desc": "nope"}, "id": 1})"
             "\n");
  VirtualClock clock;
  QmpClient c(clock);
  Status s = c.attach(peer.release_client_fd(), milliseconds(5000));
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("qmp_capabilities"), std::string::npos) << s;
  EXPECT_FALSE(c.connected());
}

TEST(QmpClient, ConnectToAMissingSocketIsUnavailable) {
  testing::TempDir dir;
  VirtualClock clock;
  QmpClient c(clock);
  Status s = c.connect(dir.file("nobody.sock"), milliseconds(1000));
  EXPECT_EQ(s.code(), Code::kUnavailable) << s;
  EXPECT_NE(s.message().find("nobody.sock"), std::string::npos);
  EXPECT_EQ(c.connect(std::string(200, 'x'), milliseconds(10)).code(), Code::kInvalidArgument);
  EXPECT_EQ(c.execute("query-status", milliseconds(10)).status().code(), Code::kUnavailable);
}

TEST(QmpClient, ConnectsOverAUnixSocketPath) {
  testing::TempDir dir;
  FakeQmpServer server(dir.file("qmp.sock"),
                       {R"({"return": {}})", R"({"return": {"status": "running"}})"});
  VirtualClock clock;
  QmpClient c(clock);
  Status s = c.connect(dir.file("qmp.sock"), milliseconds(5000));
  ASSERT_OK(s) << s;
  auto status = c.query_status(milliseconds(5000));
  ASSERT_OK(status);
  EXPECT_EQ(*status, "running");
  c.close();
  EXPECT_EQ(server.commands(), (std::vector<std::string>{"qmp_capabilities", "query-status"}));
}

// Runs a QmpReset to its end, waiting on its socket (never on time).
Status reset_on_loop(Clock& clock, const std::string& socket, Duration timeout,
                     const std::function<void()>& between = nullptr) {
  std::optional<Status> result;
  QmpReset r(clock, socket, timeout, [&](Status s) { result = std::move(s); });
  EXPECT_FALSE(result.has_value()) << "done ran inside the constructor";
  EXPECT_TRUE(testing::wait_until([&] {
    pollfd p{r.fd(), POLLIN, 0};
    ::poll(&p, r.fd() >= 0 ? 1 : 0, 20);
    r.poll();
    if (between) between();
    return result.has_value();
  }));
  return result.value_or(internal_error("the reset did not finish"));
}

TEST(QmpReset, ResetsAndResumesAGuestThatIsNotRunning) {
  testing::TempDir dir;
  VirtualClock clock;
  FakeQmpServer server(dir.file("qmp.sock"),
                       {R"({"return": {}})", R"({"return": {"status": "guest-panicked"}})",
                        R"({"return": {}})", R"({"return": {}})"});
  Status s = reset_on_loop(clock, dir.file("qmp.sock"), std::chrono::seconds(5));
  ASSERT_OK(s) << s;
  EXPECT_EQ(server.commands(),
            (std::vector<std::string>{"qmp_capabilities", "query-status", "system_reset", "cont"}));
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(QmpReset, DoesNotResumeARunningGuest) {
  testing::TempDir dir;
  VirtualClock clock;
  FakeQmpServer server(
      dir.file("qmp.sock"),
      {R"({"return": {}})", R"({"return": {"status": "running"}})", R"({"return": {}})"});
  ASSERT_OK(reset_on_loop(clock, dir.file("qmp.sock"), std::chrono::seconds(5)));
  EXPECT_EQ(server.commands(),
            (std::vector<std::string>{"qmp_capabilities", "query-status", "system_reset"}));
}

TEST(QmpReset, FailsWithUnavailableWhenNoQemuListens) {
  testing::TempDir dir;
  VirtualClock clock;
  Status s = reset_on_loop(clock, dir.file("none.sock"), std::chrono::seconds(5));
  EXPECT_EQ(s.code(), Code::kUnavailable) << s;
  EXPECT_NE(s.message().find("none.sock"), std::string::npos) << s;
}

TEST(QmpReset, ASilentQemuTimesOutOnTheClockNamingTheSocket) {
  testing::TempDir dir;
  VirtualClock clock;
  // Listens, never accepts: the connection is made, no greeting ever comes.
  const std::string path = dir.file("silent.sock");
  int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 4), 0);
  int turns = 0;
  Status s = reset_on_loop(clock, path, std::chrono::seconds(5), [&] {
    if (++turns == 5) clock.advance(std::chrono::seconds(5));
  });
  ::close(l);
  EXPECT_EQ(turns, 5) << "finished before the Clock reached the time limit";
  EXPECT_EQ(s.code(), Code::kTimeout) << s;
  EXPECT_NE(s.message().find("QMP on " + path + " did not finish the reset within 5s"),
            std::string::npos)
      << s;
}

TEST(QmpMapping, MapsTrackedEventsToLifecycleValues) {
  EXPECT_EQ(lifecycle_from_event("GUEST_PANICKED"), medic::v1::LIFECYCLE_PANICKED);
  EXPECT_EQ(lifecycle_from_event("WATCHDOG"), medic::v1::LIFECYCLE_WATCHDOG);
  EXPECT_EQ(lifecycle_from_event("STOP"), medic::v1::LIFECYCLE_STOPPED);
  EXPECT_EQ(lifecycle_from_event("RESUME"), medic::v1::LIFECYCLE_RESUMED);
  EXPECT_EQ(lifecycle_from_event("SHUTDOWN"), medic::v1::LIFECYCLE_SHUTDOWN);
  EXPECT_EQ(lifecycle_from_event("RESET"), medic::v1::LIFECYCLE_RESET);
  EXPECT_EQ(lifecycle_from_event("NIC_RX_FILTER_CHANGED"), medic::v1::LIFECYCLE_UNSPECIFIED);
}

TEST(QmpMapping, MapsQueryStatusToVmStates) {
  EXPECT_EQ(state_from_qmp_status("running"), medic::v1::VM_STATE_RUNNING);
  EXPECT_EQ(state_from_qmp_status("paused"), medic::v1::VM_STATE_PAUSED);
  EXPECT_EQ(state_from_qmp_status("guest-panicked"), medic::v1::VM_STATE_PANICKED);
  EXPECT_EQ(state_from_qmp_status("watchdog"), medic::v1::VM_STATE_PAUSED);
  EXPECT_EQ(state_from_qmp_status("prelaunch"), medic::v1::VM_STATE_BOOTING);
  EXPECT_EQ(state_from_qmp_status("shutdown"), medic::v1::VM_STATE_STOPPED);
  EXPECT_EQ(state_from_qmp_status("no-such-state"), medic::v1::VM_STATE_UNSPECIFIED);
}

// The non-blocking use: open() returns before any greeting, poll() does the
// handshake as the peer's lines come, send() returns an id at once and the
// reply comes through take_replies(). The peer is scripted by this thread on
// a real unix socket (the connection waits in the listen backlog until the
// test accepts it), so nothing here depends on timing.
TEST(QmpClientAsync, OpenReturnsAtOnceAndTheHandshakeAndRepliesComeThroughPoll) {
  testing::TempDir dir;
  std::string path = dir.file("q.sock");
  int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 4), 0);
  VirtualClock clock;
  QmpClient c(clock);
  ASSERT_OK(c.open(path));  // nobody has accepted yet: no greeting either
  EXPECT_TRUE(c.connected());
  EXPECT_FALSE(c.ready());
  EXPECT_EQ(c.send("query-status").status().code(), Code::kUnavailable);
  ASSERT_OK(c.poll());  // nothing to read: returns at once
  EXPECT_FALSE(c.ready());

  int peer = ::accept(l, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  auto peer_read = [&] {
    pollfd p{peer, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 5000), 1);
    char buf[4096];
    ssize_t n = ::read(peer, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  auto client_poll_until = [&](const std::function<bool()>& cond) {
    for (int i = 0; i < 500 && !cond(); ++i) {
      pollfd p{c.fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
      (void)c.poll();
    }
    return cond();
  };
  ASSERT_EQ(::send(peer, kGreeting, std::strlen(kGreeting), MSG_NOSIGNAL),
            static_cast<ssize_t>(std::strlen(kGreeting)));
  ASSERT_TRUE(client_poll_until([&] { return !c.greeting().is_null(); }));
  std::string caps = peer_read();
  EXPECT_NE(caps.find("\"qmp_capabilities\""), std::string::npos) << caps;
  EXPECT_FALSE(c.ready());  // until the capabilities reply
  auto caps_req = parse_json(caps.substr(0, caps.find('\n')));
  ASSERT_OK(caps_req);
  const Json* caps_id = json_member(*caps_req, "id");
  ASSERT_NE(caps_id, nullptr);
  std::string reply = R"({"return": {}, "id": )" + caps_id->dump() + "}\n";
  (void)!::send(peer, reply.data(), reply.size(), MSG_NOSIGNAL);
  ASSERT_TRUE(client_poll_until([&] { return c.ready(); })) << c.close_reason();
  EXPECT_TRUE(c.take_replies().empty());  // the handshake's reply is not the owner's

  auto id = c.send("query-status");
  ASSERT_OK(id);
  std::string req = peer_read();
  EXPECT_NE(req.find("\"query-status\""), std::string::npos) << req;
  std::string answer = R"({"event": "RESUME", "data": {}})" "\n"
                       R"({"return": {"status": "running"}, "id": )" + std::to_string(*id) + "}\n";
  (void)!::send(peer, answer.data(), answer.size(), MSG_NOSIGNAL);
  std::vector<QmpReply> replies;
  ASSERT_TRUE(client_poll_until([&] {
    for (auto& r : c.take_replies()) replies.push_back(std::move(r));
    return !replies.empty();
  }));
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].id, *id);
  ASSERT_OK(replies[0].result);
  EXPECT_EQ(*json_string_member(*replies[0].result, "status"), "running");
  EXPECT_EQ(c.take_events().size(), 1u);
  EXPECT_EQ(c.stats().unmatched_replies, 0u);
  ::close(peer);
  ::close(l);
}

}  // namespace
}  // namespace medic::vmm::qmp
