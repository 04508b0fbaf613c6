// The engine's /metrics: its counters (events, decisions, dispatches, frames
// rejected by cause and socket, audit errors, notifications) and gauges
// (hosts, silent and frozen hosts, VMs, open incidents, actions in flight,
// outbox depth, readiness). Runs on the engine's loop thread. The list of
// every metric is in docs/operations.md ("Metrics").
#pragma once

#include <string>

#include "node/engine_node.h"

namespace medic::node {

std::string engine_metrics_text(EngineNode& node);

}  // namespace medic::node
