// Helpers shared by medic's tests: temporary directories that clean up after
// themselves, the path of the medic binary, running a command and capturing
// its output, and bounded waiting on a real condition (never a blind sleep).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace medic::testing {

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes `content` to file(name) and returns its path.
  std::string write(const std::string& name, const std::string& content, int mode = 0644) const;

 private:
  std::string path_;
};

// The medic binary of this build ($MEDIC_BINARY overrides).
std::string medic_binary();
// The source tree of this build ($MEDIC_SOURCE_DIR overrides).
std::string source_dir();

struct CommandResult {
  int exit_code = -1;   // -1 when killed by a signal
  std::string out;      // stdout
  std::string err;      // stderr
};

// Runs argv (no shell) and captures stdout and stderr; waits at most `limit`.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds limit = std::chrono::seconds(60),
                          const std::string& stdin_data = "");

// Polls `cond` until it is true or `limit` passes; returns its last value.
// For waiting on real processes and sockets, not on time itself.
bool wait_until(const std::function<bool()>& cond,
                std::chrono::milliseconds limit = std::chrono::seconds(10));

// A loopback TCP port nothing listens on right now (the OS picks it). Another
// process may take it before the caller binds it; tests accept that risk.
int free_port();

}  // namespace medic::testing
