#include "core/event_loop.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <vector>
#include <zmq.hpp>

namespace medic {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

class Pipe {
 public:
  Pipe() { EXPECT_EQ(::pipe2(fds_, O_NONBLOCK | O_CLOEXEC), 0); }
  ~Pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int read_end() const { return fds_[0]; }
  void put() { ASSERT_EQ(::write(fds_[1], "x", 1), 1); }
  void drain() {
    char c[16];
    while (::read(fds_[0], c, sizeof c) > 0) {
    }
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(EventLoop, RunsTheHandlerOfAWatchedDescriptorOnlyWhenItIsReadable) {
  VirtualClock clock;
  EventLoop loop(clock);
  Pipe p;
  int calls = 0;
  loop.watch_fd(p.read_end(), [&] {
    ++calls;
    p.drain();
  });
  loop.run_once(Duration::zero());
  EXPECT_EQ(calls, 0);  // nothing written yet
  p.put();
  loop.run_once(Duration::zero());
  EXPECT_EQ(calls, 1);
}

TEST(EventLoop, RunsTheHandlerOfAReadableZeroMqSocketBesidePlainDescriptors) {
  VirtualClock clock;
  EventLoop loop(clock);
  zmq::context_t ctx;
  zmq::socket_t a(ctx, zmq::socket_type::pair), b(ctx, zmq::socket_type::pair);
  a.bind("inproc://event-loop-test");
  b.connect("inproc://event-loop-test");
  Pipe p;
  std::vector<std::string> got;
  int pipe_calls = 0;
  loop.watch_fd(p.read_end(), [&] {
    ++pipe_calls;
    p.drain();
  });
  loop.watch_socket(b.handle(), [&] {
    zmq::message_t m;
    while (b.recv(m, zmq::recv_flags::dontwait)) got.push_back(m.to_string());
  });
  loop.run_once(Duration::zero());
  EXPECT_TRUE(got.empty());
  a.send(zmq::str_buffer("hello"), zmq::send_flags::none);
  p.put();
  loop.run_once(seconds(5));
  EXPECT_EQ(got, std::vector<std::string>{"hello"});
  EXPECT_EQ(pipe_calls, 1);
}

TEST(EventLoop, WaitsNoLongerThanTheClocksNextDeadlineAndRunsDueTimers) {
  VirtualClock clock;
  EventLoop loop(clock);
  Pipe idle;  // never readable
  loop.watch_fd(idle.read_end(), [] {});
  int fired = 0;
  clock.schedule_after(Duration::zero(), [&] { ++fired; });
  const auto t0 = Steady::now();
  EXPECT_EQ(loop.run_once(seconds(30)), 1u);
  EXPECT_EQ(fired, 1);
  // A due timer means no wait at all; far below the 30 s asked for.
  EXPECT_LT(Steady::now() - t0, seconds(5));
}

TEST(EventLoop, TimersNotYetDueDoNotRun) {
  VirtualClock clock;
  EventLoop loop(clock);
  int fired = 0;
  clock.schedule_after(seconds(1), [&] { ++fired; });
  EXPECT_EQ(loop.run_once(Duration::zero()), 0u);
  EXPECT_EQ(fired, 0);
  clock.advance(seconds(1));  // runs it
  EXPECT_EQ(fired, 1);
}

class PipeSource : public EventSource {
 public:
  explicit PipeSource(int fd) : fd_(fd) {}
  void prepare(std::vector<pollfd>* fds, Duration* wait) override {
    fds->push_back(pollfd{fd_, POLLIN, 0});
    if (limit_) *wait = std::min(*wait, *limit_);
  }
  void dispatch(const pollfd* fds, size_t n) override {
    ++dispatches;
    seen = n;
    if (n == 1 && (fds[0].revents & POLLIN)) ++readable;
  }
  void after_timers(size_t ran) override { timers_seen += ran; }

  std::optional<Duration> limit_;
  int dispatches = 0;
  int readable = 0;
  size_t seen = 0;
  size_t timers_seen = 0;

 private:
  int fd_;
};

TEST(EventLoop, HandsASourceTheReventsOfTheDescriptorsItListed) {
  VirtualClock clock;
  EventLoop loop(clock);
  Pipe p;
  PipeSource src(p.read_end());
  loop.add_source(&src);
  loop.run_once(Duration::zero());
  EXPECT_EQ(src.dispatches, 1);  // every iteration, ready or not
  EXPECT_EQ(src.seen, 1u);
  EXPECT_EQ(src.readable, 0);
  p.put();
  clock.schedule_after(Duration::zero(), [] {});
  loop.run_once(Duration::zero());
  EXPECT_EQ(src.readable, 1);
  EXPECT_EQ(src.timers_seen, 1u);
}

TEST(EventLoop, ASourceMayShortenTheWait) {
  SystemClock clock;
  EventLoop loop(clock);
  Pipe p;
  PipeSource src(p.read_end());
  src.limit_ = milliseconds(1);
  loop.add_source(&src);
  const auto t0 = Steady::now();
  loop.run_once(seconds(30));
  EXPECT_LT(Steady::now() - t0, seconds(5));
  EXPECT_EQ(src.dispatches, 1);
}

TEST(EventLoop, WakeMakesTheNextWaitReturnAtOnce) {
  SystemClock clock;
  EventLoop loop(clock);
  Pipe p;
  loop.watch_fd(p.read_end(), [] {});
  loop.wake();
  const auto t0 = Steady::now();
  loop.run_once(seconds(30));
  EXPECT_LT(Steady::now() - t0, seconds(5));
}

TEST(EventLoop, AnEntryRemovedInsideAnIterationIsNotCalledAgain) {
  VirtualClock clock;
  EventLoop loop(clock);
  Pipe a, b;
  int a_calls = 0, b_calls = 0;
  EventLoop::WatchId b_id = 0;
  loop.watch_fd(a.read_end(), [&] {
    ++a_calls;
    loop.remove(b_id);
  });
  b_id = loop.watch_fd(b.read_end(), [&] { ++b_calls; });
  a.put();
  b.put();
  loop.run_once(Duration::zero());
  EXPECT_EQ(a_calls, 1);
  EXPECT_EQ(b_calls, 0);  // removed by a's handler before its turn
  loop.run_once(Duration::zero());
  EXPECT_EQ(a_calls, 2);  // positive control: a is still watched and still readable
  EXPECT_EQ(b_calls, 0);
}

}  // namespace
}  // namespace medic
