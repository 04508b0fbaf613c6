#include "rules/loader.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

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
  }
  return "?";
}

bool is_warning(LoadCode c) { return c >= LoadCode::kDuplicateName; }

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
  auto bad = [&] {
    return invalid_argument("invalid budget \"" + std::string(text) +
                            "\" (expected N per DURATION, such as 3 per 1h)");
  };
  size_t sp = text.find(" per ");
  if (sp == std::string_view::npos) return bad();
  std::string n(text.substr(0, sp));
  uint32_t count = 0;
  try {
    size_t used = 0;
    long v = std::stol(n, &used);
    if (used != n.size() || v < 1 || v > 1'000'000) return bad();
    count = static_cast<uint32_t>(v);
  } catch (const std::exception&) {
    return bad();
  }
  auto w = parse_duration(text.substr(sp + 5));
  if (!w.ok() || w->count() <= 0) return bad();
  return Budget{count, *w};
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
  for (const auto& kv : root) {
    if (kv.first.Scalar() != "rules") {
      error(LoadCode::kSchema, kv.first,
            "unknown top-level key \"" + kv.first.Scalar() + "\" (expected rules)");
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

void FileLoader::check_keys(const YAML::Node& m) {
  for (const auto& kv : m) {
    const std::string k = kv.first.Scalar();
    if (std::find(kRuleKeys.begin(), kRuleKeys.end(), k) == kRuleKeys.end()) {
      std::string list;
      for (const auto& x : kRuleKeys) list += (list.empty() ? "" : ", ") + x;
      error(LoadCode::kSchema, kv.first,
            "unknown rule key \"" + k + "\" (expected one of: " + list + ")");
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

LoadResult finish(std::vector<LoadMessage> messages, std::vector<RulePtr> rules) {
  LoadResult res;
  res.messages = std::move(messages);
  if (res.ok()) res.rules = std::make_shared<const RuleSet>(std::move(rules));
  return res;
}

}  // namespace

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
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    if (!in || in.bad()) {
      msgs.push_back({LoadCode::kReadFile, Diagnostic{p, 0, 0, "cannot read the file", false}});
      continue;
    }
    run_guarded(p, ss.str(), opts, &msgs, &names, &rules);
  }
  return finish(std::move(msgs), std::move(rules));
}

}  // namespace medic::rules
