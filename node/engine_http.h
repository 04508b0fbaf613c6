// The engine's HTTP listener: /healthz, /readyz, /metrics, the read-only
// JSON API under /api/v1/ and the on-call page at /.
//
//   GET /healthz, /readyz        as every daemon (node/daemon_http.h); ready:
//                                store writable, sockets bound, rules loaded
//   GET /api/v1/status|hosts|vms|incidents|approvals|silences|freezes|overview
//   GET /api/v1/actions?limit=N  the newest N decisions and their action state
//   GET /api/v1/why/<action id>  the `medic audit why` story, as JSON and text
//   GET /metrics                 Prometheus text format
//   GET /                        the on-call page (node/web_page.h)
//
// Contract: questions about engine state go to the engine's loop through its
// LoopMailbox and wait at most kAnswerDeadline (else 503 "engine busy");
// audit queries open the audit file read-only on the HTTP thread. The
// listener must be stopped (destroyed) before the EngineNode.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "node/daemon_http.h"
#include "node/engine_node.h"
#include "node/http_server.h"

namespace medic::node {

class EngineHttp {
 public:
  static Result<std::unique_ptr<EngineHttp>> start(const HttpOptions& options, EngineNode& node,
                                                   MetricsRenderer metrics = {});
  std::string url() const { return server_->url(); }

 private:
  explicit EngineHttp(std::unique_ptr<HttpServer> server) : server_(std::move(server)) {}
  std::unique_ptr<HttpServer> server_;
};

}  // namespace medic::node
