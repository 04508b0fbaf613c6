// The lease table on PostgreSQL (audit/lease.h). Each operation is one
// statement whose WHERE clause is the whole rule, evaluated by the database
// with its own clock, so two engines racing for a shard cannot both win.
#include "audit/lease.h"
#include "audit/pg_connection.h"
#include "audit/pg_schema.h"

namespace medic::audit {
namespace {

using internal::PgConnection;

int64_t micros(Duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

constexpr const char* kAcquire =
    "UPDATE medic_leases SET holder = $2, epoch = epoch + 1,"
    " expires_at = now() + $3 * interval '1 microsecond'"
    " WHERE shard = $1 AND expires_at <= now() RETURNING epoch";
constexpr const char* kRenew =
    "UPDATE medic_leases SET expires_at = now() + $4 * interval '1 microsecond'"
    " WHERE shard = $1 AND holder = $2 AND epoch = $3 AND expires_at > now() RETURNING epoch";
constexpr const char* kRelease =
    "UPDATE medic_leases SET expires_at = '-infinity'"
    " WHERE shard = $1 AND holder = $2 AND epoch = $3 AND expires_at > now() RETURNING epoch";
// The CTE's upsert is not visible to the count in the same statement, so the
// count is of the others, plus one.
constexpr const char* kHeartbeat =
    "WITH beat AS (INSERT INTO medic_engines VALUES ($1, now() + $2 * interval '1 microsecond')"
    " ON CONFLICT (engine) DO UPDATE SET expires_at = EXCLUDED.expires_at RETURNING engine)"
    " SELECT 1 + (SELECT count(*) FROM medic_engines WHERE engine <> $1 AND expires_at > now())"
    " FROM beat";

class PgLeaseTable final : public LeaseTable {
 public:
  PgLeaseTable(const std::string& url, int shard_count, Duration statement_timeout)
      : db_(url, statement_timeout), shard_count_(shard_count) {}

  Status open() {
    return db_.transact([&](pqxx::work& tx) { return internal::ensure_cluster_schema(tx, shard_count_); });
  }

  int shard_count() const override { return shard_count_; }

  Result<std::optional<int64_t>> acquire(int shard, const std::string& holder,
                                         Duration ttl) override {
    MEDIC_RETURN_IF_ERROR(check_shard(shard));
    std::optional<int64_t> epoch;
    MEDIC_RETURN_IF_ERROR(db_.transact([&](pqxx::work& tx) {
      pqxx::result r = tx.exec_params(kAcquire, shard, holder, micros(ttl));
      if (!r.empty()) epoch = r[0][0].as<int64_t>();
      return Status{};
    }));
    return epoch;
  }

  Result<bool> renew(int shard, const std::string& holder, int64_t epoch, Duration ttl) override {
    MEDIC_RETURN_IF_ERROR(check_shard(shard));
    return one_row(kRenew, shard, holder, epoch, micros(ttl));
  }

  Result<bool> release(int shard, const std::string& holder, int64_t epoch) override {
    MEDIC_RETURN_IF_ERROR(check_shard(shard));
    return one_row(kRelease, shard, holder, epoch);
  }

  Result<int> heartbeat(const std::string& engine, Duration ttl) override {
    int live = 0;
    MEDIC_RETURN_IF_ERROR(db_.transact([&](pqxx::work& tx) {
      live = tx.exec_params1(kHeartbeat, engine, micros(ttl))[0].as<int>();
      return Status{};
    }));
    return live;
  }

  Status leave(const std::string& engine) override {
    return db_.transact([&](pqxx::work& tx) {
      tx.exec_params("DELETE FROM medic_engines WHERE engine = $1", engine);
      return Status{};
    });
  }

  Result<std::vector<int>> free_shards() override {
    std::vector<int> out;
    MEDIC_RETURN_IF_ERROR(db_.transact([&](pqxx::work& tx) {
      for (const auto& row :
           tx.exec("SELECT shard FROM medic_leases WHERE expires_at <= now() ORDER BY shard")) {
        out.push_back(row[0].as<int>());
      }
      return Status{};
    }));
    return out;
  }

  Result<std::vector<LeaseRow>> rows() override {
    std::vector<LeaseRow> out;
    MEDIC_RETURN_IF_ERROR(db_.transact([&](pqxx::work& tx) {
      for (const auto& row : tx.exec("SELECT shard, holder, epoch, expires_at > now()"
                                     " FROM medic_leases ORDER BY shard")) {
        out.push_back({row[0].as<int>(), row[1].as<std::string>(), row[2].as<int64_t>(),
                       row[3].as<bool>()});
      }
      return Status{};
    }));
    return out;
  }

 private:
  Status check_shard(int shard) const {
    if (shard < 0 || shard >= shard_count_) {
      return invalid_argument("shard " + std::to_string(shard) + " is outside 0.." +
                              std::to_string(shard_count_ - 1));
    }
    return {};
  }

  // True when `sql` with `args` returned a row.
  template <typename... Args>
  Result<bool> one_row(const char* sql, Args&&... args) {
    bool hit = false;
    MEDIC_RETURN_IF_ERROR(db_.transact([&](pqxx::work& tx) {
      hit = !tx.exec_params(sql, std::forward<Args>(args)...).empty();
      return Status{};
    }));
    return hit;
  }

  PgConnection db_;
  const int shard_count_;
};

}  // namespace

int ShardMap::shard_of(std::string_view host) const {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : host) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int>(h % static_cast<uint64_t>(count_));
}

Result<LeaseTablePtr> open_pg_lease_table(const std::string& url, int shard_count,
                                          Duration statement_timeout) {
  if (shard_count <= 0) return invalid_argument("the shard count must be positive");
  auto table = std::make_unique<PgLeaseTable>(url, shard_count, statement_timeout);
  MEDIC_RETURN_IF_ERROR(table->open());
  return LeaseTablePtr(std::move(table));
}

}  // namespace medic::audit
