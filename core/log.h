// Logging for medic processes, on spdlog. One process-wide logger set up once
// by main(); modules log through spdlog's default logger. Rate limiting of
// repeated causes lives with the code that counts them (see fabric/).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace medic {

// Every line carries a UTC timestamp ("...Z") and reaches its file or stderr
// when it is written (flushed per line), so a process killed with -9 loses no
// line it logged.
struct LogOptions {
  enum class Priority : uint8_t {
    kAuto,  // "<N>" prefixes when stderr is the systemd journal (JOURNAL_STREAM)
    kOn,    // always: each line starts with its syslog priority, e.g. "<4>" for warn
    kOff,
  };
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  bool json = false;           // one JSON object per line
  std::string file;            // empty: stderr
  Priority priority = Priority::kAuto;
};

Status setup_logging(const LogOptions& options);

// True when stderr is the stream systemd connected to the journal (the
// JOURNAL_STREAM variable names its device and inode), so journald can read
// a priority prefix on each line (sd-daemon(3)).
bool stderr_is_journal();

// Lets one log line per cause through per interval, so a flood of bad input
// cannot flood the log; counts what it held back. Not thread-safe.
class LogLimiter {
 public:
  explicit LogLimiter(Duration interval = std::chrono::seconds(10)) : interval_(interval) {}
  // True when a line for `cause` may be logged now; *suppressed then holds
  // how many were held back since the last one.
  bool allow(const std::string& cause, Time now, uint64_t* suppressed = nullptr);
  // Logs `message` at warn level when allow() lets it through, adding how
  // many like it were held back. Returns whether it logged.
  bool warn(const std::string& cause, Time now, const std::string& message);

 private:
  struct Entry {
    Time last{};
    uint64_t suppressed = 0;
  };
  Duration interval_;
  std::map<std::string, Entry> entries_;
};

}  // namespace medic
