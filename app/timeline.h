// The demo's live terminal timeline: one line per step of each incident
// (fault injected -> detected -> decision -> dispatched -> executed -> healed),
// suppressions shown as such, and a closing summary with time-to-heal
// percentiles. Colour only when asked (the caller checks isatty and $NO_COLOR).
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "core/clock.h"

namespace medic::app {

struct TimelineSummary {
  size_t faults = 0;
  size_t healed = 0;
  size_t open = 0;                       // faults not healed by the end
  std::vector<Duration> time_to_heal;    // sorted
  size_t actions_dispatched = 0;
  size_t actions_succeeded = 0;
  size_t actions_failed = 0;
  std::map<std::string, size_t> suppressed_by_policy;
  Duration percentile(double p) const;   // p in [0, 100]; 0 when empty
};

class Timeline {
 public:
  Timeline(std::ostream& out, bool colour, Time start) : out_(out), colour_(colour), start_(start) {}

  void fault_injected(Time at, const std::string& vm, const std::string& fault);
  void host_fault(Time at, const std::string& host, const std::string& fault);
  void detected(Time at, const std::string& vm, const std::string& signal);
  void decided(Time at, const std::string& vm, const std::string& rule, const std::string& verb,
               const std::string& policies);
  void suppressed(Time at, const std::string& vm, const std::string& rule,
                  const std::string& verb, const std::string& policy, const std::string& reason);
  void dispatched(Time at, const std::string& vm, const std::string& action_id,
                  const std::string& verb);
  void executed(Time at, const std::string& vm, const std::string& action_id, bool ok,
                const std::string& detail);
  void healed(Time at, const std::string& vm);
  void note(Time at, const std::string& text);

  const TimelineSummary& summary() const { return summary_; }
  // The closing block: counts, p50/p99, suppressions, and the given hints.
  void print_summary(Time at, const std::vector<std::string>& hints);

 private:
  void line(Time at, const char* colour, const std::string& tag, const std::string& text);

  std::ostream& out_;
  bool colour_;
  Time start_;
  std::map<std::string, Time> open_;  // VM -> when its current fault began
  TimelineSummary summary_;
};

}  // namespace medic::app
