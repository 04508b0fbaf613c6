// Questions from other threads (the HTTP listener's) to a daemon's loop
// thread, which owns the state they ask about.
//
// Contract:
// - ask() may be called from any thread. It posts `question` to the loop and
//   waits at most `deadline` for its answer; past that it returns nullopt
//   (the loop is busy or stuck) and the question, if it runs later, answers
//   nobody. The loop never waits for the asker: a slow HTTP client holds its
//   own thread, not the loop.
// - The loop thread registers fd() for reading on its EventLoop and calls
//   run() when it is readable; run() answers every question posted so far.
// - Every answer is computed on the loop thread, so questions may read
//   anything the loop owns without locks.
// - beat() (loop thread) and last_beat_ns() (any thread) tell a liveness
//   check when the loop last turned.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace medic::node {

class LoopMailbox {
 public:
  LoopMailbox();
  ~LoopMailbox();
  LoopMailbox(const LoopMailbox&) = delete;
  LoopMailbox& operator=(const LoopMailbox&) = delete;

  int fd() const { return fd_; }
  std::optional<std::string> ask(std::function<std::string()> question,
                                 std::chrono::milliseconds deadline);
  void run();

  void beat();
  int64_t last_beat_ns() const { return last_beat_ns_.load(std::memory_order_relaxed); }

 private:
  struct Pending;
  int fd_ = -1;
  std::mutex mu_;
  std::deque<std::shared_ptr<Pending>> queue_;
  std::atomic<int64_t> last_beat_ns_{0};
};

}  // namespace medic::node
