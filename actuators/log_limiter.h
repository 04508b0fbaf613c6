// Rate-limited warnings: rejections and send failures are logged at most
// once per cause per interval, with the number suppressed since, so a flood
// of bad frames cannot flood the log. Counters (not logs) carry the totals.
#pragma once

#include <spdlog/spdlog.h>

#include <map>
#include <string>

#include "core/clock.h"

namespace medic::actuators {

class LogLimiter {
 public:
  explicit LogLimiter(const Clock& clock, Duration interval = std::chrono::seconds(10))
      : clock_(clock), interval_(interval) {}

  // Logs `message` at warn level unless `cause` was logged less than one
  // interval ago. Returns whether it logged.
  bool warn(const std::string& cause, const std::string& message) {
    Time now = clock_.now();
    auto [it, fresh] = last_.try_emplace(cause);
    Entry& e = it->second;
    if (!fresh && now - e.logged_at < interval_) {
      ++e.suppressed;
      return false;
    }
    if (e.suppressed > 0) {
      spdlog::warn("{} ({} more like this suppressed)", message, e.suppressed);
    } else {
      spdlog::warn("{}", message);
    }
    e.logged_at = now;
    e.suppressed = 0;
    return true;
  }

 private:
  struct Entry {
    Time logged_at{};
    uint64_t suppressed = 0;
  };
  const Clock& clock_;
  Duration interval_;
  std::map<std::string, Entry> last_;
};

}  // namespace medic::actuators
