// A small JSON value and reader for what QMP needs, and no more.
//
// Why our own: QMP traffic is one JSON object per line, a few hundred bytes,
// with plain objects, strings, numbers and booleans. None of our Debian
// dependencies parses JSON; a general library (nlohmann-json) would be a new
// dependency whose API throws, while this reader returns Status, bounds
// nesting depth (hostile input cannot exhaust the stack) and never allocates
// more than the input it was given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace medic::vmm::qmp {

class Json {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  using Member = std::pair<std::string, Json>;

  Json() = default;  // null
  static Json boolean(bool b);
  static Json number(double n);
  static Json string(std::string s);
  static Json array();
  static Json object();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_object() const { return kind_ == Kind::kObject; }

  // Typed views; nullptr / nullopt when the value is of another kind.
  const std::string* as_string() const { return kind_ == Kind::kString ? &str_ : nullptr; }
  std::optional<double> as_number() const;
  std::optional<bool> as_bool() const;
  // The member `key` of an object (the last one if repeated); nullptr when
  // absent or when this is not an object.
  const Json* find(std::string_view key) const;
  // Convenience: find(key)->as_string() or nullptr.
  const std::string* string_at(std::string_view key) const;

  const std::vector<Json>& items() const { return items_; }
  const std::vector<Member>& members() const { return members_; }

  // Builders. REQUIRES: set() on an object, push() on an array.
  Json& set(std::string key, Json value);
  Json& push(Json value);

  // Compact JSON text, no newline (so it can be framed by one).
  std::string dump() const;

 private:
  void dump_to(std::string& out) const;

  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Json> items_;
  std::vector<Member> members_;
};

// Parses exactly one JSON value (surrounding whitespace allowed). Errors are
// kInvalidArgument naming the byte offset and what was expected. Nesting
// deeper than `max_depth` is an error, not a crash.
Result<Json> parse_json(std::string_view text, int max_depth = 32);

// Appends `s` as a JSON string literal (quoted, escaped) to `out`.
void append_json_string(std::string& out, std::string_view s);

}  // namespace medic::vmm::qmp
