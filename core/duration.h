// Durations as people write them in configs and rules: "250ms", "30s", "5m",
// "1h", "2d", and compounds such as "1h30m". Units: ns, us, ms, s, m, h, d.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace medic {

// Parses a non-negative duration. Errors say what was expected and where.
Result<Duration> parse_duration(std::string_view text);

// "N per DURATION", such as "3 per 1h": at most N (1 to 1,000,000) in any
// window of that length (a rule's budget, a requester's clones).
struct CountPer {
  uint32_t count = 0;
  Duration window{0};
};
Result<CountPer> parse_count_per(std::string_view text);

// The shortest exact form: 0s, 250ms, 30s, 5m, 1h30m, 1d. Sub-millisecond
// values print in us or ns.
std::string format_duration(Duration d);

}  // namespace medic
