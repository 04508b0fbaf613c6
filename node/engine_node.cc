#include "node/engine_node.h"

#include <glob.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <sstream>

#include "core/config.h"
#include "actuators/config.h"
#include "core/duration.h"
#include "vmm/hypervisor.h"

namespace medic::node {
namespace {

constexpr size_t kMaxRecentEnvelopes = 4096;
constexpr size_t kBulkFramesPerTurn = 4;
constexpr size_t kMaxRecentBytes = 32 << 20;

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/' || p.find("://") != std::string::npos) return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  }
  globfree(&g);
  if (out.empty()) out.push_back(pattern);  // let the loader report the missing file
  return out;
}

audit::ActionState state_for(actuators::DispatchEvent::Type t) {
  using T = actuators::DispatchEvent::Type;
  switch (t) {
    case T::kDispatched: return audit::ActionState::kDispatched;
    case T::kAcked: return audit::ActionState::kAcked;
    case T::kSucceeded: return audit::ActionState::kSucceeded;
    case T::kFailed: return audit::ActionState::kFailed;
    case T::kRejected: return audit::ActionState::kRejected;
    case T::kTimedOut: return audit::ActionState::kTimedOut;
  }
  return audit::ActionState::kFailed;
}

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

Result<EngineConfig> load_engine_config(const std::string& path) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  const std::string dir = std::filesystem::path(path).parent_path().string();
  ConfigReader r(path);
  EngineConfig c;
  r.check_keys(*root, {"engine"});
  YAML::Node e = (*root)["engine"];
  if (!r.expect_map(e, "\"engine:\"")) return r.status();
  r.check_keys(e, {"name", "key", "trust", "listen", "rules", "audit", "policies", "action_ttl",
                   "notify", "dispatch"});
  if (auto v = r.string(e, "name", false)) c.name = *v;
  if (auto v = r.string(e, "key", true)) c.key_file = resolve(dir, *v);
  if (auto v = r.string(e, "trust", true)) c.trust_file = resolve(dir, *v);
  if (auto v = r.duration(e, "action_ttl", false)) c.action_ttl = *v;
  YAML::Node listen = e["listen"];
  if (r.expect_map(listen, "\"listen:\"")) {
    r.check_keys(listen, {"events", "urgent", "actions", "control"});
    if (auto v = r.string(listen, "events", true)) c.events.bulk = *v;
    if (auto v = r.string(listen, "urgent", true)) c.events.urgent = *v;
    if (auto v = r.string(listen, "actions", true)) c.actions_endpoint = *v;
    if (auto v = r.string(listen, "control", true)) c.control_endpoint = *v;
  }
  if (auto v = r.string_list(e, "rules", true)) {
    for (const auto& pattern : *v) {
      for (auto& f : expand_glob(resolve(dir, pattern))) c.rule_files.push_back(std::move(f));
    }
  }
  YAML::Node a = e["audit"];
  if (r.expect_map(a, "\"audit:\"")) {
    r.check_keys(a, {"path", "durability", "checkpoint_every_rows", "checkpoint_every"});
    if (auto v = r.string(a, "path", true)) c.audit_path = resolve(dir, *v);
    if (auto v = r.string(a, "durability", false)) {
      if (*v == "power_loss") c.audit.durability = audit::Durability::kPowerLoss;
      else if (*v == "process_crash") c.audit.durability = audit::Durability::kProcessCrash;
      else r.error(a["durability"], "durability must be power_loss or process_crash, got \"" + *v + "\"");
    }
    if (auto v = r.integer(a, "checkpoint_every_rows", false, 1)) c.audit.checkpoint_every_rows = *v;
    if (auto v = r.duration(a, "checkpoint_every", false)) c.audit.checkpoint_every = *v;
  }
  YAML::Node dsp = e["dispatch"];
  if (dsp.IsDefined() && r.expect_map(dsp, "\"dispatch:\"")) {
    // Its endpoint is listen.actions unless the section names its own. (The
    // loaded document is edited in place: a clone would lose the positions
    // that error messages need.)
    if (!dsp["listen"].IsDefined()) dsp["listen"] = c.actions_endpoint;
    c.dispatch = actuators::parse_dispatcher_config(dsp, r);
    c.actions_endpoint = c.dispatch.endpoint;
  }
  YAML::Node n = e["notify"];
  if (n.IsDefined() && r.expect_map(n, "\"notify:\"")) {
    r.check_keys(n, {"webhook", "timeout"});
    if (auto v = r.string(n, "webhook", false)) c.notify.url = *v;
    if (auto v = r.duration(n, "timeout", false)) c.notify.timeout = *v;
  }
  YAML::Node p = e["policies"];
  if (p.IsDefined() && r.expect_map(p, "\"policies:\"")) {
    r.check_keys(p, {"max_in_flight_per_host", "max_in_flight_fleet", "host_silent_after",
                     "dry_run", "storm", "cooldown", "heal_within", "approval_timeout"});
    auto& o = c.engine;
    if (auto v = r.integer(p, "max_in_flight_per_host", false, 1)) o.max_in_flight_per_host = static_cast<uint32_t>(*v);
    if (auto v = r.integer(p, "max_in_flight_fleet", false, 1)) o.max_in_flight_fleet = static_cast<uint32_t>(*v);
    if (auto v = r.duration(p, "host_silent_after", false)) o.host_silent_after = *v;
    if (auto v = r.boolean(p, "dry_run", false)) o.dry_run = *v;
    if (auto v = r.duration(p, "cooldown", false)) o.defaults.cooldown = *v;
    if (auto v = r.duration(p, "heal_within", false)) o.defaults.heal_within = *v;
    if (auto v = r.duration(p, "approval_timeout", false)) o.defaults.approval_timeout = *v;
    YAML::Node s = p["storm"];
    if (s.IsDefined() && r.expect_map(s, "\"storm:\"")) {
      r.check_keys(s, {"host_fraction", "fleet_fraction", "min_vms", "window", "quiet"});
      if (auto v = r.number(s, "host_fraction", false)) o.storm.host_fraction = *v;
      if (auto v = r.number(s, "fleet_fraction", false)) o.storm.fleet_fraction = *v;
      if (auto v = r.integer(s, "min_vms", false, 1)) o.storm.min_vms = static_cast<uint32_t>(*v);
      if (auto v = r.duration(s, "window", false)) o.storm.window = *v;
      if (auto v = r.duration(s, "quiet", false)) o.storm.quiet = *v;
    }
  }
  if (!r.ok()) return r.status();
  return c;
}

EngineNode::EngineNode(const EngineConfig& config, Deps deps, audit::AuditStorePtr store)
    : config_(config), deps_(deps), store_(std::move(store)) {}

EngineNode::~EngineNode() {
  (void)shutdown();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Result<std::unique_ptr<EngineNode>> EngineNode::create(const EngineConfig& config, Deps deps,
                                                       std::shared_ptr<const rules::RuleSet> rules,
                                                       audit::AuditStorePtr store) {
  if (!deps.ctx || !deps.identity || !deps.trust || !deps.clock || !store || !rules) {
    return invalid_argument("engine node: missing dependency");
  }
  std::unique_ptr<EngineNode> node(new EngineNode(config, deps, std::move(store)));
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
  // wall-clock time in base 36.
  config_.engine.id_prefix = start_prefix(SystemClock::wall_now());
  engine_ = std::make_unique<rules::Engine>(*deps_.clock, std::move(rules), config_.engine, *this);
  notifier_ = std::make_unique<rules::WebhookNotifier>(config_.notify);

  auto receiver = fabric::EventReceiver::create(*deps_.ctx, config_.events, *deps_.identity,
                                                *deps_.trust, *deps_.clock);
  if (!receiver.ok()) return receiver.status().with_context("events");
  receiver_ = std::move(*receiver);

  actuators::DispatcherOptions dopts = config_.dispatch;
  dopts.endpoint = config_.actions_endpoint;
  auto dispatcher = actuators::Dispatcher::create(
      dopts, *deps_.ctx, *deps_.identity, *deps_.trust, *deps_.clock,
      [this](const actuators::DispatchEvent& e) { on_dispatch_event(e); });
  if (!dispatcher.ok()) return dispatcher.status().with_context("actions");
  dispatcher_ = std::move(*dispatcher);

  auto control = fabric::ControlServer::create(*deps_.ctx, config_.control_endpoint,
                                               *deps_.identity, *deps_.trust, *deps_.clock, *this);
  if (!control.ok()) return control.status().with_context("control");
  control_ = std::move(*control);

  resume_in_flight();
  return {};
}

// After a restart: every action the log says is not finished is either
// dispatched again (same id; the actuator's journal makes that safe) or, when
// it can no longer be, closed with the reason.
void EngineNode::resume_in_flight() {
  const Time now = deps_.clock->now();
  auto pending = store_->in_flight(now, /*include_expired=*/true);
  if (!pending.ok()) {
    spdlog::error("engine: cannot read in-flight actions from the audit log: {}",
                  pending.status().message());
    ++stats_.audit_errors;
    return;
  }
  for (const auto& a : *pending) {
    const bool expired = a.expires_at.time_since_epoch().count() != 0 && a.expires_at <= now;
    using S = audit::ActionState;
    if (a.state == S::kPendingApproval) {
      // The approval request lived in the old process; medic does less: the
      // rule raises it again if the VM still needs it.
      record_transition(a.action_id, S::kExpired, "engine",
                        "engine restarted while waiting for approval; not carried over");
      continue;
    }
    if (expired) {
      bool sent = a.state == S::kDispatched || a.state == S::kAcked;
      record_transition(a.action_id, sent ? S::kTimedOut : S::kExpired, "engine",
                        "engine restarted; the action expired before its result came");
      continue;
    }
    medic::v1::Action action;
    action.set_id(a.action_id);
    action.set_verb(vmm::verb_from_name(a.verb));
    action.set_host(a.host);
    action.set_vm(a.vm);
    action.set_issued_at_ns(to_ns(a.state_at));
    action.set_expires_at_ns(to_ns(a.expires_at));
    action.set_rule(a.rule);
    action.set_rule_version(a.rule_version);
    action.set_attempt(1);
    if (a.state == S::kProposed || a.state == S::kApproved) {
      auto seq = store_->append_transition(
          {a.action_id, now, S::kDispatched, "engine", "resumed after an engine restart", 0});
      if (!seq.ok()) {
        ++stats_.audit_errors;
        continue;
      }
      outbox_.push_back({*seq, action});
    } else {
      outbox_.push_back({store_->durable_seq(), action});
    }
    ++stats_.resumed;
  }
  if (stats_.resumed) spdlog::info("engine: resuming {} in-flight actions", stats_.resumed);
  flush_outbox();
}

void EngineNode::reload(std::shared_ptr<const rules::RuleSet> rules) {
  engine_->reload(std::move(rules));
}

Status EngineNode::shutdown() {
  if (closed_) return {};
  closed_ = true;
  return store_->close();
}

void EngineNode::run_once(Duration max_wait) {
  Clock& clock = *deps_.clock;
  Duration wait = max_wait;
  if (auto next = clock.next_deadline()) {
    wait = std::max(Duration(0), std::min(wait, *next - clock.now()));
  }
  zmq::pollitem_t items[] = {
      {receiver_->urgent_socket().handle(), 0, ZMQ_POLLIN, 0},
      {receiver_->bulk_socket().handle(), 0, ZMQ_POLLIN, 0},
      {dispatcher_->socket().handle(), 0, ZMQ_POLLIN, 0},
      {control_->socket().handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, wake_fd_, ZMQ_POLLIN, 0},
  };
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait + Duration(999'999));
  try {
    zmq::poll(items, 5, ms);
  } catch (const zmq::error_t& e) {
    // A signal (SIGHUP, SIGTERM) interrupts the wait; the loop checks its flags.
    if (e.num() != EINTR) spdlog::warn("engine: poll failed: {}", e.what());
  }
  // A few bulk frames per turn (each may hold a thousand events): actions
  // made durable meanwhile are dispatched between them, not after a whole
  // flood has been read. The urgent lane is read before every bulk frame.
  receiver_->drain(
      [this](std::string_view frame, const fabric::Opened& o, const medic::v1::EventBatch& b,
             bool urgent) { on_batch(frame, o, b, urgent); },
      kBulkFramesPerTurn);
  if (items[2].revents & ZMQ_POLLIN) dispatcher_->handle_readable();
  if (items[3].revents & ZMQ_POLLIN) control_->poll();
  drain_wakeups();
  clock.run_due();
  flush_outbox();
}

void EngineNode::drain_wakeups() {
  uint64_t n = 0;
  while (::read(wake_fd_, &n, sizeof n) > 0) {
  }
}

void EngineNode::on_batch(std::string_view frame, const fabric::Opened& opened,
                          const medic::v1::EventBatch& batch, bool urgent) {
  ++stats_.batches;
  const Time now = deps_.clock->now();
  Envelope env{next_envelope_++, now, std::string(frame), opened.sender->name};
  const uint64_t number = env.number;
  recent_bytes_ += env.frame.size();
  recent_.push_back(std::move(env));
  while (recent_.size() > kMaxRecentEnvelopes || recent_bytes_ > kMaxRecentBytes) {
    recent_bytes_ -= recent_.front().frame.size();
    recent_.pop_front();
  }
  hosts_seen_.insert(opened.envelope.host());
  engine_->host_seen(opened.envelope.host(), now);
  if (deps_.observer) deps_.observer->on_batch(batch, urgent);
  for (int i = 0; i < batch.events_size(); ++i) {
    ++stats_.events;
    engine_->ingest(batch.events(i), make_evidence_ref(number, static_cast<uint32_t>(i)));
  }
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

void EngineNode::on_decision(const rules::Decision& d) {
  ++stats_.decisions;
  if (deps_.observer) deps_.observer->on_decision(d);
  using O = rules::Outcome;
  switch (d.outcome) {
    case O::kApproved:
      record_transition(d.id, audit::ActionState::kApproved, d.by, d.reason);
      if (d.step != rules::Step::kNotify) record_verb(d);
      return;
    case O::kDenied:
      record_transition(d.id, audit::ActionState::kDenied, d.by, d.reason);
      return;
    case O::kExpired:
      record_transition(d.id, audit::ActionState::kExpired, "engine", d.reason);
      return;
    default:
      break;
  }
  audit::Decision rec;
  rec.id = d.id;
  rec.at = d.at;
  rec.rule = d.rule.empty() ? "(engine)" : d.rule;
  rec.rule_version = d.rule_version;
  rec.vm = d.vm;
  rec.host = d.host;
  rec.verb = std::string(rules::step_name(d.step));
  rec.ladder_step = d.ladder_step > 0 ? static_cast<int32_t>(d.ladder_step - 1) : 0;
  rec.policy = std::string(rules::policy_name(d.policy));
  rec.reason = d.reason;
  rec.evidence = store_evidence(d.evidence);
  if (!d.trigger.empty() && rec.reason.empty()) rec.reason = "trigger: " + d.trigger;
  switch (d.outcome) {
    case O::kProposed: rec.outcome = audit::Outcome::kProposed; break;
    case O::kSuppressed: rec.outcome = audit::Outcome::kSuppressed; break;
    case O::kPendingApproval: rec.outcome = audit::Outcome::kPendingApproval; break;
    case O::kDryRun: rec.outcome = audit::Outcome::kDryRun; break;
    default: break;
  }
  // The policies this step actually met and passed, in chain order.
  for (const auto& c : d.checks) {
    if (c.verdict == rules::Verdict::kPass) {
      rec.policies_passed.emplace_back(rules::policy_name(c.policy));
    }
  }
  if (rec.outcome != audit::Outcome::kDryRun) {
    rec.action_id = d.id;
    rec.action_expires_at = d.expires_at.time_since_epoch().count() != 0
                                ? d.expires_at
                                : d.at + config_.action_ttl;
  }
  auto seq = store_->append_decision(rec);
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::error("engine: decision {} not recorded, so not acted on: {}", d.id,
                  seq.status().message());
    return;
  }
  if (d.outcome != O::kProposed) return;
  if (d.step == rules::Step::kNotify) {
    record_notify(d);
  } else {
    record_verb(d);
  }
}

// Outbox: the `dispatched` row goes to the log first; the action leaves only
// once that row is durable (flush_outbox).
void EngineNode::record_verb(const rules::Decision& d) {
  const Time now = deps_.clock->now();
  medic::v1::Action action;
  action.set_id(d.id);
  action.set_verb(rules::step_verb(d.step));
  action.set_host(d.host);
  action.set_vm(d.vm);
  action.set_issued_at_ns(to_ns(now));
  Time expires = d.expires_at.time_since_epoch().count() != 0 ? d.expires_at
                                                               : now + config_.action_ttl;
  action.set_expires_at_ns(to_ns(expires));
  action.set_rule(d.rule);
  action.set_rule_version(d.rule_version);
  action.set_attempt(1);
  action.set_watch_ns(d.heal_within.count());
  auto seq = store_->append_transition(
      {d.id, now, audit::ActionState::kDispatched, "engine", "to the actuator of " + d.host, 0});
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::error("engine: action {} not recorded as dispatched, so not sent: {}", d.id,
                  seq.status().message());
    return;
  }
  outbox_.push_back({*seq, std::move(action)});
}

void EngineNode::record_notify(const rules::Decision& d) {
  ++stats_.notifications;
  // The notifier logs at once and POSTs from its own thread: never blocks here.
  notifier_->notify(d);
  const std::string to = config_.notify.url.empty() ? "logged" : "logged and queued for the webhook";
  record_transition(d.id, audit::ActionState::kDispatched, "engine", "notification " + to);
  record_transition(d.id, audit::ActionState::kSucceeded, "engine", "notification " + to);
}

void EngineNode::record_transition(const std::string& action_id, audit::ActionState state,
                                   const std::string& actor, const std::string& detail) {
  auto seq =
      store_->append_transition({action_id, deps_.clock->now(), state, actor, detail, 0});
  if (!seq.ok()) {
    ++stats_.audit_errors;
    spdlog::warn("engine: transition of {} to {} not recorded: {}", action_id,
                 audit::state_name(state), seq.status().message());
  }
}

void EngineNode::flush_outbox() {
  const audit::Seq durable = store_->durable_seq();
  while (!outbox_.empty() && outbox_.front().seq <= durable) {
    Outgoing out = std::move(outbox_.front());
    outbox_.pop_front();
    Status s = dispatcher_->dispatch(out.action);
    if (!s.ok()) {
      spdlog::warn("engine: action {} not dispatched: {}", out.action.id(), s.message());
      record_transition(out.action.id(), audit::ActionState::kFailed, "engine",
                        "not dispatched: " + s.message());
      engine_->on_action_result(out.action.id(), rules::ActionOutcome::kFailed, false,
                                s.message());
      continue;
    }
    ++stats_.dispatched;
  }
}

void EngineNode::on_dispatch_event(const actuators::DispatchEvent& e) {
  using T = actuators::DispatchEvent::Type;
  if (deps_.observer) deps_.observer->on_dispatch_event(e);
  if (e.type == T::kDispatched) return;  // recorded before it left (outbox)
  std::string detail = e.reason;
  bool healed = false;
  if (e.result) {
    detail = e.result->reason();
    healed = e.result->healed();
    if (e.type == T::kSucceeded) detail = healed ? "executed; the VM healed" : "executed; not healed yet";
    if (!e.result->output().empty()) detail += " [output: " + e.result->output() + "]";
  }
  if (!e.known) {
    auto st = store_->action_state(e.action.id());
    if (!st.ok() || !st->has_value() || audit::is_terminal(**st)) return;
  }
  record_transition(e.action.id(), state_for(e.type), e.action.host(), detail);
  switch (e.type) {
    case T::kSucceeded:
      engine_->on_action_result(e.action.id(), rules::ActionOutcome::kSucceeded, healed, detail);
      break;
    case T::kFailed:
      engine_->on_action_result(e.action.id(), rules::ActionOutcome::kFailed, false, detail);
      break;
    case T::kRejected:
      engine_->on_action_result(e.action.id(), rules::ActionOutcome::kRejected, false, detail);
      break;
    case T::kTimedOut:
      engine_->on_action_result(e.action.id(), rules::ActionOutcome::kTimedOut, false, detail);
      break;
    default:
      break;
  }
}

medic::v1::ControlReply EngineNode::handle(const medic::v1::ControlRequest& request,
                                           const fabric::Opened& opened) {
  medic::v1::ControlReply reply;
  const std::string who = opened.sender->name;
  audit::OperatorRequest rec;
  rec.received_at = deps_.clock->now();
  rec.operator_name = who;
  rec.envelope = opened.envelope.SerializeAsString();
  Status s;
  switch (request.body_case()) {
    case medic::v1::ControlRequest::kApprove:
      rec.verb = "approve";
      rec.target = request.approve().action_id();
      s = engine_->approve(rec.target, who);
      reply.set_text(s.ok() ? "approved " + rec.target : "");
      break;
    case medic::v1::ControlRequest::kDeny:
      rec.verb = "deny";
      rec.target = request.deny().action_id();
      s = engine_->deny(rec.target, who, request.deny().reason());
      reply.set_text(s.ok() ? "denied " + rec.target : "");
      break;
    case medic::v1::ControlRequest::kSilence: {
      rec.verb = "silence";
      const auto& q = request.silence();
      rules::Silence sil;
      switch (q.scope()) {
        case medic::v1::Silence::SCOPE_VM: sil.vm = q.value(); rec.target = "vm=" + q.value(); break;
        case medic::v1::Silence::SCOPE_HOST: sil.host = q.value(); rec.target = "host=" + q.value(); break;
        case medic::v1::Silence::SCOPE_RULE: sil.rule = q.value(); rec.target = "rule=" + q.value(); break;
        case medic::v1::Silence::SCOPE_LABEL: {
          auto eq = q.value().find('=');
          if (eq == std::string::npos) {
            s = invalid_argument("label silence needs key=value, got \"" + q.value() + "\"");
          } else {
            sil.label_key = q.value().substr(0, eq);
            sil.label_value = q.value().substr(eq + 1);
          }
          rec.target = "label " + q.value();
          break;
        }
        default: s = invalid_argument("silence needs a scope: vm, host, label or rule");
      }
      if (q.duration_ns() <= 0 && s.ok()) s = invalid_argument("silence needs a positive duration");
      if (s.ok()) {
        sil.until = deps_.clock->now() + Duration(q.duration_ns());
        sil.reason = q.reason();
        sil.by = who;
        std::string id = engine_->silence(sil);
        silences_[id] = sil;
        reply.set_text("silence " + id + " on " + rec.target + " for " +
                       format_duration(std::chrono::round<std::chrono::seconds>(
                           sil.until - deps_.clock->now())) +
                       " (" + sil.reason + ")");
      }
      break;
    }
    case medic::v1::ControlRequest::kUnsilence:
      rec.verb = "unsilence";
      rec.target = request.unsilence().silence_id();
      s = engine_->unsilence(rec.target);
      if (s.ok()) silences_.erase(rec.target);
      reply.set_text(s.ok() ? "removed silence " + rec.target : "");
      break;
    case medic::v1::ControlRequest::kStatus:
      rec.verb = "status";
      reply.set_text(status_text());
      break;
    default:
      s = invalid_argument("empty request");
  }
  reply.set_ok(s.ok());
  if (!s.ok()) reply.set_error(s.message());
  rec.accepted = s.ok();
  rec.detail = s.ok() ? reply.text() : s.message();
  if (rec.verb != "status") {
    auto seq = store_->append_request(rec);
    if (!seq.ok()) ++stats_.audit_errors;
  }
  return reply;
}

std::string EngineNode::status_text() {
  std::ostringstream out;
  const Time now = deps_.clock->now();
  auto es = engine_->stats();
  out << "engine " << config_.name << ": up, " << hosts_seen_.size() << " hosts, " << es.vms
      << " VMs, " << es.open_incidents << " open incidents, " << es.in_flight
      << " actions in flight\n";
  out << "counters: " << stats_.batches << " batches, " << stats_.events << " events, "
      << stats_.decisions << " decisions, " << stats_.dispatched << " dispatched, "
      << receiver_->rejections().rejected() << " frames rejected, " << stats_.audit_errors
      << " audit errors\n";
  auto in_flight = store_->in_flight(now);
  size_t pending = 0;
  if (in_flight.ok()) {
    for (const auto& a : *in_flight) {
      if (a.state != audit::ActionState::kPendingApproval) continue;
      if (pending++ == 0) out << "pending approvals:\n";
      out << "  " << a.action_id << "  " << a.verb << " " << a.vm << " on " << a.host
          << " (rule " << a.rule << ")\n";
    }
  }
  if (pending == 0) out << "pending approvals: none\n";
  for (auto it = silences_.begin(); it != silences_.end();) {
    if (it->second.until <= now) it = silences_.erase(it);
    else ++it;
  }
  if (silences_.empty()) out << "silences: none\n";
  for (const auto& [id, s] : silences_) {
    out << "silence " << id << ": " << (s.vm.empty() ? "" : "vm=" + s.vm + " ")
        << (s.host.empty() ? "" : "host=" + s.host + " ")
        << (s.rule.empty() ? "" : "rule=" + s.rule + " ")
        << (s.label_key.empty() ? "" : "label " + s.label_key + "=" + s.label_value + " ")
        << "for " << format_duration(std::chrono::round<std::chrono::seconds>(s.until - now))
        << " more, by " << s.by << ": " << s.reason << "\n";
  }
  std::vector<std::string> frozen;
  if (engine_->frozen("")) frozen.push_back("the whole fleet");
  for (const auto& h : hosts_seen_) {
    if (engine_->frozen(h)) frozen.push_back(h);
  }
  out << "frozen by storm guard: ";
  if (frozen.empty()) out << "none";
  for (size_t i = 0; i < frozen.size(); ++i) out << (i ? ", " : "") << frozen[i];
  out << "\n";
  return out.str();
}

}  // namespace medic::node
