// `medic rules replay RECORDING --rules DIR|FILE... [--options FILE]
// [--diff AUDIT_DB] [--json]`: candidate rules over a recording made by
// `medic record`, on a virtual clock (replay/replay.h). Exit 0 when every
// frame verified and (with --diff) nothing differs from the live engine; 1
// when a frame was refused, the recording is damaged, or something differs;
// 2 when the rules, options, trust store or recording cannot be used. With
// --diff, the replay answers the actions the live engine also took with the
// live results (replay/replay.h).
#include <algorithm>
#include <filesystem>
#include <iostream>

#include <yaml-cpp/yaml.h>

#include "app/commands.h"
#include "core/config.h"
#include "core/duration.h"
#include "core/json.h"
#include "node/engine_config.h"
#include "replay/replay.h"
#include "rules/loader.h"

namespace medic::app {
namespace {

struct ReplayArgs {
  std::string recording;
  std::vector<std::string> rules;
  std::string options;
  std::string trust;
  std::string diff;
  std::string result_after = "1s";
  std::string tolerance = "2s";
  bool json = false;
};

int usage_error(const std::string& m) {
  std::cerr << "medic rules replay: " << m << "\n";
  return 2;
}

// A directory stands for its *.rules.yaml files (the engine's convention; a
// rule test file beside them is not a rule file), in name order.
std::vector<std::string> rule_files(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    std::error_code ec;
    if (!std::filesystem::is_directory(a, ec)) {
      out.push_back(a);
      continue;
    }
    std::vector<std::string> in_dir;
    for (const auto& e : std::filesystem::directory_iterator(a, ec)) {
      const std::string name = e.path().filename().string();
      if (name.size() > 11 && name.compare(name.size() - 11, 11, ".rules.yaml") == 0) {
        in_dir.push_back(e.path().string());
      }
    }
    std::sort(in_dir.begin(), in_dir.end());
    if (in_dir.empty()) in_dir.push_back(a + "/*.rules.yaml");  // reported as unreadable
    out.insert(out.end(), in_dir.begin(), in_dir.end());
  }
  return out;
}

// --options: an engine.yaml (its policies, as the live engine runs them) or a
// map of the keys of a rule test file's `options:`.
Result<rules::EngineOptions> load_options(const std::string& path) {
  rules::EngineOptions o;
  if (path.empty()) return o;
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  if ((*root)["engine"].IsDefined()) {
    auto config = node::load_engine_config(path);
    if (!config.ok()) return config.status();
    return config->engine;
  }
  ConfigReader r(path);
  read_engine_options(r, *root, &o);
  if (!r.ok()) return r.status();
  return o;
}

// What the live engine's actuators answered from the recording's first frame
// on, so the replay answers the same actions the same way.
Result<std::vector<replay::LiveResult>> live_results(const std::string& recording,
                                                     const std::string& db) {
  auto reader = replay::RecordingReader::open(recording);
  if (!reader.ok()) return reader.status();
  replay::RecordedFrame first;
  if (!(*reader)->next(&first)) return std::vector<replay::LiveResult>{};
  return replay::read_audit_results(db, first.received_at);
}

int print(const replay::ReplayResult& r, const replay::DiffReport* diff, const ReplayArgs& a) {
  if (a.json) {
    Json out{{"replay", replay::replay_json(r, a.recording)}};
    if (diff) out["diff"] = replay::diff_json(*diff, a.diff);
    std::cout << dump_json(out) << "\n";
  } else {
    std::cout << replay::replay_text(r, a.recording);
    if (diff) std::cout << replay::diff_text(*diff, a.diff);
  }
  return r.clean() && (!diff || diff->empty()) ? 0 : 1;
}

int run_replay(const ReplayArgs& a) {
  if (a.trust.empty()) return usage_error("no trust store: pass --trust FILE or set MEDIC_TRUST");
  auto trust = fabric::TrustStore::load(a.trust);
  if (!trust.ok()) return usage_error(trust.status().message());
  auto options = load_options(a.options);
  if (!options.ok()) return usage_error(options.status().message());
  auto result_after = parse_duration(a.result_after);
  if (!result_after.ok()) return usage_error("--result-after: " + result_after.status().message());
  auto tolerance = parse_duration(a.tolerance);
  if (!tolerance.ok()) return usage_error("--tolerance: " + tolerance.status().message());
  rules::LoadOptions lo;
  lo.defaults = options->defaults;
  auto loaded = rules::load_rule_files(rule_files(a.rules), lo);
  std::cerr << loaded.text();
  if (!loaded.ok()) return usage_error("the rules do not load");
  replay::ReplayOptions ro;
  ro.engine = *options;
  ro.result_after = *result_after;
  ro.match_within = *tolerance;
  if (!a.diff.empty()) {
    auto live = live_results(a.recording, a.diff);
    if (!live.ok()) return usage_error(live.status().message());
    ro.live_results = std::move(*live);
  }
  auto r = replay::replay_recording(a.recording, *trust, loaded.rules, ro);
  if (!r.ok()) return usage_error(r.status().message());
  if (a.diff.empty()) return print(*r, nullptr, a);
  auto live = replay::read_audit_decisions(a.diff, r->first, r->last);
  if (!live.ok()) return usage_error(live.status().message());
  const replay::DiffReport diff =
      replay::diff_decisions(replay::decision_lines(r->decisions), *live, *tolerance);
  return print(*r, &diff, a);
}

}  // namespace

void add_rules_replay(CLI::App& rules, int* exit_code) {
  auto a = std::make_shared<ReplayArgs>();
  const char* env = std::getenv("MEDIC_TRUST");
  if (env) a->trust = env;
  auto* sub = rules.add_subcommand(
      "replay", "run candidate rules over a recording (medic record) on a virtual clock");
  sub->add_option("recording", a->recording, "a recording directory or one segment file")
      ->required();
  sub->add_option("--rules", a->rules, "rule files, or directories of *.rules.yaml")->required();
  sub->add_option("--options", a->options,
                  "engine options: an engine.yaml (its policies) or a map of option keys");
  sub->add_option("--trust", a->trust,
                  "the trust store the signatures are verified against ($MEDIC_TRUST)");
  sub->add_option("--diff", a->diff, "compare with what the live engine decided (its audit log)");
  sub->add_option("--result-after", a->result_after,
                  "the replay answers each action `succeeded` this long after it")
      ->capture_default_str();
  sub->add_option("--tolerance", a->tolerance,
                  "--diff: a decision this close in time to a live one is the same one")
      ->capture_default_str();
  sub->add_flag("--json", a->json, "print JSON");
  sub->callback([a, exit_code] { *exit_code = run_replay(*a); });
}

}  // namespace medic::app
