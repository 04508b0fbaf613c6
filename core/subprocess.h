// Running external programs the safe way: execve with an argument vector,
// never a shell; a time limit on everything; output captured up to a bound.
// Used for vmadm, restart hooks, and the QEMU launcher.
//
// One way of running a program to its end: a ChildProcess, which never
// blocks and lives on an event loop (its pipes and pidfd are the loop's
// descriptors, its time limit a Clock timer). run_process() is the same
// ChildProcess on a loop of its own, for the command line and tools.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/event_loop.h"
#include "core/status.h"

namespace medic {

struct RunOptions {
  std::chrono::milliseconds timeout{10'000};
  // At the time limit the process group gets SIGTERM, and SIGKILL this much
  // later if it has not gone; zero: SIGKILL at once.
  Duration kill_grace = std::chrono::seconds(1);
  size_t max_output_bytes = 64 * 1024;    // per stream; the rest is read and dropped
  std::string stdin_data;
  std::vector<std::string> env;           // "K=V"; empty inherits the caller's
  bool search_path = false;               // argv[0] looked up in $PATH when true
};

struct RunResult {
  int exit_code = -1;      // -1 when killed by a signal
  int signal = 0;          // the signal that ended it, if any
  bool timed_out = false;  // killed by us at the time limit
  bool truncated = false;  // output exceeded max_output_bytes
  // When we killed it: what we did and why, for messages ("time limit of
  // 2s passed: SIGTERM to its process group, then SIGKILL after 1s").
  std::string kill_reason;
  std::string out;
  std::string err;
};

// How a run ended, for messages: "exit 3", "killed by signal 9", or the
// kill reason of a timed-out run.
std::string describe_end(const RunResult& r);

// One running child process, moved on without ever blocking. The owner
// waits on its descriptors (prepare() as an EventSource, or fds() for
// owners that list plain descriptors) and calls poll() after a wait; the
// time limit is a timer on the Clock. The run ends when the child has
// exited and was reaped (output still buffered in its pipes is read then;
// a grandchild that keeps the pipes open is not waited for).
//
// Threading: belongs to the thread of its Clock and loop.
class ChildProcess final : public EventSource {
 public:
  using Done = std::function<void(RunResult)>;

  // Starts argv in its own process group. `done` runs exactly once, from
  // poll() (never from start()), unless the ChildProcess is destroyed
  // first. Errors: kInvalidArgument for an empty argv, kIo when it cannot
  // start (the message names argv[0] and the reason).
  static Result<std::unique_ptr<ChildProcess>> start(const std::vector<std::string>& argv,
                                                     const RunOptions& opts, Clock& clock,
                                                     Done done);
  // A child still running is killed (SIGKILL to its group) and reaped;
  // `done` is not called.
  ~ChildProcess() override;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Reads what the child wrote, feeds its stdin, reaps it when it has
  // exited, and runs `done` once it has ended. Never blocks.
  void poll();
  bool finished() const { return finished_; }
  pid_t pid() const { return pid_; }

  // The descriptors to wait on for readability: stdout, stderr and the
  // pidfd. stdin is written from poll() as far as the pipe takes it; more
  // than a pipe buffer (64 KiB) of stdin needs prepare()'s POLLOUT.
  void append_fds(std::vector<int>* fds) const;
  // EventSource: the same descriptors (stdin with POLLOUT); without a pidfd
  // (old kernels) the wait is at most 10 ms, so the exit is seen by polling
  // waitpid for this child only (no SIGCHLD handler is needed).
  void prepare(std::vector<pollfd>* fds, Duration* wait) override;
  void dispatch(const pollfd* fds, size_t n) override;

 private:
  ChildProcess(Clock& clock, const RunOptions& opts, Done done);
  void read_stream(int* fd, std::string* dst);
  void feed_stdin();
  void reap();
  void on_time_limit();
  void close_fds();

  Clock& clock_;
  RunOptions opts_;
  Done done_;
  pid_t pid_ = 0;
  int out_fd_ = -1, err_fd_ = -1, in_fd_ = -1, pidfd_ = -1;
  size_t in_off_ = 0;
  bool exited_ = false;
  bool finished_ = false;
  TimerId limit_timer_ = 0;
  TimerId kill_timer_ = 0;
  RunResult result_;
};

using ChildProcessPtr = std::unique_ptr<ChildProcess>;

// Runs argv to completion or until the time limit (then SIGTERM, SIGKILL
// after opts.kill_grace), waiting on a loop of its own with real time.
// For the command line and tools, never for a daemon's loop. Returns
// kInvalidArgument for an empty argv and kIo when it cannot start (the
// message names argv[0] and the reason).
Result<RunResult> run_process(const std::vector<std::string>& argv, const RunOptions& opts = {});

// Starts argv in its own process group without waiting; stdin is /dev/null,
// stdout and stderr go to `log_path` (appended) or /dev/null when empty.
// Returns the pid; the caller must reap it (see reap()).
Result<pid_t> spawn_process(const std::vector<std::string>& argv, const std::string& log_path = "",
                            bool search_path = false);

// Non-blocking: true when `pid` has exited (and was reaped now), with its
// exit code or -signal in *status when not null.
bool reap(pid_t pid, int* status = nullptr);

// Sends SIGKILL to the process group of `pid` and reaps it, waiting at most
// `limit`. Returns true when it is gone. (A SIGKILLed process is gone at
// once unless the kernel holds it in an uninterruptible wait.)
bool kill_and_reap(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(5));

// A pidfd for `pid` (readable once it has exited), -1 when the kernel has
// none.
int open_pidfd(pid_t pid);

}  // namespace medic
