// The AuditStore's appends, units and writer thread: seqs assigned under mu_
// at append time, group commit of the whole queue (and the state rows of the
// units in it) in one transaction of the backend on the writer thread.
#include "audit/chained_store.h"

namespace medic::audit::internal {

Result<Seq> ChainedAuditStore::append_batch(std::vector<Record> records) {
  if (records.empty()) return invalid_argument("empty batch");
  std::unique_lock<std::mutex> l(mu_);
  // A unit that would fill the queue is split: the writer must be able to drain.
  if (unit_open_ && !unit_.empty() && queue_.size() + unit_.size() >= options_.max_queued) {
    release_unit();
    writer_cv_.notify_one();
  }
  space_cv_.wait(l,
                 [&] { return queue_.size() < options_.max_queued || closing_ || !failed_.ok(); });
  if (closing_ || closed_) return unavailable("the audit log is closed");
  // While writes fail, rows wait in memory up to the queue bound; beyond it
  // they are refused at once rather than blocking the caller.
  if (!failed_.ok() && queue_.size() + unit_.size() >= options_.max_queued) {
    return unavailable("the audit log cannot be written: " + failed_.message());
  }
  note_time();

  Overlay overlay;
  std::unordered_set<std::string> new_decisions;
  std::vector<Pending> out;
  Seq next = next_seq_;
  for (Record& r : records) {
    Pending p;
    p.seq = next++;
    p.rec = std::move(r);
    Status s = validate(p.rec, &p, &overlay, &new_decisions, &next, &out);
    if (!s.ok()) return s;
  }
  // Accepted: publish the new states and queue the rows.
  for (auto& [id, state] : overlay) {
    if (!state) continue;
    if (is_terminal(*state)) {
      live_.erase(id);
      recent_states_.put(id, *state);
    } else {
      live_[id] = *state;
    }
  }
  for (const auto& id : new_decisions) recent_decisions_.put(id, true);
  next_seq_ = next;
  std::vector<Pending>& into = unit_open_ ? unit_ : queue_;
  for (auto& p : out) into.push_back(std::move(p));
  l.unlock();
  writer_cv_.notify_one();
  return next - 1;
}

void ChainedAuditStore::begin_unit() {
  std::lock_guard<std::mutex> l(mu_);
  unit_open_ = true;
}

void ChainedAuditStore::release_unit() {
  for (auto& p : unit_) queue_.push_back(std::move(p));
  unit_.clear();
}

Status ChainedAuditStore::commit_unit(std::vector<StateRow> rows) {
  {
    std::lock_guard<std::mutex> l(mu_);
    const bool had_rows = !unit_.empty();
    release_unit();
    unit_open_ = false;
    if (closing_ || closed_) return unavailable("the audit log is closed");
    if (rows.empty() && !had_rows) return {};
    if (!rows.empty()) {
      Pending p;
      p.state = std::move(rows);
      queue_.push_back(std::move(p));
    }
  }
  writer_cv_.notify_one();
  return {};
}

Result<std::vector<StateRow>> ChainedAuditStore::load_state() { return backend_->load_state(); }

Status ChainedAuditStore::wait_durable(Seq seq, Duration limit) {
  std::unique_lock<std::mutex> l(mu_);
  if (seq >= next_seq_) {
    return invalid_argument("row " + std::to_string(seq) + " has not been appended");
  }
  bool done = durable_cv_.wait_for(
      l, limit, [&] { return durable_.load(std::memory_order_acquire) >= seq || !failed_.ok(); });
  if (durable_.load() >= seq) return {};
  if (!failed_.ok()) return unavailable("the audit log writer failed: " + failed_.message());
  (void)done;
  return timeout_error("row " + std::to_string(seq) + " not durable after " +
                       std::to_string(limit.count() / 1'000'000) + " ms");
}

Result<Seq> ChainedAuditStore::checkpoint() {
  std::unique_lock<std::mutex> l(mu_);
  if (!failed_.ok()) return unavailable("the audit log writer failed: " + failed_.message());
  if (closed_) return unavailable("the audit log is closed");
  Seq target = next_seq_;
  if (last_checkpoint_seq_ == target - 1 || target == 1) return last_checkpoint_seq_;
  note_time();
  checkpoint_requested_ = true;
  writer_cv_.notify_one();
  durable_cv_.wait(l, [&] { return last_checkpoint_seq_ >= target || !failed_.ok(); });
  if (!failed_.ok()) return unavailable("the audit log writer failed: " + failed_.message());
  return last_checkpoint_seq_;
}

Result<std::optional<ActionState>> ChainedAuditStore::action_state(const std::string& action_id) {
  std::lock_guard<std::mutex> l(mu_);
  return current_state(action_id, {});
}

Result<std::vector<InFlightAction>> ChainedAuditStore::in_flight(Time now, bool include_expired) {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> l(mu_);
    ids.reserve(live_.size());
    for (const auto& [id, state] : live_) ids.push_back(id);
  }
  // Queued rows must be readable before we look them up (those of an open
  // unit cannot be yet: they wait for its commit).
  Seq upto = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    upto = (unit_.empty() ? next_seq_ : unit_.front().seq) - 1;
  }
  if (upto > 0) MEDIC_RETURN_IF_ERROR(wait_durable(upto, std::chrono::seconds(30)));
  auto rows = backend_->in_flight_rows(ids);
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<Seq, InFlightAction>> found;
  for (auto& [seq, a] : *rows) {
    const bool expired = to_ns(a.expires_at) != 0 && a.expires_at <= now;
    if (!is_terminal(a.state) && (include_expired || !expired)) {
      found.emplace_back(seq, std::move(a));
    }
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<InFlightAction> out;
  out.reserve(found.size());
  for (auto& [seq, a] : found) out.push_back(std::move(a));
  return out;
}

Status ChainedAuditStore::close() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return failed_.ok() ? Status{} : failed_;
    if (!closing_) {
      clock_.cancel(checkpoint_timer_);
      note_time();
    }
    closing_ = true;
    checkpoint_requested_ = true;
    release_unit();
    unit_open_ = false;
  }
  writer_cv_.notify_one();
  space_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  std::lock_guard<std::mutex> l(mu_);
  closed_ = true;
  backend_->close();
  return failed_.ok() ? Status{} : failed_;
}

void ChainedAuditStore::writer_loop() {
  std::vector<Pending> batch;
  Seq checkpoint_seq = 0;
  Duration backoff = kFirstRetry;
  while (true) {
    bool stop = false;
    // A batch whose write failed is kept and written again, alone and with
    // the same checkpoint seq, so the chain on disk never has a gap.
    const bool retrying = !batch.empty() || checkpoint_seq;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (retrying) {
        writer_cv_.wait_for(l, backoff, [&] { return closing_; });
      } else {
        writer_cv_.wait(l, [&] { return writer_ready(); });
        take_batch(&batch, &checkpoint_seq);
      }
      write_at_ns_ = now_ns_;
      stop = closing_ && queue_.empty();
    }
    space_cv_.notify_all();
    if (!batch.empty() || checkpoint_seq) {
      const auto started = std::chrono::steady_clock::now();
      Status s = write_batch(batch, checkpoint_seq);
      if (Histogram* h = commit_histogram_.load(); h && s.ok()) {
        h->observe(std::chrono::steady_clock::now() - started);
      }
      after_write(s, checkpoint_seq);
      if (s.ok()) {
        batch.clear();
        checkpoint_seq = 0;
        backoff = kFirstRetry;
      } else {
        backoff = std::min<Duration>(backoff * 2, kLastRetry);
        // Closing on a store that cannot be written: the rows are lost.
        if (stop) break;
        continue;
      }
    }
    if (stop) break;
  }
}

bool ChainedAuditStore::writer_ready() const {
  const bool due = rows_since_checkpoint_ > 0 && checkpoint_timer_due_;
  const bool checkpoint = (checkpoint_requested_ && rows_since_checkpoint_) || due;
  return !queue_.empty() || closing_ || (checkpoint && unit_.empty());
}

// REQUIRES mu_. Takes the queue and reserves a checkpoint's seq when one is
// due, right after the batch; never while a unit holds rows with lower seqs.
void ChainedAuditStore::take_batch(std::vector<Pending>* batch, Seq* checkpoint_seq) {
  batch->swap(queue_);
  Seq rows = rows_since_checkpoint_;
  for (const Pending& p : *batch) rows += p.seq ? 1 : 0;
  const bool due = rows_since_checkpoint_ > 0 && checkpoint_timer_due_;
  bool want = rows > 0 && (checkpoint_requested_ || rows >= options_.checkpoint_every_rows ||
                           due || (closing_ && queue_.empty()));
  if (want && !unit_.empty()) return;  // once the unit is committed
  if (want) *checkpoint_seq = next_seq_++;
  checkpoint_requested_ = false;
  checkpoint_timer_due_ = false;
}

// The outcome of one write: durable moves on, or the store is degraded with
// the cause (logged once per cause) until a write succeeds again.
void ChainedAuditStore::after_write(const Status& s, Seq checkpoint_seq) {
  Seq durable = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (s.ok()) {
      durable_.store(last_seq_, std::memory_order_release);
      durable = last_seq_;
      if (checkpoint_seq) last_checkpoint_seq_ = checkpoint_seq;
      if (!failed_.ok()) spdlog::info("audit log {}: writing again after: {}", path_,
                                      failed_.message());
      failed_ = {};
    } else {
      if (failed_.message() != s.message()) {
        spdlog::error("audit log {}: write failed, retrying; nothing is decided or dispatched "
                      "until it succeeds: {}", path_, s.message());
      }
      failed_ = s;
    }
  }
  durable_cv_.notify_all();
  space_cv_.notify_all();
  if (durable) {
    std::lock_guard<std::mutex> l(listener_mu_);
    if (listener_) listener_(durable);
  }
}

Status ChainedAuditStore::insert_row(ChainWriter& w, Table t, Seq seq,
                                     const std::vector<Value>& values) {
  encode_buf_.clear();
  internal::encode_row(t, seq, values, &encode_buf_);
  Hash h = internal::row_hash(last_hash_, encode_buf_);
  MEDIC_RETURN_IF_ERROR(w.insert_row(t, seq, values, last_hash_, h));
  last_hash_ = h;
  last_seq_ = seq;
  ++rows_since_checkpoint_;
  return {};
}

Status ChainedAuditStore::insert_pending(ChainWriter& w, const Pending& p) {
  if (p.seq == 0) return w.write_state(p.state);
  switch (p.table) {
    case Table::kEvidence: {
      const Evidence& e = p.rec.evidence;
      return insert_row(
          w, p.table, p.seq,
          {Value::of(ns(e.received_at)), Value::of(p.sender), Value::of(e.sender_name),
           Value::of(int64_t{p.kind}), Value::of(p.host), Value::of(e.envelope)});
    }
    case Table::kDecisions: {
      internal::DecisionTexts texts;
      return insert_row(w, p.table, p.seq, internal::decision_values(p.rec.decision, &texts));
    }
    case Table::kTransitions:
      return insert_row(w, p.table, p.seq, internal::transition_values(p.rec.transition));
    case Table::kRequests: {
      const OperatorRequest& q = p.rec.request;
      return insert_row(
          w, p.table, p.seq,
          {Value::of(ns(q.received_at)), Value::of(q.operator_name), Value::of(p.sender),
           Value::of(q.verb), Value::of(q.target), Value::of(int64_t{q.accepted ? 1 : 0}),
           Value::of(q.detail), Value::of(q.envelope)});
    }
    case Table::kVerdicts: {
      const HealVerdict& v = p.rec.verdict;
      return insert_row(
          w, p.table, p.seq,
          {Value::of(v.action_id), Value::of(to_ns(v.at)), Value::of(int64_t{v.healed ? 1 : 0}),
           Value::of(v.detail), Value::of(v.next), Value::of(v.ref)});
    }
    case Table::kCheckpoints: break;
  }
  return internal_error("unexpected pending row");
}

Status ChainedAuditStore::write_head(ChainWriter& w) {
  const int64_t at = write_at_ns_;
  std::string msg = internal::head_signing_input(last_seq_, last_hash_, at);
  auto sig = engine_.sign(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  return w.write_head(
      last_seq_, last_hash_, at,
      std::string_view(reinterpret_cast<const char*>(engine_.public_key().data()), 32),
      std::string_view(reinterpret_cast<const char*>(sig.data()), sig.size()));
}

Status ChainedAuditStore::write_batch(std::vector<Pending>& batch, Seq checkpoint_seq) {
  Hash saved_hash = last_hash_;
  Seq saved_seq = last_seq_;
  Seq saved_rows = rows_since_checkpoint_;
  Status s = backend_->transact([&](ChainWriter& w) {
    for (const Pending& p : batch) MEDIC_RETURN_IF_ERROR(insert_pending(w, p));
    if (checkpoint_seq) {
      const int64_t at = write_at_ns_;
      std::string msg = internal::checkpoint_signing_input(last_seq_, last_hash_, at);
      auto sig = engine_.sign(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
      std::string covers_hash(internal::bytes(last_hash_));
      std::string signer(reinterpret_cast<const char*>(engine_.public_key().data()), 32);
      std::string signature(reinterpret_cast<const char*>(sig.data()), sig.size());
      MEDIC_RETURN_IF_ERROR(insert_row(w, Table::kCheckpoints, checkpoint_seq,
                                       {Value::of(at), Value::of(last_seq_), Value::of(covers_hash),
                                        Value::of(signer), Value::of(signature)}));
    }
    return write_head(w);
  });
  if (!s.ok()) {
    last_hash_ = saved_hash;
    last_seq_ = saved_seq;
    rows_since_checkpoint_ = saved_rows;
    return s;
  }
  if (checkpoint_seq) rows_since_checkpoint_ = 0;
  return {};
}

void ChainedAuditStore::arm_checkpoint_timer() {
  checkpoint_timer_ = clock_.schedule_after(options_.checkpoint_every, [this] {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closing_) return;
      note_time();
      checkpoint_timer_due_ = true;
    }
    writer_cv_.notify_one();
    arm_checkpoint_timer();
  });
}

}  // namespace medic::audit::internal
