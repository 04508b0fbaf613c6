// The rules engine: decoded events in, decisions out.
//
// Contract:
// - Single-threaded: every method, and every timer it puts on the Clock, runs
//   on the thread that owns the Clock. It never blocks and never does I/O;
//   decisions go to a DecisionSink, which must not call back into the engine.
// - It knows nothing of audit, dispatch or the network. The owner maps an
//   EvidenceRef to the signed envelope an event came in, sends proposed and
//   approved verb decisions to actuators, hands notify decisions to a notifier
//   (rules/notifier.h), and feeds back action results, operator requests and
//   host liveness.
// - Every decision says what rule (name and version) asked for what step on
//   which VM, on what evidence, and what became of it: proposed (dispatch it),
//   suppressed (by which policy, why), pending_approval, approved (dispatch
//   it), denied, expired, dry_run.
// - Safety policies are on by default (see EngineOptions) and applied in a
//   fixed order: silence, dry-run, host-silent, storm guard, cooldown, budget,
//   one action per VM in flight, host and fleet concurrency, approval
//   (rules/policy_chain.h). A decision lists the checks its step met
//   (Decision::checks); an approved step meets the same chain again.
// - What a restart must keep can be taken out (snapshot) and put into a
//   fresh engine (restore) as plain values (rules/engine_state.h).
//
// Inside: the fleet table (rules/fleet.h), triggers (rules/triggers.h), the
// incident book (rules/incident_book.h) and the policy chain.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/action_state.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "medic/v1/events.pb.h"
#include "rules/decision.h"
#include "rules/engine_state.h"
#include "rules/rule.h"

namespace medic::rules {


struct StormOptions {
  double host_fraction = 0.5;   // freeze a host when more than this share of its VMs turn bad
  double fleet_fraction = 0.2;  // freeze the fleet likewise
  uint32_t min_vms = 3;         // ... and at least this many
  Duration window = std::chrono::minutes(1);
  Duration quiet = std::chrono::minutes(5);  // unfreeze after this long with no new bad VM
  // A second VM of a host (of the fleet) turning bad within `settle` of the
  // one before holds actions on that scope for `settle`, so that a storm
  // arriving staggered is counted before it is acted on; 0 turns it off.
  Duration host_settle = std::chrono::seconds(10);
  Duration fleet_settle = std::chrono::seconds(10);
  // A scope that freezes again with no more bad VMs than its last page is
  // paged again only after this long.
  Duration repeat_interval = std::chrono::hours(4);
};

struct EngineOptions {
  PolicyDefaults defaults;
  uint32_t max_in_flight_per_host = 2;
  uint32_t max_in_flight_fleet = 10;
  // An action not delivered (started by its actuator) by decision +
  // action_ttl expires: the dispatcher stops re-sending it and the actuator
  // refuses it.
  Duration action_ttl = std::chrono::minutes(5);
  // No result by decision + action_timeout: the action timed out. Never
  // sooner than action_ttl + heal_within + result_grace (the actuator may
  // still answer until then), so the effective timeout is the larger one.
  Duration action_timeout = std::chrono::minutes(5);
  Duration result_grace = std::chrono::seconds(90);  // the dispatcher's result grace
  Duration host_silent_after = std::chrono::seconds(20);
  // A VM nothing was heard of for this long is no longer watched for
  // absence (it was deleted or moved away); any event from it re-arms it.
  Duration forget_vm_after = std::chrono::hours(1);
  StormOptions storm;
  bool dry_run = false;  // every rule in dry-run
  std::string id_prefix = "d";
  size_t max_evidence = 8;  // evidence refs kept per incident
};

// Reads engine options from a YAML map (the `options:` of a rule test file,
// or the rules section of an engine config) into *o, keeping defaults for
// keys that are absent; problems go to `r` with file:line:col. Keys:
// host_silent_after, forget_vm_after, action_ttl, action_timeout, max_in_flight_per_host,
// max_in_flight_fleet, dry_run, cooldown, budget, approval_timeout,
// heal_within, storm {host_fraction, fleet_fraction, min_vms, window, quiet}.
void read_engine_options(ConfigReader& r, const YAML::Node& n, EngineOptions* o);

struct EngineStats {
  uint64_t events = 0;
  uint64_t unknown_events = 0;  // no type, or no VM
  // Events of a VM id from a host that does not own it (rules/fleet.h): kept
  // apart as that host's own VM, never as the owner's.
  uint64_t vm_claims_refused = 0;
  uint64_t triggers = 0;
  uint64_t decisions = 0;
  size_t vms = 0;
  size_t hosts = 0;
  size_t open_incidents = 0;
  size_t pending_approvals = 0;  // open incidents whose step waits for an operator
  size_t in_flight = 0;
  size_t absence_keys = 0;
};

// One open incident as `medic incidents` shows it.
struct IncidentView {
  uint64_t id = 0;
  std::string rule;
  std::string vm;
  std::string vm_name;       // its `name` label, when its state reports carry one
  std::string host;
  std::string trigger;       // what opened it: "vm.panicked", "no vm.heartbeat for 30s", ...
  uint32_t step = 0;         // 1-based ladder position
  uint32_t ladder_size = 0;
  std::string step_name;     // what that step does: reboot, reset, ..., notify
  std::string state;         // open, acting, watching, held
  std::string waits_for;     // in words: what moves it on
  std::string action_id;     // acting, or awaiting approval
  Time deadline{};           // watching: heal by; awaiting approval: answer by; else 0
};

// One VM as `medic hosts --vms` shows it: what its last state report said.
struct VmView {
  std::string id;
  medic::v1::VmState state = medic::v1::VM_STATE_UNSPECIFIED;
  std::vector<std::pair<std::string, std::string>> labels;
  Time last_seen{};
  bool deleted = false;  // retired: deleted, or a clone that was never made
};

// One host as `medic hosts` shows it.
struct HostView {
  std::string name;
  Time last_seen{};
  bool silent = false;  // nothing heard for longer than host_silent_after
  bool frozen = false;  // by the storm guard
  size_t vms = 0;
  std::vector<VmView> vm_list;  // filled only when asked for (host_views(true))
};

// A request for one verb on one VM: a trigger of its own kind. It opens an
// incident under a built-in rule (request_rule_name) whose one step is the
// verb. An operator's request (`medic vm start|stop`) meets the policy chain
// as a step its requester already approved: facts still rule (a silent host,
// another action on the VM, free slots, dry run), what a person's yes
// overrides (silence, storm freeze, cooldown, budget) passes. A requester's
// (an application's, `medic request`) meets every policy, and waits for an
// operator's approval when its scope says so. A start is healed when the VM
// beats again, a stop when it reports stopped; a stop that is dispatched ends
// the VM's other incidents (it is no longer to be healed).
//
// A clone names no VM that exists: `vm` is the new VM's id (the caller
// chooses it), `host` the host whose template `template_name` it is made
// from, `vm_name` its name. The new VM joins the fleet table at once (on
// that host, labels name and template), so the request's incident has a VM,
// and it is healed when the clone beats; one that fails before its VM
// reported is retired. A delete is healed only when the actuator saw the VM
// gone; then it ends the VM's other incidents and the VM is retired (Fleet::
// retire): events still on their way for it are dropped, no rule acts on it
// again, and it no longer counts for the storm guard.
struct Request {
  std::string vm;  // id
  Step step = Step::kStart;
  std::string host;           // clone: where
  std::string template_name;  // clone: from what
  std::string vm_name;        // clone: the new VM's name
  std::string by;          // who asked (the key's name)
  std::string reason;      // why, in their words
  std::string request_id;  // the signed request's id, named in the decision's trigger
  EvidenceRef evidence = 0;
  bool by_operator = true;      // false: a requester's, which meets every policy
  bool needs_approval = false;  // a requester's that an operator must approve first
  // clone: how many clones `by` may make (count 0: no limit, an operator's).
  // The engine counts each clone that goes on (sent, waiting for a slot or
  // for approval) in its state (EngineState clones_by), and refuses one
  // past the limit before it makes the VM.
  Budget clones;
};

// The built-in rule a request for `s` runs under: "request:start", ... No
// rule file may name a rule so (the loader refuses the prefix).
std::string request_rule_name(Step s);
bool is_request_rule(std::string_view name);

class Engine {
 public:
  Engine(Clock& clock, std::shared_ptr<const RuleSet> rules, EngineOptions options,
         DecisionSink& sink);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One decoded event. Events without a VM only mark their host as seen.
  void ingest(const medic::v1::Event& event, EvidenceRef evidence);
  // The collector of `host` spoke (even with no VM events).
  void host_seen(const std::string& host, Time at);
  // What the actuator reported for an action id from a proposed/approved
  // decision. REQUIRES: is_result(outcome).
  void on_action_result(const std::string& action_id, ActionState outcome, bool healed,
                        const std::string& reason = "");

  Status approve(const std::string& action_id, const std::string& by);
  Status deny(const std::string& action_id, const std::string& by, const std::string& reason);
  // The step's first decision: proposed (dispatched; `by` names the
  // requester), suppressed (by which
  // policy, why; a wait for a slot keeps the incident open), or dry_run.
  // not_found for a VM the engine does not know; already_exists while a
  // request of the same verb on the VM is open; invalid_argument for notify.
  Result<Decision> request(const Request& r);
  // Returns the silence id.
  std::string silence(Silence s);
  Status unsilence(const std::string& id);
  // Lifts a storm-guard freeze on `host`, or on the fleet when host is empty.
  Status unfreeze(const std::string& host, const std::string& by);
  // Swaps the rule set. Incidents in progress finish with the rule they
  // started with; absence and count state carry over for rules that keep
  // their name and trigger.
  void reload(std::shared_ptr<const RuleSet> rules);

  // What a restart must keep, as of now.
  EngineState snapshot() const;
  // Takes `state` into this engine. REQUIRES: no event, host or operator
  // request was fed yet (else failed_precondition); every incident's rule is
  // in the rule set (else not_found, and the engine is unchanged only if it
  // fails before any incident: restore into a fresh engine).
  Status restore(const EngineState& state);
  // What changed since the last call (or the restore): every VM a decision,
  // result, incident or silence touched, new VMs, and (when `refresh_seen`)
  // VMs whose stored last-seen time lags the real one by more than
  // forget_vm_after / 2, so a restart knows which VMs are still alive.
  StateChanges take_changes(bool refresh_seen);
  // After a restart: every known VM gets a full `for` window from now before
  // an absent: rule can fire on it (the gap was the engine's own), and counts
  // as seen now when it was seen within forget_vm_after.
  void grant_absence_grace();

  EngineStats stats() const;
  bool frozen(const std::string& host) const;  // "" = the fleet
  // The silences held, by id (expired ones may linger until the engine next
  // purges them: compare `until` with the clock).
  std::vector<std::pair<std::string, Silence>> silences() const;
  // Every host the engine knows, by name, in the order it first heard of them.
  std::vector<std::string> hosts() const;
  // The open incidents, in the order they opened (rules/engine_views.cc).
  std::vector<IncidentView> incidents() const;
  // Every host the engine knows, in the order it first heard of them; with
  // `with_vms`, each with its VMs.
  std::vector<HostView> host_views(bool with_vms = false) const;
  // Whether any VM has this id, or any VM's last state report this label key.
  bool knows_vm(const std::string& id) const;
  bool knows_label_key(const std::string& key) const;
  bool knows_rule(const std::string& name) const;  // in the rule set now
  // The host VM `id` was last reported on; empty when unknown.
  std::string vm_host(const std::string& id) const;
  // VM `id`'s `name` label from its last state report; empty when none.
  std::string vm_name(const std::string& id) const;
  // VM `id`'s label `key`; empty when none.
  std::string vm_label(const std::string& id, const std::string& key) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace medic::rules
