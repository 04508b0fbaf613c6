// JSON for every module: QMP and guest-agent traffic, the audit CLI's --json
// output and export, webhook bodies, log lines. The value type is
// nlohmann-json's ordered_json (Debian nlohmann-json3-dev): objects keep the
// order their members were added in, so what we write reads in a fixed order.
//
// nlohmann's own parse() and dump() throw; use these instead:
// - parse_json never throws. It rejects input longer than a bound and nesting
//   deeper than a bound (QMP input is untrusted: a hostile peer must not make
//   us allocate or recurse without limit), and ill-formed UTF-8 inside
//   strings, each with a message naming what was wrong and where.
// - dump_json never throws: ill-formed UTF-8 in a string is written as
//   U+FFFD, so the output is valid JSON whatever bytes a string holds.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/json_fwd.h"
#include "core/status.h"

namespace medic {

struct JsonLimits {
  size_t max_bytes = 1 << 20;  // the whole text, before parsing starts
  int max_depth = 32;          // objects and arrays nested in one another
};

// Parses exactly one JSON value (surrounding whitespace allowed). Errors are
// kInvalidArgument, saying that the text is longer than max_bytes, that it
// nests deeper than max_depth, or at which byte the parser found what (a
// syntax error, an ill-formed UTF-8 byte). Duplicate keys: the last one wins.
Result<Json> parse_json(std::string_view text, const JsonLimits& limits = {});

// Compact JSON text, no newline (so it can be framed by one).
std::string dump_json(const Json& value);

// The member `key` of object `j`; nullptr when absent or when `j` is not an
// object.
const Json* json_member(const Json& j, std::string_view key);
// The member `key` when it is a string; nullptr otherwise.
const std::string* json_string_member(const Json& j, std::string_view key);

}  // namespace medic
