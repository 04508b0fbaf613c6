// The engine's /metrics: every counter of its registry (EngineNode::counters(),
// core/counters.h) as medic_<name>{labels}, and gauges read from the rules
// engine and the audit log (hosts, silent and frozen hosts, VMs, open
// incidents, actions in flight, approvals pending, outbox depth, readiness).
// Runs on the engine's loop thread, where the registry's observed entries
// may be read. The list of
// every metric is in docs/operations.md ("Metrics").
#pragma once

#include <string>

#include "node/engine_node.h"

namespace medic::node {

std::string engine_metrics_text(EngineNode& node);

}  // namespace medic::node
