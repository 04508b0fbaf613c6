// engine.yaml: what one engine process listens on, which rules it loads,
// where its audit log lives, and the engine-wide policies.
//
// Contract: load_engine_config reads the whole file in one pass and reports
// every problem with file:line:col, endpoint syntax included. The `policies:`
// section is read by the same reader as a rule test's `options:`
// (rules::read_engine_options), so the two take exactly the same keys with the
// same validation. `rules:` keeps its patterns: expand_rule_files turns them
// into files, at start and again at every reload, so a file added to a
// globbed directory is picked up by SIGHUP.
#pragma once

#include <string>
#include <vector>

#include "actuators/dispatcher.h"
#include "audit/log.h"
#include "core/duration.h"
#include "core/status.h"
#include "fabric/receiver.h"
#include "node/http_server.h"
#include "rules/engine.h"
#include "rules/notifier.h"

namespace medic::node {

// engine.yaml, `engine:` section. Relative paths are relative to the file.
struct EngineConfig {
  std::string name = "engine";
  std::string key_file;
  std::string trust_file;
  fabric::ReceiverEndpoints events;  // listen.events, listen.urgent
  std::string actions_endpoint;      // listen.actions
  std::string control_endpoint;      // listen.control
  std::vector<std::string> rule_patterns;  // rules:, resolved against the file's directory
  std::string audit_path;
  audit::StoreOptions audit;
  // policies:, and action_ttl / action_timeout at the top of `engine:`;
  // result_grace is dispatch.result_grace.
  rules::EngineOptions engine;
  // The longest silence an operator may ask for (`medic silence --for`).
  Duration max_silence = std::chrono::hours(24 * 7);
  rules::WebhookOptions notify;      // notify.webhook: where notify steps are POSTed
  actuators::DispatcherOptions dispatch;  // dispatch: re-send backoff, grace, limits
  HttpOptions http;                  // http: health, metrics, JSON API, page (none when absent)
};

Result<EngineConfig> load_engine_config(const std::string& path);

// The rule files `rule_patterns` name now: each pattern's glob matches in
// sorted order, duplicates dropped. A pattern that matches nothing stays in
// the list as it is, so the rule loader reports that file as unreadable.
std::vector<std::string> expand_rule_files(const EngineConfig& config);

// What changed between two expansions of the rule patterns.
struct RuleFileChanges {
  std::vector<std::string> added;    // in `after` only
  std::vector<std::string> removed;  // in `before` only
};
RuleFileChanges diff_rule_files(const std::vector<std::string>& before,
                                const std::vector<std::string>& after);

}  // namespace medic::node
