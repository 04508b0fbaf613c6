// The engine side of action delivery: a ROUTER socket that the actuators'
// DEALERs connect to (routing id = host id), and at-least-once delivery on
// top of it.
//
// dispatch(action) seals the action and sends it to its host's actuator. Until
// the actuator acknowledges it (ActionAck RECEIVED), the same action id is
// re-sent in a fresh envelope (new seq, attempt+1) with exponential backoff;
// after the ack it is re-sent at the longest backoff, which lets a restarted
// actuator answer from its journal. No re-send goes out after expires_at. A
// host that is not connected (ROUTER_MANDATORY: EHOSTUNREACH) keeps its
// actions queued and retried until they expire; anything the host sends
// flushes its queue at once.
//
// Every ActionResult is answered with ActionAck RESULT_RECEIVED (even for an
// action this dispatcher does not know, so the actuator stops re-sending).
// An action whose result has not come by expires_at + watch + result_grace
// ends as timed out; one never handed to the host's socket by expires_at ends
// as timed out then (it cannot have run).
//
// Transitions reach the Sink, in order, from inside dispatch() and
// run_once(): dispatched (first send), acked, succeeded | failed | rejected |
// timed_out. The sink may call dispatch() again (escalation).
//
// Engine restart: dispatch() every action the audit outbox says is in flight
// before the first run_once(). An id already known to this Dispatcher is a
// no-op; after a restart it is simply sent again, and the actuator's journal
// guarantees it does not run twice.
//
// Threading: one thread owns the Dispatcher and its Clock.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include "actuators/log_limiter.h"
#include "core/action_state.h"
#include "core/clock.h"
#include "core/status.h"
#include "fabric/envelope.h"
#include "fabric/identity.h"
#include "fabric/party.h"
#include "fabric/transport.h"
#include "fabric/trust.h"
#include "medic/v1/actions.pb.h"

namespace medic::actuators {

struct DispatcherOptions {
  std::string endpoint;  // e.g. tcp://0.0.0.0:7002; tcp://127.0.0.1:* picks a port
  fabric::SocketOptions socket;
  Duration initial_backoff = std::chrono::milliseconds(200);
  Duration max_backoff = std::chrono::seconds(5);
  // The actuators' default watch, for actions with watch_ns 0.
  Duration default_watch = std::chrono::seconds(60);
  // Room for the actuator's execution timeout and the result's trip back.
  Duration result_grace = std::chrono::seconds(90);
  size_t max_per_host = 1024;        // unfinished actions per host
  size_t max_in_flight = 100'000;    // unfinished actions in total
  size_t remembered_finished = 10'000;  // ids kept to recognise late duplicates
  uint64_t epoch = 0;                // Sealer epoch; 0 = ms of the first seal
  // true: a result is acknowledged to the actuator as soon as it arrives.
  // false: the sink acknowledges it with ack_result() once it has recorded
  // it (the engine does when the result's audit row is durable), and a
  // result about an action already finished reaches the sink again (known =
  // false) instead of being acknowledged unseen. An unacknowledged result is
  // sent again by the actuator, so one the sink could not record is not lost.
  bool ack_results_on_receipt = true;
};

// One step of an action's delivery, in the shared lifecycle vocabulary
// (core/action_state.h): dispatched, acked, or a result (succeeded, failed,
// rejected, timed_out).
struct DispatchEvent {
  ActionState state = ActionState::kDispatched;
  medic::v1::Action action;                    // as last sent (attempt included)
  std::optional<medic::v1::ActionResult> result;  // for succeeded/failed/rejected
  std::string reason;                          // for timed_out
  Time at{};
  // Whether the action had been handed to the host's socket / acknowledged
  // by the actuator before this event (a timed_out action never acked may be
  // recorded as expired).
  bool delivered = false;
  bool acked = false;
  // False for a result about an action id this Dispatcher has no record of
  // (e.g. finished before an engine restart and not re-dispatched, or, with
  // ack_results_on_receipt off, finished already); only action.id and
  // action.host are set then.
  bool known = true;
};

// Why an inbound frame was refused (DispatcherStats::refused_by).
enum class Refusal : uint8_t {
  kFraming,        // not [routing id][envelope]
  kOpen,           // the envelope did not open (cause: open_counters())
  kNotActuator,    // not an actuator's, or for a host other than its connection's
  kBadAck,         // an acknowledgement that does not decode
  kBadResult,      // a result that does not decode, or names no action
  kForeignResult,  // a result on an action sent to another host
  kCount,
};
const char* refusal_name(Refusal r);

struct DispatcherStats {
  uint64_t dispatched = 0;     // dispatch() calls that created an entry
  uint64_t sends = 0;          // envelopes handed to the socket (incl. re-sends)
  uint64_t unreachable = 0;    // sends refused because the host is not connected
  uint64_t acks = 0;
  uint64_t results = 0;
  uint64_t duplicate_results = 0;
  uint64_t unknown_results = 0;
  uint64_t timed_out = 0;
  uint64_t refused = 0;        // inbound frames refused, of every cause
  uint64_t refused_by[static_cast<size_t>(Refusal::kCount)] = {};
};

class Dispatcher {
 public:
  using Sink = std::function<void(const DispatchEvent&)>;

  static Result<std::unique_ptr<Dispatcher>> create(DispatcherOptions options,
                                                    const fabric::Party& party, Sink sink);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts delivering `action` (id, host, vm, verb, expires_at_ns required).
  // Ok and nothing new when the id is already in flight. kFailedPrecondition
  // when it has already expired; kUnavailable when the host's queue or the
  // dispatcher is full.
  Status dispatch(const medic::v1::Action& action);

  // One step of the loop: waits for a message at most `max_wait` (less when
  // a timer is due sooner), handles everything readable, runs due timers.
  void run_once(Duration max_wait);
  // For a loop owned by someone else: poll socket() for ZMQ_POLLIN, then call
  // handle_readable(); run the Clock's due timers as usual.
  zmq::socket_t& socket() { return socket_; }
  void handle_readable();
  // Tells `host`'s actuator that its result for `action_id` is recorded, so
  // it stops sending it (with ack_results_on_receipt off).
  void ack_result(const std::string& host, const std::string& action_id) {
    send_result_ack(host, action_id);
  }

  // The bound endpoint, with the port the OS chose for "tcp://host:*".
  const std::string& endpoint() const { return endpoint_; }
  size_t in_flight() const { return entries_.size(); }
  bool knows(const std::string& action_id) const { return entries_.count(action_id) > 0; }
  const DispatcherStats& stats() const { return stats_; }
  const fabric::OpenCounters& open_counters() const { return opener_.counters(); }

 private:
  void refuse(Refusal why) {
    ++stats_.refused;
    ++stats_.refused_by[static_cast<size_t>(why)];
  }
  struct Entry {
    medic::v1::Action action;
    uint32_t attempt = 0;
    bool delivered = false;  // handed to the host's socket at least once
    bool acked = false;
    Duration backoff{};
    TimerId resend_timer = 0;
    TimerId deadline_timer = 0;
  };

  Dispatcher(DispatcherOptions options, fabric::Context& ctx, const fabric::Identity& identity,
             const fabric::TrustStore& trust, Clock& clock, Sink sink);
  Status start();

  void send(const std::string& id);
  void schedule_resend(Entry& e, const std::string& id);
  void on_deadline(const std::string& id);
  void on_expiry_undelivered(const std::string& id);
  void flush_host(const std::string& host);
  void handle_message(const std::string& routing_id, std::string_view frame);
  void handle_ack(const std::string& host, const medic::v1::ActionAck& ack);
  void handle_result(const std::string& host, const medic::v1::ActionResult& result);
  void send_result_ack(const std::string& host, const std::string& action_id);
  // Removes the entry and reports `ev` (after the entry is gone).
  void finish(const std::string& id, DispatchEvent ev);
  void remember_finished(const std::string& id);
  bool send_to(const std::string& host, medic::v1::Kind kind, const std::string& payload,
               bool* unreachable);
  void emit(const DispatchEvent& ev);
  Duration watch_for(const medic::v1::Action& action) const;

  DispatcherOptions opts_;
  fabric::Context& ctx_;
  const fabric::Identity& identity_;
  const fabric::TrustStore& trust_;
  Clock& clock_;
  Sink sink_;

  zmq::socket_t socket_;
  std::string endpoint_;
  fabric::Sealer sealer_;
  fabric::Opener opener_;
  LogLimiter log_;

  std::unordered_map<std::string, Entry> entries_;  // by action id
  std::unordered_map<std::string, std::unordered_set<std::string>> by_host_;
  std::unordered_set<std::string> finished_;        // recent finished ids
  std::deque<std::string> finished_order_;
  DispatcherStats stats_;
};

using DispatcherPtr = std::unique_ptr<Dispatcher>;

}  // namespace medic::actuators
