#include "core/duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace medic {
namespace {

struct Unit {
  std::string_view name;
  int64_t ns;
};

// Longest names first so "ms" is not read as "m" followed by "s".
constexpr std::array<Unit, 7> kUnits = {{
    {"ns", 1},
    {"us", 1'000},
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
    {"d", 86'400'000'000'000},
}};

const Unit* match_unit(std::string_view rest, size_t* len) {
  const Unit* best = nullptr;
  for (const auto& u : kUnits) {
    if (rest.substr(0, u.name.size()) == u.name && (!best || u.name.size() > best->name.size())) {
      best = &u;
    }
  }
  if (best) *len = best->name.size();
  return best;
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return invalid_argument("invalid duration \"" + std::string(text) + "\": " + why +
                            " (expected e.g. 250ms, 30s, 5m, 1h)");
  };
  if (text.empty()) return bad("empty");
  if (text == "0") return Duration(0);
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') return bad("expected a number at offset " + std::to_string(i));
    int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (n > (std::numeric_limits<int64_t>::max() - 9) / 10) return bad("too large");
      n = n * 10 + (text[i] - '0');
      ++i;
    }
    size_t len = 0;
    const Unit* u = match_unit(text.substr(i), &len);
    if (!u) return bad("missing or unknown unit at offset " + std::to_string(i));
    if (n > std::numeric_limits<int64_t>::max() / u->ns) return bad("too large");
    int64_t add = n * u->ns;
    if (total > std::numeric_limits<int64_t>::max() - add) return bad("too large");
    total += add;
    i += len;
  }
  return Duration(total);
}

std::string format_duration(Duration d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  std::string out;
  if (ns < 0) {
    out = "-";
    ns = -ns;
  }
  if (ns % 1'000'000 != 0) {
    // Sub-millisecond precision: one unit only.
    if (ns % 1'000 == 0) return out + std::to_string(ns / 1'000) + "us";
    return out + std::to_string(ns) + "ns";
  }
  if (ns < 1'000'000'000 || ns % 1'000'000'000 != 0) {
    if (ns < 60'000'000'000) return out + std::to_string(ns / 1'000'000) + "ms";
  }
  // Whole units from days down; a remainder in ms is printed last.
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
    if (it->ns < 1'000'000) break;
    if (ns >= it->ns) {
      out += std::to_string(ns / it->ns) + std::string(it->name);
      ns %= it->ns;
    }
  }
  return out;
}

Result<CountPer> parse_count_per(std::string_view text) {
  auto bad = [&] {
    return invalid_argument("\"" + std::string(text) +
                            "\" is not N per DURATION, such as 3 per 1h");
  };
  const size_t sp = text.find(" per ");
  if (sp == std::string_view::npos) return bad();
  const std::string_view n = text.substr(0, sp);
  uint64_t count = 0;
  if (n.empty() || n.size() > 7) return bad();
  for (char c : n) {
    if (c < '0' || c > '9') return bad();
    count = count * 10 + static_cast<uint64_t>(c - '0');
  }
  if (count < 1 || count > 1'000'000) return bad();
  auto w = parse_duration(text.substr(sp + 5));
  if (!w.ok() || w->count() <= 0) return bad();
  return CountPer{static_cast<uint32_t>(count), *w};
}

}  // namespace medic
