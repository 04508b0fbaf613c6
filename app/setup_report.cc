#include "app/setup_report.h"

#include <iostream>

#include "app/commands.h"

namespace medic::app {
namespace {

std::string problems_text(size_t n) {
  return std::to_string(n) + (n == 1 ? " problem" : " problems");
}

}  // namespace

int print_check(const node::SetupReport& report, const std::string& config_path) {
  for (const auto& w : report.warnings) std::cerr << w << "\n";
  if (report.ok()) {
    std::cout << report.ok_line(config_path) << "\n";
    return 0;
  }
  for (const auto& p : report.problems) std::cerr << p << "\n";
  std::cerr << "config check failed: " << problems_text(report.problems.size()) << " in "
            << config_path << " and the files it names\n";
  return 1;
}

int config_error(const node::SetupReport& report, const std::string& who,
                 const std::string& config_path) {
  for (const auto& p : report.problems) std::cerr << who << ": " << p << "\n";
  std::cerr << who << ": not started: " << problems_text(report.problems.size()) << " in "
            << config_path << " and the files it names (exit " << kExitConfig
            << ", configuration error)\n";
  return kExitConfig;
}

}  // namespace medic::app
