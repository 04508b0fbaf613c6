// The engine's safety state as StateStore rows (audit/state_store.h): what
// rules::Engine::take_changes() and the replay guards report, encoded per VM,
// host, silence, engine-wide values and replay mark; and back into an
// EngineState for rules::Engine::restore() after a restart.
//
// Values are compact JSON (readable with sqlite3 when an operator must look),
// keys the natural ids. A VM's row holds its budget, cooldown and storm marks,
// its facts, and all its incidents and in-flight actions: the row replaces
// what was stored for the VM, so an incident that closed is gone with it.
#pragma once

#include <string>
#include <vector>

#include "audit/state_store.h"
#include "fabric/envelope.h"
#include "rules/engine_state.h"

namespace medic::node {

// Which replay guard a mark belongs to.
enum class ReplayLane : char { kEvents = 'e', kControl = 'c' };

// Appends the rows for `changes` to *out.
void append_state_rows(const rules::StateChanges& changes, std::vector<audit::StateRow>* out);
void append_replay_rows(ReplayLane lane, const std::vector<fabric::Opener::ReplayMark>& marks,
                        std::vector<audit::StateRow>* out);

struct StoredState {
  rules::EngineState engine;
  std::vector<fabric::Opener::ReplayMark> event_marks;
  std::vector<fabric::Opener::ReplayMark> control_marks;
  size_t rows = 0;
};

// Decodes every row; a row that does not decode is an error naming its kind
// and key (the state is refused as a whole: an engine must not start on
// half its safety state).
Result<StoredState> decode_state_rows(const std::vector<audit::StateRow>& rows);

}  // namespace medic::node
