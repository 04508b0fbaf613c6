#include "app/control_client.h"

#include <sodium.h>

#include <cstdlib>

#include "core/duration.h"

namespace medic::app {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

void add_target_options(CLI::App* sub, Target* t) {
  t->engine = env_or("MEDIC_ENGINE", "tcp://127.0.0.1:7704");
  t->engine_key = env_or("MEDIC_ENGINE_KEY", "");
  t->key = env_or("MEDIC_KEY", "");
  t->trust = env_or("MEDIC_TRUST", "");
  sub->add_option("--engine", t->engine, "engine control endpoint ($MEDIC_ENGINE)")
      ->capture_default_str();
  sub->add_option("--engine-key", t->engine_key,
                  "engine key id, 64 hex digits ($MEDIC_ENGINE_KEY)");
  sub->add_option("--key", t->key, "your operator key file ($MEDIC_KEY)");
  sub->add_option("--trust", t->trust, "trust store that lists the engine ($MEDIC_TRUST)");
  sub->add_option("--timeout", t->timeout, "how long to wait for the reply")->capture_default_str();
  sub->add_flag("--json", t->json,
                "the answer as one JSON object: the engine's view for queries, "
                "{request, request_id, accepted, text, error} for requests");
}

Result<Connection> load_connection(const Target& t) {
  if (t.key.empty()) return invalid_argument("no key: pass --key FILE or set MEDIC_KEY");
  if (t.trust.empty())
    return invalid_argument("no trust store: pass --trust FILE or set MEDIC_TRUST");
  if (t.engine_key.empty())
    return invalid_argument("no engine key: pass --engine-key HEX or set MEDIC_ENGINE_KEY");
  auto limit = parse_duration(t.timeout);
  if (!limit.ok()) return invalid_argument("--timeout: " + limit.status().message());
  auto id = fabric::Identity::load(t.key);
  if (!id.ok()) return id.status();
  auto trust = fabric::TrustStore::load(t.trust);
  if (!trust.ok()) return trust.status();
  auto engine_key = fabric::public_key_from_hex(t.engine_key);
  if (!engine_key.ok()) return invalid_argument("--engine-key: " + engine_key.status().message());
  return Connection{std::move(*id),
                    std::move(*trust),
                    {t.engine, *engine_key},
                    std::chrono::duration_cast<std::chrono::milliseconds>(*limit)};
}

std::string new_request_id() {
  std::array<uint8_t, 8> rnd;
  randombytes_buf(rnd.data(), rnd.size());
  return fabric::to_hex(rnd);
}

Result<medic::v1::ControlReply> exchange(const Target& t, medic::v1::ControlRequest* request) {
  auto c = load_connection(t);
  if (!c.ok()) return c.status();
  request->set_request_id(new_request_id());
  return fabric::send_control_request(c->target, c->identity, c->trust, *request, c->limit);
}

}  // namespace medic::app
