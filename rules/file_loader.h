// Inside the rule loader (rules/loader.h): one FileLoader reads one rules
// file in stages (YAML, then each rule's trigger, condition, key, ladder and
// policies), collecting every problem with file:line:col. Not for use outside
// rules/loader*.cc.
#pragma once

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/duration.h"
#include "core/text.h"
#include "rules/loader.h"

namespace medic::rules {

inline const std::vector<std::string> kRuleKeys = {
    "name",   "description", "labels",           "on",      "absent",
    "for",    "count",       "within",           "where",   "key",
    "do",     "healed_by",   "heal_within",      "message", "cooldown",
    "budget", "approval",    "approval_timeout", "mode",    "storm_guard",
    "boot_timeout",
};

inline std::string fnv_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static const char* kHex = "0123456789abcdef";
  std::string out(12, '0');
  for (int i = 11; i >= 0; --i) {
    out[i] = kHex[h & 0xf];
    h >>= 4;
  }
  return out;
}

inline std::string event_list() {
  std::string s;
  for (auto n : event_type_names()) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

class FileLoader {
 public:
  FileLoader(std::string file, std::string text, const LoadOptions& opts,
             std::vector<LoadMessage>* out, std::map<std::string, std::string>* names,
             std::vector<RulePtr>* rules)
      : file_(std::move(file)),
        text_(std::move(text)),
        opts_(opts),
        out_(out),
        names_(names),
        rules_(rules),
        first_message_(out->size()) {}

  void run();

 private:
  void add(LoadCode code, const YAML::Node& at, const std::string& msg, int line = 0, int col = 0);
  void error(LoadCode code, const YAML::Node& at, const std::string& msg) { add(code, at, msg); }
  void warn(LoadCode code, const YAML::Node& at, const std::string& msg) { add(code, at, msg); }

  // The file position of byte `offset` of a scalar's value. The scalar may be
  // quoted, folded or a block, so walk the source from the node's mark and
  // match the value character by character; a folded line break in the value
  // is a space, and indentation in the source is skipped.
  std::pair<int, int> locate(const YAML::Node& n, size_t offset) const;
  std::optional<EventType> event_type(const YAML::Node& n, const char* key);

  std::optional<Duration> duration(const YAML::Node& map, const char* key, bool positive);
  std::optional<std::string> scalar(const YAML::Node& map, const char* key);
  // A scalar that must be one of `values`; nullopt (reported) when it is not.
  std::optional<std::string> choice(const YAML::Node& map, const char* key,
                                    const std::vector<std::string_view>& values);

  void check_keys(const YAML::Node& m);
  void load_trigger(const YAML::Node& m, Rule& r);

  void load_where(const YAML::Node& m, Rule& r);
  // Warns about each label `where` reads that no VM has (LoadOptions::label_keys).
  void check_label_keys(const YAML::Node& w, const Expr& where);
  void load_key(const YAML::Node& m, Rule& r);

  void load_ladder(const YAML::Node& m, Rule& r);
  void load_policies(const YAML::Node& m, Rule& r);

  // A budget of N actions per window lets at most N verb steps of one
  // incident run; later steps wait forever.
  void check_ladder_reach(const Rule& r);
  void load_rule(const YAML::Node& m);

  std::string file_;
  std::string text_;
  const LoadOptions& opts_;
  std::vector<LoadMessage>* out_;
  std::map<std::string, std::string>* names_;
  std::vector<RulePtr>* rules_;
  bool rule_ok_ = true;
  // False once the rule's on:/absent: names no event type (already reported):
  // what depends on the trigger is then not checked against a guess.
  bool event_known_ = true;
  std::vector<YAML::Node> step_nodes_;
  size_t first_message_;
};

}  // namespace medic::rules
