// medic approve / deny / silence / unsilence / status: signed operator
// requests to a running engine over its control channel. Each request is
// signed with the operator's key and recorded in the engine's audit log.
//
// Where the engine is, and who the operator is, come from flags or the
// environment: --engine ($MEDIC_ENGINE), --engine-key ($MEDIC_ENGINE_KEY),
// --key ($MEDIC_KEY), --trust ($MEDIC_TRUST).
#include <sodium.h>

#include <cstdlib>
#include <iostream>

#include "app/commands.h"
#include "core/duration.h"
#include "fabric/control.h"

namespace medic::app {
namespace {

struct Target {
  std::string engine;
  std::string engine_key;
  std::string key;
  std::string trust;
  std::string timeout = "5s";
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

void add_target_options(CLI::App* sub, Target* t) {
  t->engine = env_or("MEDIC_ENGINE", "tcp://127.0.0.1:7704");
  t->engine_key = env_or("MEDIC_ENGINE_KEY", "");
  t->key = env_or("MEDIC_KEY", "");
  t->trust = env_or("MEDIC_TRUST", "");
  sub->add_option("--engine", t->engine, "engine control endpoint ($MEDIC_ENGINE)")
      ->capture_default_str();
  sub->add_option("--engine-key", t->engine_key, "engine key id, 64 hex digits ($MEDIC_ENGINE_KEY)");
  sub->add_option("--key", t->key, "your operator key file ($MEDIC_KEY)");
  sub->add_option("--trust", t->trust, "trust store that lists the engine ($MEDIC_TRUST)");
  sub->add_option("--timeout", t->timeout, "how long to wait for the reply")->capture_default_str();
}

// Sends `request`; prints the reply's text, or its JSON when `json`. Exit: 0
// done, 1 refused, 2 set-up error.
int send(const Target& t, medic::v1::ControlRequest request, bool json = false) {
  auto fail = [](const std::string& m) {
    std::cerr << "medic: " << m << "\n";
    return 2;
  };
  if (t.key.empty()) return fail("no operator key: pass --key FILE or set MEDIC_KEY");
  if (t.trust.empty()) return fail("no trust store: pass --trust FILE or set MEDIC_TRUST");
  if (t.engine_key.empty()) return fail("no engine key: pass --engine-key HEX or set MEDIC_ENGINE_KEY");
  auto limit = parse_duration(t.timeout);
  if (!limit.ok()) return fail("--timeout: " + limit.status().message());
  auto id = fabric::Identity::load(t.key);
  if (!id.ok()) return fail(id.status().message());
  auto trust = fabric::TrustStore::load(t.trust);
  if (!trust.ok()) return fail(trust.status().message());
  auto engine_key = fabric::public_key_from_hex(t.engine_key);
  if (!engine_key.ok()) return fail("--engine-key: " + engine_key.status().message());
  std::array<uint8_t, 8> rnd;
  randombytes_buf(rnd.data(), rnd.size());
  request.set_request_id(fabric::to_hex(rnd));
  auto reply = fabric::send_control_request(
      {t.engine, *engine_key}, *id, *trust, request,
      std::chrono::duration_cast<std::chrono::milliseconds>(*limit));
  if (!reply.ok()) return fail(reply.status().message());
  if (!reply->ok()) {
    std::cerr << "refused: " << reply->error() << "\n";
    return 1;
  }
  const std::string& out = json ? reply->json() : reply->text();
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

void add_silence(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("silence", "hold automatic actions for a VM, host, label or rule");
  auto t = std::make_shared<Target>();
  auto vm = std::make_shared<std::string>();
  auto host = std::make_shared<std::string>();
  auto label = std::make_shared<std::string>();
  auto rule = std::make_shared<std::string>();
  auto dur = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>();
  auto* g = sub->add_option_group("scope", "what to silence (exactly one)");
  g->add_option("--vm", *vm, "a VM id");
  g->add_option("--host", *host, "a host");
  g->add_option("--label", *label, "key=value");
  g->add_option("--rule", *rule, "a rule name");
  g->require_option(1);
  sub->add_option("--for", *dur, "how long, e.g. 2h")->required();
  sub->add_option("--reason", *reason, "why, for the audit log")->required();
  add_target_options(sub, t.get());
  sub->callback([=] {
    auto d = parse_duration(*dur);
    if (!d.ok()) {
      std::cerr << "medic silence: --for: " << d.status().message() << "\n";
      *exit_code = 2;
      return;
    }
    medic::v1::ControlRequest r;
    auto* s = r.mutable_silence();
    if (!vm->empty()) s->set_scope(medic::v1::Silence::SCOPE_VM), s->set_value(*vm);
    if (!host->empty()) s->set_scope(medic::v1::Silence::SCOPE_HOST), s->set_value(*host);
    if (!label->empty()) s->set_scope(medic::v1::Silence::SCOPE_LABEL), s->set_value(*label);
    if (!rule->empty()) s->set_scope(medic::v1::Silence::SCOPE_RULE), s->set_value(*rule);
    s->set_duration_ns(d->count());
    s->set_reason(*reason);
    *exit_code = send(*t, r);
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
  auto json = std::make_shared<bool>(false);
  sub->add_flag("--json", *json, "the engine's figures and every counter, as one JSON object");
  sub->callback([=] {
    medic::v1::ControlRequest r;
    r.mutable_status();
    *exit_code = send(*t, r, *json);
  });
}

}  // namespace

void add_control(CLI::App& app, int* exit_code) {
  add_approve(app, exit_code);
  add_deny(app, exit_code);
  add_silence(app, exit_code);
  add_unsilence(app, exit_code);
  add_status(app, exit_code);
}

}  // namespace medic::app
