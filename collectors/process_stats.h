// Resource use of a VM's process (the QEMU process on KVM hosts), read from
// what the operating system exposes. Behind an interface because each OS
// exposes it differently: Linux /proc/<pid>/stat here; illumos would read
// /proc/<pid>/psinfo (psinfo_t: pr_time, pr_rssize) or kstat; see
// docs/collectors.md.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"

namespace medic::collectors {

struct ProcessSample {
  Duration cpu_time{};  // user + system time consumed so far
  uint64_t rss_bytes = 0;
  Duration uptime{};  // since the process started; 0 when unknown
};

class ProcessStats {
 public:
  virtual ~ProcessStats() = default;
  // Called once before each round of samples, for figures shared by all
  // processes (Linux: the system uptime).
  virtual void refresh() {}
  // kNotFound when the process is gone; kIo when it cannot be read.
  virtual Result<ProcessSample> sample(int pid) = 0;
};

using ProcessStatsPtr = std::unique_ptr<ProcessStats>;

// Linux: one pread() of <proc_root>/<pid>/stat per sample (utime, stime,
// starttime, rss), plus <proc_root>/uptime once per round for the process
// age. The stat file stays open between samples (procfs regenerates it on
// each read at offset 0); an open file keeps naming the process it was
// opened for, so a reused pid can never be mistaken for the old process.
class LinuxProcessStats final : public ProcessStats {
 public:
  explicit LinuxProcessStats(std::string proc_root = "/proc");
  ~LinuxProcessStats() override;
  void refresh() override;
  Result<ProcessSample> sample(int pid) override;
  size_t open_files() const { return fds_.size(); }

 private:
  void read_uptime();

  std::string root_;
  std::map<int, int> fds_;    // pid -> open stat file
  std::map<int, bool> used_;  // pids sampled since the last refresh()
  double uptime_s_ = 0;       // of the system, read by refresh()
  long ticks_per_second_;
  long page_size_;
};

// The ProcessStats for this OS, or nullptr where none is built (the
// collector then reports no CPU/RSS figures).
ProcessStatsPtr make_process_stats(const std::string& proc_root = "/proc");

// Turns successive cumulative CPU times into a CPU share per process:
// 100 means one full core over the interval between two samples.
class CpuMeter {
 public:
  // Returns the share since the previous call for `pid`, or 0 on the first.
  double update(int pid, Duration cpu_time, Time now);
  // Drops processes not updated since `before` (VMs that went away).
  void forget_older_than(Time before);
  size_t size() const { return last_.size(); }

 private:
  struct Last {
    Duration cpu;
    Time at;
  };
  std::map<int, Last> last_;
};

// Parses the text of /proc/<pid>/stat. Exposed for tests.
Status parse_proc_stat(const std::string& text, long ticks_per_second, long page_size,
                       double system_uptime_s, ProcessSample* out);

}  // namespace medic::collectors
