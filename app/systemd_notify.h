// A daemon's messages to systemd (units with Type=notify and WatchdogSec=):
// READY=1 once every socket is bound and the configuration is loaded,
// WATCHDOG=1 from the daemon's own loop at half the WatchdogSec= interval
// (so a loop that stops turning gets the service restarted), STOPPING=1 on
// the way out. Without systemd (no NOTIFY_SOCKET) every call does nothing.
// Not thread-safe: call it from the loop's thread.
#pragma once

#include <chrono>
#include <string>

namespace medic::app {

class SystemdNotifier {
 public:
  SystemdNotifier();
  void ready(const std::string& status);
  // Call once per loop turn; pings the watchdog when it is due.
  void tick();
  void stopping();

 private:
  std::chrono::microseconds every_{0};  // 0: no watchdog
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace medic::app
