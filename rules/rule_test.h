// `medic rules test`: unit tests for rules, in the spirit of promtool's. A
// test file names rule files, describes a small fleet, feeds timed input
// (events, heartbeat series, host liveness, action results, operator
// requests) to the real Engine on a VirtualClock, and compares the decisions
// it makes with the expected ones. docs/rules.md describes the format.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace medic::rules {

struct TestRunOptions {
  bool verbose = false;  // print every decision of every test
};

// One test's verdict, as the text report prints it.
struct TestOutcome {
  std::string file;
  int line = 0;
  std::string name;
  bool passed = false;
  std::vector<std::string> problems;    // "file:line: ..." (a step that could not run)
  std::vector<std::string> missing;     // expected, not produced
  std::vector<std::string> unexpected;  // produced, not expected
};

struct TestSummary {
  size_t files = 0;
  size_t tests = 0;
  size_t failed = 0;
  size_t errors = 0;  // files or tests that could not run (bad test file, rules that do not load)
  std::vector<TestOutcome> outcomes;        // every test that ran, in order
  std::vector<std::string> error_messages;  // "file: message" per error
  bool ok() const { return failed == 0 && errors == 0 && tests > 0; }
};

TestSummary run_rule_test_files(const std::vector<std::string>& paths, const TestRunOptions& opts,
                                std::ostream& out);

// A heartbeat or liveness series: "every 5s", "every 5s from 1m until 3m",
// "0s+5s x12" (start + step, count), several joined by commas. Times are
// offsets from the test start; `until` is exclusive; `end` bounds an open
// series. Returns the offsets in order.
Result<std::vector<Duration>> parse_series(const std::string& text, Duration end);

}  // namespace medic::rules
