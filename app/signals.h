// Process signals for the daemons: SIGTERM/SIGINT ask for a clean stop,
// SIGHUP asks for a reload. Handlers only set flags; the loop acts on them.
#pragma once

#include <atomic>

namespace medic::app {

struct SignalFlags {
  std::atomic<bool> stop{false};
  std::atomic<bool> reload{false};
};

// Installs the handlers (once per process) and returns the flags they set.
SignalFlags& install_signal_handlers();

}  // namespace medic::app
