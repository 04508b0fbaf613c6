#include "vmm/completions.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace medic::vmm {

Completions::Completions() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

Completions::~Completions() {
  if (fd_ >= 0) ::close(fd_);
}

void Completions::push(Hypervisor::VerbDone done, Status status) {
  queue_.emplace_back(std::move(done), std::move(status));
  if (fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
  }
}

void Completions::deliver() {
  if (queue_.empty()) return;
  if (fd_ >= 0) {
    uint64_t n = 0;
    (void)!::read(fd_, &n, sizeof n);
  }
  while (!queue_.empty()) {
    auto [done, status] = std::move(queue_.front());
    queue_.pop_front();
    if (done) done(std::move(status));
  }
}

}  // namespace medic::vmm
