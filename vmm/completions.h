// Verb completions a backend has ready but may not deliver yet: execute()
// must not call its `done` itself, so a backend whose verb ended inside
// execute() queues the completion here and delivers it from poll(). The
// eventfd is readable while completions wait, so an owner that waits on the
// backend's fds() wakes for them at once.
#pragma once

#include <deque>
#include <utility>

#include "vmm/hypervisor.h"

namespace medic::vmm {

class Completions {
 public:
  Completions();
  ~Completions();
  Completions(const Completions&) = delete;
  Completions& operator=(const Completions&) = delete;

  void push(Hypervisor::VerbDone done, Status status);
  // Runs every queued completion, oldest first (those pushed meanwhile too).
  void deliver();
  // Readable while completions wait; -1 when no eventfd could be made (the
  // owner then notices them at its next poll()).
  int fd() const { return fd_; }
  bool empty() const { return queue_.empty(); }

 private:
  int fd_ = -1;
  std::deque<std::pair<Hypervisor::VerbDone, Status>> queue_;
};

}  // namespace medic::vmm
