// The actuator for one host: receives signed actions from the engine,
// executes each action id at most once, and reports what happened.
//
// Protocol (docs/actuators.md has the full story):
//   engine --Action--> actuator       re-sent with the same id until acked/expired
//   actuator --ActionAck(RECEIVED)--> at once, after the id is journaled
//   actuator --ActionResult-->        succeeded / failed / rejected (+ healed)
//   engine --ActionAck(RESULT_RECEIVED)--> stops the actuator's result re-sends
//
// Every action envelope must be signed by a configured engine key
// (ActuatorOptions::engine_key or engine_keys) that the trust store lists with
// the `engine` role, addressed to
// this host, fresh and not replayed (fabric::Opener); the action must not be
// expired, must name a known verb and a VM of this host (a clone: a template
// and the new VM's name; it runs Hypervisor::begin_clone). A frame that fails
// those checks after its engine signature verified is answered with a signed
// `rejected` result; a frame that cannot be attributed to a trusted engine
// (unknown key, bad signature, wrong role, wrong host, malformed, replayed) is
// counted and logged, never answered.
//
// Once-only: the journal (actuators/journal.h) records `executing` with an
// fsync before the backend is touched. A duplicate delivery gets the ack (and
// the result when done) again, never a second execution. An action found in
// `executing` after a restart ends as failed with kRestartedDuringExecution.
//
// Healing: after a verb succeeds the VM is watched for Action.watch_ns
// (default from the options); the single result goes out as soon as the VM is
// seen running with a heartbeat no older than the moment the verb was issued
// (for a stop: seen stopped; for a delete: gone) (healed=true), or when the watch ends
// (healed=false).
//
// Threading: one thread owns the Actuator, its Clock, its Hypervisor and the
// EventLoop it is registered on. The Actuator never sleeps: the loop waits on
// its socket at most until the next timer is due.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "actuators/journal.h"
#include "actuators/log_limiter.h"
#include "core/clock.h"
#include "core/counters.h"
#include "core/event_loop.h"
#include "core/status.h"
#include "core/subprocess.h"
#include "fabric/connection_monitor.h"
#include "fabric/envelope.h"
#include "fabric/identity.h"
#include "fabric/party.h"
#include "fabric/transport.h"
#include "fabric/trust.h"
#include "medic/v1/actions.pb.h"
#include "vmm/hypervisor.h"

namespace medic::actuators {

struct ActuatorOptions {
  std::string host;             // must equal the Hypervisor's host()
  std::string engine_endpoint;  // e.g. tcp://engine.example:7002
  // The engine at engine_endpoint: pins the CurveZMQ server key, and its
  // actions are accepted.
  fabric::PublicKey engine_key{};
  // Further engine keys whose signed actions are accepted (several engines).
  // An action or acknowledgement signed by any other key, even one with the
  // engine role in the trust store, is refused (OpenError::kUnpinnedSender).
  std::vector<fabric::PublicKey> engine_keys;
  std::string journal_path;
  Duration journal_busy_timeout = std::chrono::seconds(5);
  fabric::SocketOptions socket;  // routing_id is set to `host`

  Duration default_watch = std::chrono::seconds(60);  // when Action.watch_ns is 0
  Duration max_watch = std::chrono::minutes(30);      // longer requests are clamped
  Duration watch_poll = std::chrono::seconds(1);      // VM check interval while watching
  Duration execute_timeout = std::chrono::seconds(60);
  // Actions expiring further ahead than this are rejected: the journal must
  // remember an id for longer than the action can be delivered.
  Duration max_action_lifetime = std::chrono::hours(1);
  Duration retention = std::chrono::hours(24);  // done entries kept this long
  Duration prune_interval = std::chrono::minutes(10);
  Duration result_initial_backoff = std::chrono::milliseconds(200);
  Duration result_max_backoff = std::chrono::seconds(30);

  // Optional external command for VERB_RESTART, run instead of the backend's
  // restart. Elements "{vm}" and "{host}" are replaced; never a shell.
  std::vector<std::string> restart_hook;
  size_t max_hook_output = 16 * 1024;  // bytes of stdout+stderr kept in the result

  // When true, the actuator's loop also waits on the Hypervisor's fds and
  // calls its poll() (standalone `medic actuator`); false when another
  // component on the same loop (the collector) drives it.
  bool drive_hypervisor = false;

  // Test hook: called at "before_journal" (about to write `executing`),
  // "after_journal" (the executing record is durable, the backend not yet
  // touched) and "after_execute". Empty in production.
  std::function<void(std::string_view point)> failpoint;
};

// Why a trusted engine's action was refused.
enum class Rejection : uint8_t {
  kMalformed,      // payload is not an Action, or has no id
  kWrongHost,      // Action.host differs from the envelope's (our) host
  kExpired,
  kNoExpiry,
  kExpiryTooFar,   // beyond max_action_lifetime
  kUnknownVerb,
  kVmNotHere,
  kClockSkew,      // envelope stale or from the future (signature was good)
  kCount,
};
const char* rejection_name(Rejection r);

struct ActuatorStats {
  uint64_t actions_received = 0;   // new action ids accepted into the journal
  uint64_t duplicates = 0;         // deliveries of an id already journaled
  uint64_t executed = 0;           // verbs handed to the backend or hook
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t healed = 0;
  uint64_t rejected = 0;           // answered with a rejected result
  uint64_t rejected_by[static_cast<size_t>(Rejection::kCount)] = {};
  uint64_t unattributed = 0;       // frames dropped without an answer
  uint64_t results_sent = 0;       // including re-sends
  uint64_t results_acked = 0;
  uint64_t recovered_unknown = 0;  // found executing after a restart
  uint64_t send_failures = 0;
};

class Actuator final : private EventSource {
 public:
  // Opens the journal, recovers unfinished entries (see the header comment)
  // and connects to the engine. All references must outlive the Actuator.
  // `loop`: the loop to register the engine socket (and, with
  // drive_hypervisor, the backend) on; null for a loop of its own.
  static Result<std::unique_ptr<Actuator>> create(ActuatorOptions options,
                                                  const fabric::Party& party,
                                                  vmm::Hypervisor& hypervisor,
                                                  EventLoop* loop = nullptr);
  ~Actuator() override;
  Actuator(const Actuator&) = delete;
  Actuator& operator=(const Actuator&) = delete;

  // One iteration of the loop the actuator is registered on: waits for a
  // message at most `max_wait` (less when a timer is due sooner), handles
  // everything readable, executes queued actions, runs due timers.
  void run_once(Duration max_wait);
  EventLoop& loop() { return *loop_; }
  // Feeds a hypervisor event (from the collector's subscription) so a watched
  // VM's heartbeat is noticed at once instead of at the next watch poll.
  void on_vm_event(const vmm::VmEvent& event);

  // From now on, each verb that finishes executing observes, in `counters`'
  // histogram urgent_event_to_executed_seconds{event}, the time from the
  // first failure event of its VM (panicked, crashed, watchdog,
  // unresponsive) since that VM's last action. One clock, one host: the
  // whole loop from the hypervisor's report through the engine and back.
  void set_latency_registry(CounterRegistry* counters) { latency_ = counters; }

  const ActuatorStats& stats() const { return stats_; }
  // Whether the socket to the engine is connected now (ZeroMQ's monitor).
  bool connected() const { return monitor_ && monitor_->connected(); }
  const fabric::OpenCounters& open_counters() const { return opener_.counters(); }
  size_t watching() const { return watches_.size(); }
  size_t results_unacked() const { return resends_.size(); }
  Journal& journal() { return *journal_; }

 private:
  struct Watch {
    medic::v1::Action action;
    Time started_at{};
    Time deadline{};
    TimerId poll_timer = 0;
    std::string output;  // of the restart hook, carried into the result
  };
  struct Resend {
    medic::v1::ActionResult result;
    Duration backoff{};
    TimerId timer = 0;
  };

  Actuator(ActuatorOptions options, fabric::Context& ctx, const fabric::Identity& identity,
           const fabric::TrustStore& trust, vmm::Hypervisor& hypervisor, Clock& clock);
  Status start(EventLoop* loop);
  Status recover();
  // EventSource: the backend's descriptors (with drive_hypervisor) and the
  // queue of actions to execute.
  void prepare(std::vector<pollfd>* fds, Duration* wait) override;
  void dispatch(const pollfd* fds, size_t n) override;
  void handle_readable();

  void handle_frame(std::string_view frame);
  void handle_unopened(fabric::OpenError error, const fabric::Opened& opened,
                       const std::string& detail);
  void handle_action(const fabric::Opened& opened);
  void handle_result_ack(const fabric::Opened& opened);
  // Returns the reason an accepted-for-parsing action must be refused, or
  // nullopt when it may be executed.
  std::optional<std::pair<Rejection, std::string>> check(const medic::v1::Action& action,
                                                         const medic::v1::Envelope& env);
  void answer_duplicate(const JournalEntry& entry);
  void reject(const medic::v1::Action& action, Rejection why, const std::string& reason);

  void execute_queued();
  void execute(const medic::v1::Action& action);
  void reject_expired(const medic::v1::Action& action);
  bool journal_executing(const medic::v1::Action& action);
  void execute_inject(const medic::v1::Action& action, Time started_at);
  // The verb's answer: a failed result, a healed one, or a watch.
  void on_verb_done(const medic::v1::Action& action, Time started_at, std::string output,
                    Status done);
  void start_restart_hook(const medic::v1::Action& action, Time started_at);
  void end_restart_hook(const std::string& action_id);
  Status hook_outcome(const std::string& program, const RunResult& run,
                      std::string* output) const;
  // Whether the VM is as the verb meant: stopped, gone (delete), or running
  // with a heartbeat since `since`.
  bool goal_reached(const medic::v1::Action& action, Time since);
  static const char* goal_words(medic::v1::Verb verb);
  void start_watch(const medic::v1::Action& action, Time started_at, Time deadline,
                   std::string output = {});
  // from_event: called for a VM event, not by the watch's own poll timer.
  void check_watch(const std::string& id, bool from_event);
  void finish(const medic::v1::Action& action, medic::v1::ActionResult result);

  void send_ack(const std::string& action_id);
  void send_result(const medic::v1::ActionResult& result);
  void queue_result(const medic::v1::ActionResult& result);
  void resend_result(const std::string& id);
  bool send_frame(medic::v1::Kind kind, const std::string& payload);
  void prune();

  Duration watch_for(const medic::v1::Action& action) const;

  ActuatorOptions opts_;
  fabric::Context& ctx_;
  const fabric::Identity& identity_;
  const fabric::TrustStore& trust_;
  vmm::Hypervisor& hv_;
  Clock& clock_;

  std::unique_ptr<EventLoop> own_loop_;  // when create() was given none
  EventLoop* loop_ = nullptr;
  EventLoop::WatchId socket_watch_ = 0;
  EventLoop::WatchId monitor_watch_ = 0;
  EventLoop::WatchId source_watch_ = 0;
  std::unique_ptr<Journal> journal_;
  zmq::socket_t socket_;
  std::unique_ptr<fabric::ConnectionMonitor> monitor_;  // after socket_: stops before it closes
  fabric::Sealer sealer_;
  fabric::Opener opener_;
  LogLimiter log_;

  std::deque<medic::v1::Action> exec_queue_;
  std::map<std::string, Watch> watches_;    // by action id
  struct HookRun {
    ChildProcessPtr child;
    EventLoop::WatchId watch = 0;
  };
  std::map<std::string, HookRun> hooks_;    // running restart hooks, by action id
  std::vector<HookRun> ended_hooks_;        // destroyed at the next prepare()
  std::map<std::string, Resend> resends_;   // results awaiting the engine's ack
  TimerId prune_timer_ = 0;
  ActuatorStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  struct Failure {
    Time at{};
    medic::v1::Lifecycle what{};
  };
  CounterRegistry* latency_ = nullptr;
  std::map<std::string, Failure> failed_vms_;  // by VM: first failure since its last action
  std::map<std::string, Failure> failure_of_;  // by action id, while it executes
};

using ActuatorPtr = std::unique_ptr<Actuator>;

}  // namespace medic::actuators
