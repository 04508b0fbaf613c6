// Backtesting: candidate rules and policies run over a recording of the
// fabric (replay/recording.h) on a virtual clock, and what they would have
// decided compared with what the live engine did (its audit log).
//
// Contract:
// - Every frame is opened again as the engine opened it (fabric/envelope.h:
//   trust store, role, scope, signature, schema, skew and replay guard) with
//   the virtual clock at the frame's recorded arrival time. A frame that does
//   not open is refused: counted by cause, named by file@offset with the
//   reason, and nothing in it reaches the rules engine. So a replay rests only
//   on what collectors signed; a forged or altered envelope cannot change it.
// - The rules engine (rules/engine.h) is fed exactly as the engine node feeds
//   it: host_seen at arrival, then each event of the batch. Its timers
//   (absence, watches, storm quiet periods) run on the virtual clock between
//   frames. The replay ends at the last frame's arrival.
// - Nothing acts. The recording holds no actuator results and no operator
//   requests, so the replay stands in for both: each proposed or approved
//   verb gets the result `succeeded` (not seen healed) `result_after` later,
//   and whether the step healed is then the rule's heal signal in the
//   recorded events, as live; an approval-required step stays pending until
//   its approval times out. Given the live engine's results
//   (ReplayOptions::live_results, read from its audit log), a verb that
//   matches one the live engine dispatched (same VM, rule, verb and ladder
//   step, decided within match_within) gets the live result instead, after
//   the same delay: failed, timed out, refused or healed as it was.
// - Single-threaded; reads the recording as it goes (memory does not grow
//   with the recording's length, only with the decisions it produces).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json_fwd.h"
#include "core/status.h"
#include "fabric/envelope.h"
#include "fabric/trust.h"
#include "replay/recording.h"
#include "rules/engine.h"

namespace medic::replay {

// One decision in the terms both sides share (the audit log's decision row).
struct DecisionLine {
  Time at{};
  std::string vm;  // empty for the engine's host and fleet notices
  std::string host;
  std::string rule;          // "(engine)" for the engine's own notices
  std::string verb;          // reboot, reset, restart, stop, start, notify
  uint32_t ladder_step = 0;  // 1-based; 0 for the engine's notices
  std::string outcome;       // proposed, suppressed, pending_approval, dry_run
  std::string policy;        // the policy that stopped it, "" when none
  std::string id;            // the decision (or action) id on its side
  std::string reason;

  // "vm web-1", "host host-a" or "fleet": what a difference is listed under.
  std::string subject() const;
};

// What the live engine's actuator answered for one of its actions, for the
// replay to answer the same (see the contract above).
struct LiveResult {
  DecisionLine decision;  // the live decision the action came from
  Duration after{0};      // from that decision to the result
  ActionState outcome = ActionState::kSucceeded;
  bool healed = false;  // the actuator saw the VM healthy
  std::string detail;
};

struct ReplayOptions {
  rules::EngineOptions engine;
  // The simulated actuator's answer comes this long after a verb's decision.
  Duration result_after = std::chrono::seconds(1);
  fabric::OpenLimits limits;      // as the engine's receiver: 4 MiB frames, 30 s skew
  size_t max_refusals_kept = 20;  // refusal messages kept (all are counted)
  // What the live engine's actuators answered (read_audit_results); empty:
  // every verb gets the stand-in's answer.
  std::vector<LiveResult> live_results;
  Duration match_within = std::chrono::seconds(2);
};

// A frame the replay refused, with where it is in the recording.
struct Refusal {
  std::string where;  // FILE@OFFSET
  std::string cause;  // an open() cause (bad_signature, unknown_sender, ...) or "undecodable"
  std::string detail;
};

struct ReplayResult {
  std::vector<rules::Decision> decisions;  // in the order the engine made them
  uint64_t frames = 0;                     // records read
  uint64_t batches = 0;                    // frames that opened and decoded
  uint64_t events = 0;
  uint64_t refused = 0;
  std::map<std::string, uint64_t> refused_by_cause;
  std::vector<Refusal> refusals;  // the first max_refusals_kept
  std::vector<ReadProblem> read_problems;
  std::vector<std::string> segments;
  uint64_t answered_as_live = 0;      // verbs given the live engine's result
  uint64_t answered_by_stand_in = 0;  // verbs given `succeeded` after result_after
  Time first{}, last{};               // arrival of the first and last frame (0 when none)
  rules::EngineStats engine;

  // Whether the recording read whole and every frame opened.
  bool clean() const { return refused == 0 && read_problems.empty(); }
};

// Feeds frames, one by one, to a rules engine on a virtual clock. The clock
// starts at the first frame's arrival.
class Replayer final : public rules::DecisionSink {
 public:
  Replayer(const fabric::TrustStore& trust, std::shared_ptr<const rules::RuleSet> rules,
           ReplayOptions options);
  ~Replayer() override;

  // One recorded frame; `where` names it in a refusal. Frames must come in
  // recording order (an arrival time before the clock's is taken as now).
  void feed(const RecordedFrame& frame, const std::string& where);
  // The result so far (decisions, counts). The replayer can go on after it.
  const ReplayResult& result();

  void on_decision(const rules::Decision& d) override;

 private:
  void start(Time at);
  void refuse(const std::string& where, std::string cause, std::string detail);
  // The unused live result for `d`'s action, if one matches; marks it used.
  const LiveResult* take_live_result(const rules::Decision& d);

  const fabric::TrustStore& trust_;
  std::shared_ptr<const rules::RuleSet> rules_;
  ReplayOptions options_;
  std::unique_ptr<VirtualClock> clock_;
  std::unique_ptr<fabric::Opener> opener_;
  std::unique_ptr<fabric::BatchDecoder> decoder_;
  std::unique_ptr<rules::Engine> engine_;
  fabric::Opened opened_;
  uint64_t next_envelope_ = 1;
  std::vector<bool> live_used_;  // parallel to options_.live_results
  ReplayResult result_;
};

// Reads the recording at `path` (directory or segment) through a Replayer.
// Errors: only a recording that cannot be opened at all; damage inside it is
// in read_problems.
Result<ReplayResult> replay_recording(const std::string& path, const fabric::TrustStore& trust,
                                      std::shared_ptr<const rules::RuleSet> rules,
                                      const ReplayOptions& options);

// ---- comparing with the live engine --------------------------------------

// The decisions a replay made that the audit log also keeps as decision rows
// (proposed, suppressed, pending_approval, dry_run; not the operator's and the
// timers' answers: approved, denied, expired).
std::vector<DecisionLine> decision_lines(const std::vector<rules::Decision>& decisions);
// The audit log's decisions made in [from, until], oldest first.
Result<std::vector<DecisionLine>> read_audit_decisions(const std::string& db, Time from,
                                                       Time until);
// The results of the verbs the audit log's decisions since `since` dispatched
// (the first result transition of each action: succeeded, failed, timed_out
// or rejected), oldest decision first.
Result<std::vector<LiveResult>> read_audit_results(const std::string& db, Time since);

struct DiffEntry {
  enum class Kind : uint8_t { kAdded, kRemoved, kChanged };
  Kind kind = Kind::kAdded;
  std::optional<DecisionLine> candidate;  // added, changed
  std::optional<DecisionLine> live;       // removed, changed
  std::vector<std::string> changes;       // changed: "verb reset -> restart", ...
};
const char* diff_kind_name(DiffEntry::Kind k);

struct DiffReport {
  size_t same = 0;
  // By subject ("vm web-1", "host host-a", "fleet"), each in time order.
  std::map<std::string, std::vector<DiffEntry>> by_subject;
  size_t added = 0, removed = 0, changed = 0;
  bool empty() const { return added + removed + changed == 0; }
};

// Pairs the candidate's decisions with the live ones per subject:
//  1. same rule, verb, ladder step, outcome and policy, arriving within
//     `tolerance` of each other: the same;
//  2. of those left, the same rule within `tolerance`: changed (the fields
//     that differ are listed);
//  3. the rest: added (the candidate only) or removed (live only).
DiffReport diff_decisions(const std::vector<DecisionLine>& candidate,
                          const std::vector<DecisionLine>& live, Duration tolerance);

// ---- output (the CLI's; tested here so it stays readable) -----------------

std::string replay_text(const ReplayResult& r, const std::string& recording);
Json replay_json(const ReplayResult& r, const std::string& recording);
std::string diff_text(const DiffReport& d, const std::string& audit_db);
Json diff_json(const DiffReport& d, const std::string& audit_db);

}  // namespace medic::replay
