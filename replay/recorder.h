// The recorder behind `medic record`: a subscriber of the event fabric, like
// an engine, that keeps what it receives in a recording (replay/recording.h)
// instead of deciding on it.
//
// Contract:
// - It binds the two event lanes as an engine does (fabric/receiver.h), so a
//   collector sends to it by listing it as one more entry of its `engines:`
//   with the recorder's key, which pins CurveZMQ to it. It needs no trust
//   role of its own (it signs nothing and commands nobody); its trust store
//   admits the collectors at the socket (ZAP) and opens their envelopes.
// - Only frames that open (signature, role, scope, freshness, replay guard)
//   and decode are recorded, exactly as received, with their arrival time by
//   the injected Clock and their lane; refusals are counted by cause and
//   lane, as at an engine.
// - A write that fails (disk full) loses those frames, counts them, logs
//   once per 10 s and goes on; the process never stops for it.
// - Single-threaded: one EventLoop on the Clock's thread.
#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "fabric/party.h"
#include "fabric/receiver.h"
#include "replay/recording.h"

namespace medic::replay {

struct RecorderConfig {
  fabric::ReceiverEndpoints listen;
  std::string dir;
  RecordingOptions recording;
};

class Recorder {
 public:
  // Opens the recording (a new segment) and binds both lanes.
  static Result<std::unique_ptr<Recorder>> create(const RecorderConfig& config,
                                                  const fabric::Party& party);
  ~Recorder();

  // One loop step: waits at most `max_wait` for frames, records what came,
  // writes it out, rotates when due.
  void run_once(Duration max_wait);
  // Writes what is buffered and closes the segment. Idempotent.
  Status close();

  std::string events_endpoint() const { return receiver_->bulk_endpoint(); }
  std::string urgent_endpoint() const { return receiver_->urgent_endpoint(); }
  const WriterStats& written() const { return writer_->stats(); }
  const fabric::EventReceiver& receiver() const { return *receiver_; }
  // One line: frames recorded, refused by cause, lost, segments.
  std::string summary() const;

 private:
  Recorder(Clock& clock, std::unique_ptr<RecordingWriter> writer,
           std::unique_ptr<fabric::EventReceiver> receiver);
  void drain();
  void schedule_tick();
  void report(const Status& s);

  Clock& clock_;
  std::unique_ptr<RecordingWriter> writer_;
  std::unique_ptr<fabric::EventReceiver> receiver_;
  std::unique_ptr<EventLoop> loop_;
  LogLimiter log_limiter_;
  bool closed_ = false;
};

}  // namespace medic::replay
