#include "fabric/control.h"

#include <spdlog/spdlog.h>

namespace medic::fabric {

ControlServer::ControlServer(zmq::socket_t socket, const Identity& identity,
                             const TrustStore& trust, const Clock& clock, ControlHandler& handler)
    : socket_(std::move(socket)),
      identity_(identity),
      clock_(clock),
      handler_(handler),
      opener_(trust, clock),
      sealer_(identity) {
  opener_.expect_kinds({medic::v1::KIND_CONTROL_REQUEST});
}

Result<std::unique_ptr<ControlServer>> ControlServer::create(const std::string& endpoint,
                                                             const Party& party,
                                                             ControlHandler& handler) {
  SocketOptions opts;
  opts.max_message_bytes = 1 << 20;
  opts.router_mandatory = false;  // an operator that went away just misses its reply
  auto sock = party.ctx.bind(zmq::socket_type::router, endpoint, party.identity, opts);
  if (!sock.ok()) return sock.status();
  return std::unique_ptr<ControlServer>(
      new ControlServer(std::move(*sock), party.identity, party.trust, party.clock, handler));
}

std::string ControlServer::endpoint() const { return socket_.get(zmq::sockopt::last_endpoint); }

size_t ControlServer::poll() {
  size_t answered = 0;
  while (true) {
    zmq::message_t peer;
    if (!socket_.recv(peer, zmq::recv_flags::dontwait)) break;
    // ROUTER framing: [peer id][body] from a DEALER. Anything else is drained.
    std::vector<zmq::message_t> parts;
    bool more = peer.more();
    while (more) {
      zmq::message_t m;
      if (!socket_.recv(m, zmq::recv_flags::dontwait)) break;
      more = m.more();
      parts.push_back(std::move(m));
    }
    if (parts.size() != 1) continue;
    Opened opened;
    std::string why;
    OpenError e = opener_.open(parts[0].to_string_view(), &opened, &why);
    if (e != OpenError::kOk) {
      log_limiter_.warn(open_error_name(e), clock_.now(),
                        std::string("control: rejected a request (") + open_error_name(e) + "): " + why);
      continue;
    }
    medic::v1::ControlRequest request;
    medic::v1::ControlReply reply;
    if (!request.ParseFromString(opened.envelope.payload())) {
      reply.set_ok(false);
      reply.set_error("request from \"" + opened.sender->name + "\" does not decode");
    } else {
      reply = handler_.handle(request, opened);
      reply.set_request_id(request.request_id());
    }
    std::string frame = sealer_.seal(medic::v1::KIND_CONTROL_REPLY, opened.envelope.host(),
                                     reply.SerializeAsString(), clock_.now());
    socket_.send(peer, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    ++answered;
  }
  return answered;
}

Result<medic::v1::ControlReply> send_control_request(const ControlTarget& target,
                                                     const Identity& operator_identity,
                                                     const TrustStore& trust,
                                                     const medic::v1::ControlRequest& request,
                                                     std::chrono::milliseconds limit) {
  auto ctx = Context::create(trust);
  if (!ctx.ok()) return ctx.status();
  SystemClock clock;
  Result<medic::v1::ControlReply> result = timeout_error(
      "no reply from the engine at " + target.endpoint + " within " +
      std::to_string(limit.count()) + " ms (is it running, and is this the right endpoint?)");
  {
    auto sock = (*ctx)->connect(zmq::socket_type::dealer, target.endpoint, operator_identity,
                                target.engine_key);
    if (!sock.ok()) return sock.status();
    Sealer sealer(operator_identity);
    std::string frame = sealer.seal(medic::v1::KIND_CONTROL_REQUEST, "",
                                    request.SerializeAsString(), clock.now());
    sock->send(zmq::buffer(frame), zmq::send_flags::dontwait);
    Opener opener(trust, clock);
    opener.expect_kinds({medic::v1::KIND_CONTROL_REPLY});
    zmq::pollitem_t item{sock->handle(), 0, ZMQ_POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      try {
        if (zmq::poll(&item, 1, left) <= 0) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        return unavailable(std::string("waiting for the engine's reply: ") + e.what());
      }
      zmq::message_t m;
      if (!sock->recv(m, zmq::recv_flags::dontwait)) continue;
      Opened opened;
      std::string why;
      if (opener.open(m.to_string_view(), &opened, &why) != OpenError::kOk) {
        result = permission_denied("reply rejected: " + why);
        break;
      }
      if (opened.sender->key != target.engine_key) {
        result = permission_denied("reply signed by \"" + opened.sender->name +
                                   "\", not by the engine addressed");
        break;
      }
      medic::v1::ControlReply reply;
      if (!reply.ParseFromString(opened.envelope.payload())) {
        result = invalid_argument("engine reply does not decode");
        break;
      }
      if (reply.request_id() != request.request_id()) continue;
      result = std::move(reply);
      break;
    }
  }
  return result;
}

}  // namespace medic::fabric
