#include "core/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace medic {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the child after fork(): only async-signal-safe calls until exec.
[[noreturn]] void exec_child(const std::vector<char*>& argv, const std::vector<char*>& envp,
                             bool use_env, bool search_path, int err_fd) {
  setpgid(0, 0);
  if (use_env) {
    if (search_path)
      execvpe(argv[0], argv.data(), envp.data());
    else
      execve(argv[0], argv.data(), envp.data());
  } else {
    if (search_path)
      execvp(argv[0], argv.data());
    else
      execv(argv[0], argv.data());
  }
  int e = errno;
  ssize_t w = write(err_fd, &e, sizeof e);
  (void)w;
  _exit(127);
}

// Reads the exec-failure pipe: 0 when exec succeeded (pipe closed by CLOEXEC).
int exec_errno(int fd) {
  int e = 0;
  ssize_t n;
  do {
    n = read(fd, &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  close(fd);
  return n == sizeof e ? e : 0;
}

}  // namespace

// Reads the child's stdout and stderr (bounded by max_output_bytes) and
// feeds its stdin until both streams close or `deadline` passes (then
// r->timed_out). Closes every descriptor it is given.
static void pump_streams(int out_fd, int err_fd, int in_fd, const RunOptions& opts,
                         SteadyClock::time_point deadline, RunResult* r) {
  // Feed stdin without blocking on a child that does not read it.
  size_t in_off = 0;
  if (opts.stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
  char buf[16384];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      r->timed_out = true;
      break;
    }
    int n = poll(fds, 3, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        continue;
      }
      std::string& dst = i == 0 ? r->out : r->err;
      size_t room = opts.max_output_bytes > dst.size() ? opts.max_output_bytes - dst.size() : 0;
      size_t take = std::min(room, static_cast<size_t>(got));
      dst.append(buf, take);
      if (take < static_cast<size_t>(got)) r->truncated = true;
    }
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w =
          write(fds[2].fd, opts.stdin_data.data() + in_off, opts.stdin_data.size() - in_off);
      if (w > 0) in_off += static_cast<size_t>(w);
      if (w < 0 || in_off >= opts.stdin_data.size()) {
        close(fds[2].fd);
        fds[2].fd = -1;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
}

// Waits for the child (killing its group at `deadline` or when already timed
// out) and records how it ended.
static void reap_child(pid_t pid, SteadyClock::time_point deadline, RunResult* r) {
  if (r->timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }
  // Output is closed; the process may still be running (it closed its
  // streams), so wait for it within what remains of the time limit.
  int status = 0;
  while (true) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (!r->timed_out && SteadyClock::now() >= deadline) {
      r->timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (WIFEXITED(status)) {
    r->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r->signal = WTERMSIG(status);
  }
}

Result<RunResult> run_process(const std::vector<std::string>& argv, const RunOptions& opts) {
  if (argv.empty()) return invalid_argument("empty command");
  int out_p[2], err_p[2], in_p[2], exec_p[2];
  if (pipe2(out_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC) || pipe2(in_p, O_CLOEXEC) ||
      pipe2(exec_p, O_CLOEXEC)) {
    return io_error(std::string("pipe: ") + std::strerror(errno));
  }
  auto args = c_argv(argv);
  auto envs = c_argv(opts.env);
  pid_t pid = fork();
  if (pid < 0) return io_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(in_p[0], 0);
    dup2(out_p[1], 1);
    dup2(err_p[1], 2);
    exec_child(args, envs, !opts.env.empty(), opts.search_path, exec_p[1]);
  }
  setpgid(pid, pid);  // also in the parent, so the group exists before we may kill it
  close(out_p[1]);
  close(err_p[1]);
  close(in_p[0]);
  close(exec_p[1]);
  if (int e = exec_errno(exec_p[0]); e != 0) {
    close(out_p[0]);
    close(err_p[0]);
    close(in_p[1]);
    waitpid(pid, nullptr, 0);
    return io_error("cannot run " + argv[0] + ": " + std::strerror(e));
  }
  RunResult r;
  const auto deadline = SteadyClock::now() + opts.timeout;
  pump_streams(out_p[0], err_p[0], in_p[1], opts, deadline, &r);
  reap_child(pid, deadline, &r);
  return r;
}

Result<pid_t> spawn_process(const std::vector<std::string>& argv, const std::string& log_path,
                            bool search_path) {
  if (argv.empty()) return invalid_argument("empty command");
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  int log_fd = log_path.empty()
                   ? -1
                   : open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (null_fd < 0 || (!log_path.empty() && log_fd < 0)) {
    if (null_fd >= 0) close(null_fd);
    return io_error("cannot open " + (log_path.empty() ? std::string("/dev/null") : log_path) +
                    ": " + std::strerror(errno));
  }
  int exec_p[2];
  if (pipe2(exec_p, O_CLOEXEC)) return io_error(std::string("pipe: ") + std::strerror(errno));
  auto args = c_argv(argv);
  std::vector<char*> no_env;
  pid_t pid = fork();
  if (pid < 0) return io_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(null_fd, 0);
    dup2(log_fd >= 0 ? log_fd : null_fd, 1);
    dup2(log_fd >= 0 ? log_fd : null_fd, 2);
    exec_child(args, no_env, false, search_path, exec_p[1]);
  }
  setpgid(pid, pid);
  close(null_fd);
  if (log_fd >= 0) close(log_fd);
  close(exec_p[1]);
  if (int e = exec_errno(exec_p[0]); e != 0) {
    waitpid(pid, nullptr, 0);
    return io_error("cannot run " + argv[0] + ": " + std::strerror(e));
  }
  return pid;
}

bool reap(pid_t pid, int* status) {
  int st = 0;
  pid_t w = waitpid(pid, &st, WNOHANG);
  if (w != pid) return false;
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  return true;
}

bool kill_and_reap(pid_t pid, std::chrono::milliseconds limit) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  const auto deadline = SteadyClock::now() + limit;
  while (SteadyClock::now() < deadline) {
    pid_t w = waitpid(pid, nullptr, WNOHANG);
    if (w == pid || (w < 0 && errno == ECHILD)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace medic
