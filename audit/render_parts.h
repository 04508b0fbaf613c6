// The pieces `medic audit list/show/why` are printed from: times and spans
// for people, signed evidence read back into words, and lookups in an
// ActionHistory. Internal to audit/ (render.cc, why_story.cc, why_render.cc); the
// replay's printer (replay/render.cc) shares its times and padding.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "audit/log.h"
#include "core/json_fwd.h"
#include "core/text.h"
#include "medic/v1/actions.pb.h"

namespace medic::audit::internal {

// "2026-03-01 09:00:00.000Z" (UTC, milliseconds); "-" for time zero.
std::string utc(Time t);
// The same with a 'T': "2026-03-01T09:00:00.000Z".
std::string iso(Time t);
// Durations for people: "2.35s", "4m10s".
std::string span(Duration d);
std::string pad(std::string s, size_t n);
std::string rstrip(std::string s);
std::string comma_list(const std::vector<std::string>& items);

// One piece of evidence as people read it: one event of a signed batch, or a
// signed message as a whole.
struct EvidenceLine {
  Seq seq = 0;
  int32_t index = -1;
  Time observed{};
  std::string what;
  std::string vm;
  std::string vm_name;  // the VM's `name` label, when the event carries labels
  std::string host;
  std::string sender_name;
  std::string sender_key;
  bool signature_ok = false;
  Time last_heartbeat{};  // state reports: the last heartbeat they saw (0: none or not a report)
};

// The evidence `refs` point at, oldest first.
std::vector<EvidenceLine> evidence_lines(const ActionHistory& h,
                                         const std::vector<EvidenceRef>& refs);
// The `name` label of `vm` in any state report of the history's evidence, else "".
std::string vm_name_in(const ActionHistory& h, const std::string& vm);

const StoredEvidence* find_evidence(const ActionHistory& h, Seq seq);
const StoredTransition* find_state(const ActionHistory& h, ActionState s);
const StoredRequest* find_request(const ActionHistory& h, Seq seq);
// The actuator's signed ActionResult the latest transition rests on, if any.
bool action_result(const ActionHistory& h, medic::v1::ActionResult* out, const StoredEvidence** e);
const char* result_words(medic::v1::ActionResult::Outcome o);
// Where the action stands: its last state, else the decision's outcome.
std::string status_words(const ActionHistory& h);

Json decision_json(const StoredDecision& d);
Json transitions_json(const ActionHistory& h);
Json requests_json(const ActionHistory& h);
Json evidence_json(const std::vector<EvidenceLine>& lines);
Json verdicts_json(const ActionHistory& h);

}  // namespace medic::audit::internal
