// Running external programs the safe way: execve with an argument vector,
// never a shell; a time limit on everything; output captured up to a bound.
// Used for vmadm, restart hooks, and the QEMU launcher.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/status.h"

namespace medic {

struct RunOptions {
  std::chrono::milliseconds timeout{10'000};
  size_t max_output_bytes = 64 * 1024;    // per stream; the rest is dropped
  std::string stdin_data;
  std::vector<std::string> env;           // "K=V"; empty inherits the caller's
  bool search_path = false;               // argv[0] looked up in $PATH when true
};

struct RunResult {
  int exit_code = -1;      // -1 when killed by a signal
  int signal = 0;          // the signal that ended it, if any
  bool timed_out = false;  // killed by us at the time limit
  bool truncated = false;  // output exceeded max_output_bytes
  std::string out;
  std::string err;
};

// Runs argv to completion or until the time limit, when the process group is
// killed with SIGKILL. Returns kInvalidArgument for an empty argv and kIo when
// it cannot start (the message names argv[0] and the reason).
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
// `limit`. Returns true when it is gone.
bool kill_and_reap(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(5));

}  // namespace medic
