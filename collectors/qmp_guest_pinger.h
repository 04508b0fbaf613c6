// The collector's GuestPinger for the qmp backend: guest-ping through the
// QEMU guest agent of each VM (QmpHypervisor::ping_guest_agent). It lives
// here, not in vmm/, because includes point backwards only: vmm/ knows
// nothing of collectors/.
//
// The pings' sockets are part of the backend's fds() and move on in its
// poll(), which the collector's loop already waits on and calls, so answers
// arrive on the collector's thread as GuestPinger requires.
#pragma once

#include <string>

#include "collectors/collector.h"
#include "vmm/qmp/qmp_hypervisor.h"

namespace medic::collectors {

class QmpGuestPinger final : public GuestPinger {
 public:
  // `hypervisor` must outlive this pinger and be the collector's backend.
  explicit QmpGuestPinger(vmm::qmp::QmpHypervisor& hypervisor) : hypervisor_(hypervisor) {}
  void ping(const std::string& vm, Duration timeout, Done done) override;
  bool covers(const std::string& vm) override { return hypervisor_.has_guest_agent(vm); }

 private:
  vmm::qmp::QmpHypervisor& hypervisor_;
};

}  // namespace medic::collectors
