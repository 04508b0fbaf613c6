// Rate-limited warnings for the actuator and dispatcher: core's LogLimiter
// bound to their Clock, so call sites need only a cause and a message. A
// flood of bad frames cannot flood the log; counters carry the totals.
#pragma once

#include <string>

#include "core/clock.h"
#include "core/log.h"

namespace medic::actuators {

class LogLimiter {
 public:
  explicit LogLimiter(const Clock& clock, Duration interval = std::chrono::seconds(10))
      : clock_(clock), limiter_(interval) {}

  // Logs `message` at warn level unless `cause` was logged less than one
  // interval ago. Returns whether it logged.
  bool warn(const std::string& cause, const std::string& message) {
    return limiter_.warn(cause, clock_.now(), message);
  }

 private:
  const Clock& clock_;
  medic::LogLimiter limiter_;
};

}  // namespace medic::actuators
