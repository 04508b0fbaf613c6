#include "collectors/probes.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tests/testing/testing.h"
#include "tests/unit/collectors/test_http_server.h"

namespace medic::collectors {
namespace {

using namespace std::chrono_literals;
using testing::TestHttpServer;

// Drives a ProbeRunner on the test thread: the schedule on a VirtualClock,
// the network I/O for real (bounded by a real-time limit).
class ProbeHarness {
 public:
  explicit ProbeHarness(uint64_t seed = 42) {
    auto r = ProbeRunner::create(
        clock, [this](const ProbeOutcome& o) { results.push_back(o); }, seed);
    EXPECT_OK(r);
    runner = std::move(*r);
  }

  // Runs one poll() round of at most `limit`.
  void pump_once(Duration limit = 50ms) {
    std::vector<pollfd> fds;
    runner->prepare(&fds);
    Duration wait = limit;
    if (auto w = runner->max_wait()) wait = std::min(wait, *w);
    ::poll(fds.data(), fds.size(),
           static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    runner->on_poll(fds.data(), fds.size());
  }

  bool pump_until(size_t n, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (results.size() < n && std::chrono::steady_clock::now() < end) pump_once();
    return results.size() >= n;
  }

  ProbeOutcome run(ProbeSpec spec) {
    const std::string name = spec.name;
    const size_t before = results.size();
    EXPECT_OK(runner->add(std::move(spec)));
    EXPECT_OK(runner->run_now(name));
    EXPECT_TRUE(pump_until(before + 1));
    return results.empty() ? ProbeOutcome{} : results.back();
  }

  VirtualClock clock;
  std::vector<ProbeOutcome> results;
  std::unique_ptr<ProbeRunner> runner;
};

ProbeSpec http(const std::string& url, Duration timeout = 2s) {
  ProbeSpec s;
  s.name = "web";
  s.vm = "vm-1";
  s.kind = ProbeKind::kHttp;
  s.url = url;
  s.timeout = timeout;
  s.interval = 10s;
  return s;
}

ProbeSpec tcp(int port, Duration timeout = 2s) {
  ProbeSpec s;
  s.name = "tcp";
  s.kind = ProbeKind::kTcp;
  s.tcp_host = "127.0.0.1";
  s.tcp_port = static_cast<uint16_t>(port);
  s.timeout = timeout;
  s.interval = 10s;
  return s;
}

// A loopback port with nothing listening on it.
// A TCP socket bound to a free loopback port (`*addr`), listening with
// `backlog` unless it is negative.
int loopback_socket(int type, int backlog, sockaddr_in* addr) {
  int fd = ::socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  if (backlog >= 0) {
    EXPECT_EQ(::listen(fd, backlog), 0);
  }
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *addr = a;
  return fd;
}

int closed_port() {
  sockaddr_in a{};
  ::close(loopback_socket(SOCK_STREAM, -1, &a));
  return ntohs(a.sin_port);
}

TEST(HttpProbe, SucceedsOnExpectedStatusAndBody) {
  TestHttpServer server;
  ProbeHarness h;
  auto spec = http(server.url("/ok"));
  spec.body_contains = "medic";
  ProbeOutcome o = h.run(spec);
  EXPECT_TRUE(o.ok) << o.reason;
  EXPECT_EQ(o.status, 200u);
  EXPECT_EQ(o.failure, ProbeFailure::kNone);
  EXPECT_EQ(o.reason, "");
  EXPECT_EQ(o.probe, "web");
  EXPECT_EQ(o.vm, "vm-1");
  EXPECT_GT(o.latency, Duration::zero());
  EXPECT_EQ(o.finished_at, h.clock.now());
  EXPECT_EQ(h.runner->counters().succeeded, 1u);
}

TEST(HttpProbe, ReportsStatusMismatchOnServerError) {
  TestHttpServer server;
  ProbeHarness h;
  ProbeOutcome o = h.run(http(server.url("/status/500")));
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.status, 500u);
  EXPECT_EQ(o.failure, ProbeFailure::kStatusMismatch);
  EXPECT_EQ(o.reason, "status_mismatch: got 500, expected 200");
  EXPECT_EQ(h.runner->counters().failed, 1u);
}

TEST(HttpProbe, AcceptsAny2xxWhenNoStatusIsExpected) {
  TestHttpServer server;
  ProbeHarness h;
  auto spec = http(server.url("/status/204"));
  spec.expect_status = 0;
  EXPECT_TRUE(h.run(spec).ok);
  auto spec2 = http(server.url("/status/302"));
  spec2.name = "redirect";
  spec2.expect_status = 0;
  ProbeOutcome o = h.run(spec2);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.reason, "status_mismatch: got 302, expected 2xx");
}

TEST(HttpProbe, TimesOutWhenTheServerNeverAnswers) {
  TestHttpServer server;
  ProbeHarness h;
  ProbeOutcome o = h.run(http(server.url("/hang"), 200ms));
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout);
  EXPECT_EQ(o.status, 0u);
  EXPECT_GE(o.latency, 200ms);
  EXPECT_EQ(o.reason.rfind("timeout: ", 0), 0u) << o.reason;
}

TEST(HttpProbe, ReportsConnectionRefused) {
  ProbeHarness h;
  ProbeOutcome o = h.run(http("http://127.0.0.1:" + std::to_string(closed_port()) + "/"));
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.failure, ProbeFailure::kConnectionRefused) << o.reason;
  EXPECT_EQ(o.reason.rfind("connection_refused: ", 0), 0u) << o.reason;
}

TEST(HttpProbe, SlowBodyWithinTheTimeoutSucceedsWithItsLatency) {
  TestHttpServer server;
  ProbeHarness h;
  auto spec = http(server.url("/slow/150"), 3s);
  spec.body_contains = "second half";
  ProbeOutcome o = h.run(spec);
  EXPECT_TRUE(o.ok) << o.reason;
  EXPECT_GE(o.latency, 150ms);
}

TEST(HttpProbe, SlowBodyBeyondTheTimeoutTimesOutAfterTheHeaders) {
  TestHttpServer server;
  ProbeHarness h;
  ProbeOutcome o = h.run(http(server.url("/slow/3000"), 200ms));
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout);
  EXPECT_EQ(o.status, 200u);  // the headers came; the body did not
  EXPECT_LT(o.latency, 2s);
}

TEST(HttpProbe, ReportsBodyMismatch) {
  TestHttpServer server;
  ProbeHarness h;
  auto spec = http(server.url("/ok"));
  spec.body_contains = "not there";
  ProbeOutcome o = h.run(spec);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.status, 200u);
  EXPECT_EQ(o.failure, ProbeFailure::kBodyMismatch);
  EXPECT_EQ(o.reason, "body_mismatch: \"not there\" not in the body");
}

TEST(HttpProbe, FindsBodyTextSplitAcrossReads) {
  TestHttpServer server;
  ProbeHarness h;
  auto spec = http(server.url("/big"));
  spec.body_contains = "xxxNEEDLE";
  EXPECT_TRUE(h.run(spec).ok);
}

TEST(HttpProbe, HeadAndPostMethodsReachTheServer) {
  TestHttpServer server;
  ProbeHarness h;
  auto head = http(server.url("/ok"));
  head.method = "HEAD";
  EXPECT_TRUE(h.run(head).ok);
  auto post = http(server.url("/ok"));
  post.name = "post";
  post.method = "POST";
  EXPECT_TRUE(h.run(post).ok);
  EXPECT_EQ(server.requests(), 2u);
}

TEST(HttpProbe, OpensAFreshConnectionForEachRunUnlessToldToReuseIt) {
  TestHttpServer server;
  ProbeHarness h;
  ProbeOutcome first = h.run(http(server.url("/ok")));
  ASSERT_OK(h.runner->run_now("web"));
  ASSERT_TRUE(h.pump_until(2));
  EXPECT_TRUE(first.ok && h.results[1].ok);
  EXPECT_EQ(server.connections(), 2u);

  auto spec = http(server.url("/ok"));
  spec.name = "kept";
  spec.reuse_connection = true;
  EXPECT_TRUE(h.run(spec).ok);
  ASSERT_OK(h.runner->run_now("kept"));
  ASSERT_TRUE(h.pump_until(4));
  EXPECT_TRUE(h.results[3].ok);
  EXPECT_EQ(server.connections(), 3u);
  EXPECT_EQ(server.requests(), 4u);
}

TEST(TcpProbe, SucceedsWhenThePortAccepts) {
  TestHttpServer server;
  ProbeHarness h;
  ProbeOutcome o = h.run(tcp(server.port()));
  EXPECT_TRUE(o.ok) << o.reason;
  EXPECT_EQ(o.status, 0u);
  EXPECT_GT(o.latency, Duration::zero());
}

TEST(TcpProbe, ResolvesAHostNameWhenAdded) {
  // Through /etc/hosts: no DNS traffic. Where localhost also resolves to ::1
  // first, this also covers falling back to the next address (the server
  // listens on 127.0.0.1 only).
  TestHttpServer server;
  ProbeHarness h;
  auto spec = tcp(server.port());
  spec.tcp_host = "localhost";
  ProbeOutcome o = h.run(spec);
  EXPECT_TRUE(o.ok) << o.reason;
}

TEST(TcpProbe, ReportsConnectionRefused) {
  ProbeHarness h;
  ProbeOutcome o = h.run(tcp(closed_port()));
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.failure, ProbeFailure::kConnectionRefused);
  EXPECT_EQ(o.reason, "connection_refused: Connection refused");
}

// A loopback listener with a backlog of 0 that accepts only when told to:
// once fill() has filled its queue, further SYNs are dropped, so a connect
// neither succeeds nor fails.
class FullQueueListener {
 public:
  FullQueueListener() { fd_ = loopback_socket(SOCK_STREAM | SOCK_NONBLOCK, 0, &addr_); }
  ~FullQueueListener() {
    for (int c : fillers_) ::close(c);
    ::close(fd_);
  }
  int port() const { return ntohs(addr_.sin_port); }
  // Takes the connections waiting, making room for the next.
  void accept_waiting() {
    for (int c; (c = ::accept(fd_, nullptr, nullptr)) >= 0;) ::close(c);
  }
  void fill(int n) {
    for (int i = 0; i < n; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      (void)::connect(c, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_));
      fillers_.push_back(c);
    }
  }

 private:
  int fd_ = -1;
  sockaddr_in addr_{};
  std::vector<int> fillers_;
};

TEST(TcpProbe, TimesOutWhenTheListenQueueIsFull) {
  FullQueueListener listener;
  listener.fill(4);
  ProbeHarness h;
  ProbeOutcome o = h.run(tcp(listener.port(), 200ms));
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout) << o.reason;
  EXPECT_GE(o.latency, 200ms);
}

TEST(ProbeRunner, HoldsManyProbesInFlightAtOnceOnOneThread) {
  // The server answers /gate/N only once N requests wait at the same time,
  // so this passes only if all N are in flight together.
  constexpr int kProbes = 300;
  TestHttpServer server;
  ProbeHarness h;
  for (int i = 0; i < kProbes; ++i) {
    auto spec = http(server.url("/gate/" + std::to_string(kProbes)), 20s);
    spec.name = "p" + std::to_string(i);
    spec.interval = 30s;
    ASSERT_OK(h.runner->add(spec));
    ASSERT_OK(h.runner->run_now(spec.name));
  }
  EXPECT_EQ(h.runner->in_flight(), static_cast<size_t>(kProbes));
  ASSERT_TRUE(h.pump_until(kProbes, 30s));
  size_t ok = 0;
  for (const auto& o : h.results) ok += o.ok;
  EXPECT_EQ(ok, static_cast<size_t>(kProbes));
  EXPECT_EQ(h.runner->in_flight(), 0u);
}

TEST(ProbeRunner, RunsOnItsIntervalWithBoundedSeededJitter) {
  TestHttpServer server;
  auto starts = [&](uint64_t seed) {
    ProbeHarness h(seed);
    auto spec = tcp(server.port());
    spec.interval = 1s;
    spec.jitter = 0.2;
    EXPECT_OK(h.runner->add(spec));
    std::vector<Time> at;
    for (int step = 0; step < 1000; ++step) {  // 10 s of virtual time
      h.clock.advance(10ms);
      if (h.runner->counters().started > at.size()) {
        at.push_back(h.clock.now());
        EXPECT_TRUE(h.pump_until(at.size()));
      }
    }
    return at;
  };
  auto a = starts(7);
  ASSERT_GE(a.size(), 8u);
  for (size_t i = 1; i < a.size(); ++i) {
    EXPECT_GE(a[i] - a[i - 1], 800ms);
    EXPECT_LE(a[i] - a[i - 1], 1210ms);  // +10 ms for the step size
  }
  EXPECT_EQ(starts(7), a);
  EXPECT_NE(starts(8), a);
}

TEST(ProbeRunner, SkipsARunWhileThePreviousOneIsInFlight) {
  TestHttpServer server;
  ProbeHarness h;
  auto spec = http(server.url("/hang"), 10s);
  spec.interval = 100ms;
  spec.jitter = 0;
  ASSERT_OK(h.runner->add(spec));
  h.clock.advance(1s);
  EXPECT_EQ(h.runner->counters().started, 1u);
  EXPECT_GE(h.runner->counters().skipped_overlap, 8u);
  EXPECT_EQ(h.runner->in_flight(), 1u);
}

TEST(ProbeRunner, RejectsBadSpecs) {
  ProbeHarness h;
  ProbeSpec nameless = http("http://127.0.0.1/");
  nameless.name = "";
  EXPECT_EQ(h.runner->add(nameless).code(), Code::kInvalidArgument);
  EXPECT_EQ(h.runner->add(http("ftp://127.0.0.1/")).code(), Code::kInvalidArgument);
  ProbeSpec jittery = http("http://127.0.0.1/");
  jittery.jitter = 0.9;
  EXPECT_EQ(h.runner->add(jittery).code(), Code::kInvalidArgument);
  ProbeSpec portless = tcp(0);
  EXPECT_EQ(h.runner->add(portless).code(), Code::kInvalidArgument);
  ASSERT_OK(h.runner->add(http("http://127.0.0.1/")));
  EXPECT_EQ(h.runner->add(http("http://127.0.0.1/")).code(), Code::kAlreadyExists);
  EXPECT_EQ(h.runner->run_now("nope").code(), Code::kNotFound);
  EXPECT_EQ(h.runner->size(), 1u);
}

TEST(ProbeRunner, DeliversResultsOnlyFromOnPoll) {
  ProbeHarness h;
  ASSERT_OK(h.runner->add(tcp(closed_port())));
  ASSERT_OK(h.runner->run_now("tcp"));
  EXPECT_TRUE(h.results.empty());  // even a failure known at once waits for on_poll
  ASSERT_TRUE(h.runner->max_wait().has_value());
  EXPECT_TRUE(h.pump_until(1));
}

// A loopback HTTP service whose answers the test turns on and off: while
// `answer` is false it accepts and reads, and never answers (a hung
// service); `fail_next` gives the next request a 500.
class SwitchableService {
 public:
  SwitchableService() {
    sockaddr_in a{};
    fd_ = loopback_socket(SOCK_STREAM, 64, &a);
    port_ = ntohs(a.sin_port);
    EXPECT_EQ(::pipe(stop_pipe_), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~SwitchableService() {
    stop_ = true;
    (void)!::write(stop_pipe_[1], "x", 1);
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    for (int c : held_) ::close(c);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  std::atomic<bool> answer{true};
  std::atomic<bool> fail_next{false};
  std::atomic<int> delay_ms{0};  // how long the service takes to answer

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[2048];
      (void)!::read(c, buf, sizeof buf);
      if (!answer) {
        held_.push_back(c);
        continue;
      }
      if (delay_ms > 0) {  // answers late, or at once when the service stops
        pollfd stop{stop_pipe_[0], POLLIN, 0};
        if (::poll(&stop, 1, delay_ms.load()) != 0) {
          ::close(c);
          return;
        }
      }
      const std::string reply =
          fail_next.exchange(false)
              ? "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
              : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      (void)!::write(c, reply.data(), reply.size());
      ::close(c);
    }
  }
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> held_;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
};

// Runs the probe named `name` now and returns what it reported.
ProbeOutcome run_again(ProbeHarness& h, const std::string& name) {
  const size_t before = h.results.size();
  EXPECT_OK(h.runner->run_now(name));
  EXPECT_TRUE(h.pump_until(before + 1));
  return h.results.empty() ? ProbeOutcome{} : h.results.back();
}

TEST(ProbeTimeout, ALearnedTimeoutGivesUpOnAFastServiceGoneSilentLongBeforeTheSpecs) {
  for (bool learn : {true, false}) {
    SwitchableService svc;
    ProbeHarness h;
    auto spec = http(svc.url(), 1500ms);
    spec.learn_timeout = learn;
    spec.min_timeout = 50ms;
    ASSERT_OK(h.runner->add(spec));
    for (int i = 0; i < ProbeSpec::kLearnFrom; ++i) ASSERT_TRUE(run_again(h, "web").ok) << i;
    svc.answer = false;
    ProbeOutcome o = run_again(h, "web");
    EXPECT_EQ(o.failure, ProbeFailure::kTimeout) << o.reason;
    EXPECT_GE(o.latency, 50ms);
    if (learn) {
      EXPECT_LT(o.latency, 1s) << "the loopback service answered in well under 100 ms";
    } else {
      EXPECT_GE(o.latency, 1500ms);
    }
  }
}

// A service that answers at another pace after a failure (slower for
// good, or warming up after a restart) is not held to the pace it had
// before: after a reported failure the next run gets the spec's timeout,
// and its slow answer is learned.
TEST(ProbeTimeout, AfterAReportedFailureASlowerAnswerIsWaitedForAndLearned) {
  SwitchableService svc;
  ProbeHarness h;
  auto spec = http(svc.url(), 800ms);
  spec.learn_timeout = true;
  ASSERT_OK(h.runner->add(spec));
  for (int i = 0; i < ProbeSpec::kLearnFrom; ++i) ASSERT_TRUE(run_again(h, "web").ok);
  svc.delay_ms = 150;
  ProbeOutcome o = run_again(h, "web");
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout) << "learned from answers in well under 15 ms";
  EXPECT_LT(o.latency, 150ms);
  o = run_again(h, "web");
  EXPECT_TRUE(o.ok) << o.reason;
  EXPECT_GE(o.latency, 150ms);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(run_again(h, "web").ok) << "learned the new pace";
}

TEST(ProbeTimeout, ARunTheLearnedTimeoutEndsSaysWhatItWaited) {
  FullQueueListener listener;
  ProbeHarness h;
  auto spec = tcp(listener.port(), 1s);
  spec.learn_timeout = true;
  spec.min_timeout = 80ms;
  ASSERT_OK(h.runner->add(spec));
  for (int i = 0; i < ProbeSpec::kLearnFrom; ++i) {
    ASSERT_TRUE(run_again(h, "tcp").ok) << i;
    listener.accept_waiting();
  }
  listener.fill(64);  // nobody accepts now: the next connect hangs
  ProbeOutcome o = run_again(h, "tcp");
  EXPECT_EQ(o.reason, "timeout: no connection within 80ms") << o.reason;
}

TEST(ProbeTimeout, TheSpecsTimeoutHoldsUntilEnoughAnswersWereSeen) {
  SwitchableService svc;
  ProbeHarness h;
  auto spec = http(svc.url(), 600ms);
  spec.learn_timeout = true;
  ASSERT_OK(h.runner->add(spec));
  for (int i = 0; i < ProbeSpec::kLearnFrom - 1; ++i) ASSERT_TRUE(run_again(h, "web").ok);
  svc.answer = false;
  ProbeOutcome o = run_again(h, "web");
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout);
  EXPECT_GE(o.latency, 600ms);
}

TEST(ProbeConfirm, AFailureIsReportedOnlyWhenASecondRunAtOnceFailsToo) {
  ProbeHarness h;
  auto spec = tcp(closed_port());
  spec.confirm = true;
  ProbeOutcome o = h.run(spec);
  EXPECT_EQ(o.failure, ProbeFailure::kConnectionRefused);
  EXPECT_EQ(o.reason.find("(confirmed by a second run)") + 27, o.reason.size()) << o.reason;
  EXPECT_EQ(h.results.size(), 1u);
  EXPECT_EQ(h.runner->counters().started, 2u);
  EXPECT_EQ(h.runner->counters().failed, 1u);
  EXPECT_EQ(h.runner->counters().confirmed, 1u);
  EXPECT_EQ(h.runner->counters().unconfirmed, 0u);
  EXPECT_EQ(h.runner->in_flight(), 0u);
}

TEST(ProbeConfirm, AFailureTheSecondRunDoesNotConfirmIsNotReported) {
  for (bool confirm : {true, false}) {
    SwitchableService svc;
    ProbeHarness h;
    auto spec = http(svc.url());
    spec.confirm = confirm;
    svc.fail_next = true;
    ProbeOutcome o = h.run(spec);
    EXPECT_EQ(h.results.size(), 1u);
    if (confirm) {
      EXPECT_TRUE(o.ok) << o.reason;
      EXPECT_EQ(h.runner->counters().unconfirmed, 1u);
      EXPECT_EQ(h.runner->counters().started, 2u);
    } else {
      EXPECT_EQ(o.failure, ProbeFailure::kStatusMismatch);
      EXPECT_EQ(h.runner->counters().started, 1u);
    }
  }
}

ProbeSpec process(const std::string& pid_file) {
  ProbeSpec s;
  s.name = "proc";
  s.kind = ProbeKind::kProcess;
  s.pid_file = pid_file;
  s.interval = 10s;
  return s;
}

// The watched process's exit is reported as it happens, with no run due.
TEST(ProcessProbe, TheWatchedProcessExitingIsAFailureAtOnceAndThenNotRunning) {
  testing::TempDir dir;
  const std::string pid_file = dir.path() + "/svc.pid";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  bool reaped = false;
  struct Reap {  // the child is never left behind, whatever fails
    pid_t pid;
    bool* done;
    ~Reap() {
      if (*done) return;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{child, &reaped};
  testing::write_file(pid_file, std::to_string(child) + "\n");
  ProbeHarness h;
  ProbeOutcome o = h.run(process(pid_file));
  EXPECT_TRUE(o.ok) << o.reason;
  ::kill(child, SIGKILL);
  ASSERT_TRUE(h.pump_until(2, 5s));
  o = h.results.back();
  EXPECT_EQ(o.failure, ProbeFailure::kProcessExited);
  EXPECT_EQ(o.reason, "process_exited: process " + std::to_string(child) + " exited");
  // Exited but not reaped, then reaped: not running either way.
  o = run_again(h, "proc");
  EXPECT_EQ(o.failure, ProbeFailure::kNotRunning) << o.reason;
  ::waitpid(child, nullptr, 0);
  reaped = true;
  // Its pid may be another process's by now: still the process that exited.
  o = run_again(h, "proc");
  EXPECT_EQ(o.failure, ProbeFailure::kNotRunning) << o.reason;
  EXPECT_EQ(o.reason,
            "not_running: process " + std::to_string(child) + " (" + pid_file + ") has exited");
  // A new process in the file is watched again.
  testing::write_file(pid_file, std::to_string(::getpid()));
  EXPECT_TRUE(run_again(h, "proc").ok);
}

TEST(ProcessProbe, NoPidFileIsNotRunning) {
  testing::TempDir dir;
  ProbeHarness h;
  ProbeOutcome o = h.run(process(dir.path() + "/none.pid"));
  EXPECT_EQ(o.failure, ProbeFailure::kNotRunning);
  EXPECT_EQ(o.reason, "not_running: no pid in " + dir.path() + "/none.pid");
  ProbeSpec nameless = process("");
  nameless.name = "p2";
  EXPECT_EQ(h.runner->add(nameless).code(), Code::kInvalidArgument);
}

TEST(ProbeFailureNames, AreStable) {
  EXPECT_STREQ(probe_failure_name(ProbeFailure::kTimeout), "timeout");
  EXPECT_STREQ(probe_failure_name(ProbeFailure::kConnectionRefused), "connection_refused");
  EXPECT_STREQ(probe_failure_name(ProbeFailure::kDns), "dns");
  EXPECT_STREQ(probe_failure_name(ProbeFailure::kStatusMismatch), "status_mismatch");
  EXPECT_STREQ(probe_failure_name(ProbeFailure::kBodyMismatch), "body_mismatch");
  EXPECT_STREQ(probe_failure_name(ProbeFailure::kNotRunning), "not_running");
  EXPECT_STREQ(probe_failure_name(ProbeFailure::kProcessExited), "process_exited");
}

}  // namespace
}  // namespace medic::collectors
