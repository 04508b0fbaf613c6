// Absence detection over many keys: "no heartbeat from this VM for 30s".
// Each key has one deadline; refreshing it (the signal arrived) is O(1) and
// touches no heap. A min-heap holds at most one entry per key with lazy
// deletion: when an entry surfaces whose key was refreshed since, it is pushed
// back with the current deadline instead of firing. Memory is two deadlines
// and one heap entry per key (32 bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace medic::rules {

class AbsenceTracker {
 public:
  using Key = uint32_t;

  // Sets `key`'s deadline (ns since epoch), arming it if needed.
  void arm(Key key, int64_t deadline_ns);
  // Stops tracking `key` until it is armed again.
  void disarm(Key key);
  bool armed(Key key) const { return key < deadline_.size() && deadline_[key] != 0; }
  int64_t deadline(Key key) const { return key < deadline_.size() ? deadline_[key] : 0; }

  // The earliest time something might be due (may be early: a stale entry).
  std::optional<int64_t> next_check() const;
  // Appends every key whose deadline is <= now to `out` and disarms it.
  // Returns how many fired.
  size_t pop_due(int64_t now_ns, std::vector<Key>* out);

  size_t armed_count() const { return armed_; }
  // Bytes held by the structure (capacity, not size).
  size_t memory_bytes() const;
  void reserve(size_t keys);

 private:
  struct Entry {
    int64_t deadline;
    Key key;
  };
  void push(Entry e);
  Entry pop();

  std::vector<int64_t> deadline_;  // 0 = not armed
  std::vector<int64_t> queued_;    // deadline of the key's live heap entry, 0 = none
  std::vector<Entry> heap_;
  size_t armed_ = 0;
};

}  // namespace medic::rules
