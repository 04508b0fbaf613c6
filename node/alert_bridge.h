// `medic bridge alertmanager`: Prometheus Alertmanager's webhook in, signed
// alert.firing / alert.resolved events out, to the engines, as a collector
// would send them (docs/alertmanager.md).
//
//   POST /api/v1/alerts   Alertmanager's webhook body (version 4); bearer token
//   GET  /healthz, /readyz, /metrics   as every daemon (node/daemon_http.h)
//
// Mapping: each alert names its VM by the first label of `map.vm` it has
// (default vm_id, then vm) and its host by the first of `map.host` (default
// host, then hypervisor); the VM is the id medic knows it by. An alert that
// names neither is not sent: it is counted and listed in the answer (200, so
// that Alertmanager does not retry what can never map). The events are
// sealed with the bridge's key, whose trust-store entry (role collector,
// `hosts:`) limits the hosts it may speak for: the engine refuses the rest.
//
// Contract:
// - The listener requires a bearer token (token_file), and TLS off loopback;
//   a body that is not a webhook (not JSON, no alerts list, a field of the
//   wrong type) gets 400 naming what is wrong, one past max_body 413, a
//   wrong token 401; each is counted (medic_bridge_webhooks_total{result}).
// - Parsing happens on the HTTP thread; sealing and publishing on the
//   bridge's loop (through its LoopMailbox, at most kAnswerDeadline: else
//   503, and Alertmanager sends again). Publishing never blocks. Until the
//   urgent lane to at least one engine has finished its handshake the
//   answer is 503 too: a PUB socket drops what it sends before that.
// - map_webhook is pure: the same body and mapping give the same events.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collectors/config.h"
#include "collectors/publisher.h"
#include "core/clock.h"
#include "core/counters.h"
#include "core/event_loop.h"
#include "fabric/envelope.h"
#include "fabric/party.h"
#include "medic/v1/events.pb.h"
#include "node/http_server.h"
#include "node/loop_mailbox.h"

namespace medic::node {

struct AlertMapping {
  std::vector<std::string> vm = {"vm_id", "vm"};
  std::vector<std::string> host = {"host", "hypervisor"};
};

struct BridgeConfig {
  std::string name = "alertmanager";  // for logs
  std::string key_file;
  std::vector<collectors::EngineEndpoint> engines;
  HttpOptions http;  // listen defaults to kDefaultBridgeHttp
  AlertMapping map;
  size_t max_body = kHttpMaxBody;
};

inline constexpr const char* kDefaultBridgeHttp = "127.0.0.1:9466";

// Reads bridge.yaml (its `bridge:` section); errors as file:line:col.
Result<BridgeConfig> load_bridge_config(const std::string& path);

// What one webhook body maps to.
struct MappedAlerts {
  std::map<std::string, medic::v1::EventBatch> by_host;  // urgent batches
  size_t alerts = 0;                                     // in the body
  std::vector<std::string> unmapped;                     // "ALERTNAME (fingerprint F): why"
};

// kInvalidArgument naming the problem when `body` is not a webhook body.
// The events' observed_at is left for the sender to set.
Result<MappedAlerts> map_webhook(std::string_view body, const AlertMapping& map);

class AlertBridge {
 public:
  static Result<std::unique_ptr<AlertBridge>> create(const BridgeConfig& config,
                                                     const fabric::Party& party);
  ~AlertBridge();

  void run_once(Duration max_wait);
  std::string url() const;
  // At least one engine's urgent lane is connected: until then a webhook
  // gets 503 (Alertmanager sends it again) instead of events sent to nobody.
  bool connected() const { return publisher_->connected_engines() > 0; }
  CounterRegistry& counters() { return counters_; }

 private:
  AlertBridge(const BridgeConfig& config, const fabric::Party& party);
  HttpResponse webhook(const HttpRequest& request);
  // On the loop: seals and publishes; the JSON answer.
  std::string publish(const MappedAlerts& mapped);
  std::string metrics_text();

  BridgeConfig config_;
  fabric::Party party_;
  fabric::Sealer sealer_;
  CounterRegistry counters_;
  std::unique_ptr<EventLoop> loop_;
  LoopMailbox mailbox_;
  collectors::PublisherPtr publisher_;
  std::unique_ptr<HttpServer> http_;  // stopped first: its handlers use the rest
};

}  // namespace medic::node
