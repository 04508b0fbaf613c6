// Writing JSON strings: the one escaper every module uses (log lines, audit
// export, webhook bodies, QMP commands). Output is valid JSON for any input
// bytes; control characters and DEL become \u00XX.
#pragma once

#include <string>
#include <string_view>

namespace medic {

// `in` escaped for use inside a JSON string (no surrounding quotes).
std::string json_escape(std::string_view in);
// Appends `"` + json_escape(in) + `"` to *out.
void append_json_string(std::string* out, std::string_view in);

}  // namespace medic
