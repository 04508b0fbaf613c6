// The event loop of a daemon's thread. Everything a daemon waits for is
// registered on its one EventLoop: plain file descriptors, ZeroMQ sockets
// (zmq_poll takes both in one call), and components whose descriptors change
// from one wait to the next (an EventSource: a hypervisor backend, the
// probes). Timers are not the loop's: they stay on the Clock, and the loop
// waits at most until the Clock's next deadline.
//
// One iteration (run_once):
//   1. every source's prepare() lists its descriptors and may shorten the wait;
//   2. one wait (poll, or zmq_poll when a ZeroMQ socket is registered), at
//      most `max_wait`, at most until the next Clock deadline plus the timer
//      slack, and not at all after wake();
//   3. every source's dispatch(), in registration order, with the revents of
//      the descriptors it listed;
//   4. the handler of every watched descriptor or socket that is readable;
//   5. the Clock's due timers, then every source's after_timers().
// Handlers, sources and timers must not block: work that takes time runs as
// a state machine on descriptors and Clock deadlines.
//
// Threading: an EventLoop, its Clock and everything registered on it belong
// to one thread. Registration and removal are allowed from inside handlers.
#pragma once

#include <poll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/clock.h"

namespace medic {

// A component that waits on a set of descriptors that may change between
// waits. Its descriptors are listed afresh before every wait.
class EventSource {
 public:
  virtual ~EventSource() = default;
  // Appends the descriptors to wait on (events POLLIN and/or POLLOUT) and may
  // lower `*wait` (never raise it).
  virtual void prepare(std::vector<pollfd>* fds, Duration* wait) = 0;
  // Runs after every wait, ready or not; `fds` are the `n` entries this
  // source appended, with their revents (POLLIN, POLLOUT, POLLERR).
  virtual void dispatch(const pollfd* fds, size_t n) = 0;
  // Runs after the Clock's due timers; `timers_ran` says how many ran (work
  // the timers made ready can be picked up in the same iteration).
  virtual void after_timers(size_t /*timers_ran*/) {}
};

class EventLoop {
 public:
  using Handler = std::function<void()>;
  using WatchId = uint64_t;

  // `timer_slack`: how late a timer may run so that timers due close together
  // share one wake-up. Descriptors are never delayed by it.
  explicit EventLoop(Clock& clock, Duration timer_slack = Duration::zero());
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Clock& clock() { return clock_; }
  void set_timer_slack(Duration slack) { slack_ = slack; }
  Duration timer_slack() const { return slack_; }

  // `on_readable` runs in step 4 when `fd` is readable (or hung up).
  WatchId watch_fd(int fd, Handler on_readable);
  // `zmq_socket` is a libzmq socket handle (zmq::socket_t::handle());
  // `on_readable` runs when a message can be received.
  WatchId watch_socket(void* zmq_socket, Handler on_readable);
  // `source` must stay alive until it is removed.
  WatchId add_source(EventSource* source);
  // Unknown ids are ignored. A removed entry is not called again, even later
  // in the iteration that removed it.
  void remove(WatchId id);

  // The next wait returns at once (work was queued that the loop must do).
  void wake() { woken_ = true; }

  // One iteration (see the header comment). Returns the number of Clock
  // timers that ran.
  size_t run_once(Duration max_wait);
  // Iterations until `stop` is set; checks it at least every `check_every`.
  void run(const std::atomic<bool>& stop,
           Duration check_every = std::chrono::milliseconds(100));

  uint64_t iterations() const { return iterations_; }
  uint64_t poll_errors() const { return poll_errors_; }

 private:
  struct Entry {
    WatchId id = 0;
    int fd = -1;
    void* socket = nullptr;
    EventSource* source = nullptr;
    Handler handler;
    bool removed = false;
    // Where this entry's descriptors sit in pollfds_ for this iteration.
    size_t first = 0;
    size_t count = 0;
  };

  WatchId add(Entry e);
  Duration compute_wait(Duration max_wait) const;
  void wait(Duration d);
  void compact();
  void collect(Duration* wait);

  Clock& clock_;
  Duration slack_;
  // Pointers, so a handler that registers more entries does not move itself.
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<pollfd> pollfds_;
  std::vector<void*> poll_sockets_;  // parallel to pollfds_: the ZeroMQ socket or null
  WatchId next_id_ = 1;
  size_t sockets_ = 0;
  bool woken_ = false;
  bool dirty_ = false;
  uint64_t iterations_ = 0;
  uint64_t poll_errors_ = 0;
};

}  // namespace medic
