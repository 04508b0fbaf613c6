// The real QEMU guest agent for tests: `qemu-ga -m unix-listen` serves QGA on
// a unix socket of the host, so guest-ping is tested against the agent QEMU
// users run, not against our idea of it. Tests skip, saying why, when the
// binary is missing (Debian package qemu-guest-agent, see scripts/bootstrap).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/subprocess.h"
#include "tests/testing/testing.h"

namespace medic::testing {

// The qemu-ga binary: $PATH first, then the sbin directories Debian puts it
// in (often not in a user's $PATH). Empty when absent.
inline std::string find_qemu_ga() {
  const char* env = std::getenv("PATH");
  std::string dirs = std::string(env ? env : "") + ":/usr/sbin:/sbin:/usr/local/sbin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string cand = dirs.substr(start, end - start) + "/qemu-ga";
    if (end > start && ::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return "";
}

inline bool unix_listening(const std::string& path) {
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) return false;
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// One qemu-ga process of the test's own, killed when this goes away.
class QemuGa {
 public:
  QemuGa() = default;
  ~QemuGa() { kill(); }
  QemuGa(const QemuGa&) = delete;
  QemuGa& operator=(const QemuGa&) = delete;

  // Starts qemu-ga serving `socket`, its state and pid file in `dir`, and
  // waits until the socket accepts connections. `extra` is appended to the
  // command line (for example {"-b", "guest-ping"}).
  Status start(const std::string& binary, const std::string& socket, const std::string& dir,
               const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{binary, "-m", "unix-listen",       "-p", socket, "-t",
                                  dir,    "-f", dir + "/qemu-ga.pid"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    log_ = dir + "/qemu-ga.log";
    auto pid = spawn_process(argv, log_);
    if (!pid.ok()) return pid.status();
    pid_ = *pid;
    if (!wait_until([&] { return unix_listening(socket) || reap(pid_); })) {
      return timeout_error("qemu-ga did not listen on " + socket);
    }
    if (!unix_listening(socket)) {
      pid_ = 0;
      return unavailable("qemu-ga exited: " + run_command({"cat", log_}).out);
    }
    return {};
  }
  void kill() {
    if (pid_ > 0) kill_and_reap(pid_);
    pid_ = 0;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
  std::string log_;
};

}  // namespace medic::testing
