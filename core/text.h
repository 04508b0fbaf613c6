// Small text helpers shared by the loaders' error messages and the views
// operators read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace medic {

// How many single-character edits (insert, delete, replace, or swap two
// neighbouring characters) turn `a` into `b` (optimal string alignment
// distance). Used to suggest the name a person probably meant.
size_t edit_distance(std::string_view a, std::string_view b);

// The known name a person most likely meant by the unknown `name`, or "" when
// none is close enough to suggest. Close enough: within an edit distance of a
// third of the name's length (at least 1, at most 3), the nearest winning and
// the first listed breaking ties; or, failing that, the only known name that
// extends `name` at a word boundary ("vm.cpu" -> "vm.cpu_percent"). A name
// that is itself known gets "".
std::string closest_name(std::string_view name, const std::vector<std::string_view>& known);
template <typename Names>
std::string closest_name(std::string_view name, const Names& known) {
  std::vector<std::string_view> v;
  for (const auto& k : known) v.emplace_back(k);
  return closest_name(name, v);
}

// "; did you mean X?" for closest_name(name, known), or "" when there is none:
// the tail of an error message such as `unknown step "rebot"; did you mean
// reboot?`.
std::string did_you_mean(std::string_view name, const std::vector<std::string_view>& known);
template <typename Names>
std::string did_you_mean(std::string_view name, const Names& known) {
  std::string best = closest_name(name, known);
  return best.empty() ? "" : "; did you mean " + best + "?";
}

// `unknown <what> "<name>"`, then "; did you mean X?" for a near miss or
// " (expected a, b or c)" when nothing is near: the one shape of every
// unknown-name error, so a near miss is never buried under the whole list.
std::string unknown_name(std::string_view what, std::string_view name,
                         const std::vector<std::string_view>& known);
template <typename Names>
std::string unknown_name(std::string_view what, std::string_view name, const Names& known) {
  std::vector<std::string_view> v;
  for (const auto& k : known) v.emplace_back(k);
  return unknown_name(what, name, v);
}

// "a, b or c": names for an error message's list of what was expected.
std::string join_names(const std::vector<std::string_view>& names, std::string_view last = " or ");
template <typename Names>
std::string join_names(const Names& names, std::string_view last = " or ") {
  std::vector<std::string_view> v;
  for (const auto& k : names) v.emplace_back(k);
  return join_names(v, last);
}

// Decodes the UTF-8 sequence that starts at s[i]: returns its length (1 to 4)
// and sets *code_point, or returns 0 when the bytes there are not well-formed
// UTF-8 (a stray continuation byte, an overlong form, a surrogate, beyond
// U+10FFFF, or cut short).
size_t decode_utf8(std::string_view s, size_t i, uint32_t* code_point);

// A VM for people: "web-1 (4c1f...)" when its name is known and differs
// from its id, else the id; "-" when there is no id.
std::string vm_words(const std::string& id, const std::string& name);

// A VM name every backend accepts: 1 to 63 letters, digits, '.', '_' or '-',
// and not "." or ".." (a clone's name becomes a directory's).
bool is_vm_name(std::string_view name);

}  // namespace medic
