// Loading rule files in stages, falco-style: read YAML -> collect each rule's
// fields -> compile its expressions -> index the set. Every stage keeps going
// after a problem so one pass reports them all, each with file:line:col (inside
// a `where:` scalar too), what was expected, and an enumerated code.
#pragma once

#include <optional>
#include <set>
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
  kDuplicateName,     // two rules share a name (decisions and the audit name rules)
  // warnings
  kUnreachableStep,  // a ladder step the budget never lets run
  kNeverFires,       // where: is always false
  kNoRules,          // a file defines no rules
  kUnknownLabel,     // where: reads a label key no VM has (only with LoadOptions::label_keys)
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
  // The label keys the fleet's VMs have, when known (`medic rules check
  // --labels FILE`): a where: that reads any other key gets a warning, since
  // vm.labels.KEY is "" on every VM and a rule comparing it with a value
  // never matches. Unset: labels are not checked.
  std::optional<std::set<std::string>> label_keys;
};

LoadResult load_rule_files(const std::vector<std::string>& paths, const LoadOptions& opts = {});
// For tests and embedded defaults: `name` stands in for the file name.
LoadResult load_rule_text(const std::string& text, const std::string& name,
                          const LoadOptions& opts = {});

// The label keys of the VMs a file describes, for LoadOptions::label_keys:
//   vms:         a list of VMs, as in a QEMU VM spec (examples/qemu-vms.yaml),
//                or a map of VM id to VM; each VM's labels: map gives keys,
//                its other keys are ignored
//   label_keys:  a list of label keys
// Problems (an unreadable file, a wrong shape) are appended to `messages` as
// errors with file:line:col; the keys found so far are returned even then.
std::set<std::string> read_label_keys(const std::string& path, std::vector<LoadMessage>* messages);

// Parses "3 per 1h".
Result<Budget> parse_budget(std::string_view text);

}  // namespace medic::rules
