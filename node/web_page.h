// The on-call page the engine serves at /: one self-contained HTML document
// (no external script, style or font: it works with no network beyond the
// engine) that polls /api/v1/overview and /api/v1/actions every 2 s and
// shows open incidents and what each waits for, frozen hosts, pending
// approvals with the `medic approve` command to paste, silences, and the
// last actions with their `audit why` story on demand. VM names stand next
// to VM ids. A bearer token, when the listener needs one, is read from the
// page's fragment (#token=...) and sent on every API call.
#pragma once

#include <string>

namespace medic::node {

const std::string& on_call_page();

}  // namespace medic::node
