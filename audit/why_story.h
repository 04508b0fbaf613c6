// The story `medic audit why` tells about one decision, gathered once from
// its ActionHistory so that the text and the JSON tell the same story.
// Internal to audit/.
//
// Contract: whether the VM healed is the engine's heal verdict (heal_verdicts
// rows), never the verb's success; a step that has no verdict says so. Ladder
// steps are 1-based. Notices (verb notify) are told as notices with their text.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "audit/render_parts.h"

namespace medic::audit::internal {

struct PolicyLine {
  std::string name;
  std::string verdict;  // "passed", "stopped", "waiting", "dry run"
  std::string reason;
};

// Another ladder step of the same incident, and why the engine climbed.
struct StepLink {
  std::string id;
  std::string verb;
  int ladder_step = 0;  // 1-based
  Time at{};            // when the engine judged the earlier step
  std::string why;      // the earlier step's verdict
};

struct ApprovalPart {
  // "not required", "not applicable", "waiting", "approved", "denied",
  // "expired", "requested" (a person's request is the yes)
  std::string state = "not required";
  std::string by;
  Time at{};
  std::string comment;  // from the signed request
  std::string detail;   // denial reason, expiry reason, re-checked policies
  Seq request = 0;      // the signed request row
  std::string key;      // its signer's short key id
  Time until{};         // waiting: the deadline
};

struct ActuatorPart {
  bool reported = false;  // a signed result is on record
  std::string outcome;    // succeeded, failed, rejected
  std::string reason;
  bool saw_healthy = false;  // the actuator's own look at the VM after the verb
  std::string by;
  std::string key;
  Seq row = 0;
  Time executed{}, finished{};
  std::string output;
  std::string summary;  // when no result is on record: where the action stands
};

struct HealPart {
  // "healed", "not healed", "not judged yet", "not applicable", "no verdict"
  std::string state;
  Time at{};
  std::string detail;
  Seq evidence = 0;           // the signed event that showed the heal
  std::optional<Time> since;  // when the problem began, by the evidence
  std::optional<Duration> took;
};

struct WhyStory {
  std::string id;  // action id, else decision id
  std::string decision_id;
  std::string kind;  // "action", "notice", "dry run"
  std::string verb, vm, vm_name, host;
  std::string status;  // last lifecycle state, else the decision's outcome
  std::string answer;  // the one-line answer
  std::string trigger;
  std::string notice;  // a notice's text
  std::vector<EvidenceLine> evidence;
  std::string rule, rule_version;
  int ladder_step = 1;
  Time decided_at{};
  std::vector<PolicyLine> policies;
  ApprovalPart approval;
  std::vector<std::string> refused;  // refused operator requests, in words
  std::optional<StepLink> previous, next;
  ActuatorPart actuator;
  HealPart heal;
  std::vector<StoredTransition> transitions;
  std::vector<StoredVerdict> verdicts;
};

WhyStory why_story(const ActionHistory& h);

}  // namespace medic::audit::internal
