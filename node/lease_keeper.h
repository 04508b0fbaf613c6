// The engine's side of shard leases (audit/lease.h): which shards this engine
// holds, kept renewed, spread evenly over the live engines, and whether it
// may dispatch for a shard right now.
//
// Contract:
// - Every ttl/3 of the Clock, tick() heartbeats, renews every held lease,
//   releases shards beyond its fair share (ceil(N / live engines)) and takes
//   free ones up to it.
// - may_dispatch(S) is true only while this engine's own clock says the lease
//   cannot have expired in the database: until the time the acquire or renew
//   request was *sent* plus ttl minus margin. The database set the expiry to
//   its now() + ttl at some moment after the send, so with clock rates that
//   differ by less than margin / ttl the local deadline comes first. Replies
//   that come late shorten the window; they never lengthen it.
// - A renewal the database refuses (deposed, or lapsed) drops the shard at
//   once. A renewal that fails (database unreachable) keeps the last deadline:
//   the engine stops dispatching for the shard when it passes, and
//   last_error() says why (degraded).
// - stop() drops every shard, then releases each explicitly and leaves the
//   live engines, so another engine takes over at its next tick instead of
//   waiting for the leases to expire.
//
// The clock must be monotonic in production (MonotonicClock): a wall clock
// set backwards would stretch the local deadline. Not thread-safe: it lives
// on one loop; its database calls block that loop for at most the lease
// table's statement timeout (keep it under ttl/3).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "audit/lease.h"
#include "core/clock.h"
#include "core/status.h"

namespace medic::node {

struct LeaseOptions {
  Duration ttl = std::chrono::milliseconds(1500);
  // Taken off every local deadline: clock rate differences between this
  // engine and the database, and the loop's lateness in acting on it.
  Duration margin = std::chrono::milliseconds(150);
};

struct LeaseKeeperCounters {
  uint64_t acquired = 0;
  uint64_t renewed = 0;
  uint64_t deposed = 0;   // renewals the database refused
  uint64_t released = 0;
  uint64_t failures = 0;  // calls that did not reach an answer
};

class LeaseKeeper {
 public:
  // `table` and `clock` must outlive the keeper.
  LeaseKeeper(Clock& clock, audit::LeaseTable& table, std::string engine, LeaseOptions options);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Checks the options (kInvalidArgument when margin leaves a held lease
  // lapsing between two renewals), ticks once and then every ttl/3.
  Status start();
  // One round: heartbeat, renew, balance. Called by the timer; public for
  // callers that drive it themselves.
  void tick();
  // Releases every held shard and leaves the live engines. Idempotent.
  Status stop();

  bool may_dispatch(int shard) const;
  // The epoch to fence writes with while may_dispatch(shard).
  std::optional<int64_t> epoch(int shard) const;
  // Shards held (renewed on time or not yet known to be lost), ascending.
  std::vector<int> held() const;
  // OK, or why a database call of the last tick failed (the keeper is
  // degraded).
  const Status& last_error() const { return last_error_; }
  const LeaseKeeperCounters& counters() const { return counters_; }
  const std::string& engine() const { return engine_; }

 private:
  struct Held {
    int64_t epoch = 0;
    Time valid_until{};  // send time of the last granted request + ttl - margin
  };

  void schedule_next();
  void renew_held();
  void balance(int live_engines);
  void release_extra(size_t fair_share);
  void acquire_free(size_t fair_share);
  void note(const Status& s);

  Clock& clock_;
  audit::LeaseTable& table_;
  const std::string engine_;
  const LeaseOptions options_;
  std::map<int, Held> held_;
  Status last_error_;
  Status tick_error_;  // the first failure of the tick under way
  LeaseKeeperCounters counters_;
  TimerId timer_ = 0;
  bool running_ = false;
};

}  // namespace medic::node
