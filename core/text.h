// Small text helpers shared by the loaders' error messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace medic {

// Levenshtein distance: how many single-character edits turn `a` into `b`.
// Used to suggest the name a person probably meant ("did you mean ...").
size_t edit_distance(std::string_view a, std::string_view b);

// Decodes the UTF-8 sequence that starts at s[i]: returns its length (1 to 4)
// and sets *code_point, or returns 0 when the bytes there are not well-formed
// UTF-8 (a stray continuation byte, an overlong form, a surrogate, beyond
// U+10FFFF, or cut short).
size_t decode_utf8(std::string_view s, size_t i, uint32_t* code_point);

}  // namespace medic
