// Just enough JSON writing for the CLI's --json output and export. Internal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace medic::audit::internal {

std::string json_string(std::string_view s);

// ["a","b"] for a list of strings, and back. parse returns false for
// anything that is not exactly a JSON array of strings.
std::string json_string_array(const std::vector<std::string>& items);
bool parse_json_string_array(std::string_view text, std::vector<std::string>* out);

class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value) {
    return raw(key, json_string(value));
  }
  JsonObject& add(std::string_view key, const char* value) { return raw(key, json_string(value)); }
  JsonObject& add(std::string_view key, const std::string& value) {
    return raw(key, json_string(value));
  }
  JsonObject& add(std::string_view key, int64_t value) { return raw(key, std::to_string(value)); }
  JsonObject& add(std::string_view key, int32_t value) { return raw(key, std::to_string(value)); }
  JsonObject& add_bool(std::string_view key, bool value) {
    return raw(key, value ? "true" : "false");
  }
  JsonObject& raw(std::string_view key, std::string_view json) {
    out_ += first_ ? "" : ",";
    first_ = false;
    out_ += json_string(key);
    out_ += ":";
    out_ += json;
    return *this;
  }
  std::string str() const { return out_ + "}"; }

 private:
  std::string out_ = "{";
  bool first_ = true;
};

class JsonArray {
 public:
  JsonArray& raw(std::string_view json) {
    out_ += first_ ? "" : ",";
    first_ = false;
    out_ += json;
    return *this;
  }
  JsonArray& add(std::string_view s) { return raw(json_string(s)); }
  std::string str() const { return out_ + "]"; }

 private:
  std::string out_ = "[";
  bool first_ = true;
};

}  // namespace medic::audit::internal
