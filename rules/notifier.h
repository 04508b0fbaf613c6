// Getting notify decisions to people without ever blocking the engine.
//
// The engine emits notify steps as Decisions; whoever owns the DecisionSink
// hands them to a Notifier. WebhookNotifier writes a log line at once and
// queues a JSON POST for its own worker thread (libcurl, with timeouts), so a
// slow or dead webhook costs the decision path one mutex and a queue push.
// The queue is bounded: when it is full the oldest notification is dropped
// and counted, never the engine stalled.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "rules/engine.h"

namespace medic::rules {

// The JSON body of a notification: id, time, rule, version, vm, host, step,
// policy, trigger, text, evidence.
std::string notification_json(const Decision& d);

class Notifier {
 public:
  virtual ~Notifier() = default;
  // Must return without waiting on the network.
  virtual void notify(const Decision& d) = 0;
};

struct WebhookOptions {
  std::string url;  // empty: log only
  Duration timeout = std::chrono::seconds(5);
  size_t max_queue = 1000;
  uint32_t attempts = 3;  // per notification
};

class WebhookNotifier final : public Notifier {
 public:
  explicit WebhookNotifier(WebhookOptions opts);
  ~WebhookNotifier() override;  // delivers what it can within one timeout, then stops
  WebhookNotifier(const WebhookNotifier&) = delete;
  WebhookNotifier& operator=(const WebhookNotifier&) = delete;

  void notify(const Decision& d) override;

  struct Stats {
    uint64_t queued = 0;
    uint64_t sent = 0;
    uint64_t failed = 0;   // gave up after all attempts
    uint64_t dropped = 0;  // queue full
  };
  Stats stats() const;
  // For tests and shutdown: waits until the queue is empty and nothing is in
  // flight, or `limit` passes. Returns true when drained.
  bool drain(std::chrono::milliseconds limit);

 private:
  void run();
  bool post(const std::string& body, std::string* error);

  WebhookOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  bool busy_ = false;
  Stats stats_;
  std::thread worker_;
};

}  // namespace medic::rules
