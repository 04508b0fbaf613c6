// One engine process, composed: the event receiver (two lanes), the rules
// engine, the audit log, the action dispatcher and the operator control
// channel, on one thread and one Clock.
//
// The path of a decision:
//   signed batch -> EventReceiver (open + decode) -> rules::Engine::ingest
//   -> on_decision: decision + its "dispatched" transition appended to the
//      audit log (the outbox) together with the signed evidence it rests on
//   -> once that row is durable, Dispatcher::dispatch
//   -> ack / result from the actuator -> audit transition ->
//      rules::Engine::on_action_result (escalation, healing).
// No action leaves before its record is durable, so a crash at any point
// loses no decided action; after a restart every in-flight action in the log
// is dispatched again with the same id, and the actuator's journal keeps it
// from running twice. An append the log refuses is counted
// (stats().audit_errors); what it would have recorded is not acted on.
//
// State that outlives the process: each loop step is one StateStore unit, so
// the rows of what the rules engine changed in it (budgets, cooldowns,
// incidents, in-flight actions, silences, freezes, pending approvals) and the
// replay guards' marks commit in the same transaction as its audit rows. At
// start the node restores all of it before it reads a single event, gives
// every VM a full absence window, then resumes the in-flight actions.
//
// Degraded: while the audit log cannot be written (write_health() not OK) the
// node reads no events and no actuator messages (so it neither decides on
// new evidence nor acknowledges results it could not record), dispatches
// nothing, refuses operator requests but status, and says `degraded` with the
// cause in status; the store retries, and the node resumes by itself once a
// write succeeds.
//
// The parts: engine_config.{h,cc} (engine.yaml), engine_node.cc
// (composition, the loop step, evidence), engine_outbox.cc (decision
// recorder, outbox, results, resume after restart), engine_state.cc (state
// restore and commit, degraded mode), engine_requests.cc (operator
// requests), engine_action_requests.cc (`medic request`, with
// request_replies.{h,cc} for the replies that follow), engine_status.cc (the
// status text).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actuators/dispatcher.h"
#include "audit/log.h"
#include "core/clock.h"
#include "core/counters.h"
#include "core/event_loop.h"
#include "core/json_fwd.h"
#include "fabric/control.h"
#include "fabric/party.h"
#include "fabric/receiver.h"
#include "node/engine_config.h"
#include "node/loop_mailbox.h"
#include "node/request_replies.h"
#include "rules/engine.h"
#include "rules/loader.h"
#include "rules/notifier.h"

namespace medic::node {

// The id prefix of one engine start: `t` in milliseconds, base 36. The node
// takes `t` from its Clock at start, so two starts on one audit log must be
// at least a millisecond apart on that Clock (action ids never repeat).
std::string start_prefix(Time t);

// Hooks for the demo's timeline and for tests; every method is optional.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void on_batch(const medic::v1::EventBatch&, bool /*urgent*/) {}
  virtual void on_decision(const rules::Decision&) {}
  virtual void on_dispatch_event(const actuators::DispatchEvent&) {}
};

struct EngineNodeStats {
  uint64_t batches = 0;
  uint64_t events = 0;
  uint64_t decisions = 0;
  uint64_t dispatched = 0;
  uint64_t audit_errors = 0;
  uint64_t evidence_stored = 0;
  uint64_t evidence_lost = 0;  // evicted from memory before a decision needed it
  uint64_t resumed = 0;        // in-flight actions picked up at start
  uint64_t notifications = 0;
  uint64_t state_rows = 0;      // state rows committed (restored ones not counted)
  uint64_t restored_rows = 0;   // state rows read at start
  uint64_t degraded_spells = 0; // times the audit log became unwritable
};

class EngineNode final : public rules::DecisionSink, public fabric::ControlHandler {
 public:
  // Binds every socket, restores the state `store` holds (refusing to start
  // when it does not decode or the store cannot be written), then resumes
  // in-flight actions from it.
  // `observer` (optional) sees every batch, decision and dispatch event.
  static Result<std::unique_ptr<EngineNode>> create(const EngineConfig& config,
                                                    const fabric::Party& party,
                                                    std::shared_ptr<const rules::RuleSet> rules,
                                                    audit::AuditStorePtr store,
                                                    EngineObserver* observer = nullptr);
  ~EngineNode() override;

  // One step of the engine's EventLoop: waits at most `max_wait` (less when
  // a timer is due) for any socket, handles what is ready, runs due timers,
  // dispatches what the audit log has made durable.
  void run_once(Duration max_wait);

  // Swaps the rule set (SIGHUP); the caller has already loaded it cleanly.
  void reload(std::shared_ptr<const rules::RuleSet> rules);
  // Closes the audit log cleanly (final checkpoint). Idempotent.
  Status shutdown();

  std::string events_endpoint() const { return receiver_->bulk_endpoint(); }
  std::string urgent_endpoint() const { return receiver_->urgent_endpoint(); }
  std::string actions_endpoint() const { return dispatcher_->endpoint(); }
  std::string control_endpoint() const { return control_->endpoint(); }
  const EngineNodeStats& stats() const { return stats_; }
  rules::Engine& engine() { return *engine_; }
  const fabric::EventReceiver& receiver() const { return *receiver_; }
  size_t outbox_size() const { return outbox_.size(); }
  // Why the audit log cannot be written, while it cannot (OK otherwise).
  const Status& degraded() const { return degraded_; }
  const EngineConfig& config() const { return config_; }
  audit::AuditStore& store() { return *store_; }
  Clock& clock() { return party_.clock; }
  size_t rules_loaded() const { return rules_loaded_; }
  // Questions from other threads (the HTTP listener), answered on the loop.
  LoopMailbox& mailbox() { return mailbox_; }
  // A human summary: health, counters, pending approvals, silences, freezes.
  std::string status_text();
  // The same health figures and every counter of counters(), as JSON.
  Json status_json();
  // The process's counters: every part's rejections by cause and socket,
  // dropped batches, dispatcher refusals, the engine's own counts. Read it on
  // the node's thread (most are observed plain fields: core/counters.h).
  const CounterRegistry& counters() const { return counters_; }

  // rules::DecisionSink
  void on_decision(const rules::Decision& d) override;
  void on_heal_verdict(const rules::HealVerdict& v) override;
  // fabric::ControlHandler
  medic::v1::ControlReply handle(const medic::v1::ControlRequest& request,
                                 const fabric::Opened& opened, const std::string& peer) override;
  // Requests followed for their replies (engine_action_requests.cc).
  size_t followed_requests() const { return followers_.size(); }

 private:
  struct Envelope {
    uint64_t number = 0;
    Time received_at{};
    std::string frame;
    std::string sender;
    bool urgent = false;  // came on the urgent lane
  };
  struct Outgoing {
    audit::Seq seq = 0;
    medic::v1::Action action;
    Time decided_at{};  // zero for actions resumed after a restart
    Time urgent_at{};   // receipt of the earliest urgent event it rests on; zero if none
  };
  // An actuator's result, acknowledged once the row that records it is
  // durable (never before: an unacknowledged result is sent again).
  struct ResultAck {
    audit::Seq seq = 0;
    std::string host;
    std::string action_id;
  };

  EngineNode(const EngineConfig& config, const fabric::Party& party, audit::AuditStorePtr store,
             EngineObserver* observer);
  Status start(std::shared_ptr<const rules::RuleSet> rules);
  void drain_wakeups();

  // Evidence (engine_node.cc): recent envelopes, stored once a decision needs them.
  void on_batch(std::string_view frame, const fabric::Opened& opened,
                const medic::v1::EventBatch& batch, bool urgent);
  std::vector<audit::EvidenceRef> store_evidence(const std::vector<rules::EvidenceRef>& refs);
  // When the earliest urgent-lane event among `refs` was received; zero if none.
  Time urgent_receipt(const std::vector<rules::EvidenceRef>& refs) const;

  // The decision recorder and outbox (engine_outbox.cc): decision -> durable
  // audit row -> dispatch; results back into the log and the rules engine.
  void record_approved_step(const rules::Decision& d);
  void record_operator_outcome(const rules::Decision& d);
  audit::Decision decision_record(const rules::Decision& d);
  void record_verb(const rules::Decision& d);
  void record_notify(const rules::Decision& d);
  // The transition's row, or nothing when the log refused it.
  std::optional<audit::Seq> record_transition(const std::string& action_id, ActionState state,
                                              const std::string& actor, const std::string& detail);
  // Whether a result about an action the dispatcher does not know is to be
  // recorded; acknowledges at once the ones already finished or never ours.
  bool take_unknown_result(const actuators::DispatchEvent& e);
  void flush_outbox();
  void on_dispatch_event(const actuators::DispatchEvent& e);
  // Restart (engine_outbox.cc): picks up what the log says is unfinished.
  void resume_in_flight();
  void resume(const audit::InFlightAction& a, Time now);
  void resend(const audit::InFlightAction& a, Time now);
  void await_late_result(const audit::InFlightAction& a, Time now);
  void late_result_deadline(const std::string& action_id);
  Duration watch_of(const std::string& action_id) const;

  // State (engine_state.cc).
  Status restore_state(const rules::RuleSet& rules);
  void commit_state(bool all_marks);
  void check_health();
  void set_reading(bool on);

  // Operator requests (engine_requests.cc).
  medic::v1::ControlReply degraded_reply(const medic::v1::ControlRequest& request);
  Status answer(const medic::v1::ControlRequest& request, const std::string& who,
                audit::OperatorRequest* rec, medic::v1::ControlReply* reply);
  Status silence_request(const medic::v1::Silence& q, const std::string& who,
                         audit::OperatorRequest* rec, medic::v1::ControlReply* reply);
  Status check_silence(const rules::Silence& s, bool force, Duration length) const;
  Status unfreeze_request(const medic::v1::Unfreeze& q, const std::string& who,
                          audit::OperatorRequest* rec, medic::v1::ControlReply* reply);
  Status inject_request(const medic::v1::Inject& q, const std::string& request_id,
                        audit::OperatorRequest* rec, medic::v1::ControlReply* reply);
  Status vm_action_request(const medic::v1::ControlRequest& request, audit::OperatorRequest* rec,
                           medic::v1::ControlReply* reply);
  // Action requests (engine_action_requests.cc).
  Status action_request(const medic::v1::ControlRequest& request, const fabric::TrustedNode& who,
                        const std::string& peer, audit::OperatorRequest* rec,
                        medic::v1::ControlReply* reply);
  Result<std::vector<rules::VmView>> request_vms(const medic::v1::ActionRequest& q) const;
  Result<std::vector<rules::VmView>> request_scope(const medic::v1::ActionRequest& q,
                                                   const fabric::TrustedNode& who,
                                                   size_t* outside) const;
  rules::Request request_base(const medic::v1::ControlRequest& request, rules::Step step,
                              const fabric::TrustedNode& who, const audit::OperatorRequest& rec);
  RequestFollowers::Step request_one(rules::Request r, const std::string& vm, Json* entry);
  Result<std::string> clone_target(const medic::v1::ActionRequest& q,
                                   const fabric::TrustedNode& who) const;
  Status answer_request(const medic::v1::ControlRequest& request, const fabric::TrustedNode& who,
                        const std::string& peer, const rules::Request& base,
                        const std::vector<std::string>& targets, size_t outside,
                        audit::OperatorRequest* rec, medic::v1::ControlReply* reply);
  // A clone's Action carries its template and name, kept as the new VM's
  // labels in the rules engine (so a re-send after a restart has them too).
  void add_clone_args(medic::v1::Action* action) const;
  std::string out_of_scope(const fabric::TrustedNode& who, const rules::VmView& vm) const;
  void record_request_rows(audit::OperatorRequest& rec,
                           const std::vector<RequestFollowers::Step>& steps);
  // The id of the VM with this id or `name` label; empty when none.
  std::string vm_id_of(const std::string& id_or_name) const;
  // Keeps a signed envelope until a decision needs it as evidence; its number.
  uint64_t remember(Envelope e);
  // Operator queries (engine_queries.cc): text and JSON in one reply.
  void silences_reply(medic::v1::ControlReply* reply);
  void incidents_reply(medic::v1::ControlReply* reply);
  void hosts_reply(const medic::v1::HostsQuery& q, medic::v1::ControlReply* reply);
  Status vm_reply(const medic::v1::VmQuery& q, medic::v1::ControlReply* reply);

  // The event loop (engine_node.cc).
  void register_on_loop();
  // Puts every part's counts into counters_ (engine_status.cc).
  void register_counters();
  void register_dispatcher_counters(CounterRegistry& r);
  void register_latency_histograms(CounterRegistry& r);

  EngineConfig config_;
  fabric::Party party_;
  EngineObserver* observer_;  // may be null
  audit::AuditStorePtr store_;
  std::unique_ptr<rules::Engine> engine_;
  std::unique_ptr<fabric::EventReceiver> receiver_;
  std::unique_ptr<actuators::Dispatcher> dispatcher_;
  std::unique_ptr<fabric::ControlServer> control_;
  std::unique_ptr<rules::WebhookNotifier> notifier_;
  int wake_fd_ = -1;  // eventfd the audit writer pokes when rows become durable
  std::unique_ptr<EventLoop> loop_;
  uint64_t drained_in_ = 0;  // the loop iteration that last read the event sockets

  // Recent envelopes, newest last, until a decision needs them as evidence.
  std::deque<Envelope> recent_;
  size_t recent_bytes_ = 0;
  uint64_t next_envelope_ = 1;
  std::map<uint64_t, audit::Seq> stored_evidence_;  // envelope number -> audit row
  std::deque<Outgoing> outbox_;
  std::deque<ResultAck> result_acks_;  // in row order
  EngineNodeStats stats_;
  size_t rules_loaded_ = 0;
  CounterRegistry counters_;
  // Latency histograms in counters_ (register_counters).
  Histogram* decided_to_dispatched_ = nullptr;
  bool urgent_ended_turn_ = false;  // the last drain turn ended after urgent frames
  uint64_t urgent_read_ = 0;        // urgent batches accepted
  Histogram* urgent_to_dispatched_ = nullptr;
  Histogram* lane_lag_[2] = {nullptr, nullptr};  // bulk, urgent: sent -> read by the engine
  uint64_t events_by_type_[7] = {};  // by Event's body case (0: none); plain: the loop's own
  LoopMailbox mailbox_;
  RequestFollowers followers_;  // replies still owed to action requests
  bool started_ = false;        // start() went through: every part exists
  bool closed_ = false;

  // State and degraded mode (engine_state.cc).
  std::map<std::string, Duration> restored_watch_;  // action id -> heal_within
  std::map<std::string, bool> restored_approvals_;  // pending approvals the engine holds
  std::vector<TimerId> timers_;                     // late-result deadlines
  Time next_seen_refresh_{};
  Time next_marks_{};
  Status degraded_;
  std::vector<EventLoop::WatchId> reading_;  // event and actuator sockets, when read
  std::function<void()> drain_;              // reads both event lanes
};

// Maps the rules engine's evidence ref to (envelope number, event index).
constexpr int kEventIndexBits = 20;
inline rules::EvidenceRef make_evidence_ref(uint64_t envelope, uint32_t index) {
  return (envelope << kEventIndexBits) | (index & ((1u << kEventIndexBits) - 1));
}

}  // namespace medic::node
