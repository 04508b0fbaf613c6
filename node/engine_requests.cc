// Operator requests on the control channel, already authenticated as an
// operator's or a requester's by fabric::ControlServer (a requester may send
// action requests only: engine_action_requests.cc). Every request that changes something
// (approve, deny, silence, unsilence, unfreeze, inject) is recorded in the
// audit log with its signed envelope, whether it was accepted or not; the
// queries (status, silence list, incidents, hosts) are not.
#include <spdlog/spdlog.h>

#include "core/duration.h"
#include "core/json.h"
#include "node/engine_node.h"

namespace medic::node {
namespace {

using Req = medic::v1::ControlRequest;

bool is_query(Req::BodyCase c) {
  return c == Req::kStatus || c == Req::kSilenceList || c == Req::kIncidents || c == Req::kHosts ||
         c == Req::kVm;
}

std::string in_seconds(Duration d) {
  return format_duration(std::chrono::round<std::chrono::seconds>(d));
}

}  // namespace

medic::v1::ControlReply EngineNode::handle(const medic::v1::ControlRequest& request,
                                           const fabric::Opened& opened, const std::string& peer) {
  medic::v1::ControlReply reply;
  if (!degraded_.ok()) return degraded_reply(request);
  audit::OperatorRequest rec;
  rec.received_at = party_.clock.now();
  rec.operator_name = opened.sender->name;
  rec.envelope = opened.envelope.SerializeAsString();
  Status s;
  if (request.body_case() == Req::kRequest) {
    s = action_request(request, *opened.sender, peer, &rec, &reply);
  } else if (!opened.sender->has_role(fabric::Role::kOperator)) {
    rec.verb = "not allowed";
    s = permission_denied("\"" + rec.operator_name +
                          "\" is a requester: it may send action requests (medic request) only");
  } else {
    s = answer(request, rec.operator_name, &rec, &reply);
  }
  reply.set_ok(s.ok());
  // Only an accepted, followed action request has more replies to come.
  if (request.body_case() != Req::kRequest || !s.ok()) reply.set_done(true);
  if (request.body_case() == Req::kRequest && !s.ok()) reply.set_stage(medic::v1::STAGE_REFUSED);
  if (!s.ok()) {
    reply.set_error(s.message());
    const std::string verb = rec.verb.empty() ? "unknown" : rec.verb;
    counters_.counter("control_requests_refused_total", {{"request", verb}}).add();
  }
  rec.accepted = s.ok();
  rec.detail = s.ok() ? reply.text() : s.message();
  // The approver's reason, readable in the log (it is also in the signed envelope).
  if (request.body_case() == medic::v1::ControlRequest::kApprove &&
      !request.approve().comment().empty()) {
    rec.detail += "; comment: " + request.approve().comment();
  }
  if (!is_query(request.body_case())) {
    auto seq = store_->append_request(rec);
    if (!seq.ok()) ++stats_.audit_errors;
  }
  return reply;
}

// Degraded: status answers (not OK, so a health check fails); every other
// request is refused, since it could not be recorded.
medic::v1::ControlReply EngineNode::degraded_reply(const medic::v1::ControlRequest& request) {
  medic::v1::ControlReply reply;
  reply.set_ok(false);
  reply.set_done(true);
  reply.set_error("engine degraded: the audit log cannot be written: " + degraded_.message());
  if (request.body_case() == medic::v1::ControlRequest::kStatus) {
    reply.set_text(status_text());
  } else {
    reply.set_error(reply.error() + "; request not applied");
  }
  return reply;
}

// Fills rec->verb and rec->target, and the reply's text (and JSON for queries).
Status EngineNode::answer(const medic::v1::ControlRequest& request, const std::string& who,
                          audit::OperatorRequest* rec, medic::v1::ControlReply* reply) {
  Status s;
  switch (request.body_case()) {
    case Req::kApprove:
      rec->verb = "approve";
      rec->target = request.approve().action_id();
      s = engine_->approve(rec->target, who);
      if (s.ok()) reply->set_text("approved " + rec->target);
      return s;
    case Req::kDeny:
      rec->verb = "deny";
      rec->target = request.deny().action_id();
      s = engine_->deny(rec->target, who, request.deny().reason());
      if (s.ok()) reply->set_text("denied " + rec->target);
      return s;
    case Req::kSilence:
      rec->verb = "silence";
      return silence_request(request.silence(), who, rec, reply);
    case Req::kUnsilence:
      rec->verb = "unsilence";
      rec->target = request.unsilence().silence_id();
      s = engine_->unsilence(rec->target);
      if (s.ok()) reply->set_text("removed silence " + rec->target);
      return s;
    case Req::kUnfreeze:
      rec->verb = "unfreeze";
      return unfreeze_request(request.unfreeze(), who, rec, reply);
    case Req::kInject:
      rec->verb = "inject";
      return inject_request(request.inject(), request.request_id(), rec, reply);
    case Req::kStatus:
      rec->verb = "status";
      reply->set_text(status_text());
      reply->set_json(dump_json(status_json()));
      return s;
    case Req::kSilenceList: rec->verb = "silence list"; silences_reply(reply); return s;
    case Req::kIncidents: rec->verb = "incidents"; incidents_reply(reply); return s;
    case Req::kHosts: rec->verb = "hosts"; hosts_reply(request.hosts(), reply); return s;
    case Req::kVm:
      rec->verb = "vm";
      return vm_reply(request.vm(), reply);
    case Req::kVmAction:
      return vm_action_request(request, rec, reply);
    default: return invalid_argument("empty request");
  }
}

// Sets rec->target to the scope in words ("vm=web-1", "label team=db").
Status EngineNode::silence_request(const medic::v1::Silence& q, const std::string& who,
                                   audit::OperatorRequest* rec, medic::v1::ControlReply* reply) {
  rules::Silence sil;
  Status s;
  switch (q.scope()) {
    case medic::v1::Silence::SCOPE_VM: sil.vm = q.value(); rec->target = "vm=" + q.value(); break;
    case medic::v1::Silence::SCOPE_HOST: sil.host = q.value(); rec->target = "host=" + q.value(); break;
    case medic::v1::Silence::SCOPE_RULE: sil.rule = q.value(); rec->target = "rule=" + q.value(); break;
    case medic::v1::Silence::SCOPE_LABEL: {
      auto eq = q.value().find('=');
      if (eq == std::string::npos || eq == 0) {
        s = invalid_argument("label silence needs key=value, got \"" + q.value() + "\"");
      } else {
        sil.label_key = q.value().substr(0, eq);
        sil.label_value = q.value().substr(eq + 1);
      }
      rec->target = "label " + q.value();
      break;
    }
    default: s = invalid_argument("silence needs a scope: vm, host, label or rule");
  }
  if (s.ok()) s = check_silence(sil, q.force(), Duration(q.duration_ns()));
  if (!s.ok()) return s;
  const Time now = party_.clock.now();
  sil.until = now + Duration(q.duration_ns());
  sil.reason = q.reason();
  sil.by = who;
  std::string id = engine_->silence(sil);
  reply->set_text("silence " + id + " on " + rec->target + " for " + in_seconds(sil.until - now) +
                  " (" + sil.reason + ")");
  return {};
}

// A silence must be for a while, not for ever (config max_silence), and name
// something the engine knows: a typo would otherwise silence nothing and
// look as if it worked. `force` admits a host, VM or label not heard of yet.
Status EngineNode::check_silence(const rules::Silence& s, bool force, Duration length) const {
  if (length <= Duration(0)) return invalid_argument("silence needs a positive duration");
  if (length > config_.max_silence) {
    return invalid_argument("silence for " + in_seconds(length) + " is longer than max_silence (" +
                            format_duration(config_.max_silence) + " in engine.yaml)");
  }
  if (!s.rule.empty() && !engine_->knows_rule(s.rule)) {
    return not_found("no rule named \"" + s.rule + "\" is loaded");
  }
  if (force) return {};
  const std::string hint = " (pass --force to silence it before it reports)";
  if (!s.vm.empty() && !engine_->knows_vm(s.vm)) {
    return not_found("no VM \"" + s.vm + "\" has reported to this engine" + hint);
  }
  if (!s.host.empty()) {
    auto hosts = engine_->hosts();
    if (std::find(hosts.begin(), hosts.end(), s.host) == hosts.end()) {
      return not_found("no host \"" + s.host + "\" has reported to this engine" + hint);
    }
  }
  if (!s.label_key.empty() && !engine_->knows_label_key(s.label_key)) {
    return not_found("no VM reports a label \"" + s.label_key + "\"" + hint);
  }
  return {};
}

Status EngineNode::unfreeze_request(const medic::v1::Unfreeze& q, const std::string& who,
                                    audit::OperatorRequest* rec, medic::v1::ControlReply* reply) {
  rec->target = q.host().empty() ? "fleet" : "host=" + q.host();
  Status s = engine_->unfreeze(q.host(), who);
  if (!s.ok()) return s;
  reply->set_text("unfroze " + (q.host().empty() ? std::string("the fleet") : "host " + q.host()) +
                  (q.reason().empty() ? "" : " (" + q.reason() + ")") +
                  "; automatic actions on its VMs resume");
  return {};
}

// An inject is an action of its own kind: it goes to the VM's host through
// the dispatcher like any action (signed by the engine, at most once by the
// actuator's journal), but no rule decided it, so it has no decision row; the
// request row is its record. Only a simulated backend carries it out.
Status EngineNode::inject_request(const medic::v1::Inject& q, const std::string& request_id,
                                  audit::OperatorRequest* rec, medic::v1::ControlReply* reply) {
  rec->target = "vm=" + q.vm() + " fault=" + q.fault();
  if (q.fault().empty()) return invalid_argument("inject needs a fault name");
  const std::string host = engine_->vm_host(q.vm());
  if (host.empty()) return not_found("no VM \"" + q.vm() + "\" has reported to this engine");
  const Time now = party_.clock.now();
  medic::v1::Action action;
  action.set_id("inject-" + request_id);
  action.set_verb(medic::v1::VERB_INJECT);
  action.set_host(host);
  action.set_vm(q.vm());
  action.set_fault(q.fault());
  action.set_issued_at_ns(to_ns(now));
  action.set_expires_at_ns(to_ns(now + std::chrono::seconds(30)));
  action.set_attempt(1);
  if (Status s = dispatcher_->dispatch(action); !s.ok()) return s;
  reply->set_text("sent " + q.fault() + " to " + q.vm() + " on " + host + " (action " +
                  action.id() + "); only a simulated host carries it out");
  return {};
}

// `medic vm start|stop VM`: a request the rules engine decides like a
// trigger (rules/engine.h Request), with the signed request as its evidence.
// Refused when a policy stopped it (the decision is in the log all the same);
// accepted when it was sent, waits for a free slot, or was recorded as a dry
// run. The reply's JSON names the decision, its outcome and policy.
Status EngineNode::vm_action_request(const medic::v1::ControlRequest& request,
                                     audit::OperatorRequest* rec, medic::v1::ControlReply* reply) {
  const medic::v1::VmAction& q = request.vm_action();
  const bool start = q.verb() == medic::v1::VERB_START;
  rec->verb = start ? "vm start" : "vm stop";
  rec->target = "vm=" + q.vm();
  if (!start && q.verb() != medic::v1::VERB_STOP)
    return invalid_argument("vm action: the verb must be start or stop");
  rules::Request r;
  r.vm = vm_id_of(q.vm());
  if (r.vm.empty())
    return not_found("no VM \"" + q.vm() + "\" (id or name) has reported to this engine");
  r.step = start ? rules::Step::kStart : rules::Step::kStop;
  r.by = rec->operator_name;
  r.reason = q.reason();
  r.request_id = request.request_id();
  r.evidence = make_evidence_ref(
      remember({next_envelope_++, rec->received_at, rec->envelope, rec->operator_name, false}), 0);
  auto d = engine_->request(r);
  if (!d.ok()) return d.status();
  const std::string what = std::string(rules::step_name(r.step)) + " of VM " + q.vm();
  const bool wait = !d->checks.empty() && d->checks.back().verdict == rules::Verdict::kWait;
  Status s;
  std::string text;
  switch (d->outcome) {
    case rules::Outcome::kProposed:
      text = what + ": sent to host " + d->host + " as " + d->id;
      break;
    case rules::Outcome::kDryRun:
      text = what + ": dry run, recorded as " + d->id + ", not sent";
      break;
    default:
      if (wait) {
        text = what + ": " + d->reason + " (" + d->id + ")";
      } else {
        s = failed_precondition(what + " refused by " + std::string(rules::policy_name(d->policy)) +
                                ": " + d->reason + " (decision " + d->id + ")");
      }
  }
  reply->set_text(text);
  rec->target = d->id;  // the request's row joins the decision's history (medic audit why)
  reply->set_json(dump_json(Json{{"request", rec->verb},
                                 {"request_id", request.request_id()},
                                 {"accepted", s.ok()},
                                 {"vm", r.vm},
                                 {"decision", d->id},
                                 {"outcome", std::string(rules::outcome_name(d->outcome))},
                                 {"policy", std::string(rules::policy_name(d->policy))},
                                 {"reason", d->reason},
                                 {"text", text},
                                 {"error", s.ok() ? "" : s.message()}}));
  return s;
}

std::string EngineNode::vm_id_of(const std::string& id_or_name) const {
  if (engine_->knows_vm(id_or_name)) return id_or_name;
  for (const auto& h : engine_->host_views(true)) {
    for (const auto& vm : h.vm_list) {
      if (vm.deleted) continue;  // a later clone may have its name
      for (const auto& [k, v] : vm.labels) {
        if (k == "name" && v == id_or_name) return vm.id;
      }
    }
  }
  return "";
}

}  // namespace medic::node
