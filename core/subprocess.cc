#include "core/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "core/duration.h"

namespace medic {
namespace {

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

void close_fd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

// The descriptors the child gets as 0, 1 and 2.
struct ChildStdio {
  int in = -1, out = -1, err = -1;
};

// Forks and execs argv with `stdio` as its standard streams, in its own
// process group. Returns the pid once exec succeeded, kIo when it failed.
Result<pid_t> fork_exec(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                        bool search_path, ChildStdio stdio) {
  int exec_p[2];
  if (pipe2(exec_p, O_CLOEXEC)) return io_error(std::string("pipe: ") + std::strerror(errno));
  auto args = c_argv(argv);
  auto envs = c_argv(env);
  pid_t pid = fork();
  if (pid < 0) {
    close(exec_p[0]);
    close(exec_p[1]);
    return io_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    dup2(stdio.in, 0);
    dup2(stdio.out, 1);
    dup2(stdio.err, 2);
    exec_child(args, envs, !env.empty(), search_path, exec_p[1]);
  }
  setpgid(pid, pid);  // also in the parent, so the group exists before we may kill it
  close(exec_p[1]);
  if (int e = exec_errno(exec_p[0]); e != 0) {
    waitpid(pid, nullptr, 0);  // it has exited already (_exit after the failed exec)
    return io_error("cannot run " + argv[0] + ": " + std::strerror(e));
  }
  return pid;
}

void kill_group(pid_t pid, int sig) {
  ::kill(-pid, sig);
  ::kill(pid, sig);
}

const char* signal_word(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGKILL:
      return "SIGKILL";
    default:
      return "a signal";
  }
}

}  // namespace

int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::string describe_end(const RunResult& r) {
  if (r.timed_out) return r.kill_reason;
  if (r.signal != 0) return "killed by signal " + std::to_string(r.signal);
  return "exit " + std::to_string(r.exit_code);
}

ChildProcess::ChildProcess(Clock& clock, const RunOptions& opts, Done done)
    : clock_(clock), opts_(opts), done_(std::move(done)) {}

Result<std::unique_ptr<ChildProcess>> ChildProcess::start(const std::vector<std::string>& argv,
                                                          const RunOptions& opts, Clock& clock,
                                                          Done done) {
  if (argv.empty()) return invalid_argument("empty command");
  int out_p[2], err_p[2], in_p[2];
  if (pipe2(out_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC) || pipe2(in_p, O_CLOEXEC)) {
    return io_error(std::string("pipe: ") + std::strerror(errno));
  }
  auto pid = fork_exec(argv, opts.env, opts.search_path, {in_p[0], out_p[1], err_p[1]});
  close(out_p[1]);
  close(err_p[1]);
  close(in_p[0]);
  std::unique_ptr<ChildProcess> c(new ChildProcess(clock, opts, std::move(done)));
  c->out_fd_ = out_p[0];
  c->err_fd_ = err_p[0];
  c->in_fd_ = in_p[1];
  if (!pid.ok()) return pid.status();  // the destructor closes the pipes
  c->pid_ = *pid;
  c->pidfd_ = open_pidfd(c->pid_);
  for (int fd : {c->out_fd_, c->err_fd_, c->in_fd_}) fcntl(fd, F_SETFL, O_NONBLOCK);
  if (c->opts_.stdin_data.empty()) close_fd(&c->in_fd_);
  ChildProcess* self = c.get();
  c->limit_timer_ = clock.schedule_after(opts.timeout, [self] { self->on_time_limit(); });
  return c;
}

ChildProcess::~ChildProcess() {
  clock_.cancel(limit_timer_);
  clock_.cancel(kill_timer_);
  if (pid_ > 0 && !exited_) (void)kill_and_reap(pid_);
  close_fds();
}

void ChildProcess::close_fds() {
  close_fd(&out_fd_);
  close_fd(&err_fd_);
  close_fd(&in_fd_);
  close_fd(&pidfd_);
}

void ChildProcess::on_time_limit() {
  limit_timer_ = 0;
  if (exited_) return;
  result_.timed_out = true;
  const bool term_first = opts_.kill_grace > Duration::zero();
  result_.kill_reason = "time limit of " + format_duration(opts_.timeout) + " passed: " +
                        signal_word(term_first ? SIGTERM : SIGKILL) + " to its process group";
  kill_group(pid_, term_first ? SIGTERM : SIGKILL);
  if (!term_first) return;
  kill_timer_ = clock_.schedule_after(opts_.kill_grace, [this] {
    kill_timer_ = 0;
    if (exited_) return;
    result_.kill_reason += ", then SIGKILL after " + format_duration(opts_.kill_grace);
    kill_group(pid_, SIGKILL);
  });
}

void ChildProcess::read_stream(int* fd, std::string* dst) {
  char buf[16384];
  // Bounded per call, so a chatty child cannot keep the owner's loop here.
  for (int i = 0; i < 16 && *fd >= 0; ++i) {
    ssize_t got = ::read(*fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (got <= 0) {
      close_fd(fd);
      return;
    }
    size_t room = opts_.max_output_bytes > dst->size() ? opts_.max_output_bytes - dst->size() : 0;
    size_t take = std::min(room, static_cast<size_t>(got));
    dst->append(buf, take);
    if (take < static_cast<size_t>(got)) result_.truncated = true;
  }
}

void ChildProcess::feed_stdin() {
  if (in_fd_ < 0) return;
  const std::string& data = opts_.stdin_data;
  while (in_off_ < data.size()) {
    ssize_t w = ::write(in_fd_, data.data() + in_off_, data.size() - in_off_);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (w <= 0) break;  // the child closed its stdin
    in_off_ += static_cast<size_t>(w);
  }
  close_fd(&in_fd_);
}

void ChildProcess::reap() {
  int status = 0;
  pid_t w;
  do {
    w = waitpid(pid_, &status, WNOHANG);
  } while (w < 0 && errno == EINTR);
  if (w < 0 && errno == ECHILD) {
    exited_ = true;  // reaped by someone else (SIGCHLD ignored): its status is lost
    return;
  }
  if (w != pid_) return;
  exited_ = true;
  if (WIFEXITED(status)) {
    result_.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result_.signal = WTERMSIG(status);
  }
}

void ChildProcess::poll() {
  if (finished_) return;
  feed_stdin();
  read_stream(&out_fd_, &result_.out);
  read_stream(&err_fd_, &result_.err);
  if (!exited_) reap();
  if (!exited_) return;
  // What the child wrote before it exited is in the pipes now (bounded: a
  // grandchild may hold them open and keep writing).
  for (int round = 0; round < 64 && (out_fd_ >= 0 || err_fd_ >= 0); ++round) {
    const size_t before = result_.out.size() + result_.err.size();
    read_stream(&out_fd_, &result_.out);
    read_stream(&err_fd_, &result_.err);
    if (result_.out.size() + result_.err.size() == before) break;  // empty, or held open
  }
  finished_ = true;
  clock_.cancel(limit_timer_);
  clock_.cancel(kill_timer_);
  limit_timer_ = kill_timer_ = 0;
  close_fds();
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(result_));
}

void ChildProcess::append_fds(std::vector<int>* fds) const {
  if (finished_) return;
  for (int fd : {out_fd_, err_fd_, pidfd_}) {
    if (fd >= 0) fds->push_back(fd);
  }
}

void ChildProcess::prepare(std::vector<pollfd>* fds, Duration* wait) {
  if (finished_) return;
  for (int fd : {out_fd_, err_fd_, pidfd_}) {
    if (fd >= 0) fds->push_back(pollfd{fd, POLLIN, 0});
  }
  if (in_fd_ >= 0) fds->push_back(pollfd{in_fd_, POLLOUT, 0});
  if (pidfd_ < 0) *wait = std::min<Duration>(*wait, std::chrono::milliseconds(10));
}

void ChildProcess::dispatch(const pollfd*, size_t) { poll(); }

Result<RunResult> run_process(const std::vector<std::string>& argv, const RunOptions& opts) {
  SystemClock clock;  // a blocking run waits in real time
  std::optional<RunResult> result;
  auto child = ChildProcess::start(argv, opts, clock, [&](RunResult r) { result = std::move(r); });
  if (!child.ok()) return child.status();
  EventLoop loop(clock);
  loop.add_source(child->get());
  while (!result) loop.run_once(std::chrono::seconds(1));
  return std::move(*result);
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
  const int out = log_fd >= 0 ? log_fd : null_fd;
  auto pid = fork_exec(argv, {}, search_path, {null_fd, out, out});
  close(null_fd);
  if (log_fd >= 0) close(log_fd);
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
  kill_group(pid, SIGKILL);
  auto gone = [pid] {
    pid_t w = waitpid(pid, nullptr, WNOHANG);
    return w == pid || (w < 0 && errno == ECHILD);
  };
  if (gone()) return true;
  // One wait on the pidfd when there is one; waitpid every 1 ms otherwise.
  if (const int pidfd = open_pidfd(pid); pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(limit.count(), 60'000)));
    } while (rc < 0 && errno == EINTR);
    ::close(pidfd);
    return gone();
  }
  for (auto waited = std::chrono::milliseconds(0); waited < limit;
       waited += std::chrono::milliseconds(1)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (gone()) return true;
  }
  return false;
}

}  // namespace medic
