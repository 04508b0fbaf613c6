// What the engine's read-only JSON API shows, as JSON documents: status,
// hosts, VMs, open incidents, pending approvals, silences, freezes (from the
// rules engine's own state and the audit log's in-flight view, on the
// engine's loop thread), and recent actions and the `audit why` story of one
// action (from the audit file through an AuditReader, on any thread).
//
// Contract: every function here except recent_actions_json and why_json
// reads the EngineNode and so runs on its loop thread (LoopMailbox::ask).
// Times are RFC 3339 UTC; durations are seconds. A VM's name is its `name`
// label when the collector reports one, else "".
// The schemas are documented in docs/operations.md ("JSON API").
#pragma once

#include <string>

#include "core/json_fwd.h"
#include "node/engine_node.h"

namespace medic::node {

Json status_json(EngineNode& node);
Json hosts_json(EngineNode& node);
Json vms_json(EngineNode& node);
Json incidents_json(EngineNode& node);
Json approvals_json(EngineNode& node);
Json silences_json(EngineNode& node);
Json freezes_json(EngineNode& node);
// Everything the on-call page shows, in one document.
Json overview_json(EngineNode& node);
// Whether the engine should take traffic, and why not: {"ready": bool,
// "checks": {"name": {"ok": bool, "detail": "..."}}}.
Json readiness_json(EngineNode& node);

// From the audit file at `audit_path`; any thread. `limit` newest first.
Result<Json> recent_actions_json(const std::string& audit_path, int64_t limit);
Result<Json> why_json(const std::string& audit_path, const std::string& action_id);

}  // namespace medic::node
