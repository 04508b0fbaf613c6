// `medic rules check FILE...` lints rule files like a compiler does;
// `medic rules test FILE...` runs rule unit tests (rules/rule_test.h);
// `medic rules replay` is app/cmd_replay.cc.
#include <iostream>
#include <sstream>

#include "app/commands.h"
#include "core/json.h"
#include "rules/loader.h"
#include "rules/rule_test.h"

namespace medic::app {

namespace {

struct RulesArgs {
  std::vector<std::string> files;
  std::string labels;  // check: a file whose VMs' label keys where: may read
  bool strict = false;
  bool verbose = false;
  bool json = false;  // one JSON object on stdout instead of the text report
};

// `rules check --json`: docs/rules.md, "Machine-readable output".
Json check_json(const RulesArgs& a, const rules::LoadResult& res, int exit_code) {
  Json messages = Json::array();
  for (const auto& m : res.messages) {
    messages.push_back({{"file", m.diag.file},
                        {"line", m.diag.line},
                        {"col", m.diag.col},
                        {"severity", m.diag.warning ? "warning" : "error"},
                        {"code", rules::load_code_name(m.code)},
                        {"message", m.diag.message}});
  }
  return {{"files", a.files},
          {"errors", res.error_count()},
          {"warnings", res.warning_count()},
          {"rules", res.rules ? res.rules->size() : 0},
          {"ok", exit_code == 0},
          {"messages", std::move(messages)}};
}

// `rules test --json`.
Json tests_json(const rules::TestSummary& sum) {
  Json results = Json::array();
  for (const auto& o : sum.outcomes) {
    results.push_back({{"file", o.file},
                       {"line", o.line},
                       {"name", o.name},
                       {"passed", o.passed},
                       {"problems", o.problems},
                       {"missing", o.missing},
                       {"unexpected", o.unexpected}});
  }
  return {{"files", sum.files},
          {"tests", sum.tests},
          {"passed", sum.tests - sum.failed},
          {"failed", sum.failed},
          {"errors", sum.errors},
          {"ok", sum.ok()},
          {"results", std::move(results)},
          {"error_messages", sum.error_messages}};
}

// Exit 0 when every file loads (warnings allowed unless --strict), 1 when a
// file has an error or cannot be read; every problem of every file, the
// --labels file included, is printed first, in one pass.
int run_check(const RulesArgs& a) {
  rules::LoadOptions opts;
  std::vector<rules::LoadMessage> label_problems;
  if (!a.labels.empty()) opts.label_keys = rules::read_label_keys(a.labels, &label_problems);
  auto res = rules::load_rule_files(a.files, opts);
  res.messages.insert(res.messages.begin(), label_problems.begin(), label_problems.end());
  const int code = !res.ok() || (a.strict && res.warning_count() > 0) ? 1 : 0;
  if (a.json) {
    std::cout << dump_json(check_json(a, res, code)) << "\n";
    return code;
  }
  std::cerr << res.text();
  size_t rules = res.rules ? res.rules->size() : 0;
  std::cerr << a.files.size() << (a.files.size() == 1 ? " file" : " files") << ": "
            << res.error_count() << " error(s), " << res.warning_count() << " warning(s)";
  if (res.ok()) std::cerr << ", " << rules << " rule(s) OK";
  std::cerr << "\n";
  return code;
}

int run_tests(const RulesArgs& a) {
  rules::TestRunOptions opts;
  opts.verbose = a.verbose;
  std::ostringstream quiet;
  auto summary = rules::run_rule_test_files(a.files, opts, a.json ? quiet : std::cout);
  if (a.json) std::cout << dump_json(tests_json(summary)) << "\n";
  return summary.ok() ? 0 : 1;
}

}  // namespace

void add_rules(CLI::App& app, int* exit_code) {
  auto* rules = app.add_subcommand("rules", "check, unit-test and backtest rule files offline");
  rules->require_subcommand(1);
  auto args = std::make_shared<RulesArgs>();

  auto* check =
      rules->add_subcommand("check", "lint rule files: exit 0 when they load, 1 on errors");
  // Files are not checked for existence here: a missing file is reported
  // with the other problems (exit 1), not as a usage error.
  check->add_option("files", args->files, "rule files (YAML)")->required();
  check->add_flag("--strict", args->strict, "treat warnings as errors");
  check->add_flag("--json", args->json, "one JSON object on stdout (docs/rules.md)");
  check->add_option("--labels", args->labels,
                    "warn about label keys no VM has: a VM spec (vms: with labels:) or a "
                    "label_keys: list");
  check->callback([args, exit_code] { *exit_code = run_check(*args); });

  auto* test = rules->add_subcommand("test", "run rule unit tests: exit 0 when all pass");
  test->add_option("files", args->files, "rule test files (YAML)")->required();
  test->add_flag("-v,--verbose", args->verbose, "print every decision of every test");
  test->add_flag("--json", args->json, "one JSON object on stdout (docs/rules.md)");
  test->callback([args, exit_code] { *exit_code = run_tests(*args); });

  add_rules_replay(*rules, exit_code);
}

}  // namespace medic::app
