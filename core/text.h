// Small text helpers shared by the loaders' error messages.
#pragma once

#include <cstddef>
#include <string_view>

namespace medic {

// Levenshtein distance: how many single-character edits turn `a` into `b`.
// Used to suggest the name a person probably meant ("did you mean ...").
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace medic
