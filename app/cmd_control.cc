// medic approve / deny / silence / unsilence / unfreeze / inject and the
// queries status / silence list / incidents / hosts: signed operator requests
// to a running engine over its control channel. Each request is signed with
// the operator's key; the engine records every one that changes something in
// its audit log. Each prints text, or with --json one JSON object.
//
// Where the engine is, and who the operator is, come from flags or the
// environment: --engine ($MEDIC_ENGINE), --engine-key ($MEDIC_ENGINE_KEY),
// --key ($MEDIC_KEY), --trust ($MEDIC_TRUST).
#include <cstdlib>
#include <iostream>
#include <thread>

#include "app/commands.h"
#include "app/control_client.h"
#include "core/duration.h"
#include "core/json.h"
#include "fabric/control.h"

namespace medic::app {
namespace {

struct SilenceArgs {
  std::string vm, host, label, rule;
  std::string duration;
  std::string reason;
  bool force = false;
};

// The JSON answer: the engine's own for queries; for a request that changes
// something, what the engine said of it.
const char* request_name(medic::v1::ControlRequest::BodyCase c) {
  using R = medic::v1::ControlRequest;
  switch (c) {
    case R::kApprove: return "approve";
    case R::kDeny: return "deny";
    case R::kSilence: return "silence";
    case R::kStatus: return "status";
    case R::kUnsilence: return "unsilence";
    case R::kUnfreeze: return "unfreeze";
    case R::kSilenceList: return "silence_list";
    case R::kIncidents: return "incidents";
    case R::kHosts: return "hosts";
    case R::kInject: return "inject";
    case R::kVm: return "vm";
    case R::kVmAction: return "vm_action";
    case R::kRequest:
      return "request";
    case R::BODY_NOT_SET: break;
  }
  return "unknown";
}

std::string reply_json(const medic::v1::ControlRequest& q, const medic::v1::ControlReply& r) {
  if (!r.json().empty()) return r.json();
  Json j;
  j["request"] = request_name(q.body_case());
  j["request_id"] = q.request_id();
  j["accepted"] = r.ok();
  j["text"] = r.text();
  j["error"] = r.error();
  return dump_json(j);
}

// Sends `request`; prints the reply's text (its JSON with --json, refusals
// included). Exit: 0 done, 1 refused, 2 set-up error.
int send(const Target& t, medic::v1::ControlRequest request) {
  auto reply = exchange(t, &request);
  if (!reply.ok()) {
    std::cerr << "medic: " << reply.status().message() << "\n";
    return 2;
  }
  if (t.json) std::cout << reply_json(request, *reply) << "\n";
  if (!reply->ok()) {
    std::cerr << "refused: " << reply->error() << "\n";
    return 1;
  }
  if (t.json) return 0;
  const std::string& out = reply->text();
  std::cout << out << (out.empty() || out.back() == '\n' ? "" : "\n");
  return 0;
}

// One subcommand each, with its options and the request it sends.
void add_approve(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("approve", "approve an action that waits for a person");
  auto t = std::make_shared<Target>();
  auto id = std::make_shared<std::string>();
  auto comment = std::make_shared<std::string>();
  sub->add_option("ID", *id, "the action id (medic status lists pending approvals)")->required();
  sub->add_option("--comment", *comment, "why, for the audit log");
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_approve()->set_action_id(*id);
    r.mutable_approve()->set_comment(*comment);
    *exit_code = send(*t, r);
  });
}

void add_deny(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("deny", "deny an action that waits for a person");
  auto t = std::make_shared<Target>();
  auto id = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>();
  sub->add_option("ID", *id, "the action id")->required();
  sub->add_option("--reason", *reason, "why, for the audit log")->required();
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_deny()->set_action_id(*id);
    r.mutable_deny()->set_reason(*reason);
    *exit_code = send(*t, r);
  });
}

// Exactly one scope, a duration and a reason; the engine checks the rest.
int silence(const Target& t, const SilenceArgs& a) {
  auto fail = [](const std::string& m) {
    std::cerr << "medic silence: " << m << "\n";
    return 2;
  };
  const int scopes = !a.vm.empty() + !a.host.empty() + !a.label.empty() + !a.rule.empty();
  if (scopes != 1) return fail("name exactly one of --vm, --host, --label, --rule");
  if (a.duration.empty()) return fail("--for is required (how long, e.g. 2h)");
  if (a.reason.empty()) return fail("--reason is required (why, for the audit log)");
  auto d = parse_duration(a.duration);
  if (!d.ok()) return fail("--for: " + d.status().message());
  medic::v1::ControlRequest r;
  auto* s = r.mutable_silence();
  if (!a.vm.empty()) s->set_scope(medic::v1::Silence::SCOPE_VM), s->set_value(a.vm);
  if (!a.host.empty()) s->set_scope(medic::v1::Silence::SCOPE_HOST), s->set_value(a.host);
  if (!a.label.empty()) s->set_scope(medic::v1::Silence::SCOPE_LABEL), s->set_value(a.label);
  if (!a.rule.empty()) s->set_scope(medic::v1::Silence::SCOPE_RULE), s->set_value(a.rule);
  s->set_duration_ns(d->count());
  s->set_reason(a.reason);
  s->set_force(a.force);
  return send(t, r);
}

// `medic silence --host H --for 2h --reason ...`, and `medic silence list`.
void add_silence(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("silence", "hold automatic actions for a VM, host, label or rule");
  auto t = std::make_shared<Target>();
  auto a = std::make_shared<SilenceArgs>();
  sub->add_option("--vm", a->vm, "a VM id");
  sub->add_option("--host", a->host, "a host");
  sub->add_option("--label", a->label, "key=value");
  sub->add_option("--rule", a->rule, "a rule name");
  sub->add_option("--for", a->duration, "how long, e.g. 2h (at most the engine's max_silence)");
  sub->add_option("--reason", a->reason, "why, for the audit log");
  sub->add_flag("--force", a->force, "accept a host, VM or label the engine has not heard of");
  add_target_options(sub, t.get());
  sub->require_subcommand(0, 1);
  auto* list = sub->add_subcommand("list", "the silences in force, with id, scope and time left");
  auto lt = std::make_shared<Target>();
  add_target_options(list, lt.get());
  list->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_silence_list();
    *exit_code = send(*lt, r);
  });
  sub->callback([=] {
    if (sub->got_subcommand(list)) return;
    *exit_code = silence(*t, *a);
  });
}

void add_unsilence(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("unsilence", "end a silence early");
  auto t = std::make_shared<Target>();
  auto id = std::make_shared<std::string>();
  sub->add_option("ID", *id, "the silence id (medic status lists them)")->required();
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_unsilence()->set_silence_id(*id);
    *exit_code = send(*t, r);
  });
}

void add_status(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "status", "engine health, pending approvals, active silences, frozen hosts");
  auto t = std::make_shared<Target>();
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_status();
    *exit_code = send(*t, r);
  });
}

// A query with no arguments: `fill` sets the request's body; --json prints
// the engine's JSON instead of its text.
void add_query(CLI::App& app, int* exit_code, const std::string& name, const std::string& help,
               std::function<void(medic::v1::ControlRequest*)> fill) {
  auto* sub = app.add_subcommand(name, help);
  auto t = std::make_shared<Target>();
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    fill(&r);
    *exit_code = send(*t, r);
  });
}

void add_hosts(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("hosts", "every host: VMs, last report, silent, frozen");
  auto t = std::make_shared<Target>();
  auto vms = std::make_shared<bool>(false);
  sub->add_flag("--vms", *vms, "list each host's VMs: id, state, labels");
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_hosts()->set_vms(*vms);
    *exit_code = send(*t, r);
  });
}

struct VmActionArgs {
  std::string vm;
  std::string reason;
  bool wait = false;
  std::string wait_for = "3m";
};

// --wait: asks the engine about the VM every half second until its state
// reports say `goal` (running, stopped) and the request's incident has
// closed, or `limit` passed. Fills `*state` with what it saw last.
Status wait_for_state(const Target& t, const std::string& vm, const std::string& goal,
                      const std::string& rule, Duration limit, std::string* state) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (true) {
    medic::v1::ControlRequest q;
    q.mutable_vm()->set_vm(vm);
    auto r = exchange(t, &q);
    if (!r.ok()) return r.status();
    if (!r->ok()) return not_found(r->error());
    auto j = parse_json(r->json());
    if (!j.ok()) return j.status();
    *state = (*j)["state"].get<std::string>();
    bool open = false;
    for (const auto& i : (*j)["incidents"]) open = open || i["rule"] == rule;
    if (!open && *state == goal) return {};
    if (std::chrono::steady_clock::now() >= end)
      return timeout_error("VM " + vm + " is " + *state + ", not " + goal + ", after " +
                           format_duration(limit));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// `medic vm start|stop VM --reason R [--wait]`. Exit: 0 sent (and with
// --wait, reached), 1 refused or not reached, 2 set-up error.
int vm_action(const Target& t, const VmActionArgs& a, medic::v1::Verb verb) {
  const bool start = verb == medic::v1::VERB_START;
  auto limit = parse_duration(a.wait_for);
  if (!limit.ok()) {
    std::cerr << "medic vm: --wait-for: " << limit.status().message() << "\n";
    return 2;
  }
  medic::v1::ControlRequest r;
  r.mutable_vm_action()->set_vm(a.vm);
  r.mutable_vm_action()->set_verb(verb);
  r.mutable_vm_action()->set_reason(a.reason);
  if (!a.wait) return send(t, r);
  auto reply = exchange(t, &r);
  if (!reply.ok()) {
    std::cerr << "medic: " << reply.status().message() << "\n";
    return 2;
  }
  std::string state;
  Status reached = reply->ok()
                       ? wait_for_state(t, a.vm, start ? "running" : "stopped",
                                        start ? "request:start" : "request:stop", *limit, &state)
                       : failed_precondition(reply->error());
  if (t.json) {
    auto j = parse_json(reply_json(r, *reply));
    Json out = j.ok() ? *j : Json::object();
    out["reached"] = reached.ok();
    out["state"] = state;
    if (reply->ok() && !reached.ok()) out["wait_error"] = reached.message();
    std::cout << dump_json(out) << "\n";
  } else if (reply->ok()) {
    std::cout << reply->text() << "\n";
    if (reached.ok()) std::cout << "VM " << a.vm << " is " << state << "\n";
  }
  if (!reply->ok()) std::cerr << "refused: " << reply->error() << "\n";
  if (reply->ok() && !reached.ok()) std::cerr << "medic vm: " << reached.message() << "\n";
  return reached.ok() ? 0 : 1;
}

void add_vm_action(CLI::App* vm, int* exit_code, medic::v1::Verb verb) {
  const bool start = verb == medic::v1::VERB_START;
  auto* sub = vm->add_subcommand(
      start ? "start" : "stop",
      start ? "start the VM: a signed request the engine decides through its policies"
            : "stop the VM and keep it stopped: a signed request through the engine's policies");
  auto t = std::make_shared<Target>();
  auto a = std::make_shared<VmActionArgs>();
  sub->add_option("VM", a->vm, "the VM's id or name")->required();
  sub->add_option("--reason", a->reason, "why, for the audit log")->required();
  sub->add_flag("--wait", a->wait,
                start ? "wait until the VM runs" : "wait until the VM reports stopped");
  sub->add_option("--wait-for", a->wait_for, "how long --wait waits")->capture_default_str();
  add_target_options(sub, t.get());
  sub->callback([=] { *exit_code = vm_action(*t, *a, verb); });
}

// `medic vm show|start|stop VM`: one VM as the engine sees it, or a request
// for it.
void add_vm(CLI::App& app, int* exit_code) {
  auto* vm = app.add_subcommand(
      "vm", "one VM: its state, desired state and open incidents; start or stop it");
  vm->require_subcommand(1);
  auto* show = vm->add_subcommand("show", "the VM's last report, desired state, labels, incidents");
  auto t = std::make_shared<Target>();
  auto id = std::make_shared<std::string>();
  show->add_option("VM", *id, "the VM's id or name")->required();
  add_target_options(show, t.get());
  show->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_vm()->set_vm(*id);
    *exit_code = send(*t, r);
  });
  add_vm_action(vm, exit_code, medic::v1::VERB_START);
  add_vm_action(vm, exit_code, medic::v1::VERB_STOP);
}

void add_unfreeze(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("unfreeze", "lift a storm-guard freeze on a host or the fleet");
  auto t = std::make_shared<Target>();
  auto target = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>();
  sub->add_option("TARGET", *target, "a host name, or \"fleet\"")->required();
  sub->add_option("--reason", *reason, "why, for the audit log")->required();
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_unfreeze()->set_host(*target == "fleet" ? "" : *target);
    r.mutable_unfreeze()->set_reason(*reason);
    *exit_code = send(*t, r);
  });
}

void add_inject(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "inject", "break a VM of a simulated host on purpose (sim backend only)");
  auto t = std::make_shared<Target>();
  auto fault = std::make_shared<std::string>();
  auto vm = std::make_shared<std::string>();
  sub->add_option("FAULT", *fault, "panic, crash, hang, soft_hang, slow_boot or flapping")
      ->required();
  sub->add_option("VM", *vm, "the VM id (medic incidents and the agent's log name them)")
      ->required();
  add_target_options(sub, t.get());
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_inject()->set_fault(*fault);
    r.mutable_inject()->set_vm(*vm);
    *exit_code = send(*t, r);
  });
}

}  // namespace

void add_control(CLI::App& app, int* exit_code) {
  add_approve(app, exit_code);
  add_deny(app, exit_code);
  add_silence(app, exit_code);
  add_unsilence(app, exit_code);
  add_unfreeze(app, exit_code);
  add_inject(app, exit_code);
  add_status(app, exit_code);
  add_query(app, exit_code, "incidents",
            "open incidents: ladder position and what each waits for",
            [](medic::v1::ControlRequest* r) { r->mutable_incidents(); });
  add_hosts(app, exit_code);
  add_vm(app, exit_code);
}

}  // namespace medic::app
