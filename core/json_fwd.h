// The name of medic's JSON value type without nlohmann-json's definitions:
// for headers that only declare functions taking or returning a Json. Parsing
// the whole library costs about 3 s of compile time in every file that
// includes it; a file that builds, reads or dumps a Json includes core/json.h.
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace medic {

using Json = nlohmann::ordered_json;

}  // namespace medic
