#include "actuators/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "core/duration.h"
#include "vmm/hypervisor.h"

namespace medic::actuators {

const char* refusal_name(Refusal r) {
  switch (r) {
    case Refusal::kFraming:
      return "framing";
    case Refusal::kOpen:
      return "open";
    case Refusal::kNotActuator:
      return "not_actuator";
    case Refusal::kBadAck:
      return "bad_ack";
    case Refusal::kBadResult:
      return "bad_result";
    case Refusal::kForeignResult:
      return "foreign_result";
    case Refusal::kCount:
      break;
  }
  return "?";
}
namespace {

using medic::v1::Action;
using medic::v1::ActionAck;
using medic::v1::ActionResult;

int poll_timeout_ms(Duration wait) {
  if (wait <= Duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

ActionState state_for(ActionResult::Outcome o) {
  switch (o) {
    case ActionResult::OUTCOME_SUCCEEDED: return ActionState::kSucceeded;
    case ActionResult::OUTCOME_REJECTED: return ActionState::kRejected;
    default: return ActionState::kFailed;
  }
}

}  // namespace

Dispatcher::Dispatcher(DispatcherOptions options, fabric::Context& ctx,
                       const fabric::Identity& identity, const fabric::TrustStore& trust,
                       Clock& clock, Sink sink)
    : opts_(std::move(options)),
      ctx_(ctx),
      identity_(identity),
      trust_(trust),
      clock_(clock),
      sink_(std::move(sink)),
      sealer_(identity, 0, opts_.epoch),
      opener_(trust, clock),
      log_(clock) {
  opener_.expect_kinds({medic::v1::KIND_ACTION_ACK, medic::v1::KIND_ACTION_RESULT});
}

Dispatcher::~Dispatcher() {
  for (auto& [id, e] : entries_) {
    clock_.cancel(e.resend_timer);
    clock_.cancel(e.deadline_timer);
  }
}

Result<std::unique_ptr<Dispatcher>> Dispatcher::create(DispatcherOptions options,
                                                       const fabric::Party& party, Sink sink) {
  if (options.endpoint.empty()) return invalid_argument("dispatcher: no endpoint to bind");
  if (options.initial_backoff <= Duration::zero() || options.max_backoff < options.initial_backoff) {
    return invalid_argument("dispatcher: backoff must be positive and max_backoff >= initial");
  }
  std::unique_ptr<Dispatcher> d(new Dispatcher(std::move(options), party.ctx, party.identity,
                                               party.trust, party.clock, std::move(sink)));
  MEDIC_RETURN_IF_ERROR(d->start());
  return d;
}

Status Dispatcher::start() {
  fabric::SocketOptions so = opts_.socket;
  so.router_mandatory = true;
  auto sock = ctx_.bind(zmq::socket_type::router, opts_.endpoint, identity_, so);
  if (!sock.ok()) return sock.status();
  socket_ = std::move(sock).value();
  try {
    // A restarted actuator reconnects under the same routing id before the
    // old connection is known dead: the newest connection takes the name.
    socket_.set(zmq::sockopt::router_handover, true);
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return unavailable(std::string("dispatcher: socket set-up failed: ") + e.what());
  }
  spdlog::info("dispatcher: listening for actuators on {}", endpoint_);
  return {};
}

Duration Dispatcher::watch_for(const Action& action) const {
  return action.watch_ns() > 0 ? Duration(action.watch_ns()) : opts_.default_watch;
}

Status Dispatcher::dispatch(const Action& action) {
  if (action.id().empty() || action.host().empty() || action.vm().empty()) {
    return invalid_argument("dispatcher: an action needs an id, a host and a VM");
  }
  if (action.verb() == medic::v1::VERB_UNSPECIFIED) {
    return invalid_argument("dispatcher: action " + action.id() + " has no verb");
  }
  if (entries_.count(action.id())) return {};
  const Time now = clock_.now();
  if (action.expires_at_ns() <= to_ns(now)) {
    return failed_precondition("dispatcher: action " + action.id() + " has already expired");
  }
  if (entries_.size() >= opts_.max_in_flight) {
    return unavailable("dispatcher: " + std::to_string(entries_.size()) +
                       " actions in flight, the limit");
  }
  auto& host_ids = by_host_[action.host()];
  if (host_ids.size() >= opts_.max_per_host) {
    return unavailable("dispatcher: host " + action.host() + " has " +
                       std::to_string(host_ids.size()) + " actions in flight, the limit");
  }
  host_ids.insert(action.id());
  Entry& e = entries_[action.id()];
  e.action = action;
  e.attempt = action.attempt();
  e.backoff = opts_.initial_backoff;
  const std::string id = action.id();
  e.deadline_timer =
      clock_.schedule_at(from_ns(action.expires_at_ns()), [this, id] { on_expiry_undelivered(id); });
  ++stats_.dispatched;
  send(id);
  return {};
}

void Dispatcher::send(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  // Called by the timer itself or early (flush): either way one timer only.
  clock_.cancel(e.resend_timer);
  e.resend_timer = 0;
  const Time now = clock_.now();
  if (to_ns(now) > e.action.expires_at_ns()) return;  // never re-send past expiry
  e.action.set_attempt(e.attempt + 1);
  bool unreachable = false;
  const bool sent = send_to(e.action.host(), medic::v1::KIND_ACTION,
                            e.action.SerializeAsString(), &unreachable);
  if (sent) {
    ++e.attempt;
    ++stats_.sends;
  }
  const bool first = sent && !e.delivered;
  if (sent) e.delivered = true;
  // Waiting for a host to connect says nothing about how fast it acks.
  if (first) e.backoff = opts_.initial_backoff;
  schedule_resend(e, id);
  if (first) {
    DispatchEvent ev;
    ev.state = ActionState::kDispatched;
    ev.action = e.action;
    ev.delivered = true;
    ev.acked = e.acked;
    ev.at = now;
    emit(ev);  // may call dispatch(): `e` is not used after this
  }
}

void Dispatcher::schedule_resend(Entry& e, const std::string& id) {
  if (e.resend_timer) clock_.cancel(e.resend_timer);
  e.resend_timer = 0;
  Duration wait = e.acked ? opts_.max_backoff : e.backoff;
  if (!e.acked) e.backoff = std::min(e.backoff * 2, opts_.max_backoff);
  Time at = clock_.now() + wait;
  if (to_ns(at) > e.action.expires_at_ns()) return;
  e.resend_timer = clock_.schedule_at(at, [this, id] { send(id); });
}

// At expires_at: an action never handed to its host cannot have run, so it
// ends now; otherwise wait for the result through the watch and the grace.
void Dispatcher::on_expiry_undelivered(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  clock_.cancel(e.resend_timer);
  e.resend_timer = 0;
  if (!e.delivered) {
    DispatchEvent ev;
    ev.state = ActionState::kTimedOut;
    ev.action = e.action;
    ev.reason = "host " + e.action.host() + " was not connected before the action expired";
    ev.at = clock_.now();
    ++stats_.timed_out;
    finish(id, std::move(ev));
    return;
  }
  Time final_at =
      from_ns(e.action.expires_at_ns()) + watch_for(e.action) + opts_.result_grace;
  e.deadline_timer = clock_.schedule_at(final_at, [this, id] { on_deadline(id); });
}

void Dispatcher::on_deadline(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  DispatchEvent ev;
  ev.state = ActionState::kTimedOut;
  ev.action = it->second.action;
  ev.reason = it->second.acked ? "acknowledged, but no result came back in time"
                               : "the actuator never acknowledged the action";
  ev.at = clock_.now();
  ++stats_.timed_out;
  finish(id, std::move(ev));
}

void Dispatcher::finish(const std::string& id, DispatchEvent ev) {
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    ev.delivered = it->second.delivered;
    ev.acked = it->second.acked;
    clock_.cancel(it->second.resend_timer);
    clock_.cancel(it->second.deadline_timer);
    auto h = by_host_.find(it->second.action.host());
    if (h != by_host_.end()) {
      h->second.erase(id);
      if (h->second.empty()) by_host_.erase(h);
    }
    entries_.erase(it);
  }
  remember_finished(id);
  emit(ev);
}

void Dispatcher::remember_finished(const std::string& id) {
  if (!finished_.insert(id).second) return;
  finished_order_.push_back(id);
  while (finished_order_.size() > opts_.remembered_finished) {
    finished_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

void Dispatcher::emit(const DispatchEvent& ev) {
  if (sink_) sink_(ev);
}

bool Dispatcher::send_to(const std::string& host, medic::v1::Kind kind, const std::string& payload,
                         bool* unreachable) {
  std::string frame = sealer_.seal(kind, host, payload, clock_.now());
  try {
    if (!socket_.send(zmq::buffer(host), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      log_.warn("hwm_" + host, "dispatcher: the queue to host " + host + " is full");
      return false;
    }
    // The second part of a multi-part message cannot fail once the first went.
    (void)socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    return true;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) {
      ++stats_.unreachable;
      if (unreachable) *unreachable = true;
      log_.warn("unreachable_" + host,
                "dispatcher: host " + host + " is not connected; keeping its actions queued");
    } else {
      log_.warn("send", std::string("dispatcher: send failed: ") + e.what());
    }
    return false;
  }
}

void Dispatcher::flush_host(const std::string& host) {
  auto h = by_host_.find(host);
  if (h == by_host_.end()) return;
  std::vector<std::string> waiting;
  for (const auto& id : h->second) {
    auto it = entries_.find(id);
    if (it != entries_.end() && !it->second.delivered) waiting.push_back(id);
  }
  for (const auto& id : waiting) send(id);
}

void Dispatcher::run_once(Duration max_wait) {
  Duration wait = max_wait;
  if (auto next = clock_.next_deadline()) wait = std::min(wait, *next - clock_.now());
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  try {
    zmq::poll(&item, 1, std::chrono::milliseconds(poll_timeout_ms(wait)));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) log_.warn("poll", std::string("dispatcher: poll failed: ") + e.what());
  }
  handle_readable();
  clock_.run_due();
}

void Dispatcher::handle_readable() {
  while (true) {
    std::vector<zmq::message_t> parts;
    try {
      zmq::message_t m;
      if (!socket_.recv(m, zmq::recv_flags::dontwait)) return;
      parts.push_back(std::move(m));
      while (parts.back().more()) {
        zmq::message_t next;
        if (!socket_.recv(next, zmq::recv_flags::dontwait)) break;
        parts.push_back(std::move(next));
      }
    } catch (const zmq::error_t& e) {
      log_.warn("recv", std::string("dispatcher: receive failed: ") + e.what());
      return;
    }
    if (parts.size() != 2) {
      refuse(Refusal::kFraming);
      log_.warn("parts", "dispatcher: dropped a message of " + std::to_string(parts.size()) +
                             " parts (expected routing id + envelope)");
      continue;
    }
    handle_message(parts[0].to_string(),
                   std::string_view(static_cast<const char*>(parts[1].data()), parts[1].size()));
  }
}

void Dispatcher::handle_message(const std::string& routing_id, std::string_view frame) {
  fabric::Opened opened;
  std::string detail;
  fabric::OpenError err = opener_.open(frame, &opened, &detail);
  if (err != fabric::OpenError::kOk) {
    refuse(Refusal::kOpen);
    log_.warn(std::string("open_") + fabric::open_error_name(err),
              "dispatcher: refused a frame from connection \"" + routing_id + "\" (" +
                  fabric::open_error_name(err) + "): " + detail);
    return;
  }
  const std::string& host = opened.envelope.host();
  if (!opened.sender->has_role(fabric::Role::kActuator) || host != routing_id) {
    refuse(Refusal::kNotActuator);
    log_.warn("not_actuator", "dispatcher: refused a message from \"" + opened.sender->name +
                                  "\" for host \"" + host + "\" on connection \"" + routing_id +
                                  "\"");
    return;
  }
  // Whatever it sent, the host is connected now: its queue need not wait.
  flush_host(host);
  if (opened.envelope.kind() == medic::v1::KIND_ACTION_ACK) {
    ActionAck ack;
    if (!ack.ParseFromString(opened.envelope.payload()) ||
        ack.what() != ActionAck::WHAT_RECEIVED) {
      refuse(Refusal::kBadAck);
      log_.warn("bad_ack", "dispatcher: malformed acknowledgement from host " + host);
      return;
    }
    handle_ack(host, ack);
  } else {
    ActionResult result;
    if (!result.ParseFromString(opened.envelope.payload()) || result.action_id().empty()) {
      refuse(Refusal::kBadResult);
      log_.warn("bad_result", "dispatcher: malformed result from host " + host);
      return;
    }
    handle_result(host, result);
  }
}

void Dispatcher::handle_ack(const std::string& host, const ActionAck& ack) {
  ++stats_.acks;
  auto it = entries_.find(ack.action_id());
  if (it == entries_.end() || it->second.action.host() != host || it->second.acked) return;
  Entry& e = it->second;
  e.acked = true;
  schedule_resend(e, ack.action_id());
  DispatchEvent ev;
  ev.state = ActionState::kAcked;
  ev.action = e.action;
  ev.delivered = true;
  ev.acked = true;
  ev.at = clock_.now();
  emit(ev);
}

void Dispatcher::handle_result(const std::string& host, const ActionResult& result) {
  ++stats_.results;
  auto it = entries_.find(result.action_id());
  if (it != entries_.end() && it->second.action.host() != host) {
    refuse(Refusal::kForeignResult);
    log_.warn("foreign_result", "dispatcher: host " + host + " reported on action " +
                                    result.action_id() + ", which was sent to host " +
                                    it->second.action.host());
    return;
  }
  if (opts_.ack_results_on_receipt) send_result_ack(host, result.action_id());
  if (it == entries_.end()) {
    if (finished_.count(result.action_id())) {
      ++stats_.duplicate_results;
      if (opts_.ack_results_on_receipt) return;
    } else {
      ++stats_.unknown_results;
      remember_finished(result.action_id());
    }
    DispatchEvent ev;
    ev.state = state_for(result.outcome());
    ev.action.set_id(result.action_id());
    ev.action.set_host(host);
    ev.result = result;
    ev.at = clock_.now();
    ev.known = false;
    emit(ev);
    return;
  }
  DispatchEvent ev;
  ev.state = state_for(result.outcome());
  ev.action = it->second.action;
  ev.result = result;
  ev.at = clock_.now();
  finish(result.action_id(), std::move(ev));
}

void Dispatcher::send_result_ack(const std::string& host, const std::string& action_id) {
  ActionAck ack;
  ack.set_action_id(action_id);
  ack.set_what(ActionAck::WHAT_RESULT_RECEIVED);
  send_to(host, medic::v1::KIND_ACTION_ACK, ack.SerializeAsString(), nullptr);
}

}  // namespace medic::actuators
