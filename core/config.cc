#include "core/config.h"

#include "core/text.h"

#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/duration.h"

namespace medic {
namespace {

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined()) return "nothing";
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "\"" + n.Scalar() + "\"";
    default: return "an undefined value";
  }
}

}  // namespace

std::string Diagnostic::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(col > 0 ? col : 1);
  out += warning ? ": warning: " : ": error: ";
  out += message;
  return out;
}

Result<YAML::Node> load_yaml_string(const std::string& text, const std::string& name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Diagnostic d{name, e.mark.line + 1, e.mark.column + 1, "YAML syntax: " + e.msg};
    if (e.mark.is_null()) d.line = d.col = 0;
    return invalid_argument(d.to_string());
  }
}

Result<YAML::Node> load_yaml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return io_error(path + ": read failed");
  return load_yaml_string(ss.str(), path);
}

void ConfigReader::error(const YAML::Node& at, const std::string& message) {
  Diagnostic d{file_, 0, 0, message, false};
  if (at.IsDefined() && !at.Mark().is_null()) {
    d.line = at.Mark().line + 1;
    d.col = at.Mark().column + 1;
  }
  diags_.push_back(std::move(d));
}

void ConfigReader::warning(const YAML::Node& at, const std::string& message) {
  error(at, message);
  diags_.back().warning = true;
}

bool ConfigReader::ok() const {
  for (const auto& d : diags_) {
    if (!d.warning) return false;
  }
  return true;
}

Status ConfigReader::status() const {
  if (ok()) return {};
  std::string msg;
  for (const auto& d : diags_) {
    if (d.warning) continue;
    if (!msg.empty()) msg += "\n";
    msg += d.to_string();
  }
  return invalid_argument(msg);
}

bool ConfigReader::expect_map(const YAML::Node& node, const std::string& what) {
  if (node.IsDefined() && node.IsMap()) return true;
  error(node, "expected " + what + " to be a map of key: value, got " + describe(node));
  return false;
}

void ConfigReader::check_keys(const YAML::Node& map, const std::vector<std::string>& known) {
  if (!map.IsDefined() || !map.IsMap()) return;
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    bool found = false;
    for (const auto& k : known) found = found || k == key;
    if (!found) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      const std::string hint = did_you_mean(key, known);
      error(kv.first, "unknown key \"" + key + "\"" +
                          (hint.empty() ? " (expected one of: " + list + ")" : hint));
    }
  }
}

namespace {

// The node for `key`, or an undefined node. Missing required keys are
// reported at the map.
YAML::Node lookup(ConfigReader& r, const YAML::Node& map, const std::string& key, bool required) {
  if (!map.IsDefined() || !map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) {
    if (required) r.error(map, "missing required key \"" + key + "\"");
    return YAML::Node(YAML::NodeType::Undefined);
  }
  return n;
}

}  // namespace

std::optional<std::string> ConfigReader::string(const YAML::Node& map, const std::string& key,
                                                bool required) {
  YAML::Node n = lookup(*this, map, key, required);
  if (!n.IsDefined()) return std::nullopt;
  if (!n.IsScalar()) {
    error(n, "\"" + key + "\" must be a string, got " + describe(n));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<int64_t> ConfigReader::integer(const YAML::Node& map, const std::string& key,
                                             bool required, int64_t min, int64_t max) {
  YAML::Node n = lookup(*this, map, key, required);
  if (!n.IsDefined()) return std::nullopt;
  int64_t v = 0;
  if (!n.IsScalar() || !YAML::convert<int64_t>::decode(n, v)) {
    error(n, "\"" + key + "\" must be an integer, got " + describe(n));
    return std::nullopt;
  }
  if (v < min || v > max) {
    error(n, "\"" + key + "\" must be between " + std::to_string(min) + " and " +
                 std::to_string(max) + ", got " + std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<double> ConfigReader::number(const YAML::Node& map, const std::string& key,
                                           bool required) {
  YAML::Node n = lookup(*this, map, key, required);
  if (!n.IsDefined()) return std::nullopt;
  double v = 0;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, v)) {
    error(n, "\"" + key + "\" must be a number, got " + describe(n));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> ConfigReader::boolean(const YAML::Node& map, const std::string& key,
                                          bool required) {
  YAML::Node n = lookup(*this, map, key, required);
  if (!n.IsDefined()) return std::nullopt;
  bool v = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
    error(n, "\"" + key + "\" must be true or false, got " + describe(n));
    return std::nullopt;
  }
  return v;
}

std::optional<Duration> ConfigReader::duration(const YAML::Node& map, const std::string& key,
                                               bool required) {
  YAML::Node n = lookup(*this, map, key, required);
  if (!n.IsDefined()) return std::nullopt;
  if (!n.IsScalar()) {
    error(n, "\"" + key + "\" must be a duration such as 30s, got " + describe(n));
    return std::nullopt;
  }
  auto d = parse_duration(n.Scalar());
  if (!d.ok()) {
    error(n, "\"" + key + "\": " + d.status().message());
    return std::nullopt;
  }
  return *d;
}

std::optional<std::vector<std::string>> ConfigReader::string_list(const YAML::Node& map,
                                                                  const std::string& key,
                                                                  bool required) {
  YAML::Node n = lookup(*this, map, key, required);
  if (!n.IsDefined()) return std::nullopt;
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
    return out;
  }
  if (!n.IsSequence()) {
    error(n, "\"" + key + "\" must be a list of strings, got " + describe(n));
    return std::nullopt;
  }
  for (const auto& item : n) {
    if (!item.IsScalar()) {
      error(item, "\"" + key + "\" items must be strings, got " + describe(item));
      return std::nullopt;
    }
    out.push_back(item.Scalar());
  }
  return out;
}

}  // namespace medic
