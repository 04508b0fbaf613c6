#include "fabric/receiver.h"

#include <spdlog/spdlog.h>

namespace medic::fabric {

EventReceiver::EventReceiver(zmq::socket_t bulk, zmq::socket_t urgent, const TrustStore& trust,
                             const Clock& clock, OpenLimits limits)
    : bulk_(std::move(bulk)),
      urgent_(std::move(urgent)),
      clock_(clock),
      opener_(trust, clock, limits) {
  opener_.expect_kinds({medic::v1::KIND_EVENT_BATCH});
  opener_.fill_batches(&decoder_);
}

Result<std::unique_ptr<EventReceiver>> EventReceiver::create(const ReceiverEndpoints& ep,
                                                             const Party& party,
                                                             OpenLimits limits) {
  SocketOptions opts;
  opts.max_message_bytes = static_cast<int64_t>(limits.max_frame_bytes);
  auto bulk = party.ctx.bind(zmq::socket_type::sub, ep.bulk, party.identity, opts);
  if (!bulk.ok()) return bulk.status();
  auto urgent = party.ctx.bind(zmq::socket_type::sub, ep.urgent, party.identity, opts);
  if (!urgent.ok()) return urgent.status();
  bulk->set(zmq::sockopt::subscribe, "");
  urgent->set(zmq::sockopt::subscribe, "");
  return std::unique_ptr<EventReceiver>(
      new EventReceiver(std::move(*bulk), std::move(*urgent), party.trust, party.clock, limits));
}

bool EventReceiver::read_one(zmq::socket_t& s, const Sink& sink, bool urgent) {
  zmq::message_t m;
  if (!s.recv(m, zmq::recv_flags::dontwait)) return false;
  std::string why;
  OpenError e = opener_.open(m.to_string_view(), &opened_, &why);
  if (e != OpenError::kOk) {
    (urgent ? urgent_rejected_ : bulk_rejected_).add(e);
    log_limiter_.warn(open_error_name(e), clock_.now(),
                      std::string("events: rejected a batch (") + open_error_name(e) + "): " + why);
    return true;
  }
  auto batch = decoder_.decode(opened_);
  if (!batch.ok()) {
    ++undecodable_;
    log_limiter_.warn("undecodable", clock_.now(),
                      "events: dropped a batch: " + batch.status().message());
    return true;
  }
  ++accepted_;
  sink(m.to_string_view(), opened_, **batch, urgent);
  return true;
}

size_t EventReceiver::drain(const Sink& sink, size_t max_bulk) {
  size_t n = 0;
  while (read_one(urgent_, sink, true)) ++n;
  for (size_t i = 0; i < max_bulk; ++i) {
    // A panic that arrives while bulk is being read jumps the queue.
    while (read_one(urgent_, sink, true)) ++n;
    if (!read_one(bulk_, sink, false)) break;
    ++n;
  }
  return n;
}

}  // namespace medic::fabric
