// medic request VERB (--vm VM | --label KEY=VALUE) [--reason TEXT] [--wait]
// medic request clone --template NAME --host HOST --name NEW [--reason] [--wait]:
// an application's (or an operator's) signed ask for a verb, which the engine
// decides through its whole policy chain within the key's scope
// (docs/requests.md). Without --wait it prints the engine's answer for each
// VM; with --wait it prints every reply that follows (pending approval,
// dispatched, the result, healed or not) until the engine says done or
// --timeout (default 5m with --wait) runs out. --json prints one JSON object
// per reply, one per line. Exit: 0 accepted (with --wait: every VM healed),
// 1 refused, not healed, denied, expired or no word in time, 2 set-up error.
#include <iostream>

#include "app/commands.h"
#include "app/control_client.h"
#include "core/duration.h"
#include "core/json.h"
#include "node/request_replies.h"
#include "vmm/hypervisor.h"

namespace medic::app {
namespace {

struct RequestArgs {
  std::string verb;
  std::string vm;
  std::string label;
  std::string reason;
  std::string template_name, host, name;  // clone
  bool wait = false;
};

// What is missing or does not belong for this verb; "" when nothing.
std::string misuse(medic::v1::Verb verb, const RequestArgs& a) {
  const bool clone_args = !a.template_name.empty() || !a.host.empty() || !a.name.empty();
  if (verb != medic::v1::VERB_CLONE) {
    if (clone_args) return "--template, --host and --name are for clone only";
    if (a.vm.empty() == a.label.empty()) return "name exactly one of --vm and --label";
    return "";
  }
  if (!a.vm.empty() || !a.label.empty())
    return "a clone names no --vm or --label: the new VM gets a fresh id";
  if (a.template_name.empty() || a.host.empty() || a.name.empty())
    return "a clone needs --template, --host and --name";
  return "";
}

// One reply: JSON on stdout with --json; else its text on stdout, or on
// stderr when it says no (refused, not healed, denied, expired).
void print(const medic::v1::ControlReply& r, bool json, bool first) {
  if (json) {
    Json j{{"request_id", r.request_id()},
           {"stage", node::stage_words(r.stage())},
           {"vm", r.vm()},
           {"decision", r.decision_id()},
           {"ok", r.ok()},
           {"done", r.done()},
           {"text", r.text()},
           {"error", r.error()}};
    if (!r.json().empty()) {
      auto answer = parse_json(r.json());
      if (answer.ok()) j["answer"] = *answer;
    }
    std::cout << dump_json(j) << "\n" << std::flush;
    return;
  }
  if (r.ok()) {
    std::cout << r.text() << "\n" << std::flush;
    return;
  }
  std::cerr << (first ? "refused: " : "") << (r.error().empty() ? r.text() : r.error()) << "\n";
}

int request(const Target& t, const RequestArgs& a, bool timeout_given) {
  auto fail = [](const std::string& m) {
    std::cerr << "medic request: " << m << "\n";
    return 2;
  };
  const medic::v1::Verb verb = vmm::verb_from_name(a.verb);
  if (verb == medic::v1::VERB_UNSPECIFIED)
    return fail("unknown verb \"" + a.verb +
                "\" (reboot, reset, restart, start, stop, clone or delete)");
  if (std::string m = misuse(verb, a); !m.empty()) return fail(m);
  auto c = load_connection(t);
  if (!c.ok()) return fail(c.status().message());
  if (a.wait && !timeout_given) c->limit = std::chrono::minutes(5);
  medic::v1::ControlRequest q;
  q.set_request_id(new_request_id());
  auto* r = q.mutable_request();
  r->set_verb(verb);
  r->set_vm(a.vm);
  r->set_label(a.label);
  r->set_reason(a.reason);
  r->set_template_name(a.template_name);
  r->set_host(a.host);
  r->set_vm_name(a.name);
  r->set_follow(a.wait);
  auto client = fabric::ControlClient::connect(c->target, c->identity, c->trust);
  if (!client.ok()) return fail(client.status().message());
  if (Status s = (*client)->send(q); !s.ok()) return fail(s.message());
  const auto end = std::chrono::steady_clock::now() + c->limit;
  bool failed = false;  // refused, not healed, denied, expired
  bool first = true;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    auto reply = (*client)->next(q.request_id(), std::max(left, std::chrono::milliseconds(1)));
    if (!reply.ok()) {
      if (first) return fail(reply.status().message());
      std::cerr << "medic request: no further word within " << format_duration(c->limit)
                << " (see medic audit why)\n";
      return 1;
    }
    print(*reply, t.json, first);
    first = false;
    failed = failed || !reply->ok();
    if (reply->done() || !a.wait) break;
  }
  return failed ? 1 : 0;
}

}  // namespace

void add_request(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "request", "ask the engine for a verb on a VM or on every VM with a label (as a requester)");
  auto t = std::make_shared<Target>();
  auto a = std::make_shared<RequestArgs>();
  sub->add_option("VERB", a->verb, "reboot, reset, restart, start, stop, clone or delete")
      ->required();
  sub->add_option("--vm", a->vm, "the VM's id or name");
  sub->add_option("--label", a->label, "key=value: every VM with that label in your scope");
  sub->add_option("--reason", a->reason, "why, for the audit log");
  sub->add_option("--template", a->template_name, "clone: the template on the host");
  sub->add_option("--host", a->host, "clone: the host that holds the template");
  sub->add_option("--name", a->name, "clone: the new VM's name");
  sub->add_flag("--wait", a->wait,
                "print every reply until the engine says done (healed, not healed, refused)");
  add_target_options(sub, t.get());
  sub->callback([=] { *exit_code = request(*t, *a, sub->get_option("--timeout")->count() > 0); });
}

}  // namespace medic::app
