#include "core/json.h"

#include <string_view>

namespace medic {
namespace {

// A first pass over the text that builds nothing: it checks the syntax (and
// UTF-8) with nlohmann's own lexer, bounds the nesting, and keeps the first
// error as text. Only text that passes is parsed into a value, so the
// building pass never sees hostile nesting.
class Checker final : public nlohmann::json_sax<Json> {
 public:
  explicit Checker(int max_depth) : max_depth_(max_depth) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool key(string_t&) override { return true; }
  bool start_object(std::size_t) override { return enter(); }
  bool end_object() override { return leave(); }
  bool start_array(std::size_t) override { return enter(); }
  bool end_array() override { return leave(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::json::exception& ex) override {
    error_ = "at byte " + std::to_string(position) + ": " + without_prefix(ex.what());
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  bool enter() {
    if (++depth_ <= max_depth_) return true;
    error_ = "nesting deeper than " + std::to_string(max_depth_);
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }
  // "[json.exception.parse_error.101] parse error at line 1, ..." -> "parse error at ...".
  static std::string without_prefix(std::string_view what) {
    if (!what.empty() && what.front() == '[') {
      size_t end = what.find("] ");
      if (end != std::string_view::npos) what.remove_prefix(end + 2);
    }
    return std::string(what);
  }

  int max_depth_;
  int depth_ = 0;
  std::string error_;
};

}  // namespace

Result<Json> parse_json(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return invalid_argument("JSON text of " + std::to_string(text.size()) +
                            " bytes is longer than the " + std::to_string(limits.max_bytes) +
                            "-byte limit");
  }
  Checker checker(limits.max_depth);
  if (!Json::sax_parse(text, &checker)) {
    return invalid_argument("invalid JSON " +
                            (checker.error().empty() ? std::string("text") : checker.error()));
  }
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return internal_error("JSON text passed the check but did not parse");
  return value;
}

std::string dump_json(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

const Json* json_member(const Json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

const std::string* json_string_member(const Json& j, std::string_view key) {
  const Json* m = json_member(j, key);
  return m && m->is_string() ? m->get_ptr<const std::string*>() : nullptr;
}

}  // namespace medic
