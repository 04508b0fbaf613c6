#include "app/timeline.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/duration.h"

namespace medic::app {
namespace {

constexpr const char* kReset = "\033[0m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kGreen = "\033[32m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kBlue = "\033[34m";
constexpr const char* kMagenta = "\033[35m";
constexpr const char* kCyan = "\033[36m";
constexpr const char* kDim = "\033[2m";

std::string seconds(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fs", static_cast<double>(d.count()) / 1e9);
  return buf;
}

}  // namespace

Duration TimelineSummary::percentile(double p) const {
  if (time_to_heal.empty()) return Duration(0);
  // Nearest-rank: the smallest value with at least p% of values at or below it.
  size_t rank = static_cast<size_t>(std::max(1.0, std::ceil(p / 100.0 * time_to_heal.size())));
  return time_to_heal[std::min(rank, time_to_heal.size()) - 1];
}

void Timeline::line(Time at, const char* colour, const std::string& tag, const std::string& text) {
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%7.2fs", static_cast<double>((at - start_).count()) / 1e9);
  if (colour_) {
    out_ << kDim << stamp << kReset << "  " << colour << tag << kReset << "  " << text << "\n";
  } else {
    out_ << stamp << "  " << tag << "  " << text << "\n";
  }
  out_.flush();
}

void Timeline::fault_injected(Time at, const std::string& vm, const std::string& fault) {
  ++summary_.faults;
  if (!open_.count(vm)) open_[vm] = at;
  line(at, kRed, "FAULT     ", vm + ": " + fault + " injected");
}

void Timeline::host_fault(Time at, const std::string& host, const std::string& fault) {
  line(at, kRed, "HOST FAULT", host + ": " + fault);
}

void Timeline::detected(Time at, const std::string& vm, const std::string& signal) {
  line(at, kYellow, "DETECTED  ", vm + ": " + signal);
}

void Timeline::decided(Time at, const std::string& vm, const std::string& rule,
                       const std::string& verb, const std::string& policies) {
  line(at, kBlue, "DECISION  ",
       vm + ": " + verb + " by rule " + rule + (policies.empty() ? "" : " (" + policies + ")"));
}

void Timeline::suppressed(Time at, const std::string& vm, const std::string& rule,
                          const std::string& verb, const std::string& policy,
                          const std::string& reason) {
  ++summary_.suppressed_by_policy[policy];
  line(at, kMagenta, "SUPPRESSED",
       vm + ": " + verb + " by rule " + rule + " held back by " + policy +
           (reason.empty() ? "" : ": " + reason));
}

void Timeline::dispatched(Time at, const std::string& vm, const std::string& action_id,
                          const std::string& verb) {
  ++summary_.actions_dispatched;
  line(at, kCyan, "DISPATCHED", vm + ": " + verb + " (action " + action_id + ")");
}

void Timeline::executed(Time at, const std::string& vm, const std::string& action_id, bool ok,
                        const std::string& detail) {
  ok ? ++summary_.actions_succeeded : ++summary_.actions_failed;
  line(at, ok ? kCyan : kRed, "EXECUTED  ",
       vm + ": action " + action_id + (ok ? " succeeded" : " failed") +
           (detail.empty() ? "" : ": " + detail));
}

void Timeline::healed(Time at, const std::string& vm) {
  auto it = open_.find(vm);
  if (it == open_.end()) {
    line(at, kGreen, "HEALED    ", vm);
    return;
  }
  Duration took = at - it->second;
  open_.erase(it);
  ++summary_.healed;
  auto& v = summary_.time_to_heal;
  v.insert(std::upper_bound(v.begin(), v.end(), took), took);
  line(at, kGreen, "HEALED    ", vm + " in " + seconds(took));
}

void Timeline::note(Time at, const std::string& text) { line(at, kDim, "NOTE      ", text); }

void Timeline::print_summary(Time at, const std::vector<std::string>& hints) {
  summary_.open = open_.size();
  out_ << "\n" << (colour_ ? "\033[1m" : "") << "Summary after " << seconds(at - start_)
       << (colour_ ? kReset : "") << "\n";
  out_ << "  faults injected      " << summary_.faults << "\n";
  out_ << "  healed               " << summary_.healed << "\n";
  out_ << "  still open           " << summary_.open << "\n";
  out_ << "  time to heal p50     " << seconds(summary_.percentile(50)) << "\n";
  out_ << "  time to heal p99     " << seconds(summary_.percentile(99)) << "\n";
  out_ << "  actions dispatched   " << summary_.actions_dispatched << " (succeeded "
       << summary_.actions_succeeded << ", failed " << summary_.actions_failed << ")\n";
  size_t total_suppressed = 0;
  for (const auto& [policy, n] : summary_.suppressed_by_policy) total_suppressed += n;
  out_ << "  actions suppressed   " << total_suppressed << "\n";
  for (const auto& [policy, n] : summary_.suppressed_by_policy) {
    out_ << "    by " << policy << ": " << n << "\n";
  }
  for (const auto& h : hints) out_ << h << "\n";
  out_.flush();
}

}  // namespace medic::app
