#include "node/lease_keeper.h"

#include <algorithm>

namespace medic::node {

LeaseKeeper::LeaseKeeper(Clock& clock, audit::LeaseTable& table, std::string engine,
                         LeaseOptions options)
    : clock_(clock), table_(table), engine_(std::move(engine)), options_(options) {}

LeaseKeeper::~LeaseKeeper() {
  if (timer_) clock_.cancel(timer_);
}

Status LeaseKeeper::start() {
  if (options_.ttl <= Duration::zero() || options_.margin < Duration::zero()) {
    return invalid_argument("lease ttl must be positive and margin not negative");
  }
  // Renewed every ttl/3, a lease must stay valid locally past the next
  // renewal's send, or it lapses on schedule.
  if (options_.ttl - options_.margin <= options_.ttl / 3) {
    return invalid_argument("lease margin must be under two thirds of the ttl, or a held lease "
                            "stops being dispatchable between two renewals");
  }
  if (engine_.empty()) return invalid_argument("the engine needs a name to hold leases");
  running_ = true;
  tick();
  return {};
}

void LeaseKeeper::schedule_next() {
  if (!running_) return;
  timer_ = clock_.schedule_after(options_.ttl / 3, [this] {
    timer_ = 0;
    tick();
  });
}

void LeaseKeeper::tick() {
  if (timer_) {
    clock_.cancel(timer_);
    timer_ = 0;
  }
  tick_error_ = {};
  renew_held();
  auto live = table_.heartbeat(engine_, options_.ttl);
  note(live.status());
  if (live.ok()) balance(*live);
  last_error_ = tick_error_;
  schedule_next();
}

void LeaseKeeper::renew_held() {
  for (auto it = held_.begin(); it != held_.end();) {
    const Time sent = clock_.now();
    auto granted = table_.renew(it->first, engine_, it->second.epoch, options_.ttl);
    note(granted.status());
    if (granted.ok() && !*granted) {
      ++counters_.deposed;
      it = held_.erase(it);
      continue;
    }
    if (granted.ok()) {
      ++counters_.renewed;
      it->second.valid_until = sent + options_.ttl - options_.margin;
    }
    ++it;
  }
}

void LeaseKeeper::balance(int live_engines) {
  const size_t count = static_cast<size_t>(table_.shard_count());
  const size_t live = static_cast<size_t>(std::max(1, live_engines));
  const size_t fair_share = (count + live - 1) / live;
  if (held_.size() > fair_share) release_extra(fair_share);
  if (held_.size() < fair_share) acquire_free(fair_share);
}

void LeaseKeeper::release_extra(size_t fair_share) {
  while (held_.size() > fair_share) {
    auto last = std::prev(held_.end());
    const int shard = last->first;
    const int64_t epoch = last->second.epoch;
    held_.erase(last);  // stop dispatching before giving it away
    auto released = table_.release(shard, engine_, epoch);
    note(released.status());
    if (released.ok() && *released) ++counters_.released;
  }
}

void LeaseKeeper::acquire_free(size_t fair_share) {
  auto free = table_.free_shards();
  note(free.status());
  if (!free.ok() || free->empty()) return;
  // Start at a place of our own in the list, so engines starting together
  // mostly ask for different shards.
  const size_t start = audit::ShardMap(static_cast<int>(free->size())).shard_of(engine_);
  for (size_t i = 0; i < free->size() && held_.size() < fair_share; ++i) {
    const int shard = (*free)[(start + i) % free->size()];
    const Time sent = clock_.now();
    auto epoch = table_.acquire(shard, engine_, options_.ttl);
    note(epoch.status());
    if (!epoch.ok()) return;
    if (!*epoch) continue;  // someone was quicker
    ++counters_.acquired;
    held_[shard] = {**epoch, sent + options_.ttl - options_.margin};
  }
}

Status LeaseKeeper::stop() {
  running_ = false;
  if (timer_) {
    clock_.cancel(timer_);
    timer_ = 0;
  }
  Status first;
  std::map<int, Held> held;
  held.swap(held_);  // nothing is dispatchable from here on
  for (const auto& [shard, h] : held) {
    auto released = table_.release(shard, engine_, h.epoch);
    if (released.ok() && *released) ++counters_.released;
    if (!released.ok() && first.ok()) first = released.status();
  }
  Status left = table_.leave(engine_);
  if (first.ok()) first = left;
  return first;
}

bool LeaseKeeper::may_dispatch(int shard) const {
  auto it = held_.find(shard);
  return it != held_.end() && clock_.now() < it->second.valid_until;
}

std::optional<int64_t> LeaseKeeper::epoch(int shard) const {
  if (!may_dispatch(shard)) return std::nullopt;
  return held_.at(shard).epoch;
}

std::vector<int> LeaseKeeper::held() const {
  std::vector<int> out;
  for (const auto& [shard, h] : held_) out.push_back(shard);
  return out;
}

void LeaseKeeper::note(const Status& s) {
  if (s.ok()) return;
  ++counters_.failures;
  if (tick_error_.ok()) tick_error_ = s;
}

}  // namespace medic::node
