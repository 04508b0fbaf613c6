#include "rules/absence.h"

#include <algorithm>

namespace medic::rules {
namespace {

bool later(int64_t a, int64_t b) { return a > b; }

}  // namespace

void AbsenceTracker::reserve(size_t keys) {
  deadline_.reserve(keys);
  queued_.reserve(keys);
  heap_.reserve(keys);
}

void AbsenceTracker::push(Entry e) {
  queued_[e.key] = e.deadline;
  heap_.push_back(e);
  std::push_heap(heap_.begin(), heap_.end(),
                 [](const Entry& a, const Entry& b) { return later(a.deadline, b.deadline); });
}

AbsenceTracker::Entry AbsenceTracker::pop() {
  std::pop_heap(heap_.begin(), heap_.end(),
                [](const Entry& a, const Entry& b) { return later(a.deadline, b.deadline); });
  Entry e = heap_.back();
  heap_.pop_back();
  return e;
}

void AbsenceTracker::arm(Key key, int64_t deadline_ns) {
  if (key >= deadline_.size()) {
    deadline_.resize(key + 1, 0);
    queued_.resize(key + 1, 0);
  }
  if (deadline_[key] == 0) ++armed_;
  deadline_[key] = deadline_ns;
  // A later deadline reuses the queued entry (it re-queues itself when it
  // surfaces); an earlier one needs its own entry, and the old one goes stale.
  if (queued_[key] == 0 || deadline_ns < queued_[key]) push({deadline_ns, key});
}

void AbsenceTracker::disarm(Key key) {
  if (key < deadline_.size() && deadline_[key] != 0) {
    deadline_[key] = 0;
    --armed_;
  }
}

std::optional<int64_t> AbsenceTracker::next_check() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.front().deadline;
}

size_t AbsenceTracker::pop_due(int64_t now_ns, std::vector<Key>* out) {
  size_t fired = 0;
  while (!heap_.empty() && heap_.front().deadline <= now_ns) {
    Entry e = pop();
    if (queued_[e.key] != e.deadline) continue;  // superseded by an earlier entry
    queued_[e.key] = 0;
    int64_t d = deadline_[e.key];
    if (d == 0) continue;
    if (d > now_ns) {
      push({d, e.key});
      continue;
    }
    deadline_[e.key] = 0;
    --armed_;
    out->push_back(e.key);
    ++fired;
  }
  return fired;
}

size_t AbsenceTracker::memory_bytes() const {
  return deadline_.capacity() * sizeof(int64_t) + queued_.capacity() * sizeof(int64_t) +
         heap_.capacity() * sizeof(Entry);
}

}  // namespace medic::rules
