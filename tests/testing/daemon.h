// A medic daemon started as a real process by an integration test, and the
// one SQLite query such tests make of its audit log. Header-only: for the
// integration tests, which link every module (SQLite with audit/).
#pragma once

#include <signal.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "core/subprocess.h"
#include "tests/testing/testing.h"

namespace medic::testing {

class Daemon {
 public:
  Daemon(std::vector<std::string> argv, std::string log)
      : argv_(std::move(argv)), log_(std::move(log)) {}
  ~Daemon() {
    if (pid_ > 0) kill_and_reap(pid_);
  }
  Status start() {
    auto pid = spawn_process(argv_, log_);
    if (!pid.ok()) return pid.status();
    pid_ = *pid;
    return {};
  }
  bool running() {
    if (pid_ <= 0) return false;
    if (reap(pid_, &status_)) {
      pid_ = 0;
      return false;
    }
    return true;
  }
  // SIGTERM, then the exit status (exit code, or -signal); -1000 when it
  // did not stop within 10 s (it is killed then).
  int terminate() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    if (!wait_until([&] { return !running(); }, std::chrono::seconds(10))) {
      kill_and_reap(pid_);
      pid_ = 0;
      return -1000;
    }
    return status_;
  }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  const std::string& log() const { return log_; }

 private:
  std::vector<std::string> argv_;
  std::string log_;
  pid_t pid_ = 0;
  int status_ = -1;
};

// The first column of the first row of `sql` on the SQLite file `db`, or -1.
inline long long query_number(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  long long v = -1;
  // Read-write without create: a read-only connection to a WAL database that
  // another process writes can fail to read its index; we only SELECT.
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(h, 1000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return v;
}

}  // namespace medic::testing
