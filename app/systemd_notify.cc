#include "app/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdint>

namespace medic::app {

SystemdNotifier::SystemdNotifier() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) every_ = std::chrono::microseconds(usec / 2);
}

void SystemdNotifier::ready(const std::string& status) {
  sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
}

void SystemdNotifier::tick() {
  if (every_.count() == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < every_) return;
  last_ = now;
  sd_notify(0, "WATCHDOG=1");
}

void SystemdNotifier::stopping() { sd_notify(0, "STOPPING=1"); }

}  // namespace medic::app
