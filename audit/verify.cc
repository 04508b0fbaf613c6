// verify_log: recomputes the chain from the first row, checks every signature
// (checkpoints, the head, evidence and accepted operator request envelopes)
// and stops at the first row that does not hold up.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "audit/chain.h"
#include "audit/cursor.h"
#include "audit/log.h"
#include "audit/sqlite_db.h"
#include "core/json.h"
#include "fabric/envelope.h"
#include "medic/v1/envelope.pb.h"

namespace medic::audit {

using internal::Hash;
using internal::Table;

namespace {

bool key_from(std::string_view bytes, fabric::PublicKey* out) {
  if (bytes.size() != out->size()) return false;
  std::copy(bytes.begin(), bytes.end(), out->begin());
  return true;
}

// Checks Ed25519 signatures on worker threads while the caller walks the
// chain: on a big log the envelopes' signatures are most of the work, and each
// one is independent of the others. Remembers the lowest failing row.
class SignaturePool {
 public:
  struct Job {
    Seq seq = 0;
    const char* what = "";
    fabric::PublicKey key{};
    std::array<uint8_t, 64> sig{};
    std::string msg;
  };

  SignaturePool() {
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
  }
  ~SignaturePool() { finish(); }

  void add(Job job) {
    batch_.push_back(std::move(job));
    if (batch_.size() >= kBatch) flush();
  }

  // Waits for every job; returns the lowest failing (seq, what), seq 0 if none.
  std::pair<Seq, const char*> finish() {
    flush();
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    return {bad_seq_, bad_what_};
  }

 private:
  static constexpr size_t kBatch = 256;
  static constexpr size_t kMaxQueued = 64;

  void flush() {
    if (batch_.empty()) return;
    std::unique_lock<std::mutex> l(mu_);
    space_cv_.wait(l, [&] { return queue_.size() < kMaxQueued; });
    queue_.push_back(std::move(batch_));
    batch_ = {};
    l.unlock();
    work_cv_.notify_one();
  }

  void work() {
    while (true) {
      std::vector<Job> jobs;
      {
        std::unique_lock<std::mutex> l(mu_);
        work_cv_.wait(l, [&] { return !queue_.empty() || done_; });
        if (queue_.empty()) return;
        jobs = std::move(queue_.front());
        queue_.pop_front();
      }
      space_cv_.notify_one();
      for (const Job& j : jobs) {
        if (fabric::verify_signature(j.key, reinterpret_cast<const uint8_t*>(j.msg.data()),
                                     j.msg.size(), j.sig.data())) {
          continue;
        }
        std::lock_guard<std::mutex> l(mu_);
        if (bad_seq_ == 0 || j.seq < bad_seq_) {
          bad_seq_ = j.seq;
          bad_what_ = j.what;
        }
      }
    }
  }

  std::vector<Job> batch_;
  std::mutex mu_;
  std::condition_variable work_cv_, space_cv_;
  std::deque<std::vector<Job>> queue_;
  bool done_ = false;
  Seq bad_seq_ = 0;
  const char* bad_what_ = "";
  std::vector<std::thread> threads_;
};

// Parses an envelope and queues its signature check; false (with *why) when
// it is not even well-formed.
bool queue_envelope(std::string_view bytes, Seq seq, const char* what, SignaturePool* pool,
                    medic::v1::Envelope* env, std::string* why) {
  if (!env->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    *why = "is not a parseable envelope";
    return false;
  }
  SignaturePool::Job job;
  if (!key_from(env->sender(), &job.key) || env->signature().size() != 64) {
    *why = "has a malformed sender key or signature";
    return false;
  }
  std::copy(env->signature().begin(), env->signature().end(), job.sig.begin());
  fabric::signing_input(*env, &job.msg);
  job.seq = seq;
  job.what = what;
  pool->add(std::move(job));
  return true;
}

class Verifier {
 public:
  Verifier(std::vector<fabric::PublicKey> keys, const VerifyOptions& options, VerifyReport* report)
      : keys_(std::move(keys)), options_(options), r_(report) {}

  // False at the first bad row (the report says which and why).
  bool row(const internal::ChainRow& row);
  // Waits for the signature checks; a bad one before first_bad wins.
  void collect_signatures();
  // `creator`: the engine key id meta names (empty when it names none).
  void finish(bool has_head, Seq head_seq, const std::string& head_hash, int64_t head_at,
              const std::string& signer, const std::string& signature,
              const std::string& creator);

 private:
  bool fail(Seq seq, std::string problem) {
    r_->ok = false;
    r_->first_bad = seq;
    r_->problem = std::move(problem);
    return false;
  }
  bool trusted(const fabric::PublicKey& k) const {
    return std::find(keys_.begin(), keys_.end(), k) != keys_.end();
  }
  bool check_evidence(const internal::ChainRow& row);
  bool check_request(const internal::ChainRow& row);
  bool check_checkpoint(const internal::ChainRow& row);
  // The parts of finish(): whether a trusted engine key signed the head;
  // whether the head is the log's last row (else fail()s); whether the
  // --anchor row is still in the log as it was (else fail()s).
  bool head_signed(Seq head_seq, const std::string& head_hash, int64_t head_at,
                   const std::string& signer_bytes, const std::string& signature) const;
  bool check_head_at_end(Seq head_seq, const std::string& head_hash, Seq last);
  bool check_anchor(Seq last);

  std::vector<fabric::PublicKey> keys_;
  const VerifyOptions& options_;
  VerifyReport* r_;
  Seq expected_ = 1;
  Hash prev_{};
  std::string anchor_seen_;
  std::string encode_buf_;
  medic::v1::Envelope env_;
  std::vector<Seq> checkpoints_;  // verified, in order
  SignaturePool pool_;

  Seq last_checkpoint_before(Seq seq) const {
    auto it = std::lower_bound(checkpoints_.begin(), checkpoints_.end(), seq);
    return it == checkpoints_.begin() ? 0 : *(it - 1);
  }
};

bool Verifier::row(const internal::ChainRow& row) {
  const Seq n = row.seq;
  if (n < expected_) {
    return fail(n, "row " + std::to_string(n) + " appears twice (a row was inserted)");
  }
  if (n > expected_) {
    return fail(expected_, "row " + std::to_string(expected_) +
                               " is missing: the chain jumps from row " +
                               std::to_string(expected_ - 1) + " to row " + std::to_string(n) +
                               " (a row was deleted)");
  }
  ++r_->rows;
  if (row.prev_hash != internal::bytes(prev_)) {
    return fail(n, "row " + std::to_string(n) + " (" + internal::table_spec(row.table).name +
                       ") does not link to row " + std::to_string(n - 1) +
                       ": a row was inserted, deleted or moved here");
  }
  encode_buf_.clear();
  internal::encode_row(row.table, n, row.views(), &encode_buf_);
  Hash h = internal::row_hash(prev_, encode_buf_);
  if (row.hash != internal::bytes(h)) {
    return fail(n, "row " + std::to_string(n) + " (" + internal::table_spec(row.table).name +
                       ") was edited: its contents do not match its hash");
  }
  bool ok = true;
  if (row.table == Table::kEvidence) ok = check_evidence(row);
  if (row.table == Table::kRequests) ok = check_request(row);
  if (row.table == Table::kCheckpoints) ok = check_checkpoint(row);
  if (!ok) return false;
  if (options_.anchor && options_.anchor->first == n) anchor_seen_ = internal::hex(h);
  prev_ = h;
  ++expected_;
  return true;
}

bool Verifier::check_evidence(const internal::ChainRow& row) {
  // Columns: received_ns, sender, sender_name, kind, host, envelope.
  std::string why;
  if (!queue_envelope(row.values[5].s, row.seq, "evidence", &pool_, &env_, &why)) {
    return fail(row.seq, "row " + std::to_string(row.seq) + " (evidence): the envelope " + why);
  }
  if (env_.sender() != row.values[1].s || env_.kind() != row.values[3].i ||
      env_.host() != row.values[4].s) {
    return fail(row.seq, "row " + std::to_string(row.seq) +
                             " (evidence): sender, kind or host column does not match the "
                             "signed envelope");
  }
  ++r_->envelopes;
  return true;
}

bool Verifier::check_request(const internal::ChainRow& row) {
  // Columns: received_ns, operator_name, sender, verb, target, accepted, detail, envelope.
  // A refused request is kept as evidence of the attempt; its signature may be
  // the very reason it was refused, so only accepted requests must verify.
  if (row.values[5].i == 0) return true;
  std::string why;
  if (!queue_envelope(row.values[7].s, row.seq, "operator request", &pool_, &env_, &why)) {
    return fail(row.seq,
                "row " + std::to_string(row.seq) + " (operator request): the envelope " + why);
  }
  if (env_.sender() != row.values[2].s) {
    return fail(row.seq, "row " + std::to_string(row.seq) +
                             " (operator request): sender column does not match the envelope");
  }
  ++r_->envelopes;
  return true;
}

void Verifier::collect_signatures() {
  auto [seq, what] = pool_.finish();
  if (seq != 0 && (r_->ok || r_->first_bad == 0 || seq <= r_->first_bad)) {
    fail(seq,
         "row " + std::to_string(seq) + " (" + what + "): the envelope signature does not verify");
    r_->last_checkpoint = last_checkpoint_before(seq);
  }
}

bool Verifier::check_checkpoint(const internal::ChainRow& row) {
  // Columns: at_ns, covers, covers_hash, signer, signature.
  const Seq n = row.seq;
  Hash covers_hash;
  if (row.values[1].i != n - 1 || !internal::to_hash(row.values[2].s, &covers_hash) ||
      covers_hash != prev_) {
    return fail(n,
                "row " + std::to_string(n) + " (checkpoint) does not vouch for the row before it");
  }
  fabric::PublicKey signer;
  if (!key_from(row.values[3].s, &signer) || !trusted(signer)) {
    return fail(n, "row " + std::to_string(n) + " (checkpoint) is signed by key " +
                       internal::hex(row.values[3].s).substr(0, 16) +
                       ", which is not a trusted engine key");
  }
  std::string msg = internal::checkpoint_signing_input(n - 1, covers_hash, row.values[0].i);
  if (row.values[4].s.size() != 64 ||
      !fabric::verify_signature(signer, reinterpret_cast<const uint8_t*>(msg.data()), msg.size(),
                                reinterpret_cast<const uint8_t*>(row.values[4].s.data()))) {
    return fail(n, "row " + std::to_string(n) +
                       " (checkpoint): signature does not verify, so rows after row " +
                       std::to_string(r_->last_checkpoint) + " were altered");
  }
  ++r_->checkpoints;
  r_->last_checkpoint = n;
  checkpoints_.push_back(n);
  return true;
}

void Verifier::finish(bool has_head, Seq head_seq, const std::string& head_hash, int64_t head_at,
                      const std::string& signer_bytes, const std::string& signature,
                      const std::string& creator) {
  const Seq last = expected_ - 1;
  // The engine signs a head when it creates the log, so every log it wrote
  // has one, an empty log included.
  if (!has_head) {
    const std::string by = creator.empty() ? std::string("an engine")
                                           : "engine " + creator.substr(0, 16);
    fail(last + 1, last > 0 ? "the signed head is missing: nothing vouches for the end of the log"
                            : "the log has no rows and the signed head is missing, but " + by +
                                  " created it: its rows and head were deleted");
    return;
  }
  r_->head_seq = head_seq;
  r_->head_hash = internal::hex(head_hash);
  if (!head_signed(head_seq, head_hash, head_at, signer_bytes, signature)) {
    fail(std::min(head_seq, last + 1), "the signed head (row " + std::to_string(head_seq) +
                                           ") does not verify against a trusted engine key");
    return;
  }
  if (!check_head_at_end(head_seq, head_hash, last)) return;
  if (!check_anchor(last)) return;
  r_->ok = true;
}

bool Verifier::head_signed(Seq head_seq, const std::string& head_hash, int64_t head_at,
                           const std::string& signer_bytes, const std::string& signature) const {
  Hash hh;
  fabric::PublicKey signer;
  std::string msg;
  if (internal::to_hash(head_hash, &hh)) msg = internal::head_signing_input(head_seq, hh, head_at);
  return !msg.empty() && key_from(signer_bytes, &signer) && trusted(signer) &&
         signature.size() == 64 &&
         fabric::verify_signature(signer, reinterpret_cast<const uint8_t*>(msg.data()), msg.size(),
                                  reinterpret_cast<const uint8_t*>(signature.data()));
}

bool Verifier::check_head_at_end(Seq head_seq, const std::string& head_hash, Seq last) {
  if (head_seq > last) {
    return fail(last + 1, "the log ends at row " + std::to_string(last) +
                              " but the engine signed a head at row " + std::to_string(head_seq) +
                              ": rows " + std::to_string(last + 1) + ".." +
                              std::to_string(head_seq) + " were removed (truncated)");
  }
  if (head_seq < r_->last_checkpoint) {
    return fail(head_seq + 1, "the signed head (row " + std::to_string(head_seq) +
                                  ") is older than the last checkpoint (row " +
                                  std::to_string(r_->last_checkpoint) +
                                  "): an older head was put back, rows " +
                                  std::to_string(head_seq + 1) + ".." + std::to_string(last) +
                                  " are not vouched for");
  }
  if (head_seq < last) {
    return fail(head_seq + 1, "rows " + std::to_string(head_seq + 1) + ".." +
                                  std::to_string(last) + " come after the signed head (row " +
                                  std::to_string(head_seq) + "): they were added outside the engine");
  }
  if (head_hash != internal::bytes(prev_)) {
    return fail(last, "row " + std::to_string(last) + " does not match the signed head");
  }
  return true;
}

bool Verifier::check_anchor(Seq last) {
  if (!options_.anchor || options_.anchor->first <= 0) return true;  // every log holds "row 0"
  const auto& [seq, hash] = *options_.anchor;
  if (seq > last) {
    return fail(last + 1, "the anchor names row " + std::to_string(seq) +
                              " but the log ends at row " + std::to_string(last) +
                              " (rolled back or truncated)");
  }
  if (anchor_seen_ != hash) {
    return fail(seq, "row " + std::to_string(seq) + " does not match the anchor's hash");
  }
  return true;
}

}  // namespace

Result<VerifyReport> verify_log(const std::string& path, const VerifyOptions& options) {
  if (!fabric::crypto_ready()) return internal_error("libsodium failed to initialise");
  if (::access(path.c_str(), R_OK) != 0) return not_found("no audit log at " + path);
  auto db = internal::Db::open(path, true);
  if (!db.ok()) return db.status();
  VerifyReport report;
  std::vector<fabric::PublicKey> keys = options.engine_keys;
  MEDIC_RETURN_IF_ERROR(db->exec("BEGIN"));
  std::vector<fabric::PublicKey> meta_keys;
  std::string creator;
  {
    auto st = db->prepare("SELECT substr(key, 12) FROM meta WHERE key LIKE 'engine_key:%'");
    if (!st.ok()) return st.status().with_context(path + " is not a medic audit log");
    while (true) {
      auto row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (creator.empty()) creator = st->text(0);
      auto k = fabric::public_key_from_hex(st->text(0));
      if (k.ok()) meta_keys.push_back(*k);
    }
  }
  if (keys.empty()) {
    report.keys_from_log = true;
    keys = meta_keys;
  }
  auto cursor = internal::ChainCursor::open(*db);
  if (!cursor.ok()) return cursor.status().with_context(path + " is not a medic audit log");
  Verifier v(keys, options, &report);
  internal::ChainRow row;
  bool good = true;
  while (good) {
    auto more = cursor->next(&row);
    if (!more.ok()) return more.status();
    if (!*more) break;
    good = v.row(row);
  }
  if (good) {
    auto st = db->prepare("SELECT seq, hash, at_ns, signer, signature FROM head WHERE id = 1");
    if (!st.ok()) return st.status();
    auto has = st->step();
    if (!has.ok()) return has.status();
    if (*has) {
      v.finish(true, st->i64(0), st->blob(1), st->i64(2), st->blob(3), st->blob(4), creator);
    } else {
      v.finish(false, 0, {}, 0, {}, {}, creator);
    }
  }
  v.collect_signatures();
  report.last_good_checkpoint = report.last_checkpoint;
  (void)db->exec("COMMIT");
  return report;
}

std::string VerifyReport::text() const {
  std::string s;
  if (ok) {
    s += "OK: the audit log verifies.\n";
  } else {
    s += "TAMPERED: the audit log does not verify.\n";
    s += "  first bad row: " + std::to_string(first_bad) + "\n";
    s += "  problem:       " + problem + "\n";
    if (last_good_checkpoint > 0) {
      s += "  trust up to:   row " + std::to_string(last_good_checkpoint) +
           " (the last checkpoint that verified: rows up to it are as the engine signed them)\n";
    } else {
      s += "  trust up to:   nothing (no checkpoint verified before the first bad row)\n";
    }
  }
  s += "  rows checked:  " + std::to_string(rows) + "\n";
  s += "  signatures:    " + std::to_string(checkpoints) + " checkpoints, " +
       std::to_string(envelopes) + " signed envelopes\n";
  if (ok && rows > 0) {
    s += "  last checkpoint: row " + std::to_string(last_checkpoint);
    if (head_seq > last_checkpoint) {
      s += " (rows " + std::to_string(last_checkpoint + 1) + ".." + std::to_string(head_seq) +
           " are covered by the signed head only)";
    }
    s += "\n";
    s += "  signed head:   row " + std::to_string(head_seq) + " " + head_hash + "\n";
    s += "  keep the head line above somewhere else; `verify --anchor " + std::to_string(head_seq) +
         ":" + head_hash + "` later proves the log was not rolled back past it.\n";
  }
  if (keys_from_log) {
    s += "  note: signatures were checked against the engine keys the log names itself; pass "
         "--trust FILE to check them against your trust store.\n";
  }
  return s;
}

std::string VerifyReport::json() const {
  Json o = {{"ok", ok},
            {"rows", rows},
            {"checkpoints", checkpoints},
            {"envelopes", envelopes},
            {"last_checkpoint", last_checkpoint},
            {"head_seq", head_seq},
            {"head_hash", head_hash},
            {"keys_from_log", keys_from_log}};
  if (!ok) {
    o["first_bad"] = first_bad;
    o["problem"] = problem;
    o["last_good_checkpoint"] = last_good_checkpoint;
  }
  return dump_json(o);
}

}  // namespace medic::audit
