#include "node/loop_mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>

namespace medic::node {

struct LoopMailbox::Pending {
  std::function<std::string()> question;
  std::mutex mu;
  std::condition_variable done;
  std::optional<std::string> answer;
};

LoopMailbox::LoopMailbox() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) { beat(); }

LoopMailbox::~LoopMailbox() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::string> LoopMailbox::ask(std::function<std::string()> question,
                                            std::chrono::milliseconds deadline) {
  auto p = std::make_shared<Pending>();
  p->question = std::move(question);
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(p);
  }
  uint64_t one = 1;
  ssize_t n = ::write(fd_, &one, sizeof one);
  (void)n;
  std::unique_lock<std::mutex> lock(p->mu);
  p->done.wait_for(lock, deadline, [&] { return p->answer.has_value(); });
  return p->answer;
}

void LoopMailbox::run() {
  uint64_t n = 0;
  while (::read(fd_, &n, sizeof n) > 0) {
  }
  std::deque<std::shared_ptr<Pending>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(queue_);
  }
  for (auto& p : batch) {
    std::string answer = p->question();
    std::lock_guard<std::mutex> lock(p->mu);
    p->answer = std::move(answer);
    p->done.notify_all();
  }
}

void LoopMailbox::beat() {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  last_beat_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                      std::memory_order_relaxed);
}

}  // namespace medic::node
