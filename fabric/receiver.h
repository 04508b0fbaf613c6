// The engine's side of the event fabric: two SUB sockets, one per lane.
// The urgent lane (lifecycle events such as a panic) is always drained before
// the bulk lane (periodic state reports), so a flood of state reports never
// delays a panic -> reset decision. Every frame is opened (signature, role,
// scope, replay) and decoded before it reaches the sink; rejected frames are
// counted by cause and logged once per cause per interval.
#pragma once


#include <functional>
#include <memory>
#include <string>

#include "core/log.h"
#include "fabric/envelope.h"
#include "fabric/party.h"
#include "fabric/transport.h"

namespace medic::fabric {

struct ReceiverEndpoints {
  std::string bulk;    // e.g. tcp://0.0.0.0:7701
  std::string urgent;  // e.g. tcp://0.0.0.0:7702
};

class EventReceiver {
 public:
  // Called for every accepted batch: `frame` the bytes exactly as received
  // (the evidence the audit log keeps), `opened` the verified envelope,
  // `batch` its decoded payload. `batch` lives until the sink returns.
  using Sink = std::function<void(std::string_view frame, const Opened& opened,
                                  const medic::v1::EventBatch& batch, bool urgent)>;

  static Result<std::unique_ptr<EventReceiver>> create(const ReceiverEndpoints& ep,
                                                       const Party& party, OpenLimits limits = {});

  // Reads everything waiting on the urgent lane, then at most `max_bulk`
  // frames of the bulk lane; never blocks. Returns frames read.
  size_t drain(const Sink& sink, size_t max_bulk = 64);

  zmq::socket_t& urgent_socket() { return urgent_; }
  zmq::socket_t& bulk_socket() { return bulk_; }
  std::string bulk_endpoint() const { return bulk_.get(zmq::sockopt::last_endpoint); }
  std::string urgent_endpoint() const { return urgent_.get(zmq::sockopt::last_endpoint); }

  // Rejected frames by cause: of both lanes, or of one.
  const OpenCounters& rejections() const { return opener_.counters(); }
  const OpenCounters& rejections(bool urgent) const {
    return urgent ? urgent_rejected_ : bulk_rejected_;
  }
  // Its replay guard, for keeping the marks across restarts.
  Opener& opener() { return opener_; }
  uint64_t undecodable() const { return undecodable_; }
  uint64_t accepted_batches() const { return accepted_; }

 private:
  EventReceiver(zmq::socket_t bulk, zmq::socket_t urgent, const TrustStore& trust,
                const Clock& clock, OpenLimits limits);
  bool read_one(zmq::socket_t& s, const Sink& sink, bool urgent);

  zmq::socket_t bulk_;
  zmq::socket_t urgent_;
  const Clock& clock_;
  Opener opener_;
  LogLimiter log_limiter_;
  OpenCounters bulk_rejected_;
  OpenCounters urgent_rejected_;
  uint64_t undecodable_ = 0;
  uint64_t accepted_ = 0;
  Opened opened_;
  BatchDecoder decoder_;
};

}  // namespace medic::fabric
