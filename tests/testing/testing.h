// Helpers shared by medic's tests: ASSERT_OK / EXPECT_OK for Status and
// Result, temporary directories that clean up after themselves, the path of
// the medic binary, running a command and capturing its output, and bounded
// waiting on a real condition (never a blind sleep).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/status.h"

namespace medic::testing {

// The predicate behind ASSERT_OK / EXPECT_OK: on failure the message names
// the expression and prints the status (code and message). It takes a
// Status, a Result<T>, anything else with ok() and status() (a
// ConfigReader), with ok() and text() (a rules LoadResult), or with ok() and
// a `detail` text (a GuestPingResult).
template <typename T>
::testing::AssertionResult is_ok(const char* expr_text, const T& value) {
  if (value.ok()) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure() << "`" << expr_text << "` is not OK: ";
  if constexpr (std::is_same_v<T, Status>) {
    return failure << value;
  } else if constexpr (requires { value.status(); }) {
    return failure << value.status();
  } else if constexpr (requires { value.text(); }) {
    return failure << value.text();
  } else {
    return failure << value.detail;
  }
}

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

// The whole file ("" when it cannot be read), and a file replaced by `text`.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);
// `s` with every occurrence of `from` replaced by `to`; fails the calling
// test when there is none, so a changed input cannot silently skip an edit.
std::string replace_all(std::string s, const std::string& from, const std::string& to);

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

// Child-process entry points, for tests that need a real process to kill.
// The parent re-executes its own test binary (self_exe()) with the
// environment variable MEDIC_TEST_CHILD set to an entry's name; main() then
// runs that entry instead of the tests and exits with its return value (127
// for an unknown name). Entries are not tests: gtest never lists them.
// Declare one at namespace scope:  MEDIC_TEST_CHILD_ENTRY(my_child) { ...; return 0; }
using ChildEntry = int (*)();
bool register_child_entry(const char* name, ChildEntry entry);
// The entry named by $MEDIC_TEST_CHILD, or nullptr when it is unset.
// REQUIRES: a name it gives is registered (else the process exits 127).
ChildEntry child_entry_from_env();
// This test binary's path, for re-executing it.
std::string self_exe();

// A loopback TCP port nothing listens on right now (the OS picks it). Another
// process may take it before the caller binds it; tests accept that risk.
int free_port();

}  // namespace medic::testing

#define MEDIC_TEST_CHILD_ENTRY(name)                                                  \
  static int medic_child_entry_##name();                                              \
  [[maybe_unused]] static const bool medic_child_entry_registered_##name =            \
      ::medic::testing::register_child_entry(#name, &medic_child_entry_##name);       \
  static int medic_child_entry_##name()

// ASSERT_OK(expr) / EXPECT_OK(expr): expr is a Status or a Result<T>; a
// failure prints it. Further context can be streamed: ASSERT_OK(s) << path;
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::medic::testing::is_ok, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::medic::testing::is_ok, expr)
