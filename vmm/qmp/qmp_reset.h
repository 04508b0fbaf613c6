// A one-shot hard reset over QMP, for a backend that holds no QMP connection
// of its own (vmadm: the QEMU of a SmartOS zone): connect, greeting and
// qmp_capabilities, query-status, system_reset, then cont when the guest
// was not running (each sent when the previous reply came).
//
// Never blocks: the owner waits on fd() and calls poll() after a wait; the
// time limit is a timer on the Clock. Belongs to the thread of its Clock.
#pragma once

#include <functional>
#include <string>

#include "core/clock.h"
#include "core/json_fwd.h"
#include "core/status.h"
#include "vmm/qmp/qmp_client.h"

namespace medic::vmm::qmp {

class QmpReset {
 public:
  using Done = std::function<void(Status)>;

  // Connects to `socket_path` at once (without waiting for QEMU). `done`
  // runs exactly once, from poll() or the time-limit timer, never from the
  // constructor: ok once the reset (and cont) were answered; kUnavailable
  // when nothing listens or QEMU goes away, kFailedPrecondition for a QMP
  // error reply, kTimeout when `timeout` passes on the Clock first.
  QmpReset(Clock& clock, std::string socket_path, Duration timeout, Done done);
  // `done` is not called once the QmpReset is gone.
  ~QmpReset();
  QmpReset(const QmpReset&) = delete;
  QmpReset& operator=(const QmpReset&) = delete;

  // The socket to wait on for readability; -1 when there is none (then the
  // next poll() finishes).
  int fd() const { return client_.fd(); }
  void poll();
  bool finished() const { return finished_; }

 private:
  void send_next();
  void on_reply(Result<Json> reply);
  void finish(Status s);

  Clock& clock_;
  std::string socket_;
  Duration timeout_;
  Done done_;
  QmpClient client_;
  Status open_status_;
  TimerId limit_timer_ = 0;
  uint64_t waiting_id_ = 0;
  int step_ = 0;  // 0 query-status, 1 system_reset, 2 cont
  bool resume_ = false;
  bool finished_ = false;
};

}  // namespace medic::vmm::qmp
