// EngineNode's composition and its loop step, and the evidence it keeps:
// recent envelopes in memory, each stored in the audit log once (the first
// time a decision rests on it). The decision recorder and outbox are in
// engine_outbox.cc, operator requests in engine_requests.cc, the status text
// in engine_status.cc.
#include "node/engine_node.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace medic::node {
namespace {

constexpr size_t kMaxRecentEnvelopes = 4096;
constexpr size_t kBulkFramesPerTurn = 4;
constexpr size_t kMaxRecentBytes = 32 << 20;
constexpr Duration kDegradedPoll = std::chrono::milliseconds(50);

}  // namespace

std::string start_prefix(Time t) {
  uint64_t ms = static_cast<uint64_t>(to_ns(t) / 1'000'000);
  std::string out;
  do {
    out.insert(out.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[ms % 36]);
    ms /= 36;
  } while (ms);
  return out;
}

EngineNode::EngineNode(const EngineConfig& config, const fabric::Party& party,
                       audit::AuditStorePtr store, EngineObserver* observer)
    : config_(config),
      party_(party),
      observer_(observer),
      store_(std::move(store)),
      followers_([this](const std::string& peer, const medic::v1::ControlReply& r) {
        if (control_) control_->send(peer, r);
      }) {}

EngineNode::~EngineNode() {
  (void)shutdown();
  for (TimerId t : timers_) party_.clock.cancel(t);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Result<std::unique_ptr<EngineNode>> EngineNode::create(const EngineConfig& config,
                                                       const fabric::Party& party,
                                                       std::shared_ptr<const rules::RuleSet> rules,
                                                       audit::AuditStorePtr store,
                                                       EngineObserver* observer) {
  if (!store || !rules) return invalid_argument("engine node: no audit store or no rules");
  std::unique_ptr<EngineNode> node(new EngineNode(config, party, std::move(store), observer));
  MEDIC_RETURN_IF_ERROR(node->start(std::move(rules)));
  return node;
}

Status EngineNode::start(std::shared_ptr<const rules::RuleSet> rules) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return io_error("eventfd failed");
  int fd = wake_fd_;
  store_->on_durable([fd](audit::Seq) {
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof one);
    (void)n;
  });
  // Action ids must never repeat across engine restarts: the actuator's
  // journal treats a known id as "already done". The prefix is this start's
  // time on the node's Clock, in base 36.
  config_.engine.id_prefix = start_prefix(party_.clock.now());
  config_.engine.result_grace = config_.dispatch.result_grace;
  const rules::RuleSet& rule_set = *rules;
  rules_loaded_ = rules->size();
  engine_ = std::make_unique<rules::Engine>(party_.clock, std::move(rules), config_.engine, *this);
  notifier_ = std::make_unique<rules::WebhookNotifier>(config_.notify);

  auto receiver = fabric::EventReceiver::create(config_.events, party_);
  if (!receiver.ok()) return receiver.status().with_context("events");
  receiver_ = std::move(*receiver);

  actuators::DispatcherOptions dopts = config_.dispatch;
  dopts.endpoint = config_.actions_endpoint;
  dopts.ack_results_on_receipt = false;  // acknowledged once recorded (flush_outbox)
  auto dispatcher = actuators::Dispatcher::create(
      dopts, party_, [this](const actuators::DispatchEvent& e) { on_dispatch_event(e); });
  if (!dispatcher.ok()) return dispatcher.status().with_context("actions");
  dispatcher_ = std::move(*dispatcher);

  auto control = fabric::ControlServer::create(config_.control_endpoint, party_, *this);
  if (!control.ok()) return control.status().with_context("control");
  control_ = std::move(*control);

  register_counters();
  // Everything a safety policy remembers, back before the first event is read.
  MEDIC_RETURN_IF_ERROR(restore_state(rule_set));
  register_on_loop();
  resume_in_flight();
  started_ = true;
  commit_state(true);
  return {};
}

void EngineNode::register_on_loop() {
  loop_ = std::make_unique<EventLoop>(party_.clock);
  // A few bulk frames per turn (each may hold a thousand events), the
  // urgent lane read before every one of them. Urgent frames end the turn:
  // the loop step, and with it the unit that makes their decisions
  // durable, ends now rather than after more bulk. Actions made durable
  // meanwhile are dispatched between bulk frames, not after the turn.
  auto drain = [this] {
    if (drained_in_ == loop_->iterations()) return;  // both lanes were ready
    drained_in_ = loop_->iterations();
    const auto sink = [this](std::string_view frame, const fabric::Opened& o,
                             const medic::v1::EventBatch& b,
                             bool urgent) { on_batch(frame, o, b, urgent); };
    for (size_t i = 0; i < kBulkFramesPerTurn; ++i) {
      // Urgent only; a turn after one that urgent frames ended reads bulk
      // too, so a stream of urgent frames cannot starve the bulk lane. Only
      // accepted urgent frames end a turn, not refused ones.
      const uint64_t urgent_before = urgent_read_;
      receiver_->drain(sink, 0);
      if (urgent_read_ != urgent_before && !urgent_ended_turn_) {
        urgent_ended_turn_ = true;
        return;
      }
      urgent_ended_turn_ = false;
      if (receiver_->drain(sink, 1) == 0) return;
      flush_outbox();
    }
  };
  drain_ = drain;
  set_reading(true);
  loop_->watch_socket(control_->socket().handle(), [this] { control_->poll(); });
  loop_->watch_fd(wake_fd_, [this] { drain_wakeups(); });
  loop_->watch_fd(mailbox_.fd(), [this] { mailbox_.run(); });
}

void EngineNode::reload(std::shared_ptr<const rules::RuleSet> rules) {
  rules_loaded_ = rules->size();
  engine_->reload(std::move(rules));
}

Status EngineNode::shutdown() {
  if (closed_) return {};
  closed_ = true;
  // A start that failed (a port in use, a state that does not restore) has
  // nothing of its own to keep, and not every part it would write exists.
  if (started_) commit_state(true);
  Status s = store_->close();
  store_->set_commit_histogram(nullptr);  // the registry dies before the store
  return s;
}

// One loop step is one StateStore unit: its audit rows and the state rows of
// what it changed commit together.
void EngineNode::run_once(Duration max_wait) {
  check_health();
  store_->begin_unit();
  // A signal (SIGHUP, SIGTERM) interrupts the wait; the caller checks its flags.
  // Degraded, the loop wakes often to see whether the store writes again.
  loop_->run_once(degraded_.ok() ? max_wait : std::min<Duration>(max_wait, kDegradedPoll));
  flush_outbox();
  if (followers_.size() > 0) followers_.expire(party_.clock.now());
  commit_state(false);
  mailbox_.beat();
}

void EngineNode::drain_wakeups() {
  uint64_t n = 0;
  while (::read(wake_fd_, &n, sizeof n) > 0) {
  }
}

void EngineNode::on_batch(std::string_view frame, const fabric::Opened& opened,
                          const medic::v1::EventBatch& batch, bool urgent) {
  ++stats_.batches;
  if (urgent) ++urgent_read_;
  const Time now = party_.clock.now();
  const uint64_t number =
      remember({next_envelope_++, now, std::string(frame), opened.sender->name, urgent});
  engine_->host_seen(opened.envelope.host(), now);
  if (observer_) observer_->on_batch(batch, urgent);
  // How long the batch waited between its sealing and this read: the lane's
  // queueing (and any clock skew between the hosts, bounded by the skew check).
  lane_lag_[urgent ? 1 : 0]->observe(now - Time(std::chrono::nanoseconds(opened.envelope.sent_at_ns())));
  for (int i = 0; i < batch.events_size(); ++i) {
    ++stats_.events;
    const int body = static_cast<int>(batch.events(i).body_case());  // 0, or 10..15
    const size_t type = body >= 10 ? static_cast<size_t>(body - 9) : 0;
    if (type < std::size(events_by_type_)) ++events_by_type_[type];
    engine_->ingest(batch.events(i), make_evidence_ref(number, static_cast<uint32_t>(i)));
  }
}

uint64_t EngineNode::remember(Envelope env) {
  const uint64_t number = env.number;
  recent_bytes_ += env.frame.size();
  recent_.push_back(std::move(env));
  while (recent_.size() > kMaxRecentEnvelopes || recent_bytes_ > kMaxRecentBytes) {
    recent_bytes_ -= recent_.front().frame.size();
    recent_.pop_front();
  }
  return number;
}

std::vector<audit::EvidenceRef> EngineNode::store_evidence(
    const std::vector<rules::EvidenceRef>& refs) {
  std::vector<audit::EvidenceRef> out;
  for (rules::EvidenceRef ref : refs) {
    const uint64_t number = ref >> kEventIndexBits;
    const int32_t index = static_cast<int32_t>(ref & ((1u << kEventIndexBits) - 1));
    auto known = stored_evidence_.find(number);
    if (known == stored_evidence_.end()) {
      auto it = std::find_if(recent_.begin(), recent_.end(),
                             [&](const Envelope& e) { return e.number == number; });
      if (it == recent_.end()) {
        ++stats_.evidence_lost;
        continue;
      }
      auto seq = store_->append_evidence({it->received_at, it->frame, it->sender});
      if (!seq.ok()) {
        ++stats_.audit_errors;
        spdlog::error("engine: cannot store evidence: {}", seq.status().message());
        continue;
      }
      ++stats_.evidence_stored;
      known = stored_evidence_.emplace(number, *seq).first;
      if (stored_evidence_.size() > 2 * kMaxRecentEnvelopes) {
        stored_evidence_.erase(stored_evidence_.begin());
      }
    }
    out.push_back({known->second, index});
  }
  return out;
}

Time EngineNode::urgent_receipt(const std::vector<rules::EvidenceRef>& refs) const {
  Time earliest{};
  for (rules::EvidenceRef ref : refs) {
    const uint64_t number = ref >> kEventIndexBits;
    auto it = std::find_if(recent_.begin(), recent_.end(),
                           [&](const Envelope& e) { return e.number == number; });
    if (it == recent_.end() || !it->urgent) continue;
    if (earliest == Time{} || it->received_at < earliest) earliest = it->received_at;
  }
  return earliest;
}

}  // namespace medic::node
