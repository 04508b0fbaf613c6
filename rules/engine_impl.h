// Inside the Engine (rules/engine.h): how its parts are wired. Not for use
// outside rules/.
//
// The Impl owns the parts and moves incidents along:
// - ingest: fleet table (facts, last seen) -> triggers -> a batch of
//   triggers -> open incidents -> each meets the policy chain for its step;
// - a step that passes is dispatched (a verb: in flight until its result or
//   timeout) or sent (notify), then watched for heal_within;
// - a step that did not heal moves the incident up its ladder.
// Its functions live in engine.cc (events and triggers), engine_steps.cc
// (steps, results, operators) and engine_snapshot.cc (snapshot/restore).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "rules/engine.h"
#include "rules/fleet.h"
#include "rules/incident_book.h"
#include "rules/policy_chain.h"
#include "rules/triggers.h"

namespace medic::rules {

struct Engine::Impl {
  Impl(Clock& c, std::shared_ptr<const RuleSet> r, EngineOptions o, DecisionSink& s);
  ~Impl();

  // ---- events and triggers (engine.cc)
  int64_t now_ns() const { return to_ns(clock_.now()); }
  uint32_t host_index(const std::string& name);
  void host_seen(uint32_t h, int64_t at);
  void ingest(const medic::v1::Event& e, EvidenceRef ref);
  uint32_t note_vm(const medic::v1::Event& e, uint32_t h, EventType type, EvidenceRef ref,
                   int64_t now);
  void note_claim(uint32_t v, int64_t now);
  void match_rules(uint32_t v, EventType type, const medic::v1::Event& e, EvidenceRef ref,
                   int64_t now);
  void on_absence_due();
  void process_batch();
  void open_incident(Trigger& t);
  void observe_heal(uint32_t v, EventType type, const medic::v1::Event& e, EvidenceRef ref);
  // The open incident of `key`, if any and not a hold that is over.
  Incident* live_incident(const std::string& key, int64_t now);
  void add_evidence(Incident& inc, EvidenceRef ref) const;
  template <typename Pred>
  void release_held(Policy policy, const std::string& why, Pred pred);
  void schedule_sweep();

  // ---- steps (engine_steps.cc)
  std::string next_id() { return opt_.id_prefix + "-" + std::to_string(++id_counter_); }
  Decision base(const Incident& inc);
  void emit(const Decision& d);
  void notice(Decision d);
  void attempt_step(Incident& inc);
  void run_step(Incident& inc, Decision& d);
  void stopped(Incident& inc, Decision& d, const PolicyCheck& by);
  void suppress(Incident& inc, Decision& d, Policy p, std::string reason);
  void hold(Incident& inc, Decision& d, const PolicyCheck& by);
  void arm_hold_timer(Incident& inc);
  void on_hold_end(IncidentId id);
  void settle_end(Incident& inc);
  // Ends a hold: its verdict (`why` it lifted), then the incident closes.
  void release(Incident& inc, const std::string& why);
  void wait_for_slot(Incident& inc, Decision& d, Policy p, std::string reason);
  void await_approval(Incident& inc, Decision& d, std::string reason);
  std::string notify_text(const Incident& inc) const;
  void dispatch(Incident& inc, Decision& d, Outcome outcome);
  Duration result_timeout(Duration heal_within) const;
  // `expires`: when the action times out if no result came.
  void start_action(const std::string& id, uint32_t vm, uint32_t host, Time expires);
  void watch(Incident& inc, Time until);
  // A verb's result came and the VM is not healed yet (engine_steps.cc).
  void watch_after_result(Incident& inc);
  void arm_watch(Incident& inc, Time until);
  void note_progress(Incident& inc, EventType type, const medic::v1::Event& e);
  void on_watch_end(IncidentId id);
  // The step did not heal (`why`): its verdict, then the next ladder step or
  // the end of the ladder.
  void advance(Incident& inc, const std::string& why);
  void close(Incident& inc, IncidentEnd end);
  // Closes `inc` as healed, reporting `how` as its current step's verdict.
  void close_healed(Incident& inc, const std::string& how, EvidenceRef ref);
  void verdict(const Incident& inc, bool healed, std::string detail, std::string next,
               EvidenceRef ref);

  // ---- results and operators (engine_steps.cc)
  void release_slot(const std::string& id);
  void result(const std::string& id, ActionState outcome, bool healed, const std::string& reason);
  void pump_waiting();
  void arm_approval_timer(Incident& inc);
  void on_approval_timeout(IncidentId id);
  Incident* pending(const std::string& action_id);
  Status approve(const std::string& id, const std::string& by);
  Status deny(const std::string& id, const std::string& by, const std::string& reason);
  void reload(std::shared_ptr<const RuleSet> rules);

  // ---- requests (engine_requests.cc)
  Result<Decision> request(const Request& r);
  // The rule of that name: a built-in request rule, or one of the rule set.
  const RulePtr* rule_named(const std::string& name) const;
  // A dispatched stop: the VM's other incidents end (it is not to be healed).
  // A dispatched stop ends the VM's other incidents (engine_requests.cc).
  void end_others(const Incident& stop, const std::string& by);
  // note_vm's answer for an event of a retired VM (dropped).
  static constexpr uint32_t kRetiredVm = std::numeric_limits<uint32_t>::max();
  // A clone's new VM, entered in the fleet table on its host.
  Result<uint32_t> clone_vm(const Request& q);
  // kFailedPrecondition when q.by has made q.clones.count clones within
  // q.clones.window; prunes older ones.
  Status clone_allowance(const Request& q);
  void count_clone(const Request& q);
  // A deleted VM: its other incidents end and nothing watches it any more.
  void retire(uint32_t v, const std::string& why);

  // ---- snapshot and restore (engine_snapshot.cc)
  EngineState snapshot() const;
  Status restore(const EngineState& s);
  void restore_fleet(const EngineState& s);
  void restore_books(const EngineState& s);
  Status restore_incident(const IncidentRecord& r);
  StateChanges take_changes(bool refresh_seen);
  void changed_vms_into(StateChanges* c);
  void changed_silences_into(StateChanges* c);
  void engine_values_into(EngineState* s) const;
  void grant_absence_grace();
  void reset_changes(const EngineState& s);
  // What take_changes() reports: marked where the state a restart must keep
  // changes (decisions, results, incidents, new VMs, silences, freezes).
  void touch_vm(uint32_t v);
  void touch_host(uint32_t h);
  void touch_decision(const Decision& d);

  struct InFlight {
    uint32_t vm;
    uint32_t host;  // whose slot it holds
    Time expires;
    TimerId timeout;
  };

  Clock& clock_;
  std::shared_ptr<const RuleSet> rules_;
  EngineOptions opt_;
  DecisionSink& sink_;
  EngineStats stats_;

  Fleet fleet_;
  AbsenceWatch absence_;
  CountWindows counts_;
  IncidentBook book_;
  PolicyChain chain_;
  std::vector<RulePtr> request_rules_;  // one per verb, in Step order
  std::unordered_map<std::string, InFlight> in_flight_;
  std::deque<IncidentId> waiting_;  // for a slot, in the order they asked
  TimerId sweep_timer_ = 0;
  uint64_t id_counter_ = 0;
  bool touched_ = false;  // anything was fed (restore is refused after)
  // The clones each requester made, by its key's name: when accepted (ns).
  std::map<std::string, std::vector<int64_t>> clones_by_;

  // Changes since the last take_changes(), by index; stored_seen_[v] is the
  // last-seen time the store was last given for VM v.
  std::vector<uint32_t> dirty_vms_;
  std::vector<uint8_t> vm_dirty_;
  std::vector<uint32_t> dirty_hosts_;
  std::vector<uint8_t> host_dirty_;
  std::vector<int64_t> stored_seen_;
  std::vector<std::string> stored_silences_;  // ids, as last given to the store
  bool silences_dirty_ = false;
  bool engine_dirty_ = false;

  std::vector<Trigger> batch_;
  std::vector<AbsenceWatch::Due> due_buf_;
  std::vector<uint32_t> candidate_buf_;  // RuleSet::candidates scratch
  std::string key_buf_;                  // incident key of the trigger at hand
};

// How the heal signal of rule `r` reads in a verdict ("vm.heartbeat came back").
std::string heal_words(const Rule& r);

// The built-in rules requests run under, one per verb (engine_requests.cc).
std::vector<RulePtr> request_rules(const PolicyDefaults& d);

// Records of one incident, VM (with its policy books) and host, as snapshot()
// and take_changes() give them (engine_snapshot.cc).
IncidentRecord incident_record(const Incident& inc, const Fleet& fleet);
VmRecord full_vm_record(uint32_t v, const Fleet& fleet, const PolicyChain& chain);
HostRecord host_record(uint32_t h, const Fleet& fleet, const PolicyChain& chain);

// Releases the incidents held by `policy` that `pred` accepts, saying `why`.
// A trigger that still holds opens a fresh incident, which meets the
// policies again.
template <typename Pred>
void Engine::Impl::release_held(Policy policy, const std::string& why, Pred pred) {
  std::vector<Incident*> done;
  for (const Incident* c : book_.all()) {
    if (c->state == IncidentState::kHeld && c->held_by == policy && pred(*c))
      done.push_back(book_.find(c->id));
  }
  for (Incident* inc : done) release(*inc, why);
}

}  // namespace medic::rules
