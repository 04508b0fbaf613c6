#include "rules/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include <yaml-cpp/yaml.h>

#include "core/duration.h"
#include "core/text.h"
#include "rules/file_loader.h"

namespace medic::rules {

const char* load_code_name(LoadCode c) {
  switch (c) {
    case LoadCode::kReadFile:
      return "read-file";
    case LoadCode::kYamlParse:
      return "yaml-parse";
    case LoadCode::kSchema:
      return "schema";
    case LoadCode::kTrigger:
      return "trigger";
    case LoadCode::kUnknownEventType:
      return "unknown-event-type";
    case LoadCode::kExprSyntax:
      return "expr-syntax";
    case LoadCode::kExprType:
      return "expr-type";
    case LoadCode::kAction:
      return "action";
    case LoadCode::kPolicy:
      return "policy";
    case LoadCode::kDuplicateName:
      return "duplicate-name";
    case LoadCode::kUnreachableStep:
      return "unreachable-step";
    case LoadCode::kNeverFires:
      return "never-fires";
    case LoadCode::kNoRules:
      return "no-rules";
    case LoadCode::kUnknownLabel:
      return "unknown-label";
  }
  return "?";
}

bool is_warning(LoadCode c) { return c >= LoadCode::kUnreachableStep; }

std::string LoadMessage::to_string() const {
  return diag.to_string() + " [" + load_code_name(code) + "]";
}

size_t LoadResult::error_count() const {
  size_t n = 0;
  for (const auto& m : messages) n += !m.diag.warning;
  return n;
}

size_t LoadResult::warning_count() const { return messages.size() - error_count(); }

std::string LoadResult::text() const {
  std::string out;
  for (const auto& m : messages) out += m.to_string() + "\n";
  return out;
}

Result<Budget> parse_budget(std::string_view text) {
  auto parsed = parse_count_per(text);
  if (!parsed.ok())
    return invalid_argument("invalid budget \"" + std::string(text) +
                            "\" (expected N per DURATION, such as 3 per 1h)");
  return *parsed;
}

void FileLoader::run() {
  YAML::Node root;
  try {
    root = YAML::Load(text_);
  } catch (const YAML::Exception& e) {
    Diagnostic d{file_, e.mark.line + 1, e.mark.column + 1, "YAML syntax: " + e.msg};
    if (e.mark.is_null()) d.line = d.col = 0;
    out_->push_back({LoadCode::kYamlParse, d});
    return;
  }
  if (!root.IsDefined() || root.IsNull()) {
    warn(LoadCode::kNoRules, root, "the file defines no rules (expected a top-level rules: list)");
    return;
  }
  if (!root.IsMap()) {
    error(LoadCode::kSchema, root, "expected a map with a rules: list at the top level");
    return;
  }
  static const std::vector<std::string_view> kTopKeys = {"rules"};
  for (const auto& kv : root) {
    if (kv.first.Scalar() != "rules") {
      error(LoadCode::kSchema, kv.first, unknown_name("top-level key", kv.first.Scalar(), kTopKeys));
    }
  }
  YAML::Node list = root["rules"];
  if (!list.IsDefined() || list.IsNull() || (list.IsSequence() && list.size() == 0)) {
    warn(LoadCode::kNoRules, root,
         "the file defines no rules (the rules: list is empty or missing)");
    return;
  }
  if (!list.IsSequence()) {
    error(LoadCode::kSchema, list, "expected rules: to be a list of rules (items starting with -)");
    return;
  }
  for (const auto& item : list) load_rule(item);
  // Expression errors are found per rule, not in position order.
  std::stable_sort(out_->begin() + static_cast<std::ptrdiff_t>(first_message_), out_->end(),
                   [](const LoadMessage& a, const LoadMessage& b) {
                     return std::tie(a.diag.line, a.diag.col) < std::tie(b.diag.line, b.diag.col);
                   });
}

void FileLoader::add(LoadCode code, const YAML::Node& at, const std::string& msg, int line,
                     int col) {
  Diagnostic d{file_, line, col, msg, is_warning(code)};
  if (line == 0 && at.IsDefined() && !at.Mark().is_null()) {
    d.line = at.Mark().line + 1;
    d.col = at.Mark().column + 1;
  }
  out_->push_back({code, d});
  if (!is_warning(code)) rule_ok_ = false;
}

std::pair<int, int> FileLoader::locate(const YAML::Node& n, size_t offset) const {
  const std::string& v = n.Scalar();
  size_t p = n.Mark().pos;
  int line = n.Mark().line + 1, col = n.Mark().column + 1;
  auto step = [&] {
    if (text_[p] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    ++p;
  };
  auto matches = [&](char c) { return text_[p] == c || (c == ' ' && text_[p] == '\n'); };
  if (p < text_.size() && (text_[p] == '|' || text_[p] == '>')) {
    while (p < text_.size() && text_[p] != '\n') step();
  } else if (p < text_.size() && (text_[p] == '"' || text_[p] == '\'')) {
    step();
  }
  size_t stop = std::min(offset, v.size());
  for (size_t i = 0; i <= stop && p < text_.size(); ++i) {
    if (i == v.size()) break;
    while (p < text_.size() && !matches(v[i])) step();
    if (i == stop || p >= text_.size()) break;
    step();
  }
  return {line, col};
}

std::optional<EventType> FileLoader::event_type(const YAML::Node& n, const char* key) {
  if (!n.IsScalar()) {
    error(LoadCode::kSchema, n, std::string(key) + ": must be an event type such as vm.panicked");
    return std::nullopt;
  }
  auto t = event_type_from_name(n.Scalar());
  if (!t && std::string_view(key) != "healed_by") event_known_ = false;
  if (!t) {
    std::string hint = did_you_mean(n.Scalar(), event_type_names());
    error(LoadCode::kUnknownEventType, n,
          "unknown event type \"" + n.Scalar() + "\" in " + key + ":" +
              (hint.empty() ? " (expected one of " + event_list() + ")" : hint));
  }
  return t;
}

std::optional<Duration> FileLoader::duration(const YAML::Node& map, const char* key,
                                             bool positive) {
  YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  if (!n.IsScalar()) {
    error(LoadCode::kSchema, n, std::string(key) + ": must be a duration such as 30s");
    return std::nullopt;
  }
  auto d = parse_duration(n.Scalar());
  if (!d.ok()) {
    error(LoadCode::kSchema, n, std::string(key) + ": " + d.status().message());
    return std::nullopt;
  }
  if (positive && d->count() <= 0) {
    error(LoadCode::kSchema, n, std::string(key) + ": must be longer than 0s");
    return std::nullopt;
  }
  return *d;
}

std::optional<std::string> FileLoader::scalar(const YAML::Node& map, const char* key) {
  YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  if (!n.IsScalar()) {
    error(LoadCode::kSchema, n, std::string(key) + ": must be a single value, not a list or map");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> FileLoader::choice(const YAML::Node& map, const char* key,
                                              const std::vector<std::string_view>& values) {
  auto v = scalar(map, key);
  if (!v || std::find(values.begin(), values.end(), *v) != values.end()) return v;
  error(LoadCode::kPolicy, map[key],
        std::string(key) + ": must be " + join_names(values) + ", got \"" + *v + "\"" +
            did_you_mean(*v, values));
  return std::nullopt;
}

void FileLoader::check_keys(const YAML::Node& m) {
  for (const auto& kv : m) {
    const std::string k = kv.first.Scalar();
    if (std::find(kRuleKeys.begin(), kRuleKeys.end(), k) == kRuleKeys.end()) {
      error(LoadCode::kSchema, kv.first, unknown_name("rule key", k, kRuleKeys));
    }
  }
}

namespace {

// yaml-cpp throws on shapes we did not foresee; that is a schema error in the
// file, never a crash.
void run_guarded(const std::string& name, std::string text, const LoadOptions& opts,
                 std::vector<LoadMessage>* msgs, std::map<std::string, std::string>* names,
                 std::vector<RulePtr>* rules) {
  try {
    FileLoader(name, std::move(text), opts, msgs, names, rules).run();
  } catch (const YAML::Exception& e) {
    Diagnostic d{name, e.mark.line + 1, e.mark.column + 1, "unexpected YAML shape: " + e.msg};
    if (e.mark.is_null()) d.line = d.col = 0;
    msgs->push_back({LoadCode::kSchema, d});
  }
}

// The whole file, or why it cannot be read ("cannot read the file: No such
// file or directory").
Result<std::string> read_rule_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return invalid_argument("cannot read the file: it is a directory");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return invalid_argument(std::string("cannot read the file: ") +
                            (errno != 0 ? std::strerror(errno) : "open failed"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return invalid_argument("cannot read the file: a read failed");
  return ss.str();
}

LoadResult finish(std::vector<LoadMessage> messages, std::vector<RulePtr> rules) {
  LoadResult res;
  res.messages = std::move(messages);
  if (res.ok()) res.rules = std::make_shared<const RuleSet>(std::move(rules));
  return res;
}

}  // namespace

namespace {

void add_vm_labels(ConfigReader& r, const YAML::Node& vm, std::set<std::string>* keys) {
  if (!r.expect_map(vm, "a VM (a map with labels:)")) return;
  YAML::Node l = vm["labels"];
  if (!l.IsDefined() || l.IsNull()) return;
  if (!l.IsMap()) return r.error(l, "labels: must be a map of key: value");
  for (const auto& kv : l) keys->insert(kv.first.Scalar());
}

}  // namespace

std::set<std::string> read_label_keys(const std::string& path, std::vector<LoadMessage>* messages) {
  std::set<std::string> keys;
  ConfigReader r(path);
  auto text = read_rule_file(path);
  if (!text.ok()) {
    messages->push_back({LoadCode::kReadFile, Diagnostic{path, 0, 0, text.status().message()}});
    return keys;
  }
  try {
    YAML::Node root = YAML::Load(*text);
    if (r.expect_map(root, "a map with vms: or label_keys:")) {
      r.check_keys(root, {"vms", "label_keys"});
      YAML::Node vms = root["vms"];
      if (vms.IsSequence()) {
        for (const auto& vm : vms) add_vm_labels(r, vm, &keys);
      } else if (vms.IsMap()) {
        for (const auto& kv : vms) add_vm_labels(r, kv.second, &keys);
      } else if (vms.IsDefined() && !vms.IsNull()) {
        r.error(vms, "vms: must be a list of VMs or a map of VM id to VM");
      }
      if (auto list = r.string_list(root, "label_keys", false)) keys.insert(list->begin(), list->end());
    }
  } catch (const YAML::Exception& e) {
    Diagnostic d{path, e.mark.line + 1, e.mark.column + 1, "YAML syntax: " + e.msg};
    if (e.mark.is_null()) d.line = d.col = 0;
    messages->push_back({LoadCode::kYamlParse, d});
  }
  for (const auto& d : r.diagnostics()) messages->push_back({LoadCode::kSchema, d});
  return keys;
}

LoadResult load_rule_text(const std::string& text, const std::string& name,
                          const LoadOptions& opts) {
  std::vector<LoadMessage> msgs;
  std::map<std::string, std::string> names;
  std::vector<RulePtr> rules;
  run_guarded(name, text, opts, &msgs, &names, &rules);
  return finish(std::move(msgs), std::move(rules));
}

LoadResult load_rule_files(const std::vector<std::string>& paths, const LoadOptions& opts) {
  std::vector<LoadMessage> msgs;
  std::map<std::string, std::string> names;
  std::vector<RulePtr> rules;
  for (const auto& p : paths) {
    auto text = read_rule_file(p);
    if (!text.ok()) {
      msgs.push_back({LoadCode::kReadFile, Diagnostic{p, 0, 0, text.status().message(), false}});
      continue;
    }
    run_guarded(p, *text, opts, &msgs, &names, &rules);
  }
  return finish(std::move(msgs), std::move(rules));
}

}  // namespace medic::rules
