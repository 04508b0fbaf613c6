// Loading rule files in stages, falco-style: read YAML -> collect each rule's
// fields -> compile its expressions -> index the set. Every stage keeps going
// after a problem so one pass reports them all, each with file:line:col (inside
// a `where:` scalar too), what was expected, and an enumerated code.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "rules/rule.h"

namespace medic::rules {

enum class LoadCode : uint8_t {
  // errors
  kReadFile,          // the file cannot be read
  kYamlParse,         // YAML syntax
  kSchema,            // wrong shape, unknown or missing key
  kTrigger,           // no trigger, several, or an incomplete one
  kUnknownEventType,  // on:/absent:/healed_by: names no event type
  kExprSyntax,        // where: does not parse
  kExprType,          // where: has a type error, unknown field or bad regex
  kAction,            // do: names no step, or a step the key cannot target
  kPolicy,            // cooldown/budget/approval/mode malformed
  // warnings
  kDuplicateName,    // two rules share a name
  kUnreachableStep,  // a ladder step the budget never lets run
  kNeverFires,       // where: is always false
  kNoRules,          // a file defines no rules
};
const char* load_code_name(LoadCode c);
bool is_warning(LoadCode c);

struct LoadMessage {
  LoadCode code;
  Diagnostic diag;
  // "file:line:col: error: message [code]"
  std::string to_string() const;
};

struct LoadResult {
  std::vector<LoadMessage> messages;
  std::shared_ptr<const RuleSet> rules;  // set only when there is no error

  bool ok() const { return error_count() == 0; }
  size_t error_count() const;
  size_t warning_count() const;
  // Every message, one per line, in file order.
  std::string text() const;
};

struct LoadOptions {
  PolicyDefaults defaults;
};

LoadResult load_rule_files(const std::vector<std::string>& paths, const LoadOptions& opts = {});
// For tests and embedded defaults: `name` stands in for the file name.
LoadResult load_rule_text(const std::string& text, const std::string& name,
                          const LoadOptions& opts = {});

// Parses "3 per 1h".
Result<Budget> parse_budget(std::string_view text);

}  // namespace medic::rules
