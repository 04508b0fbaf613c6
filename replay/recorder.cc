#include "replay/recorder.h"

#include <spdlog/spdlog.h>

namespace medic::replay {
namespace {

constexpr size_t kBulkFramesPerTurn = 256;
constexpr Duration kTickEvery = std::chrono::seconds(10);

}  // namespace

Recorder::Recorder(Clock& clock, std::unique_ptr<RecordingWriter> writer,
                   std::unique_ptr<fabric::EventReceiver> receiver)
    : clock_(clock), writer_(std::move(writer)), receiver_(std::move(receiver)) {}

Recorder::~Recorder() { (void)close(); }

Result<std::unique_ptr<Recorder>> Recorder::create(const RecorderConfig& config,
                                                   const fabric::Party& party) {
  Clock& clock = party.clock;
  auto writer = RecordingWriter::open(config.dir, config.recording, clock.now());
  if (!writer.ok()) return writer.status();
  auto receiver = fabric::EventReceiver::create(config.listen, party);
  if (!receiver.ok()) return receiver.status();
  std::unique_ptr<Recorder> r(new Recorder(clock, std::move(*writer), std::move(*receiver)));
  r->loop_ = std::make_unique<EventLoop>(clock);
  Recorder* self_ptr = r.get();
  r->loop_->watch_socket(r->receiver_->urgent_socket().handle(), [self_ptr] { self_ptr->drain(); });
  r->loop_->watch_socket(r->receiver_->bulk_socket().handle(), [self_ptr] { self_ptr->drain(); });
  r->schedule_tick();
  return r;
}

void Recorder::report(const Status& s) {
  if (s.ok()) return;
  log_limiter_.warn("write", clock_.now(),
                    "record: " + s.message() + " (" + std::to_string(written().frames_lost) +
                        " frames lost so far)");
}

void Recorder::drain() {
  receiver_->drain(
      [this](std::string_view frame, const fabric::Opened&, const medic::v1::EventBatch&,
             bool urgent) {
        report(writer_->append({clock_.now(), urgent, std::string(frame)}));
      },
      kBulkFramesPerTurn);
}

// Rotation by age also when no frame comes: an idle fabric still lets old
// segments go.
void Recorder::schedule_tick() {
  clock_.schedule_after(kTickEvery, [this] {
    report(writer_->tick(clock_.now()));
    schedule_tick();
  });
}

void Recorder::run_once(Duration max_wait) {
  loop_->run_once(max_wait);
  report(writer_->flush());
}

Status Recorder::close() {
  if (closed_) return {};
  closed_ = true;
  return writer_->close();
}

std::string Recorder::summary() const {
  const WriterStats& w = written();
  std::string s = std::to_string(w.frames - w.frames_lost) + " frames recorded in " +
                  std::to_string(w.segments_opened) + " segments (" +
                  std::to_string(w.segments_removed) + " removed by the bounds), " +
                  std::to_string(w.frames_lost) + " lost to write errors, " +
                  std::to_string(receiver_->rejections().rejected()) + " refused";
  for (size_t i = 1; i < static_cast<size_t>(fabric::OpenError::kCount); ++i) {
    const auto e = static_cast<fabric::OpenError>(i);
    const uint64_t n = receiver_->rejections().get(e);
    if (n > 0) s += ", " + std::to_string(n) + " " + fabric::open_error_name(e);
  }
  if (receiver_->undecodable() > 0) {
    s += ", " + std::to_string(receiver_->undecodable()) + " undecodable";
  }
  return s;
}

}  // namespace medic::replay
