// Rule text shared by the benchmarks: `n` rules that each read a label of
// every state report (`on: vm.state where: vm.labels.tier == "tN"`), so a
// state report meets every one of them.
#pragma once

#include <string>

namespace medic::bench {

inline std::string tier_rules(int n) {
  std::string y = "rules:\n";
  for (int i = 0; i < n; ++i) {
    y += "  - name: tier-" + std::to_string(i) + "\n    on: vm.state\n    where: vm.labels.tier == \"t" +
         std::to_string(i) + "\"\n    do: notify\n";
  }
  return y;
}

}  // namespace medic::bench
