// The demo's live terminal timeline: one line per step of each incident
// (fault injected -> detected -> decision -> dispatched -> executed -> healed),
// suppressions shown as such, and a closing summary with time-to-heal
// percentiles. Colour only when asked (the caller checks isatty and $NO_COLOR).
//
// One time format: every time and duration on the timeline is in seconds
// with two decimals ("2.57s"); millisecond figures inside the engine's
// reasons ("limit 2500ms") are written the same way. Lines that say the same
// thing about different VMs in a row (faults, detections and suppressions,
// such as a partitioned host's 20) are shown once, then one line with how
// many more and for which VMs; decisions, actions and heals are always shown.
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
  size_t actions_healed = 0;      // ran, and the actuator saw the VM healthy again
  size_t actions_not_healed = 0;  // ran, but the VM was not healthy within the watch
  size_t actions_failed = 0;      // failed, rejected or timed out
  std::map<std::string, size_t> suppressed_by_policy;
  Duration percentile(double p) const;   // p in [0, 100]; 0 when empty
};

class Timeline {
 public:
  // What became of an action the actuator ran (or could not run).
  enum class Ran : uint8_t { kHealed, kNotHealed, kFailed };

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
  void executed(Time at, const std::string& vm, const std::string& action_id, Ran ran,
                const std::string& detail = "");
  void healed(Time at, const std::string& vm);
  void note(Time at, const std::string& text);

  const TimelineSummary& summary() const { return summary_; }
  // The closing block: counts, p50/p99, suppressions, and the given hints.
  void print_summary(Time at, const std::vector<std::string>& hints);

 private:
  // `vm` (may be empty) is left out when comparing a line with the one before.
  void line(Time at, const char* colour, const std::string& tag, const std::string& text,
            const std::string& vm = "");
  void print(Time at, const char* colour, const std::string& tag, const std::string& text);
  void flush_repeats();

  std::ostream& out_;
  bool colour_;
  Time start_;
  std::map<std::string, Time> open_;  // VM -> when its current fault began
  TimelineSummary summary_;
  // The last line printed, as compared (its VM and numbers left out), and the
  // lines like it held back since.
  std::string last_key_;
  const char* last_colour_ = "";
  std::string last_tag_;
  std::vector<std::string> repeat_vms_;
  Time repeat_at_{};
};

}  // namespace medic::app
