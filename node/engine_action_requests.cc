// Action requests (`medic request`, ActionRequest): an application or an
// operator asks for one verb on one VM, or on every VM with a label. The
// key's scope (fabric/trust.h RequesterScope) says which VMs and verbs it may
// ask for and which wait for an operator's approval; within it, each VM's
// request is a trigger the rules engine decides through the whole policy
// chain (rules/engine.h Request, by_operator false). The first reply answers
// for every VM; with `follow`, RequestFollowers sends one more per stage.
#include <spdlog/spdlog.h>

#include "core/json.h"
#include "core/text.h"
#include "fabric/identity.h"
#include "node/engine_node.h"

namespace medic::node {
namespace {

// The rules step of a verb a request may name; kNotify for any other.
rules::Step request_step(medic::v1::Verb v) {
  for (size_t i = 0; i < rules::step_names().size(); ++i) {
    const auto s = static_cast<rules::Step>(i);
    if (s != rules::Step::kNotify && rules::step_verb(s) == v) return s;
  }
  return rules::Step::kNotify;
}

// How long a follower is kept at most: beyond the action's expiry and its
// watch, the engine has nothing more to say.
constexpr Duration kFollowFor = std::chrono::hours(1);

}  // namespace

// The VMs a request names: its VM (id or name), or every VM with its label.
Result<std::vector<rules::VmView>> EngineNode::request_vms(
    const medic::v1::ActionRequest& q) const {
  if (q.vm().empty() == q.label().empty())
    return invalid_argument("a request names either a VM or a label (key=value), not both");
  std::string key, value;
  if (!q.label().empty()) {
    const auto eq = q.label().find('=');
    if (eq == std::string::npos || eq == 0)
      return invalid_argument("a label is key=value, got \"" + q.label() + "\"");
    key = q.label().substr(0, eq);
    value = q.label().substr(eq + 1);
  }
  const std::string id = q.vm().empty() ? "" : vm_id_of(q.vm());
  if (!q.vm().empty() && id.empty())
    return not_found("no VM \"" + q.vm() + "\" (id or name) has reported to this engine");
  std::vector<rules::VmView> out;
  for (const auto& h : engine_->host_views(true)) {
    for (const auto& vm : h.vm_list) {
      if (vm.deleted) continue;
      const bool has_label = std::find(vm.labels.begin(), vm.labels.end(),
                                       std::make_pair(key, value)) != vm.labels.end();
      if (vm.id == id || (!key.empty() && has_label)) out.push_back(vm);
    }
  }
  if (out.empty() && q.label().empty()) return not_found("VM \"" + q.vm() + "\" was deleted");
  if (out.empty())
    return not_found("no VM with label " + q.label() + " has reported to this engine");
  return out;
}

// Why `who` may not ask for this VM, or "" when it may. An operator's key
// may ask for any VM.
std::string EngineNode::out_of_scope(const fabric::TrustedNode& who,
                                     const rules::VmView& vm) const {
  if (who.has_role(fabric::Role::kOperator)) return "";
  const std::string host = engine_->vm_host(vm.id);
  std::map<std::string, std::string> labels(vm.labels.begin(), vm.labels.end());
  if (who.covers_host(host) && who.scope.covers_vm(vm.id, labels)) return "";
  return "VM " + vm.id + " on host " + host + " is outside " + who.name + "'s scope (hosts " +
         join_names(who.hosts, ", ") + "; " + who.scope.describe() + ")";
}

// The VMs of the request `who` may ask for; kPermissionDenied naming the
// first it may not when it may ask for none.
Result<std::vector<rules::VmView>> EngineNode::request_scope(const medic::v1::ActionRequest& q,
                                                             const fabric::TrustedNode& who,
                                                             size_t* outside) const {
  auto vms = request_vms(q);
  if (!vms.ok()) return vms.status();
  std::vector<rules::VmView> in_scope;
  std::string first_refusal;
  for (const auto& vm : *vms) {
    std::string why = out_of_scope(who, vm);
    if (why.empty()) {
      in_scope.push_back(vm);
    } else if (first_refusal.empty()) {
      first_refusal = why;
    }
  }
  if (in_scope.empty()) return permission_denied(first_refusal);
  *outside = vms->size() - in_scope.size();
  return in_scope;
}

// Decides `base` for one VM; the step a follower tracks, and the VM's entry
// in the first reply's JSON (its text line too).
RequestFollowers::Step EngineNode::request_one(rules::Request r, const std::string& vm,
                                               Json* entry) {
  r.vm = vm;
  RequestFollowers::Step s{vm, rules::request_rule_name(r.step), "", medic::v1::STAGE_REFUSED};
  std::string line;
  std::string policy;
  std::string reason;
  auto d = engine_->request(r);
  if (d.ok()) {
    s.decision_id = d->id;
    s.stage = stage_of(*d);
    policy = rules::policy_name(d->policy);
    reason = d->reason;
    line = "VM " + vm + ": " + stage_words(s.stage);
    if (d->policy != rules::Policy::kNone) line += " by " + policy;
    if (!d->reason.empty()) line += ": " + d->reason;
    if (s.stage == medic::v1::STAGE_PENDING_APPROVAL) line += " (medic approve " + d->id + ")";
    line += " (decision " + d->id + ")";
  } else {
    reason = d.status().message();
    line = "VM " + vm + ": refused: " + reason;
  }
  *entry = Json{{"vm", vm},         {"decision", s.decision_id}, {"stage", stage_words(s.stage)},
                {"policy", policy}, {"reason", reason},          {"text", line}};
  return s;
}

// What every VM of the request shares: the step, who asked and why, the
// approval its scope asks for, and its signed envelope as the evidence.
rules::Request EngineNode::request_base(const medic::v1::ControlRequest& request, rules::Step step,
                                        const fabric::TrustedNode& who,
                                        const audit::OperatorRequest& rec) {
  rules::Request base;
  base.step = step;
  base.by = who.name;
  base.reason = request.request().reason();
  base.request_id = request.request_id();
  base.by_operator = false;
  base.needs_approval = !who.has_role(fabric::Role::kOperator) &&
                        who.scope.needs_approval(std::string(rules::step_name(step)));
  if (!who.has_role(fabric::Role::kOperator)) base.clones = who.scope.clones;
  base.evidence = make_evidence_ref(
      remember({next_envelope_++, rec.received_at, rec.envelope, rec.operator_name, false}), 0);
  return base;
}

Status EngineNode::action_request(const medic::v1::ControlRequest& request,
                                  const fabric::TrustedNode& who, const std::string& peer,
                                  audit::OperatorRequest* rec, medic::v1::ControlReply* reply) {
  const medic::v1::ActionRequest& q = request.request();
  const rules::Step step = request_step(q.verb());
  const std::string verb(rules::step_name(step));
  rec->verb = "request " + (step == rules::Step::kNotify ? std::string("?") : verb);
  rec->target = step == rules::Step::kClone ? "template " + q.template_name() + " on " + q.host()
                : q.vm().empty()            ? "label " + q.label()
                                            : "vm=" + q.vm();
  if (step == rules::Step::kNotify)
    return invalid_argument(
        "a request's verb is reboot, reset, restart, start, stop, clone or delete");
  if (!who.has_role(fabric::Role::kOperator) && !who.scope.allows_verb(verb))
    return permission_denied(who.name + " may not ask for " + verb +
                             " (its verbs: " + join_names(who.scope.verbs, ", ") + ")");
  std::vector<std::string> targets;
  size_t outside = 0;
  if (step == rules::Step::kClone) {
    auto id = clone_target(q, who);
    if (!id.ok()) return id.status();
    targets.push_back(*id);
  } else {
    auto in_scope = request_scope(q, who, &outside);
    if (!in_scope.ok()) return in_scope.status();
    for (const auto& vm : *in_scope) targets.push_back(vm.id);
  }
  rules::Request base = request_base(request, step, who, *rec);
  base.host = q.host();
  base.template_name = q.template_name();
  base.vm_name = q.vm_name();
  return answer_request(request, who, peer, base, targets, outside, rec, reply);
}

// A clone: a template on a host `who` covers, a new name no VM of that host
// has; the new VM's id is chosen here, so the replies can name it. A scope
// that names VMs cannot cover a VM that does not exist yet; one with labels
// covers a clone whose label template matches.
Result<std::string> EngineNode::clone_target(const medic::v1::ActionRequest& q,
                                             const fabric::TrustedNode& who) const {
  if (q.host().empty() || q.template_name().empty() || q.vm_name().empty())
    return invalid_argument("a clone names a host, a template and the new VM's name");
  if (!q.vm().empty() || !q.label().empty())
    return invalid_argument("a clone names no VM or label: the new VM gets a fresh id");
  if (!is_vm_name(q.vm_name()))
    return invalid_argument("\"" + q.vm_name() +
                            "\" is not a VM name (1 to 63 letters, digits, '.', '_', '-')");
  if (!who.has_role(fabric::Role::kOperator)) {
    const std::map<std::string, std::string> labels = {{"template", q.template_name()}};
    if (!who.covers_host(q.host()) || !who.scope.vms.empty() || !who.scope.covers_vm("", labels))
      return permission_denied("a clone of template " + q.template_name() + " on host " + q.host() +
                               " is outside " + who.name + "'s scope (hosts " +
                               join_names(who.hosts, ", ") + "; " + who.scope.describe() + ")");
  }
  for (const auto& h : engine_->host_views(true)) {
    if (h.name != q.host()) continue;
    for (const auto& vm : h.vm_list) {
      const bool named =
          std::find(vm.labels.begin(), vm.labels.end(),
                    std::make_pair(std::string("name"), q.vm_name())) != vm.labels.end();
      if (named && !vm.deleted)
        return already_exists("host " + q.host() + " has a VM named " + q.vm_name() + " (" + vm.id +
                              ")");
    }
  }
  return fabric::random_uuid();
}

// Decides `base` for every target VM and answers: the first reply for all of
// them, and with `follow` a follower for the stages still to come.
Status EngineNode::answer_request(const medic::v1::ControlRequest& request,
                                  const fabric::TrustedNode& who, const std::string& peer,
                                  const rules::Request& base,
                                  const std::vector<std::string>& targets, size_t outside,
                                  audit::OperatorRequest* rec, medic::v1::ControlReply* reply) {
  const medic::v1::ActionRequest& q = request.request();
  std::vector<RequestFollowers::Step> steps;
  Json list = Json::array();
  std::string text;
  size_t accepted = 0;
  bool done = true;
  for (const auto& vm : targets) {
    Json entry;
    steps.push_back(request_one(base, vm, &entry));
    accepted += steps.back().stage != medic::v1::STAGE_REFUSED;
    done = done && final_stage(steps.back().stage);
    text += (text.empty() ? "" : "\n") + entry["text"].get<std::string>();
    list.push_back(std::move(entry));
  }
  if (outside > 0)
    text += "\n" + std::to_string(outside) + " VM(s) with that label are outside " + who.name +
            "'s scope";
  record_request_rows(*rec, steps);
  reply->set_text(text);
  reply->set_stage(accepted == 0       ? medic::v1::STAGE_REFUSED
                   : steps.size() == 1 ? steps[0].stage
                                       : medic::v1::STAGE_ACCEPTED);
  if (steps.size() == 1) {
    reply->set_vm(steps[0].vm);
    reply->set_decision_id(steps[0].decision_id);
  }
  reply->set_done(done || !q.follow());
  reply->set_json(dump_json(Json{{"request", rec->verb},
                                 {"request_id", request.request_id()},
                                 {"accepted", accepted > 0},
                                 {"vms", list},
                                 {"outside_scope", outside},
                                 {"done", reply->done()}}));
  if (q.follow() && !done)
    followers_.follow(peer, request.request_id(), std::move(steps),
                      party_.clock.now() + kFollowFor);
  spdlog::info("engine: {} asked for {} of {}: {} of {} accepted", who.name,
               rules::step_name(base.step), rec->target, accepted, targets.size());
  if (accepted == 0) return failed_precondition(text);
  return {};
}

// The request's own row joins each VM decision's history (medic audit why):
// handle() writes the first; one more row for every further VM.
void EngineNode::record_request_rows(audit::OperatorRequest& rec,
                                     const std::vector<RequestFollowers::Step>& steps) {
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string target =
        steps[i].decision_id.empty() ? "vm=" + steps[i].vm : steps[i].decision_id;
    if (i == 0) {
      rec.target = target;
      continue;
    }
    audit::OperatorRequest more = rec;
    more.target = target;
    more.accepted = steps[i].stage != medic::v1::STAGE_REFUSED;
    more.detail = stage_words(steps[i].stage);
    if (!store_->append_request(more).ok()) ++stats_.audit_errors;
  }
}

}  // namespace medic::node
