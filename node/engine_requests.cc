// Operator requests on the control channel (approve, deny, silence,
// unsilence, status), already authenticated as an operator's by
// fabric::ControlServer. Every request but status is recorded in the audit
// log with its signed envelope, whether it was accepted or not.
#include "core/duration.h"
#include "node/engine_node.h"

namespace medic::node {

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
    case medic::v1::ControlRequest::kSilence:
      rec.verb = "silence";
      s = silence_request(request.silence(), who, &rec, &reply);
      break;
    case medic::v1::ControlRequest::kUnsilence:
      rec.verb = "unsilence";
      rec.target = request.unsilence().silence_id();
      s = engine_->unsilence(rec.target);
      reply.set_text(s.ok() ? "removed silence " + rec.target : "");
      break;
    case medic::v1::ControlRequest::kStatus:
      rec.verb = "status";
      reply.set_text(status_text());
      reply.set_json(dump_json(status_json()));
      break;
    default:
      s = invalid_argument("empty request");
  }
  reply.set_ok(s.ok());
  if (!s.ok()) reply.set_error(s.message());
  if (!s.ok()) {
    const std::string verb = rec.verb.empty() ? "unknown" : rec.verb;
    counters_.counter("control_requests_refused_total", {{"request", verb}}).add();
  }
  rec.accepted = s.ok();
  rec.detail = s.ok() ? reply.text() : s.message();
  if (rec.verb != "status") {
    auto seq = store_->append_request(rec);
    if (!seq.ok()) ++stats_.audit_errors;
  }
  return reply;
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
      if (eq == std::string::npos) {
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
  if (q.duration_ns() <= 0 && s.ok()) s = invalid_argument("silence needs a positive duration");
  if (!s.ok()) return s;
  const Time now = deps_.clock->now();
  sil.until = now + Duration(q.duration_ns());
  sil.reason = q.reason();
  sil.by = who;
  std::string id = engine_->silence(sil);
  reply->set_text("silence " + id + " on " + rec->target + " for " +
                  format_duration(std::chrono::round<std::chrono::seconds>(sil.until - now)) +
                  " (" + sil.reason + ")");
  return {};
}

}  // namespace medic::node
