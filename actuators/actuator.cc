#include "actuators/actuator.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/duration.h"
#include "core/subprocess.h"

namespace medic::actuators {
namespace {

// The lifecycle events a healing action answers (a stop is intended: the
// shipped rules leave it alone, so a later start would not be an answer).
bool is_failure(medic::v1::Lifecycle what) {
  switch (what) {
    case medic::v1::LIFECYCLE_PANICKED:
    case medic::v1::LIFECYCLE_WATCHDOG:
    case medic::v1::LIFECYCLE_CRASHED:
    case medic::v1::LIFECYCLE_UNRESPONSIVE:
      return true;
    default:
      return false;
  }
}

using medic::v1::Action;
using medic::v1::ActionAck;
using medic::v1::ActionResult;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// ActionResult.output is a proto3 string, which must be valid UTF-8 or the
// engine cannot parse the result. A hook may print anything, and the byte
// limit may cut a character: every byte that is not part of a well-formed
// sequence becomes '?'.
std::string sanitize_utf8(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    size_t len = 0;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = cont(i + 1) ? 2 : 0;
    } else if (c >= 0xE0 && c <= 0xEF) {
      const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
      const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
      len = cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
    } else if (c >= 0xF0 && c <= 0xF4) {
      const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
      const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
      len = cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    }
    if (len == 0) {
      out.push_back('?');
      ++i;
    } else {
      out.append(in, i, len);
      i += len;
    }
  }
  return out;
}

}  // namespace

const char* rejection_name(Rejection r) {
  switch (r) {
    case Rejection::kMalformed: return "malformed";
    case Rejection::kWrongHost: return "wrong_host";
    case Rejection::kExpired: return "expired";
    case Rejection::kNoExpiry: return "no_expiry";
    case Rejection::kExpiryTooFar: return "expiry_too_far";
    case Rejection::kUnknownVerb: return "unknown_verb";
    case Rejection::kVmNotHere: return "vm_not_here";
    case Rejection::kClockSkew: return "clock_skew";
    case Rejection::kCount: break;
  }
  return "unknown";
}

Actuator::Actuator(ActuatorOptions options, fabric::Context& ctx, const fabric::Identity& identity,
                   const fabric::TrustStore& trust, vmm::Hypervisor& hypervisor, Clock& clock)
    : opts_(std::move(options)),
      ctx_(ctx),
      identity_(identity),
      trust_(trust),
      hv_(hypervisor),
      clock_(clock),
      sealer_(identity),
      opener_(trust, clock),
      log_(clock) {
  opener_.expect_kinds({medic::v1::KIND_ACTION, medic::v1::KIND_ACTION_ACK});
  opener_.expect_host(opts_.host);
  opener_.expect_senders(opts_.engine_keys);  // create() put engine_key among them
}

Actuator::~Actuator() {
  for (auto& [id, w] : watches_) clock_.cancel(w.poll_timer);
  for (auto& [id, r] : resends_) clock_.cancel(r.timer);
  if (prune_timer_) clock_.cancel(prune_timer_);
  if (loop_) {
    loop_->remove(socket_watch_);
    loop_->remove(monitor_watch_);
    loop_->remove(source_watch_);
  }
}

Result<std::unique_ptr<Actuator>> Actuator::create(ActuatorOptions options,
                                                   const fabric::Party& party,
                                                   vmm::Hypervisor& hypervisor, EventLoop* loop) {
  if (options.host.empty()) return invalid_argument("actuator: no host configured");
  if (options.host != hypervisor.host()) {
    return invalid_argument("actuator: configured for host \"" + options.host +
                            "\" but the hypervisor backend manages \"" + hypervisor.host() + "\"");
  }
  if (options.engine_endpoint.empty()) return invalid_argument("actuator: no engine endpoint");
  if (std::find(options.engine_keys.begin(), options.engine_keys.end(), options.engine_key) ==
      options.engine_keys.end()) {
    options.engine_keys.insert(options.engine_keys.begin(), options.engine_key);
  }
  for (const fabric::PublicKey& key : options.engine_keys) {
    const fabric::TrustedNode* engine = party.trust.find(key);
    if (!engine || !engine->has_role(fabric::Role::kEngine)) {
      return invalid_argument("actuator: the engine key " + fabric::short_key_id(key) +
                              " is not in the trust store with the engine role");
    }
  }
  if (options.max_action_lifetime >= options.retention) {
    return invalid_argument(
        "actuator: retention must be longer than max_action_lifetime, or the journal could "
        "forget an action id that can still be delivered");
  }
  std::unique_ptr<Actuator> a(new Actuator(std::move(options), party.ctx, party.identity,
                                           party.trust, hypervisor, party.clock));
  MEDIC_RETURN_IF_ERROR(a->start(loop));
  return a;
}

Status Actuator::start(EventLoop* loop) {
  auto journal = Journal::open(opts_.journal_path, opts_.journal_busy_timeout);
  if (!journal.ok()) return journal.status();
  journal_ = std::move(journal).value();

  fabric::SocketOptions so = opts_.socket;
  so.routing_id = opts_.host;
  auto sock = ctx_.connect(zmq::socket_type::dealer, opts_.engine_endpoint, identity_,
                           opts_.engine_key, so);
  if (!sock.ok()) return sock.status();
  socket_ = std::move(sock).value();
  if (!loop) {
    own_loop_ = std::make_unique<EventLoop>(clock_);
    loop = own_loop_.get();
  }
  loop_ = loop;
  source_watch_ = loop_->add_source(this);
  socket_watch_ = loop_->watch_socket(socket_.handle(), [this] {
    handle_readable();
    execute_queued();
  });
  // ZeroMQ connects in the background: the monitor logs when the engine is
  // really reached, lost and reached again.
  auto monitor = fabric::ConnectionMonitor::start(ctx_.zmq(), socket_, "actuator " + opts_.host);
  if (!monitor.ok()) return monitor.status();
  monitor_ = std::move(*monitor);
  monitor_watch_ = loop_->watch_socket(monitor_->socket().handle(),
                                       [this] { monitor_->handle_readable(); });

  MEDIC_RETURN_IF_ERROR(recover());
  prune_timer_ = clock_.schedule_after(opts_.prune_interval, [this] { prune(); });
  spdlog::info("actuator: host {} connecting to engine at {}, journal {}", opts_.host,
               opts_.engine_endpoint, opts_.journal_path);
  return {};
}

// What a restart finds in the journal, by state:
//   received  never started: executed later if still unexpired;
//   executing crashed between the durable write and the result: failed,
//             never run again (we cannot know whether the verb happened);
//   watching  the verb returned: the watch resumes until its deadline;
//   done      results not yet acknowledged are re-sent.
Status Actuator::recover() {
  auto unfinished = journal_->unfinished();
  if (!unfinished.ok()) return unfinished.status();
  for (auto& e : *unfinished) {
    switch (e.state) {
      case JournalState::kReceived:
        exec_queue_.push_back(e.action);
        break;
      case JournalState::kExecuting: {
        ++stats_.recovered_unknown;
        spdlog::warn("actuator: action {} ({} {}) was executing when the actuator stopped; "
                     "reporting it failed, not retrying it",
                     e.action.id(), vmm::verb_name(e.action.verb()), e.action.vm());
        ActionResult r;
        r.set_action_id(e.action.id());
        r.set_outcome(ActionResult::OUTCOME_FAILED);
        r.set_reason(kRestartedDuringExecution);
        finish(e.action, std::move(r));
        break;
      }
      case JournalState::kWatching:
        start_watch(e.action, e.executed_at, e.executed_at + watch_for(e.action));
        break;
      case JournalState::kDone:
        break;
    }
  }
  auto unacked = journal_->unacked_results();
  if (!unacked.ok()) return unacked.status();
  for (auto& e : *unacked) {
    if (e.result && !resends_.count(e.action.id())) queue_result(*e.result);
  }
  return {};
}

void Actuator::run_once(Duration max_wait) { loop_->run_once(max_wait); }

void Actuator::prepare(std::vector<pollfd>* fds, Duration* wait) {
  ended_hooks_.clear();  // hooks whose run ended during the last turn
  if (!exec_queue_.empty()) *wait = Duration::zero();
  if (opts_.drive_hypervisor) {
    for (int fd : hv_.fds()) fds->push_back(pollfd{fd, POLLIN, 0});
  }
}

void Actuator::dispatch(const pollfd*, size_t) {
  if (opts_.drive_hypervisor) hv_.poll();
  execute_queued();
}

void Actuator::handle_readable() {
  while (true) {
    zmq::message_t msg;
    try {
      if (!socket_.recv(msg, zmq::recv_flags::dontwait)) return;
      if (msg.more()) {
        // The protocol is one frame per message; drop the whole multi-part.
        ++stats_.unattributed;
        log_.warn("multipart", "actuator: dropped a multi-part message from the engine socket");
        while (msg.more()) {
          if (!socket_.recv(msg, zmq::recv_flags::dontwait)) break;
        }
        continue;
      }
    } catch (const zmq::error_t& e) {
      log_.warn("recv", std::string("actuator: receive failed: ") + e.what());
      return;
    }
    handle_frame(std::string_view(static_cast<const char*>(msg.data()), msg.size()));
  }
}

void Actuator::handle_frame(std::string_view frame) {
  fabric::Opened opened;
  std::string detail;
  fabric::OpenError err = opener_.open(frame, &opened, &detail);
  if (err != fabric::OpenError::kOk) {
    handle_unopened(err, opened, detail);
    return;
  }
  // ACTION_ACK may also be signed by actuators; only the engine commands us.
  if (!opened.sender->has_role(fabric::Role::kEngine)) {
    ++stats_.unattributed;
    log_.warn("not_engine", "actuator: refused a message from \"" + opened.sender->name +
                                "\", which is not an engine");
    return;
  }
  if (opened.envelope.kind() == medic::v1::KIND_ACTION) {
    handle_action(opened);
  } else {
    handle_result_ack(opened);
  }
}

// A frame the Opener refused. Only a stale or future-dated action whose
// engine signature verified is answered (with a rejection): its sender is
// known and it is not a replay. A replayed frame is never answered, because
// the answer would speak about an action id that may be genuinely in flight.
void Actuator::handle_unopened(fabric::OpenError error, const fabric::Opened& opened,
                               const std::string& detail) {
  const bool skew =
      error == fabric::OpenError::kStale || error == fabric::OpenError::kFromFuture;
  if (skew && opened.envelope.kind() == medic::v1::KIND_ACTION) {
    fabric::PublicKey pk;
    std::copy(opened.envelope.sender().begin(), opened.envelope.sender().end(), pk.begin());
    const fabric::TrustedNode* node = trust_.find(pk);
    Action action;
    if (node && node->has_role(fabric::Role::kEngine) &&
        action.ParseFromString(opened.envelope.payload()) && !action.id().empty() &&
        action.host() == opts_.host) {
      auto known = journal_->find(action.id());
      if (known.ok()) return;  // its journaled outcome stands; a fresh re-send gets it
      if (known.status().code() != Code::kNotFound) {
        log_.warn("journal", "actuator: " + known.status().message());
        return;
      }
      reject(action, Rejection::kClockSkew,
             "envelope " + detail + "; check clock synchronisation between engine and host");
      return;
    }
  }
  ++stats_.unattributed;
  log_.warn(std::string("open_") + fabric::open_error_name(error),
            std::string("actuator: refused a frame (") + fabric::open_error_name(error) +
                "): " + detail);
}

void Actuator::handle_action(const fabric::Opened& opened) {
  Action action;
  if (!action.ParseFromString(opened.envelope.payload()) || action.id().empty()) {
    ++stats_.unattributed;
    ++stats_.rejected_by[static_cast<size_t>(Rejection::kMalformed)];
    log_.warn("malformed_action", "actuator: an action from \"" + opened.sender->name +
                                      "\" does not decode or has no id");
    return;
  }
  auto known = journal_->find(action.id());
  if (known.ok()) {
    answer_duplicate(*known);
    return;
  }
  if (known.status().code() != Code::kNotFound) {
    // Without the journal we cannot promise once-only: do nothing; the
    // engine's re-send tries again.
    log_.warn("journal", "actuator: " + known.status().message());
    return;
  }
  if (auto why = check(action, opened.envelope)) {
    reject(action, why->first, why->second);
    return;
  }
  Status s = journal_->insert(action, JournalState::kReceived, clock_.now());
  if (!s.ok()) {
    log_.warn("journal", "actuator: cannot journal action " + action.id() + ": " + s.message());
    return;
  }
  ++stats_.actions_received;
  send_ack(action.id());
  exec_queue_.push_back(std::move(action));
}

std::optional<std::pair<Rejection, std::string>> Actuator::check(const Action& action,
                                                                  const medic::v1::Envelope& env) {
  const int64_t now = to_ns(clock_.now());
  if (action.host() != env.host()) {
    return std::make_pair(Rejection::kWrongHost, "action names host \"" + action.host() +
                                                     "\" but its envelope is for \"" +
                                                     env.host() + "\"");
  }
  if (action.expires_at_ns() <= 0) {
    return std::make_pair(Rejection::kNoExpiry, std::string("action carries no expiry"));
  }
  if (action.expires_at_ns() < now) {
    return std::make_pair(Rejection::kExpired,
                          "action expired " + format_duration(Duration(now - action.expires_at_ns())) +
                              " ago");
  }
  if (action.expires_at_ns() - now > opts_.max_action_lifetime.count()) {
    return std::make_pair(Rejection::kExpiryTooFar,
                          "action expires in " +
                              format_duration(Duration(action.expires_at_ns() - now)) +
                              ", beyond the limit of " + format_duration(opts_.max_action_lifetime));
  }
  switch (action.verb()) {
    case medic::v1::VERB_REBOOT:
    case medic::v1::VERB_RESET:
    case medic::v1::VERB_RESTART:
    case medic::v1::VERB_STOP:
    case medic::v1::VERB_START:
    case medic::v1::VERB_INJECT:  // the backend refuses it unless it is simulated
    case medic::v1::VERB_DELETE:
      break;
    case medic::v1::VERB_CLONE:  // the VM does not exist yet
      if (action.template_name().empty() || action.vm_name().empty()) {
        return std::make_pair(Rejection::kMalformed,
                              std::string("a clone names a template and the new VM's name"));
      }
      return std::nullopt;
    default:
      return std::make_pair(Rejection::kUnknownVerb,
                            "unknown verb " + std::to_string(static_cast<int>(action.verb())));
  }
  auto vm = hv_.get(action.vm());
  if (!vm.ok() && vm.status().code() == Code::kNotFound) {
    return std::make_pair(Rejection::kVmNotHere,
                          "VM \"" + action.vm() + "\" is not on host \"" + opts_.host + "\"");
  }
  return std::nullopt;
}

void Actuator::answer_duplicate(const JournalEntry& entry) {
  ++stats_.duplicates;
  send_ack(entry.action.id());
  if (entry.state == JournalState::kDone && entry.result) {
    if (!entry.result_acked && !resends_.count(entry.action.id())) {
      queue_result(*entry.result);
    } else {
      send_result(*entry.result);
    }
  }
}

void Actuator::reject(const Action& action, Rejection why, const std::string& reason) {
  ++stats_.rejected;
  ++stats_.rejected_by[static_cast<size_t>(why)];
  log_.warn(std::string("reject_") + rejection_name(why),
            "actuator: rejected action " + action.id() + " (" + vmm::verb_name(action.verb()) +
                " " + action.vm() + "): " + reason);
  ActionResult r;
  r.set_action_id(action.id());
  r.set_outcome(ActionResult::OUTCOME_REJECTED);
  r.set_reason(reason);
  r.set_finished_at_ns(to_ns(clock_.now()));
  Status s = journal_->insert_done(action, r, clock_.now());
  if (!s.ok()) log_.warn("journal", "actuator: cannot journal a rejection: " + s.message());
  send_ack(action.id());
  queue_result(r);
}

void Actuator::execute_queued() {
  while (!exec_queue_.empty()) {
    Action action = std::move(exec_queue_.front());
    exec_queue_.pop_front();
    execute(action);
  }
}

void Actuator::execute(const Action& action) {
  if (action.expires_at_ns() < to_ns(clock_.now())) {
    reject_expired(action);
    return;
  }
  // The durable line: after this commit the action counts as executed.
  if (opts_.failpoint) opts_.failpoint("before_journal");
  if (!journal_executing(action)) return;
  if (opts_.failpoint) opts_.failpoint("after_journal");

  const Time started_at = clock_.now();
  ++stats_.executed;
  if (action.verb() == medic::v1::VERB_INJECT) {
    execute_inject(action, started_at);
    return;
  }
  if (auto f = failed_vms_.find(action.vm()); f != failed_vms_.end()) {
    // Older than any action can live: not what this action answers.
    if (started_at - f->second.at <= opts_.max_action_lifetime)
      failure_of_[action.id()] = f->second;
    failed_vms_.erase(f);
  }
  if (action.verb() == medic::v1::VERB_RESTART && !opts_.restart_hook.empty()) {
    start_restart_hook(action, started_at);
    return;
  }
  // The verb runs on the backend while the loop goes on; its answer may come
  // after this actuator is gone, which the weak token tells.
  std::weak_ptr<bool> alive = alive_;
  auto done = [this, alive, action, started_at](Status s) {
    if (alive.expired()) return;
    on_verb_done(action, started_at, {}, std::move(s));
  };
  if (action.verb() == medic::v1::VERB_CLONE) {
    const vmm::CloneSpec spec{action.template_name(), action.vm(), action.vm_name()};
    Status begun = hv_.begin_clone(spec, opts_.execute_timeout, done);
    if (!begun.ok()) on_verb_done(action, started_at, {}, std::move(begun));
    return;
  }
  hv_.execute(action.verb(), action.vm(), opts_.execute_timeout, std::move(done));
}

// Never started, so refusing it now is safe and says what happened.
void Actuator::reject_expired(const Action& action) {
  ActionResult r;
  r.set_action_id(action.id());
  r.set_outcome(ActionResult::OUTCOME_REJECTED);
  r.set_reason("action expired before it could be executed");
  ++stats_.rejected;
  ++stats_.rejected_by[static_cast<size_t>(Rejection::kExpired)];
  finish(action, std::move(r));
}

// Records `executing` durably; false when it could not, and then the action
// must not run: without the durable record there is no once-only promise.
// If the journal takes the final answer, the engine is told; if not, nothing
// is said (the entry stays `received`, so a restart may still run it, and the
// engine times it out meanwhile).
bool Actuator::journal_executing(const Action& action) {
  Status s = journal_->mark_executing(action.id(), clock_.now());
  if (s.ok()) return true;
  spdlog::error("actuator: not executing action {}: {}", action.id(), s.message());
  ActionResult r;
  r.set_action_id(action.id());
  r.set_outcome(ActionResult::OUTCOME_FAILED);
  r.set_reason("not executed: the journal could not record it (" + s.message() + ")");
  r.set_finished_at_ns(to_ns(clock_.now()));
  if (journal_->finish(action.id(), r, clock_.now()).ok()) {
    ++stats_.failed;
    queue_result(r);
  }
  return false;
}

// An operator's deliberate fault (`medic inject`): done at once, never
// watched for healing (breaking the VM was the point).
void Actuator::execute_inject(const Action& action, Time started_at) {
  Status done = hv_.inject_fault(action.fault(), action.vm());
  spdlog::info("actuator: inject {} into {} (action {}): {}", action.fault(), action.vm(),
               action.id(), done.ok() ? "done" : done.to_string());
  ActionResult r;
  r.set_action_id(action.id());
  r.set_outcome(done.ok() ? ActionResult::OUTCOME_SUCCEEDED : ActionResult::OUTCOME_FAILED);
  r.set_reason(done.ok() ? "injected " + action.fault() : done.to_string());
  r.set_executed_at_ns(to_ns(started_at));
  finish(action, std::move(r));
}

void Actuator::on_verb_done(const Action& action, Time started_at, std::string output,
                            Status done) {
  if (opts_.failpoint) opts_.failpoint("after_execute");
  if (auto f = failure_of_.find(action.id()); f != failure_of_.end()) {
    if (latency_) {
      latency_
          ->histogram("urgent_event_to_executed_seconds",
                      {{"event", vmm::lifecycle_name(f->second.what)}},
                      "a failure event on this host -> the verb that answered it executed")
          .observe(clock_.now() - f->second.at);
    }
    failure_of_.erase(f);
  }
  spdlog::info("actuator: {} {} (action {}): {}", vmm::verb_name(action.verb()), action.vm(),
               action.id(), done.ok() ? "done" : done.to_string());
  if (!done.ok()) {
    ActionResult r;
    r.set_action_id(action.id());
    r.set_outcome(ActionResult::OUTCOME_FAILED);
    r.set_reason(done.to_string());
    r.set_executed_at_ns(to_ns(started_at));
    r.set_output(output);
    finish(action, std::move(r));
    return;
  }
  if (goal_reached(action, started_at)) {
    ActionResult r;
    r.set_action_id(action.id());
    r.set_outcome(ActionResult::OUTCOME_SUCCEEDED);
    r.set_healed(true);
    r.set_executed_at_ns(to_ns(started_at));
    r.set_output(output);
    finish(action, std::move(r));
    return;
  }
  Status s = journal_->mark_watching(action.id(), started_at, clock_.now());
  if (!s.ok()) log_.warn("journal", "actuator: " + s.message());
  start_watch(action, started_at, started_at + watch_for(action), std::move(output));
}

// The hook runs as a child process on the loop (its pipes and exit are loop
// descriptors, its time limit a Clock timer), so the actuator keeps reading
// actions and the collector keeps reporting while it runs.
void Actuator::start_restart_hook(const Action& action, Time started_at) {
  std::vector<std::string> argv;
  argv.reserve(opts_.restart_hook.size());
  for (const auto& arg : opts_.restart_hook) {
    argv.push_back(replace_all(replace_all(arg, "{vm}", action.vm()), "{host}", opts_.host));
  }
  RunOptions ro;
  ro.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.execute_timeout);
  ro.max_output_bytes = opts_.max_hook_output;
  std::weak_ptr<bool> alive = alive_;
  const std::string program = argv[0];
  auto child = ChildProcess::start(
      argv, ro, clock_, [this, alive, action, started_at, program](RunResult run) {
        if (alive.expired()) return;
        std::string output;
        Status done = hook_outcome(program, run, &output);
        end_restart_hook(action.id());
        on_verb_done(action, started_at, std::move(output), std::move(done));
      });
  if (!child.ok()) {
    on_verb_done(action, started_at, {}, child.status());
    return;
  }
  HookRun& hook = hooks_[action.id()];
  hook.child = std::move(*child);
  hook.watch = loop_->add_source(hook.child.get());
}

// Called from the child's own poll(): it leaves the loop now and is
// destroyed at the actuator's next prepare(), not inside its callback.
void Actuator::end_restart_hook(const std::string& action_id) {
  auto it = hooks_.find(action_id);
  if (it == hooks_.end()) return;
  loop_->remove(it->second.watch);
  ended_hooks_.push_back(std::move(it->second));
  hooks_.erase(it);
}

Status Actuator::hook_outcome(const std::string& program, const RunResult& run,
                              std::string* output) const {
  std::string out = run.out;
  if (!run.err.empty()) out += (out.empty() ? "" : "\n") + run.err;
  if (out.size() > opts_.max_hook_output) out.resize(opts_.max_hook_output);
  *output = sanitize_utf8(out);
  if (run.timed_out) {
    return timeout_error("restart hook " + program + " did not finish within " +
                         format_duration(opts_.execute_timeout));
  }
  if (run.exit_code != 0) {
    return internal_error("restart hook " + program +
                          (run.signal ? " was killed by signal " + std::to_string(run.signal)
                                      : " exited with code " + std::to_string(run.exit_code)));
  }
  return {};
}

bool Actuator::goal_reached(const Action& action, Time since) {
  auto info = hv_.get(action.vm());
  if (action.verb() == medic::v1::VERB_DELETE)
    return !info.ok() && info.status().code() == Code::kNotFound;
  if (!info.ok()) return false;
  if (action.verb() == medic::v1::VERB_STOP) return info->state == medic::v1::VM_STATE_STOPPED;
  return info->state == medic::v1::VM_STATE_RUNNING && info->last_heartbeat >= since;
}

const char* Actuator::goal_words(medic::v1::Verb verb) {
  switch (verb) {
    case medic::v1::VERB_STOP:
      return "stopped";
    case medic::v1::VERB_DELETE:
      return "gone";
    default:
      return "running with a heartbeat";
  }
}

Duration Actuator::watch_for(const Action& action) const {
  if (action.watch_ns() <= 0) return opts_.default_watch;
  return std::min(Duration(action.watch_ns()), opts_.max_watch);
}

void Actuator::start_watch(const Action& action, Time started_at, Time deadline,
                           std::string output) {
  Watch w;
  w.output = std::move(output);
  w.action = action;
  w.started_at = started_at;
  w.deadline = deadline;
  const std::string id = action.id();
  Time first = std::min(clock_.now() + opts_.watch_poll, deadline);
  w.poll_timer = clock_.schedule_at(first, [this, id] { check_watch(id, false); });
  watches_[id] = std::move(w);
}

void Actuator::check_watch(const std::string& id, bool from_event) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  Watch& w = it->second;
  const Time now = clock_.now();
  const bool healthy = goal_reached(w.action, w.started_at);
  if (!healthy && now < w.deadline) {
    if (!from_event) {
      Time next = std::min(now + opts_.watch_poll, w.deadline);
      w.poll_timer = clock_.schedule_at(next, [this, id] { check_watch(id, false); });
    }
    return;
  }
  clock_.cancel(w.poll_timer);
  Action action = std::move(w.action);
  Time started_at = w.started_at;
  std::string output = std::move(w.output);
  watches_.erase(it);
  ActionResult r;
  r.set_action_id(id);
  r.set_outcome(ActionResult::OUTCOME_SUCCEEDED);
  r.set_healed(healthy);
  r.set_executed_at_ns(to_ns(started_at));
  r.set_output(std::move(output));
  if (!healthy) {
    r.set_reason(std::string("the verb succeeded but the VM was not seen ") +
                 goal_words(action.verb()) + " within " + format_duration(watch_for(action)));
  }
  finish(action, std::move(r));
}

void Actuator::on_vm_event(const vmm::VmEvent& event) {
  if (event.type == vmm::VmEvent::Type::kLifecycle && is_failure(event.what)) {
    failed_vms_.try_emplace(event.vm, Failure{event.at, event.what});
  }
  std::vector<std::string> ids;
  for (const auto& [id, w] : watches_) {
    if (w.action.vm() == event.vm) ids.push_back(id);
  }
  for (const auto& id : ids) check_watch(id, true);
}

void Actuator::finish(const Action& action, ActionResult result) {
  result.set_finished_at_ns(to_ns(clock_.now()));
  switch (result.outcome()) {
    case ActionResult::OUTCOME_SUCCEEDED:
      ++stats_.succeeded;
      if (result.healed()) ++stats_.healed;
      break;
    case ActionResult::OUTCOME_FAILED: ++stats_.failed; break;
    default: break;
  }
  Status s = journal_->finish(action.id(), result, clock_.now());
  if (!s.ok()) log_.warn("journal", "actuator: cannot record the result: " + s.message());
  queue_result(result);
}

void Actuator::queue_result(const ActionResult& result) {
  const std::string id = result.action_id();
  auto& r = resends_[id];
  if (r.timer) clock_.cancel(r.timer);
  r.result = result;
  r.backoff = opts_.result_initial_backoff;
  send_result(result);
  r.timer = clock_.schedule_after(r.backoff, [this, id] { resend_result(id); });
}

void Actuator::resend_result(const std::string& id) {
  auto it = resends_.find(id);
  if (it == resends_.end()) return;
  Resend& r = it->second;
  if (clock_.now() - from_ns(r.result.finished_at_ns()) > opts_.retention) {
    log_.warn("result_abandoned", "actuator: the engine never acknowledged the result of action " +
                                      id + "; giving up after the retention time");
    resends_.erase(it);
    return;
  }
  send_result(r.result);
  r.backoff = std::min(r.backoff * 2, opts_.result_max_backoff);
  r.timer = clock_.schedule_after(r.backoff, [this, id] { resend_result(id); });
}

void Actuator::handle_result_ack(const fabric::Opened& opened) {
  ActionAck ack;
  if (!ack.ParseFromString(opened.envelope.payload()) ||
      ack.what() != ActionAck::WHAT_RESULT_RECEIVED) {
    ++stats_.unattributed;
    log_.warn("bad_ack", "actuator: an acknowledgement from \"" + opened.sender->name +
                             "\" is malformed or not a result acknowledgement");
    return;
  }
  auto it = resends_.find(ack.action_id());
  if (it != resends_.end()) {
    clock_.cancel(it->second.timer);
    resends_.erase(it);
    ++stats_.results_acked;
  }
  Status s = journal_->mark_result_acked(ack.action_id(), clock_.now());
  if (!s.ok()) log_.warn("journal", "actuator: " + s.message());
}

void Actuator::send_ack(const std::string& action_id) {
  ActionAck ack;
  ack.set_action_id(action_id);
  ack.set_what(ActionAck::WHAT_RECEIVED);
  send_frame(medic::v1::KIND_ACTION_ACK, ack.SerializeAsString());
}

void Actuator::send_result(const ActionResult& result) {
  ++stats_.results_sent;
  send_frame(medic::v1::KIND_ACTION_RESULT, result.SerializeAsString());
}

bool Actuator::send_frame(medic::v1::Kind kind, const std::string& payload) {
  std::string frame = sealer_.seal(kind, opts_.host, payload, clock_.now());
  try {
    if (socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait)) return true;
  } catch (const zmq::error_t& e) {
    ++stats_.send_failures;
    log_.warn("send", std::string("actuator: send to the engine failed: ") + e.what());
    return false;
  }
  // Queue to the engine full or not connected: the re-send timers try again.
  ++stats_.send_failures;
  log_.warn("send", "actuator: the engine is not reachable; will re-send");
  return false;
}

void Actuator::prune() {
  int unacked = 0;
  auto n = journal_->prune(clock_.now() - opts_.retention, &unacked);
  if (!n.ok()) {
    log_.warn("journal", "actuator: pruning the journal failed: " + n.status().message());
  } else if (*n > 0) {
    spdlog::info("actuator: pruned {} journal entries older than {}", *n,
                 format_duration(opts_.retention));
    if (unacked > 0) {
      spdlog::warn("actuator: {} pruned results were never acknowledged by the engine", unacked);
    }
  }
  prune_timer_ = clock_.schedule_after(opts_.prune_interval, [this] { prune(); });
}

}  // namespace medic::actuators
