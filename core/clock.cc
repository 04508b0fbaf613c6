#include "core/clock.h"

namespace medic {

TimerId Clock::schedule_at(Time at, Callback cb) {
  TimerId id = next_id_++;
  auto key = std::make_pair(at, next_seq_++);
  timers_.emplace(key, std::make_pair(id, std::move(cb)));
  index_.emplace(id, key);
  return id;
}

bool Clock::cancel(TimerId id) {
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  timers_.erase(it->second);
  index_.erase(it);
  return true;
}

std::optional<Time> Clock::next_deadline() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->first.first;
}

bool Clock::run_one_due(Time t) {
  if (timers_.empty()) return false;
  auto it = timers_.begin();
  if (it->first.first > t) return false;
  Callback cb = std::move(it->second.second);
  index_.erase(it->second.first);
  timers_.erase(it);
  cb();
  return true;
}

size_t Clock::run_due() {
  size_t n = 0;
  Time t = now();
  while (run_one_due(t)) ++n;
  return n;
}

void VirtualClock::advance_to(Time t) {
  while (true) {
    auto next = next_deadline();
    if (!next || *next > t) break;
    if (*next > now_) now_ = *next;
    run_one_due(now_);
  }
  if (t > now_) now_ = t;
}

}  // namespace medic
