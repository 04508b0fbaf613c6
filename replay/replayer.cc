// The Replayer (replay/replay.h): recorded frames -> open -> rules engine.
#include <spdlog/spdlog.h>

#include "replay/replay.h"

namespace medic::replay {
namespace {

constexpr int kEventIndexBits = 20;  // as the engine node's evidence refs

}  // namespace

Replayer::Replayer(const fabric::TrustStore& trust, std::shared_ptr<const rules::RuleSet> rules,
                   ReplayOptions options)
    : trust_(trust),
      rules_(std::move(rules)),
      options_(std::move(options)),
      live_used_(options_.live_results.size(), false) {}

Replayer::~Replayer() = default;

// The engine is made at the first frame's time: its clock starts there, as a
// live engine's starts when it does.
void Replayer::start(Time at) {
  clock_ = std::make_unique<VirtualClock>(at);
  opener_ = std::make_unique<fabric::Opener>(trust_, *clock_, options_.limits);
  opener_->expect_kinds({medic::v1::KIND_EVENT_BATCH});
  decoder_ = std::make_unique<fabric::BatchDecoder>();
  opener_->fill_batches(decoder_.get());
  engine_ = std::make_unique<rules::Engine>(*clock_, rules_, options_.engine, *this);
  result_.first = at;
}

void Replayer::refuse(const std::string& where, std::string cause, std::string detail) {
  ++result_.refused;
  ++result_.refused_by_cause[cause];
  if (result_.refusals.size() < options_.max_refusals_kept) {
    result_.refusals.push_back({where, std::move(cause), std::move(detail)});
  }
}

void Replayer::feed(const RecordedFrame& f, const std::string& where) {
  ++result_.frames;
  if (!clock_) start(f.received_at);
  // Timers due before this frame's arrival run first, at their own times.
  clock_->advance_to(std::max(f.received_at, clock_->now()));
  result_.last = clock_->now();
  std::string why;
  fabric::OpenError e = opener_->open(f.frame, &opened_, &why);
  if (e != fabric::OpenError::kOk) return refuse(where, fabric::open_error_name(e), why);
  auto batch = decoder_->decode(opened_);
  if (!batch.ok()) return refuse(where, "undecodable", batch.status().message());
  ++result_.batches;
  const uint64_t number = next_envelope_++;
  engine_->host_seen(opened_.envelope.host(), clock_->now());
  const medic::v1::EventBatch& events = **batch;
  for (int i = 0; i < events.events_size(); ++i) {
    ++result_.events;
    engine_->ingest(events.events(i), (number << kEventIndexBits) | static_cast<uint32_t>(i));
  }
}

const LiveResult* Replayer::take_live_result(const rules::Decision& d) {
  const std::string verb(rules::step_name(d.step));
  for (size_t i = 0; i < options_.live_results.size(); ++i) {
    const DecisionLine& l = options_.live_results[i].decision;
    const Duration apart = l.at > d.at ? l.at - d.at : d.at - l.at;
    if (live_used_[i] || l.vm != d.vm || l.host != d.host || l.rule != d.rule || l.verb != verb ||
        l.ladder_step != d.ladder_step || apart > options_.match_within) {
      continue;
    }
    live_used_[i] = true;
    return &options_.live_results[i];
  }
  return nullptr;
}

void Replayer::on_decision(const rules::Decision& d) {
  result_.decisions.push_back(d);
  const bool acts =
      d.outcome == rules::Outcome::kProposed || d.outcome == rules::Outcome::kApproved;
  if (!acts || d.step == rules::Step::kNotify) return;
  // The actuator's stand-in; it runs later on the clock, never inside this call.
  const std::string id = d.id;
  if (const LiveResult* live = take_live_result(d)) {
    ++result_.answered_as_live;
    const LiveResult answer = *live;
    clock_->schedule_at(d.at + answer.after, [this, id, answer] {
      engine_->on_action_result(id, answer.outcome, answer.healed, "as live: " + answer.detail);
    });
    return;
  }
  ++result_.answered_by_stand_in;
  clock_->schedule_after(options_.result_after, [this, id] {
    engine_->on_action_result(id, ActionState::kSucceeded, false,
                              "the replay's stand-in for the actuator");
  });
}

const ReplayResult& Replayer::result() {
  if (engine_) result_.engine = engine_->stats();
  return result_;
}

Result<ReplayResult> replay_recording(const std::string& path, const fabric::TrustStore& trust,
                                      std::shared_ptr<const rules::RuleSet> rules,
                                      const ReplayOptions& options) {
  auto reader = RecordingReader::open(path);
  if (!reader.ok()) return reader.status();
  Replayer replayer(trust, std::move(rules), options);
  RecordedFrame f;
  while ((*reader)->next(&f)) replayer.feed(f, (*reader)->where());
  ReplayResult r = replayer.result();
  r.read_problems = (*reader)->problems();
  r.segments = (*reader)->segments();
  return r;
}

}  // namespace medic::replay
