#include "app/signals.h"

#include <csignal>

namespace medic::app {
namespace {

SignalFlags g_flags;  // the one place a signal handler can reach

extern "C" void on_stop(int) { g_flags.stop.store(true); }
extern "C" void on_reload(int) { g_flags.reload.store(true); }

}  // namespace

SignalFlags& install_signal_handlers() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sa.sa_handler = on_reload;
  sigaction(SIGHUP, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return g_flags;
}

}  // namespace medic::app
