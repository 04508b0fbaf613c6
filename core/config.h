// Reading YAML configuration files with errors a person can act on: every
// problem names file:line:col and the expected form. A ConfigReader collects
// all problems in one pass instead of stopping at the first.
//
// YAML::Node is only declared here: this header is included nearly
// everywhere (through fabric/trust.h and rules/engine.h), and yaml-cpp's
// headers cost about 1.5 s of compile time in each file. A file that reads
// nodes includes <yaml-cpp/yaml.h> itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace medic {

// One problem in a file, printed as "file:line:col: message".
struct Diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  int col = 0;   // 1-based; 0 when unknown
  std::string message;
  bool warning = false;

  std::string to_string() const;
};

// Loads a YAML file. A syntax error becomes a Status whose message is
// "file:line:col: ..." from yaml-cpp's mark.
Result<YAML::Node> load_yaml_file(const std::string& path);
Result<YAML::Node> load_yaml_string(const std::string& text, const std::string& name);

class ConfigReader {
 public:
  explicit ConfigReader(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }

  // Typed accessors. A missing required key, or a value of the wrong form,
  // adds a diagnostic at the node (or its parent) and returns nullopt.
  std::optional<std::string> string(const YAML::Node& map, const std::string& key, bool required);
  std::optional<int64_t> integer(const YAML::Node& map, const std::string& key, bool required,
                                 int64_t min = INT64_MIN, int64_t max = INT64_MAX);
  std::optional<double> number(const YAML::Node& map, const std::string& key, bool required);
  std::optional<bool> boolean(const YAML::Node& map, const std::string& key, bool required);
  std::optional<Duration> duration(const YAML::Node& map, const std::string& key, bool required);
  std::optional<std::vector<std::string>> string_list(const YAML::Node& map,
                                                      const std::string& key, bool required);

  // Reports keys of `map` not in `known`, so typos do not pass silently.
  void check_keys(const YAML::Node& map, const std::vector<std::string>& known);
  // REQUIRES-style check that `node` is a map; adds a diagnostic if not.
  bool expect_map(const YAML::Node& node, const std::string& what);

  void error(const YAML::Node& at, const std::string& message);
  void warning(const YAML::Node& at, const std::string& message);

  bool ok() const;
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }
  // All errors as one Status (one line per diagnostic), or ok.
  Status status() const;

 private:
  std::string file_;
  std::vector<Diagnostic> diags_;
};

}  // namespace medic
