// Durations as people write them in configs and rules: "250ms", "30s", "5m",
// "1h", "2d", and compounds such as "1h30m". Units: ns, us, ms, s, m, h, d.
#pragma once

#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace medic {

// Parses a non-negative duration. Errors say what was expected and where.
Result<Duration> parse_duration(std::string_view text);

// The shortest exact form: 0s, 250ms, 30s, 5m, 1h30m, 1d. Sub-millisecond
// values print in us or ns.
std::string format_duration(Duration d);

}  // namespace medic
