#include "collectors/qmp_guest_pinger.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace medic::collectors {

void QmpGuestPinger::ping(const std::string& vm, Duration timeout, Done done) {
  hypervisor_.ping_guest_agent(
      vm, timeout, [vm, done = std::move(done)](const vmm::qmp::GuestPingResult& r) {
        // Failures are counted by cause in the backend's guest_agent_stats()
        // and by the collector; the reason is for whoever looks closer.
        if (!r.ok()) {
          spdlog::debug("guest ping {}: {}: {}", vm, vmm::qmp::guest_ping_failure_name(r.failure),
                        r.detail);
        }
        done(r.ok());
      });
}

}  // namespace medic::collectors
