#include "collectors/process_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace medic::collectors {
namespace {

// Reads a small /proc file in one read(); procfs files are generated whole.
Result<std::string> read_small(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ESRCH) return not_found(path + ": no such process");
    return io_error(path + ": " + std::strerror(errno));
  }
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  const int err = errno;
  ::close(fd);
  if (n < 0) {
    if (err == ESRCH) return not_found(path + ": no such process");
    return io_error(path + ": " + std::strerror(err));
  }
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

Status parse_proc_stat(const std::string& text, long ticks_per_second, long page_size,
                       double system_uptime_s, ProcessSample* out) {
  // The command name (field 2) may hold spaces and parentheses, so fields are
  // counted from the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return invalid_argument("stat: no command name");
  std::vector<std::string_view> fields;  // fields[0] is field 3 (state)
  std::string_view rest(text);
  rest.remove_prefix(close + 1);
  size_t i = 0;
  while (i < rest.size() && fields.size() < 24) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\n')) ++i;
    size_t j = i;
    while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') ++j;
    if (j > i) fields.push_back(rest.substr(i, j - i));
    i = j;
  }
  // Field numbers from proc(5): utime 14, stime 15, starttime 22, rss 24.
  auto field = [&](int n, unsigned long long* v) {
    const size_t idx = static_cast<size_t>(n - 3);
    if (idx >= fields.size()) return false;
    std::string s(fields[idx]);
    char* end = nullptr;
    *v = std::strtoull(s.c_str(), &end, 10);
    return end && *end == '\0';
  };
  unsigned long long utime, stime, start, rss;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &start) || !field(24, &rss)) {
    return invalid_argument("stat: too few or malformed fields");
  }
  if (ticks_per_second <= 0) return invalid_argument("stat: bad clock tick rate");
  const auto tick = [&](unsigned long long t) {
    return Duration(static_cast<int64_t>(t * 1'000'000'000ULL / ticks_per_second));
  };
  out->cpu_time = tick(utime + stime);
  out->rss_bytes = rss * static_cast<unsigned long long>(page_size);
  const Duration up = Duration(static_cast<int64_t>(system_uptime_s * 1e9)) - tick(start);
  out->uptime = system_uptime_s > 0 && up > Duration::zero() ? up : Duration::zero();
  return {};
}

LinuxProcessStats::LinuxProcessStats(std::string proc_root)
    : root_(std::move(proc_root)),
      ticks_per_second_(::sysconf(_SC_CLK_TCK)),
      page_size_(::sysconf(_SC_PAGESIZE)) {}

LinuxProcessStats::~LinuxProcessStats() {
  for (const auto& [pid, fd] : fds_) ::close(fd);
}

Result<ProcessSample> LinuxProcessStats::sample(int pid) {
  if (pid <= 0) return invalid_argument("no process id");
  const std::string path = root_ + "/" + std::to_string(pid) + "/stat";
  auto it = fds_.find(pid);
  if (it == fds_.end()) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ESRCH) return not_found(path + ": no such process");
      return io_error(path + ": " + std::strerror(errno));
    }
    it = fds_.emplace(pid, fd).first;
  }
  used_[pid] = true;
  char buf[1024];
  ssize_t n = ::pread(it->second, buf, sizeof(buf), 0);
  if (n <= 0) {
    // The process this file was opened for is gone (ESRCH, or an empty read).
    const int err = n < 0 ? errno : ESRCH;
    ::close(it->second);
    fds_.erase(it);
    if (err == ESRCH) return not_found(path + ": process exited");
    return io_error(path + ": " + std::strerror(err));
  }
  if (uptime_s_ == 0) read_uptime();
  ProcessSample s;
  Status st = parse_proc_stat(std::string(buf, static_cast<size_t>(n)), ticks_per_second_,
                              page_size_, uptime_s_, &s);
  if (!st.ok()) return st.with_context(root_ + "/" + std::to_string(pid));
  return s;
}

void LinuxProcessStats::read_uptime() {
  if (auto up = read_small(root_ + "/uptime"); up.ok())
    uptime_s_ = std::strtod(up->c_str(), nullptr);
}

void LinuxProcessStats::refresh() {
  read_uptime();
  // Close the files of processes nobody asked about in the last round.
  for (auto it = fds_.begin(); it != fds_.end();) {
    if (used_.count(it->first)) {
      ++it;
    } else {
      ::close(it->second);
      it = fds_.erase(it);
    }
  }
  used_.clear();
}

ProcessStatsPtr make_process_stats(const std::string& proc_root) {
#ifdef __linux__
  return std::make_unique<LinuxProcessStats>(proc_root);
#else
  (void)proc_root;
  return nullptr;
#endif
}

double CpuMeter::update(int pid, Duration cpu_time, Time now) {
  auto [it, fresh] = last_.try_emplace(pid, Last{cpu_time, now});
  if (fresh) return 0;
  const Duration wall = now - it->second.at;
  const Duration used = cpu_time - it->second.cpu;
  it->second = Last{cpu_time, now};
  // A smaller CPU time means the pid now belongs to a new process.
  if (wall <= Duration::zero() || used < Duration::zero()) return 0;
  return 100.0 * static_cast<double>(used.count()) / static_cast<double>(wall.count());
}

void CpuMeter::forget_older_than(Time before) {
  for (auto it = last_.begin(); it != last_.end();) {
    it = it->second.at < before ? last_.erase(it) : std::next(it);
  }
}

}  // namespace medic::collectors
