// Shards and their leases, for many engines on one PostgreSQL database.
//
// Every host belongs to one of N shards (ShardMap, N fixed when the database
// is first set up). An engine may decide and dispatch for a shard only while
// it holds the shard's lease. The lease table is the truth:
// - Expiry is decided by the database clock (now()) alone, so engines whose
//   clocks disagree still agree on who holds a shard.
// - A lease's epoch goes up by one on every acquisition (a takeover, or the
//   same engine taking it again after it lapsed), never on a renewal, so
//   (shard, epoch) names one tenure; writes fenced by it (audit/pg_intents.h)
//   refuse a deposed holder.
// - acquire, renew and release are single statements: no read-then-write
//   window in which two engines can both win.
// Session advisory locks are not used: they outlive half-open connections
// and leak under connection poolers.
//
// The engine side, which renews on time and stops dispatching before a lease
// could have lapsed, is node/lease_keeper.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace medic::audit {

// host -> shard by a stable hash (FNV-1a, 64 bits, of the host's name, modulo
// N): the same on every engine, build and machine, so N must never change
// for a database once engines use it.
class ShardMap {
 public:
  // REQUIRES: count > 0.
  explicit ShardMap(int count) : count_(count) {}
  int count() const { return count_; }
  int shard_of(std::string_view host) const;

 private:
  int count_;
};

// One row of the lease table, as the database saw it.
struct LeaseRow {
  int shard = 0;
  std::string holder;  // "" before anyone held it
  int64_t epoch = 0;   // 0 before the first acquisition
  bool live = false;   // not expired (nor released) by the database clock
};

class LeaseTable {
 public:
  virtual ~LeaseTable() = default;

  // The number of shards, as fixed at install.
  virtual int shard_count() const = 0;
  // Takes `shard` for `holder` for `ttl` when its lease has expired or was
  // released; returns the new epoch, or nullopt when another live holder (or
  // `holder` itself) has it.
  virtual Result<std::optional<int64_t>> acquire(int shard, const std::string& holder,
                                                 Duration ttl) = 0;
  // Extends the lease to now() + ttl if `holder` still holds it at `epoch`
  // and it has not expired; false when it is no longer ours (deposed, or
  // lapsed: then only acquire() can take it again, with a new epoch).
  virtual Result<bool> renew(int shard, const std::string& holder, int64_t epoch,
                             Duration ttl) = 0;
  // Ends the lease at once so another engine can take over without waiting
  // for it to expire; false when it was not ours at `epoch`.
  virtual Result<bool> release(int shard, const std::string& holder, int64_t epoch) = 0;
  // Marks `engine` live for `ttl` and returns how many engines are live,
  // `engine` included: the shards are spread over that many.
  virtual Result<int> heartbeat(const std::string& engine, Duration ttl) = 0;
  // Removes `engine` from the live engines (a clean shutdown).
  virtual Status leave(const std::string& engine) = 0;
  // Shards whose lease has expired or was released, ascending.
  virtual Result<std::vector<int>> free_shards() = 0;
  // Every shard's row, ascending.
  virtual Result<std::vector<LeaseRow>> rows() = 0;
};

using LeaseTablePtr = std::unique_ptr<LeaseTable>;

// Connects to the database at `url` (postgresql://...), creating the lease
// tables when absent with `shard_count` shards. Refuses (kFailedPrecondition,
// naming both counts) a database set up with another shard count. Every
// statement is bounded by `statement_timeout`; a lost connection is
// kUnavailable and the next call reconnects. Not thread-safe.
Result<LeaseTablePtr> open_pg_lease_table(const std::string& url, int shard_count,
                                          Duration statement_timeout = std::chrono::seconds(1));

}  // namespace medic::audit
