// Latency samples for the end-to-end benches (request_bench, alert_bench):
// milliseconds from steady-clock durations, percentiles, one printed line.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace medic::bench {

inline double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The p-th percentile (0 <= p <= 1) of `v` by rank; 0 for no samples.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// "LABEL  p50 X ms  p99 Y ms", LABEL padded to `width`.
inline void print_latency(const char* label, const std::vector<double>& v, int width = 28) {
  std::printf("%-*s p50 %.2f ms  p99 %.2f ms\n", width, label, percentile(v, 0.5),
              percentile(v, 0.99));
}

}  // namespace medic::bench
