// The routes every medic daemon's HTTP listener serves the same way, over
// the daemon's LoopMailbox (node/loop_mailbox.h):
//
//   GET /healthz   200 while the daemon's loop turns (it last turned less
//                  than kLoopStall ago), else 503 with how long it has not
//   GET /readyz    200 when the daemon's readiness says ready, else 503; the
//                  body names each check ({"ready": bool, "checks": {...}})
//   GET /metrics   Prometheus text format (node/metrics_text.h)
//
// Contract: readiness and metrics are computed on the loop thread and
// waited for at most kAnswerDeadline; past that the answer is 503 "busy".
// /healthz and /readyz need no token (load balancers, systemd, probes);
// /metrics does when one is configured.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "core/json_fwd.h"
#include "node/http_server.h"
#include "node/loop_mailbox.h"

namespace medic::node {

inline constexpr std::chrono::seconds kLoopStall{10};
inline constexpr std::chrono::milliseconds kAnswerDeadline{2000};

// Renders /metrics; runs on the daemon's loop thread.
using MetricsRenderer = std::function<std::string()>;
// {"ready": bool, "checks": {name: {"ok": bool, "detail": text}}}; on the loop thread.
using ReadinessView = std::function<Json()>;

HttpResponse busy_response();
HttpRoute healthz_route(const LoopMailbox& mailbox);
HttpRoute readyz_route(LoopMailbox& mailbox, ReadinessView readiness);
HttpRoute metrics_route(LoopMailbox& mailbox, MetricsRenderer metrics);

// Builds the readiness answer from named checks: ready when every one is ok.
class ReadinessChecks {
 public:
  void check(const std::string& name, bool ok, const std::string& detail);
  Json json() const;

 private:
  std::vector<std::tuple<std::string, bool, std::string>> checks_;
};

}  // namespace medic::node
