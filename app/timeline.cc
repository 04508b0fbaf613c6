#include "app/timeline.h"

#include <algorithm>
#include <cctype>
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

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "limit 2500ms" -> "limit 2.50s": the timeline's one format for durations.
std::string ms_as_seconds(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t j = i;
    while (j < text.size() && is_digit(text[j])) ++j;
    const bool number_start = j > i && (i == 0 || !is_digit(text[i - 1]));
    const bool ms = text.compare(j, 2, "ms") == 0 &&
                    (j + 2 == text.size() || !std::isalnum(static_cast<unsigned char>(text[j + 2])));
    if (number_start && ms && (i == 0 || text[i - 1] != '.')) {
      out += seconds(std::chrono::milliseconds(std::stoll(text.substr(i, j - i))));
      i = j + 2;
    } else if (j > i) {
      out.append(text, i, j - i);
      i = j;
    } else {
      out += text[i++];
    }
  }
  return out;
}

// What two lines are compared by: the text with its VM and every number
// left out ("host-03-vm-004 ... silent for 4.00s" == "host-03-vm-005 ... 5.00s").
std::string repeat_key(const std::string& tag, const std::string& text, const std::string& vm) {
  std::string t = text;
  if (!vm.empty()) {
    for (size_t at = t.find(vm); at != std::string::npos; at = t.find(vm, at)) t.erase(at, vm.size());
  }
  std::string key = tag + "|";
  for (char c : t) {
    if (is_digit(c)) {
      if (key.back() != '#') key += '#';
    } else if (c != '.' || key.back() != '#') {
      key += c;
    }
  }
  return key;
}

}  // namespace

Duration TimelineSummary::percentile(double p) const {
  if (time_to_heal.empty()) return Duration(0);
  // Nearest-rank: the smallest value with at least p% of values at or below it.
  size_t rank = static_cast<size_t>(std::max(1.0, std::ceil(p / 100.0 * time_to_heal.size())));
  return time_to_heal[std::min(rank, time_to_heal.size()) - 1];
}

void Timeline::line(Time at, const char* colour, const std::string& tag,
                    const std::string& raw, const std::string& vm) {
  const std::string text = ms_as_seconds(raw);
  std::string key = vm.empty() ? "" : repeat_key(tag, text, vm);
  if (!key.empty() && key == last_key_) {
    repeat_vms_.push_back(vm);
    repeat_at_ = at;
    return;
  }
  flush_repeats();
  last_key_ = std::move(key);
  last_colour_ = colour;
  last_tag_ = tag;
  print(at, colour, tag, text);
}

void Timeline::print(Time at, const char* colour, const std::string& tag, const std::string& text) {
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%7.2fs", static_cast<double>((at - start_).count()) / 1e9);
  if (colour_) {
    out_ << kDim << stamp << kReset << "  " << colour << tag << kReset << "  " << text << "\n";
  } else {
    out_ << stamp << "  " << tag << "  " << text << "\n";
  }
  out_.flush();
}

// One line for the lines held back: how many, and for which VMs (the first
// few and the last).
void Timeline::flush_repeats() {
  if (repeat_vms_.empty()) return;
  const size_t n = repeat_vms_.size();
  std::string vms;
  for (size_t i = 0; i < n && i < 3; ++i) vms += (i ? ", " : "") + repeat_vms_[i];
  if (n > 4) vms += ", ...";
  if (n > 3) vms += ", " + repeat_vms_.back();
  print(repeat_at_, last_colour_, last_tag_,
        "... and " + std::to_string(n) + " more like it: " + vms);
  repeat_vms_.clear();
}

void Timeline::fault_injected(Time at, const std::string& vm, const std::string& fault) {
  ++summary_.faults;
  if (!open_.count(vm)) open_[vm] = at;
  line(at, kRed, "FAULT     ", vm + ": " + fault + " injected", vm);
}

void Timeline::host_fault(Time at, const std::string& host, const std::string& fault) {
  line(at, kRed, "HOST FAULT", host + ": " + fault);
}

void Timeline::detected(Time at, const std::string& vm, const std::string& signal) {
  line(at, kYellow, "DETECTED  ", vm + ": " + signal, vm);
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
           (reason.empty() ? "" : ": " + reason),
       vm);
}

void Timeline::dispatched(Time at, const std::string& vm, const std::string& action_id,
                          const std::string& verb) {
  ++summary_.actions_dispatched;
  line(at, kCyan, "DISPATCHED", vm + ": " + verb + " (action " + action_id + ")");
}

void Timeline::executed(Time at, const std::string& vm, const std::string& action_id, Ran ran,
                        const std::string& detail) {
  std::string what;
  switch (ran) {
    case Ran::kHealed:
      ++summary_.actions_healed;
      what = " ran; the VM is healthy again";
      break;
    case Ran::kNotHealed:
      ++summary_.actions_not_healed;
      what = " ran, but the VM is not healthy yet (the ladder moves on if it stays so)";
      break;
    case Ran::kFailed:
      ++summary_.actions_failed;
      what = " failed" + (detail.empty() ? "" : ": " + detail);
      break;
  }
  line(at, ran == Ran::kFailed ? kRed : kCyan, "EXECUTED  ", vm + ": action " + action_id + what);
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
  flush_repeats();
  last_key_.clear();
  summary_.open = open_.size();
  out_ << "\n" << (colour_ ? "\033[1m" : "") << "Summary after " << seconds(at - start_)
       << (colour_ ? kReset : "") << "\n";
  out_ << "  faults injected      " << summary_.faults << "\n";
  out_ << "  healed               " << summary_.healed << "\n";
  out_ << "  still open           " << summary_.open << "\n";
  out_ << "  time to heal p50     " << seconds(summary_.percentile(50)) << "\n";
  out_ << "  time to heal p99     " << seconds(summary_.percentile(99)) << "\n";
  out_ << "  actions dispatched   " << summary_.actions_dispatched << " (healed "
       << summary_.actions_healed << ", ran but not healed " << summary_.actions_not_healed
       << ", failed " << summary_.actions_failed << ")\n";
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
