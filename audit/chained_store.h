// Inside the AuditStore and StateStore: the class and its queue entries,
// shared by chained_store.cc (opening, validation, queries) and
// chained_writer.cc (appends, units, the writer thread), and the ChainBackend
// that keeps its rows: one SQLite file (sqlite_backend.cc) or one engine's
// chain in PostgreSQL (pg_store.cc). Internal to audit/.
//
// Validation runs on the caller's thread, hashing, signing and group commit on
// one writer thread; the backend only stores and reads rows.
//
// Seqs are assigned under mu_ when a record is queued, so append() can return
// one at once. The writer takes the whole queue, chains and inserts it in one
// transaction, adds a checkpoint when one is due (its seq is reserved under mu_
// at the same moment, right after the batch), re-signs the head, and commits.
// Only then does durable_ move: a seq <= durable_ is on disk.
#pragma once

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "audit/chain.h"
#include "audit/log.h"
#include "audit/state_store.h"
#include "core/json.h"
#include "medic/v1/envelope.pb.h"

namespace medic::audit::internal {

// The writes of one transaction of the writer thread.
class ChainWriter {
 public:
  virtual ~ChainWriter() = default;
  // One chained row: `values` in table_spec(t) order, after `prev`, hashing to `hash`.
  virtual Status insert_row(Table t, Seq seq, const std::vector<Value>& values, const Hash& prev,
                            const Hash& hash) = 0;
  virtual Status write_state(const std::vector<StateRow>& rows) = 0;
  // The signed head: the chain ends at `seq` with `hash`.
  virtual Status write_head(Seq seq, const Hash& hash, int64_t at_ns, std::string_view signer,
                            std::string_view signature) = 0;
};

// Where the chain is.
struct ChainEnd {
  Seq last_seq = 0;
  Hash last_hash{};
  Seq last_checkpoint_seq = 0;
};

// The stored signed head's seq and hash.
struct StoredHead {
  Seq seq = 0;
  std::string hash;
};

// Where a ChainedAuditStore keeps its rows. open() runs first and alone; then
// transact() runs on the writer thread only, lookup_*() on the caller's thread
// under the store's mutex, and load_state() / in_flight_rows() on any thread,
// each on a connection of its own.
class ChainBackend {
 public:
  virtual ~ChainBackend() = default;
  // The file or database, for messages.
  virtual const std::string& name() const = 0;
  // Creates the schema, notes `engine_key` (hex) and `now_ns` as the opener,
  // proves a write succeeds, and prepares the writer and lookups.
  // *opened_before: an engine opened this log before (so it has a signed head).
  virtual Status open(const std::string& engine_key, int64_t now_ns, bool* opened_before) = 0;
  virtual Result<ChainEnd> chain_end() = 0;
  virtual Result<std::optional<StoredHead>> signed_head() = 0;
  // Every action whose last transition is not terminal.
  virtual Result<std::vector<std::pair<std::string, ActionState>>> live_actions() = 0;
  // Runs `body` in one transaction, committed when it returns OK.
  virtual Status transact(const std::function<Status(ChainWriter&)>& body) = 0;
  virtual Result<std::optional<ActionState>> lookup_state(const std::string& action_id) = 0;
  virtual Result<bool> lookup_decision(const std::string& decision_id) = 0;
  virtual Result<std::vector<StateRow>> load_state() = 0;
  // For each id that has a decision: the action as its last transition left it,
  // with that transition's seq.
  virtual Result<std::vector<std::pair<Seq, InFlightAction>>> in_flight_rows(
      const std::vector<std::string>& ids) = 0;
  // Ends every connection; called once the writer has stopped.
  virtual void close() = 0;
};

std::unique_ptr<ChainBackend> sqlite_backend(std::string path, Durability durability);

class ChainedAuditStore;
// Opens the store on `backend` (the options' bounds enforced).
Result<AuditStorePtr> open_chained_store(std::unique_ptr<ChainBackend> backend, Clock& clock,
                                         const fabric::Identity& engine, StoreOptions options);

// A bounded memory of recent keys, oldest forgotten first. Covers records that
// are queued or being written, which a database lookup cannot see yet.
template <typename V>
class RecentMap {
 public:
  explicit RecentMap(size_t capacity) : capacity_(capacity) {}
  void put(const std::string& k, V v) {
    auto [it, inserted] = map_.insert_or_assign(k, v);
    if (inserted) order_.push_back(k);
    while (order_.size() > capacity_) {
      map_.erase(order_.front());
      order_.pop_front();
    }
  }
  const V* find(const std::string& k) const {
    auto it = map_.find(k);
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  size_t capacity_;
  std::unordered_map<std::string, V> map_;
  std::deque<std::string> order_;
};

// One queued audit row, or (seq 0, `state` set) the state rows of a unit.
struct Pending {
  Seq seq = 0;
  Table table = Table::kEvidence;
  Record rec;
  std::string sender;  // evidence / request: the envelope's sender key
  int32_t kind = 0;
  std::string host;
  std::vector<StateRow> state;
};

inline int64_t ns(Time t) { return to_ns(t); }

// The writer's backoff between attempts at a write that failed.
constexpr Duration kFirstRetry = std::chrono::milliseconds(50);
constexpr Duration kLastRetry = std::chrono::seconds(2);

class ChainedAuditStore final : public AuditStore {
 public:
  ChainedAuditStore(std::unique_ptr<ChainBackend> backend, Clock& clock,
                    const fabric::Identity& engine, StoreOptions options)
      : backend_(std::move(backend)),
        clock_(clock),
        engine_(engine),
        options_(options),
        recent_states_(std::max<size_t>(options.max_queued * 2, 4096)),
        recent_decisions_(std::max<size_t>(options.max_queued * 2, 4096)) {}

  ~ChainedAuditStore() override { (void)close(); }

  Status open();

  Result<Seq> append_evidence(Evidence e) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(e)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_decision(Decision d) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(d)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_transition(Transition t) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(t)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_request(OperatorRequest r) override {
    std::vector<Record> v;
    v.push_back(Record::of(std::move(r)));
    return append_batch(std::move(v));
  }
  Result<Seq> append_batch(std::vector<Record> records) override;

  Status wait_durable(Seq seq, Duration limit) override;
  Seq durable_seq() const override { return durable_.load(std::memory_order_acquire); }
  void on_durable(std::function<void(Seq)> listener) override {
    std::lock_guard<std::mutex> l(listener_mu_);
    listener_ = std::move(listener);
  }
  Result<Seq> checkpoint() override;
  Result<std::optional<ActionState>> action_state(const std::string& action_id) override;
  Result<std::vector<InFlightAction>> in_flight(Time now, bool include_expired) override;
  Status close() override;
  Status write_health() const override {
    std::lock_guard<std::mutex> l(mu_);
    return failed_;
  }
  void set_commit_histogram(Histogram* h) override { commit_histogram_.store(h); }

  // StateStore
  Result<std::vector<StateRow>> load_state() override;
  void begin_unit() override;
  Status commit_unit(std::vector<StateRow> rows) override;

 private:
  // Caller side, REQUIRES mu_ held.
  using Overlay = std::unordered_map<std::string, std::optional<ActionState>>;
  Result<std::optional<ActionState>> current_state(const std::string& id, const Overlay& overlay);
  Result<bool> decision_exists(const std::string& id);
  Status validate(Record& r, Pending* p, Overlay* overlay,
                  std::unordered_set<std::string>* new_decisions, Seq* next,
                  std::vector<Pending>* out);
  Status check_ref(Seq ref, Seq next, const char* what) const;
  // The checks of validate(), one per record type; queue_decision appends a
  // checked decision and its action's first transitions to *out.
  Status validate_evidence(const Evidence& e, Pending* p);
  Status check_new_decision(const Decision& d, const Overlay& overlay,
                            const std::unordered_set<std::string>& new_decisions, Seq next);
  void queue_decision(Pending* p, Overlay* overlay, Seq* next, std::vector<Pending>* out);
  Status validate_transition(Transition& t, Pending* p, Overlay* overlay, Seq next);
  Status validate_request(const OperatorRequest& q, Pending* p);
  Status validate_verdict(const HealVerdict& v, Pending* p, const Overlay& overlay,
                          const std::unordered_set<std::string>& new_decisions, Seq next);
  // Time comes only from clock_, read on the caller's thread (the one that
  // owns the Clock): each append, checkpoint() and close() note clock_.now()
  // in now_ns_, and the writer stamps heads and checkpoints with the time
  // noted last. A timer on clock_ marks a checkpoint due every
  // checkpoint_every.
  void note_time() { now_ns_ = to_ns(clock_.now()); }
  void arm_checkpoint_timer();
  // The steps of open(), in order.
  Status find_chain_end();  // sets last_seq_, last_hash_, last_checkpoint_seq_
  Status check_signed_head(bool opened_before, bool* has_head);
  Status load_live_actions();

  // Writer side.
  void release_unit();  // REQUIRES mu_: moves the open unit's rows to queue_
  void writer_loop();
  bool writer_ready() const;  // REQUIRES mu_
  void take_batch(std::vector<Pending>* batch, Seq* checkpoint_seq);
  void after_write(const Status& s, Seq checkpoint_seq);
  Status write_batch(std::vector<Pending>& batch, Seq checkpoint_seq);
  Status insert_row(ChainWriter& w, Table t, Seq seq, const std::vector<Value>& values);
  Status insert_pending(ChainWriter& w, const Pending& p);
  Status write_head(ChainWriter& w);

  const std::unique_ptr<ChainBackend> backend_;
  const std::string& path_ = backend_->name();
  Clock& clock_;
  const fabric::Identity engine_;
  const StoreOptions options_;

  mutable std::mutex mu_;
  std::condition_variable writer_cv_;
  std::condition_variable space_cv_;
  std::condition_variable durable_cv_;
  std::vector<Pending> queue_;  // what the writer may take
  std::vector<Pending> unit_;   // appended in the open unit, seqs after queue_'s
  bool unit_open_ = false;
  Seq next_seq_ = 1;
  std::atomic<Seq> durable_{0};
  Status failed_;
  bool closing_ = false;
  bool closed_ = false;
  bool checkpoint_requested_ = false;
  bool checkpoint_timer_due_ = false;  // set by the timer, cleared by the writer
  int64_t now_ns_ = 0;                 // the caller's clock, as last noted
  TimerId checkpoint_timer_ = 0;       // caller side
  Seq last_checkpoint_seq_ = 0;                        // durable checkpoint
  std::unordered_map<std::string, ActionState> live_;  // non-terminal actions
  RecentMap<ActionState> recent_states_;               // recently terminal
  RecentMap<bool> recent_decisions_;

  std::mutex listener_mu_;
  std::function<void(Seq)> listener_;

  // Writer thread only (after open()).
  Hash last_hash_{};
  Seq last_seq_ = 0;
  Seq rows_since_checkpoint_ = 0;
  int64_t write_at_ns_ = 0;  // now_ns_ when the writer took its batch
  std::string encode_buf_;
  std::atomic<Histogram*> commit_histogram_{nullptr};
  std::thread writer_;
};

}  // namespace medic::audit::internal
